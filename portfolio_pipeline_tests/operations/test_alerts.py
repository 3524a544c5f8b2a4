"""Alert sensors and checks: failed runs, risk limits, stale live data (the delivery and the
rules themselves are operations.notifications, tested in core/test_alerts.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
import polars as pl

from portfolio_pipeline import warehouse
from portfolio_pipeline.market.assets import RAW_OHLCV_DDL, raw_ohlcv
from portfolio_pipeline.market.resources import OhlcvSourceResource
from portfolio_pipeline.news.resources import NewsSourceResource
from portfolio_pipeline.operations import checks
from portfolio_pipeline.operations.alerts import (
    raw_data_freshness_sensor,
    risk_limit_sensor,
    run_failure_alert_sensor,
)
from portfolio_pipeline.warehouse.resources import WarehouseResource
from portfolio_pipeline_tests.helpers import materialize_range, pipeline_resources, risk_rows


# --------------------------------------------------------------------------- failed runs
def test_failed_run_is_posted_with_the_failing_rule(
    tmp_path, tmp_warehouse, monkeypatch, sample_ohlcv, webhook_env
):
    folder = tmp_path / "files" / "ohlcv"
    folder.mkdir(parents=True)
    bad = sample_ohlcv.filter(
        pl.col("symbol").is_in(["BTCUSDT", "ETHUSDT"])
        & pl.col("date").is_between(date(2024, 1, 1), date(2024, 1, 5))
    ).select("symbol", "date", "open", "high", "low", "close", "volume")
    hit = (pl.col("symbol") == "ETHUSDT") & (pl.col("date") == date(2024, 1, 3))
    bad.with_columns(
        pl.when(hit).then(pl.col("low") * 0.5).otherwise("high").alias("high")
    ).write_csv(folder / "prices.csv")
    resources = pipeline_resources(
        tmp_warehouse,
        ohlcv_source="files",
        files_dir=tmp_path / "files",
        symbols=("BTCUSDT", "ETHUSDT"),
    )
    instance = dg.DagsterInstance.ephemeral()
    # As the CLI and the UI launch it: the project's asset job with an asset selection.
    job = dg.Definitions(
        assets=[raw_ohlcv], resources=resources
    ).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        asset_selection=[raw_ohlcv.key],
        partition_key="2024-01",
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
    ).for_run_failure()
    run_failure_alert_sensor(context)
    [text] = webhook_env.texts
    assert "run FAILED: assets raw_ohlcv, partition 2024-01" in text and result.run_id in text
    assert "ohlcv_high_ge_open_close" in text and "ETHUSDT 2024-01-03" in text
    assert f"http://127.0.0.1:3000/runs/{result.run_id}" in text


# --------------------------------------------------------------------------- risk limits
def _write_risk(path, frame):
    with warehouse.connection(path) as con:
        warehouse.replace_table(con, "portfolio.risk_metrics", frame)


def test_risk_sensor_alerts_once_per_distinct_breach(tmp_warehouse, webhook_env, monkeypatch):
    monkeypatch.delenv("PORTFOLIO_PIPELINE_VAR95_LIMIT", raising=False)
    resources = {"warehouse_resource": WarehouseResource(path=str(tmp_warehouse))}
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        return risk_limit_sensor.evaluate_tick(context)

    _write_risk(tmp_warehouse, risk_rows(date(2024, 1, 1), {("current", "var_hist_95"): 0.03}))
    calm = tick(None)
    assert "within limits" in calm.skip_message and not webhook_env.requests
    _write_risk(
        tmp_warehouse,
        risk_rows(
            date(2024, 1, 2), {("current", "var_hist_95"): 0.11, ("current", "max_drawdown"): 0.3}
        ),
    )
    first = tick(calm.cursor)
    assert len(webhook_env.texts) == 1
    assert "var_hist_95 = 0.1100 > limit 0.0800" in webhook_env.texts[0]
    assert "2024-01-02" in webhook_env.texts[0]
    assert "already alerted" in tick(first.cursor).skip_message and len(webhook_env.texts) == 1
    _write_risk(tmp_warehouse, risk_rows(date(2024, 1, 3), {("current", "var_hist_95"): 0.12}))
    second = tick(first.cursor)
    assert len(webhook_env.texts) == 2 and "0.1200" in webhook_env.texts[1]
    _write_risk(tmp_warehouse, risk_rows(date(2024, 1, 4), {("current", "var_hist_95"): 0.02}))
    assert tick(second.cursor).cursor == "" and len(webhook_env.texts) == 2


def test_risk_sensor_reads_the_published_snapshot_while_a_run_writes(tmp_warehouse, webhook_env):
    resources = {"warehouse_resource": WarehouseResource(path=str(tmp_warehouse))}
    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_sensor_context(instance=instance, resources=resources)
    assert "not readable" in risk_limit_sensor.evaluate_tick(context).skip_message  # no file yet
    with warehouse.connection(tmp_warehouse) as con:
        con.execute("create schema portfolio")
    context = dg.build_sensor_context(instance=instance, resources=resources)
    assert "does not exist yet" in risk_limit_sensor.evaluate_tick(context).skip_message
    _write_risk(tmp_warehouse, risk_rows(date(2024, 1, 2), {("current", "var_hist_95"): 0.5}))
    instance.add_run(
        dg.DagsterRun(
            job_name="daily_refresh_job", run_id="running-run", status=dg.DagsterRunStatus.STARTED
        )
    )
    # A run is writing newer, calmer rows that it has not published yet: the tick reads the
    # published breach (it no longer skips runs: reading cannot make the run fail).
    with warehouse.connection(tmp_warehouse) as con:
        calm = risk_rows(date(2024, 1, 3), {("current", "var_hist_95"): 0.01})
        warehouse.replace_table(con, "portfolio.risk_metrics", calm)
        context = dg.build_sensor_context(instance=instance, resources=resources)
        risk_limit_sensor.evaluate_tick(context)
        assert len(webhook_env.texts) == 1 and "2024-01-02" in webhook_env.texts[0]


# --------------------------------------------------------------------------- freshness
NOW = datetime(2024, 1, 7, 12, 0, tzinfo=UTC)


def _store_candles(path, sample_ohlcv, last_day: date):
    frame = sample_ohlcv.filter(
        pl.col("symbol").is_in(["BTCUSDT", "ETHUSDT"])
        & pl.col("date").is_between(date(2024, 1, 1), last_day)
    ).with_columns(pl.lit(NOW).alias("ingested_at"))
    with warehouse.connection(path) as con:
        warehouse.replace_rows(
            con, "market.raw_ohlcv", frame, where="true", ddl_columns=RAW_OHLCV_DDL
        )


def test_freshness_check_runs_with_raw_ohlcv_and_exempts_the_sample(tmp_warehouse, monkeypatch):
    resources = pipeline_resources(tmp_warehouse)
    result = materialize_range(
        [raw_ohlcv, checks.raw_ohlcv_is_fresh], "2024-01", "2024-01", resources
    )
    assert result.success
    [evaluation] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "raw_ohlcv_is_fresh"
    ]
    assert evaluation.passed and "exempt" in evaluation.description
    assert evaluation.metadata["live_source"].value is False


def test_live_source_older_than_36_hours_is_flagged_and_alerted(
    tmp_warehouse, sample_ohlcv, webhook_env
):
    _store_candles(tmp_warehouse, sample_ohlcv, date(2024, 1, 5))
    store = WarehouseResource(path=str(tmp_warehouse))
    live = OhlcvSourceResource(
        kind="binance", symbols=["BTCUSDT", "ETHUSDT"], sample_path="-", files_dir="-"
    )
    news = NewsSourceResource(kind="sample", sample_path="-", files_dir="-")
    verdict = checks.ohlcv_freshness(store, live)
    assert verdict.live and verdict.stale  # the real clock is long past 2024-01-07
    assert "STALE" in verdict.describe() and "2024-01-06 00:00" in verdict.describe()

    instance = dg.DagsterInstance.ephemeral()
    resources = {"warehouse_resource": store, "ohlcv_source": live, "news_source": news}

    def tick(cursor):
        return raw_data_freshness_sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        )

    first = tick(None)
    assert (
        len(webhook_env.texts) == 1
        and "raw_ohlcv from live source 'binance'" in webhook_env.texts[0]
    )
    assert "raw_news" not in webhook_env.texts[0]  # the news source is a snapshot
    tick(first.cursor)
    assert len(webhook_env.texts) == 1  # same staleness: alerted once

    sample = OhlcvSourceResource(
        kind="sample", symbols=["BTCUSDT", "ETHUSDT"], sample_path="-", files_dir="-"
    )
    quiet = raw_data_freshness_sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, resources={**resources, "ohlcv_source": sample})
    )
    assert "exempt" in quiet.skip_message and len(webhook_env.texts) == 1
