"""Jobs select the right assets; schedules ask for the right partitions, in UTC."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl
import pytest
from dagster._utils.schedules import schedule_execution_time_iterator

from portfolio_pipeline import warehouse
from portfolio_pipeline.definitions import build_resources
from portfolio_pipeline.market import partitions
from portfolio_pipeline.market.assets import raw_ohlcv
from portfolio_pipeline.news.assets import raw_news
from portfolio_pipeline.operations import jobs, schedules
from portfolio_pipeline.operations.definitions import build_operations
from portfolio_pipeline.run_tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from portfolio_pipeline.settings import load_settings
from portfolio_pipeline.warehouse.resources import WarehouseResource
from portfolio_pipeline_tests.helpers import pipeline_resources


# A stand-in for the downstream graph, with the real group names and dependencies.
def _stub(name, group, deps=()):
    @dg.asset(name=name, group_name=group, deps=list(deps))
    def _asset() -> None:
        return None

    return _asset


STUBS = [
    _stub("market_features", "market", ["raw_ohlcv"]),
    _stub("return_forecasts", "forecasting", ["market_features"]),
    _stub("drl_policy", "policies", ["market_features"]),
    _stub("holdings", "portfolio"),
    _stub("target_weights", "portfolio", ["drl_policy", "return_forecasts"]),
    _stub("backtest", "portfolio", ["target_weights"]),
    _stub("recommendations", "recommendations", ["target_weights", "holdings"]),
]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(name, group_name="portfolio", deps=["holdings", "target_weights"])
        for name in ("risk_metrics", "stress_tests", "liquidity")
    ]
)
def risk_report():
    """Like the real one: three tables from one computation, not subsettable."""
    for name in ("risk_metrics", "stress_tests", "liquidity"):
        yield dg.MaterializeResult(asset_key=name)


STUBS.append(risk_report)


def _job_assets(defs: dg.Definitions, name: str) -> set[str]:
    job = defs.resolve_job_def(name)
    return {k.to_user_string() for k in job.asset_layer.executable_asset_keys}


@pytest.fixture()
def stub_defs():
    assets = [raw_ohlcv, raw_news, *STUBS]
    operations = build_operations(assets, load_settings())
    return dg.Definitions(
        assets=assets, jobs=operations.jobs, resources=build_resources(load_settings())
    )


def test_jobs_select_by_group(stub_defs):
    every = {"raw_ohlcv", "raw_news"} | {k.to_user_string() for s in STUBS for k in s.keys}
    assert _job_assets(stub_defs, jobs.DAILY_REFRESH_JOB) == every - {"drl_policy"}
    assert _job_assets(stub_defs, jobs.POLICY_RETRAINING_JOB) == {
        "drl_policy",
        "target_weights",
        "backtest",
        "recommendations",
        "risk_metrics",
        "stress_tests",
        "liquidity",
    }
    assert _job_assets(stub_defs, jobs.FULL_BACKFILL_JOB) == every
    assert _job_assets(stub_defs, jobs.HOLDINGS_REFRESH_JOB) == {
        "holdings",
        "recommendations",
        "risk_metrics",
        "stress_tests",
        "liquidity",
    }
    assert (
        stub_defs.resolve_job_def(jobs.DAILY_REFRESH_JOB).partitions_def == raw_ohlcv.partitions_def
    )


def test_missing_groups_select_nothing_instead_of_failing():
    operations = build_operations([raw_ohlcv, raw_news], load_settings())
    defs = dg.Definitions(
        assets=[raw_ohlcv, raw_news],
        jobs=operations.jobs,
        resources=build_resources(load_settings()),
    )
    assert _job_assets(defs, jobs.POLICY_RETRAINING_JOB) == set()
    assert _job_assets(defs, jobs.HOLDINGS_REFRESH_JOB) == set()
    assert _job_assets(defs, jobs.DAILY_REFRESH_JOB) == {"raw_ohlcv", "raw_news"}


def test_project_definitions_register_operations():
    from portfolio_pipeline.definitions import defs

    assert {s.name for s in defs.schedules} == {
        "nightly_refresh_schedule",
        "weekly_policy_retraining_schedule",
    }
    assert {s.name for s in defs.sensors} >= {
        "inbox_sensor",
        "holdings_sensor",
        "run_failure_alert_sensor",
        "risk_limit_sensor",
        "raw_data_freshness_sensor",
    }
    graph = defs.resolve_asset_graph()
    checks = {k.name for k in graph.asset_check_keys}
    assert {"raw_ohlcv_is_fresh", "raw_news_is_fresh"} <= checks
    daily = _job_assets(defs, jobs.DAILY_REFRESH_JOB)
    policies = {k.to_user_string() for k in dg.AssetSelection.groups("policies").resolve(graph)}
    assert "raw_ohlcv" in daily and not daily & policies


def test_one_run_mixes_the_monthly_partitions_and_unpartitioned_downstream(
    tmp_warehouse, monkeypatch
):
    """What the nightly run does: the raw partition(s), then unpartitioned assets reading it."""
    resources = pipeline_resources(tmp_warehouse)

    @dg.asset(group_name="market", deps=[raw_ohlcv])
    def symbols_seen(warehouse_resource: WarehouseResource) -> None:
        with warehouse_resource.connect() as con:
            seen = con.execute(
                "select count(distinct symbol), max(date) from market.raw_ohlcv"
            ).pl()
            warehouse.replace_table(con, "features.symbols_seen", seen)

    job = jobs.build_asset_jobs({"raw_ohlcv", "symbols_seen"})[0]
    defs = dg.Definitions(assets=[raw_ohlcv, symbols_seen], jobs=[job], resources=resources)
    tick = schedules.build_nightly_refresh_schedule(job, cron="30 0 * * *", refresh_days=3)
    # 2 March: the three days ending yesterday span February and March.
    request = tick.evaluate_tick(
        dg.build_schedule_context(scheduled_execution_time=datetime(2024, 3, 2, 0, 30, tzinfo=UTC))
    ).run_requests[0]
    monkeypatch.setattr(partitions, "yesterday_utc", lambda: date(2024, 3, 1))
    result = defs.resolve_job_def(jobs.DAILY_REFRESH_JOB).execute_in_process(
        tags=request.tags, instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    with warehouse.connection(tmp_warehouse, read_only=True) as con:
        stored = con.execute(
            "select min(date), max(date), count(distinct symbol) from market.raw_ohlcv"
        ).fetchone()
        seen = con.execute("select * from features.symbols_seen").pl()
    # February and March to date (yesterday at tick time), in one run.
    assert [str(stored[0]), str(stored[1])] == ["2024-02-01", "2024-03-01"]
    assert seen.row(0) == (stored[2], stored[1])
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"raw_ohlcv", "symbols_seen"}


def _asset_job(name: str):
    return next(j for j in jobs.build_asset_jobs(_STUB_KEYS) if j.name == name)


_STUB_KEYS = {"raw_ohlcv", "raw_news"} | {k.to_user_string() for s in STUBS for k in s.keys}


def _evaluate(schedule, when: datetime):
    """One tick, with the repository so that the partition key is validated like the daemon does."""
    defs = dg.Definitions(
        assets=[raw_ohlcv, raw_news, *STUBS],
        schedules=[schedule],
        resources=build_resources(load_settings()),
    )
    context = dg.build_schedule_context(
        scheduled_execution_time=when, repository_def=defs.get_repository_def()
    )
    return schedule.evaluate_tick(context)


def test_nightly_schedule_targets_yesterday_in_utc(stub_defs):
    job = _asset_job(jobs.DAILY_REFRESH_JOB)
    schedule = schedules.build_nightly_refresh_schedule(job)
    assert schedule.cron_schedule == "30 0 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    # 00:30 UTC on 10 March is 19:30 on 9 March in New York: the day is taken in UTC.
    tick = datetime(2024, 3, 10, 0, 30, tzinfo=UTC)
    for when in (tick, tick.astimezone(ZoneInfo("America/New_York"))):
        request = _evaluate(schedule, when).run_requests[0]
        assert request.partition_key == "2024-03"  # the month to date, up to 9 March
        assert request.run_key == "2024-03-09"
    # Before the first day there is nothing to refresh.
    early = _evaluate(schedule, datetime(2017, 8, 17, 0, 30, tzinfo=UTC))
    assert not early.run_requests and "before the first day" in early.skip_message


def test_nightly_schedule_can_refresh_a_window_ending_yesterday(stub_defs, monkeypatch):
    monkeypatch.setenv("PORTFOLIO_PIPELINE_REFRESH_DAYS", "3")
    job = _asset_job(jobs.DAILY_REFRESH_JOB)
    schedule = schedules.build_nightly_refresh_schedule(job)
    # 27..29 February: one month.
    request = _evaluate(schedule, datetime(2024, 3, 1, 0, 30, tzinfo=UTC)).run_requests[0]
    assert request.partition_key == "2024-02" and request.run_key == "2024-02-29"
    # 28 February..1 March: both months, in one run.
    request = _evaluate(schedule, datetime(2024, 3, 2, 0, 30, tzinfo=UTC)).run_requests[0]
    assert request.run_key == "2024-02-28...2024-03-01"
    assert request.tags[ASSET_PARTITION_RANGE_START_TAG] == "2024-02"
    assert request.tags[ASSET_PARTITION_RANGE_END_TAG] == "2024-03"
    monkeypatch.setenv("PORTFOLIO_PIPELINE_REFRESH_DAYS", "zero")
    with pytest.raises(ValueError, match="PORTFOLIO_PIPELINE_REFRESH_DAYS"):
        schedules.build_nightly_refresh_schedule(job)


def test_schedules_read_cron_and_status_from_env(stub_defs, monkeypatch):
    monkeypatch.setenv("PORTFOLIO_PIPELINE_NIGHTLY_CRON", "15 3 * * *")
    monkeypatch.setenv("PORTFOLIO_PIPELINE_RETRAIN_CRON", "0 4 1 * *")
    monkeypatch.setenv("PORTFOLIO_PIPELINE_SCHEDULES_RUNNING", "1")
    nightly = schedules.build_nightly_refresh_schedule(_asset_job(jobs.DAILY_REFRESH_JOB))
    weekly = schedules.build_policy_retraining_schedule(_asset_job(jobs.POLICY_RETRAINING_JOB))
    assert nightly.cron_schedule == "15 3 * * *" and weekly.cron_schedule == "0 4 1 * *"
    assert nightly.default_status == weekly.default_status == dg.DefaultScheduleStatus.RUNNING
    request = _evaluate(weekly, datetime(2024, 3, 1, 4, 0, tzinfo=UTC)).run_requests[0]
    assert request.run_key == "retrain-2024-03-01T04:00" and request.partition_key is None
    monkeypatch.setenv("PORTFOLIO_PIPELINE_NIGHTLY_CRON", "every night")
    with pytest.raises(ValueError, match="PORTFOLIO_PIPELINE_NIGHTLY_CRON"):
        schedules.build_nightly_refresh_schedule(_asset_job(jobs.DAILY_REFRESH_JOB))


def test_default_weekly_schedule_is_sunday_two_utc(stub_defs):
    weekly = schedules.build_policy_retraining_schedule(_asset_job(jobs.POLICY_RETRAINING_JOB))
    assert weekly.cron_schedule == "0 2 * * 0" and weekly.execution_timezone == "UTC"
    ticks = schedule_execution_time_iterator(
        datetime(2024, 3, 1, tzinfo=UTC).timestamp(),
        weekly.cron_schedule,
        weekly.execution_timezone,
    )
    first = next(ticks)
    assert (first.weekday(), first.hour, first.minute, str(first.date())) == (6, 2, 0, "2024-03-03")


def test_holdings_sensor_requests_a_refresh_when_the_file_changes(tmp_path, stub_defs):
    from portfolio_pipeline.operations.sensors import build_holdings_sensor

    path = tmp_path / "holdings.csv"
    job = stub_defs.resolve_job_def(jobs.HOLDINGS_REFRESH_JOB)
    sensor = build_holdings_sensor(job, path)

    def tick(cursor):
        return sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor))

    missing = tick(None)
    assert not missing.run_requests and "does not exist" in missing.skip_message
    pl.DataFrame({"symbol": ["BTCUSDT", "USDT"], "quantity": [0.5, 1000.0]}).write_csv(path)
    baseline = tick(None)
    assert not baseline.run_requests and baseline.cursor
    assert not tick(baseline.cursor).run_requests  # unchanged
    path.write_text(path.read_text().replace("0.5", "0.75"))
    changed = tick(baseline.cursor)
    assert len(changed.run_requests) == 1 and changed.cursor != baseline.cursor
    assert not tick(changed.cursor).run_requests
