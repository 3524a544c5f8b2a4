import dagster as dg
import polars as pl

from portfolio_pipeline.market import checks
from portfolio_pipeline.market.assets import market_features, raw_ohlcv
from portfolio_pipeline.news import checks as news_checks
from portfolio_pipeline.news.assets import (
    daily_sentiment,
    news_digest,
    news_sentiment,
    news_summaries,
    raw_news,
)
from portfolio_pipeline.warehouse import connection
from portfolio_pipeline_tests.helpers import materialize_range, pipeline_resources


def test_features_and_sentiment_materialize_with_checks(tmp_warehouse, monkeypatch):
    resources = pipeline_resources(
        tmp_warehouse,
        sentiment_model="lexicon",
        symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
    )
    assert materialize_range([raw_ohlcv, raw_news], "2021-06", "2022-01", resources).success
    downstream = [market_features, news_sentiment, daily_sentiment, news_summaries, news_digest]
    defs = dg.Definitions(
        assets=[raw_ohlcv, raw_news, *downstream],
        asset_checks=dg.load_asset_checks_from_modules([checks, news_checks]),
        resources=resources,
    )
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=[a.key for a in downstream], instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == {
        "features_finite_after_warm_up",
        "sentiment_within_bounds",
        "no_sentiment_before_publication",
    }
    assert all(e.passed for e in evaluations)
    with connection(tmp_warehouse, read_only=True) as con:
        daily = con.execute("select * from features.daily_sentiment").pl()
        models = con.execute("select distinct model from features.news_sentiment").fetchall()
        n_articles = con.execute("select count(*) from news.raw_news").fetchone()[0]
        n_scored = con.execute(
            "select count(distinct id) from features.news_sentiment where symbol = 'MARKET'"
        ).fetchone()[0]
        digest = con.execute("select * from features.news_digest").pl()
        summaries = con.execute("select * from features.news_summaries").pl()
    assert models == [("headline-v3",)]
    # every digest day has its extractive summary, led by the day's strongest headline
    assert digest["summary_model"].unique().to_list() == ["extractive-v1"]
    assert digest["summary"].null_count() == 0
    top = digest.filter(pl.col("rank") == 1)
    assert all(s.startswith(t.strip()) for s, t in zip(top["summary"], top["title"], strict=True))
    assert summaries.height == top.height and summaries["current"].all()
    assert n_scored == n_articles > 0
    # every symbol (and MARKET) on every market day, zero-count days kept
    assert daily.height == 4 * 245 and daily.filter(pl.col("news_count") == 0).height > 0


def _features_run(tmp_warehouse, ohlcv: pl.DataFrame, monkeypatch, instance=None):
    from portfolio_pipeline import warehouse

    resources = pipeline_resources(tmp_warehouse)
    with connection(tmp_warehouse) as con:
        warehouse.replace_table(con, "market.raw_ohlcv", ohlcv)
    defs = dg.Definitions(
        assets=[raw_ohlcv, market_features],
        asset_checks=[checks.features_finite_after_warm_up],
        resources=resources,
    )
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=[market_features.key],
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_constant_volume_warns_and_bad_values_block_naming_column_symbols_dates(
    tmp_warehouse, monkeypatch, sample_ohlcv
):
    from datetime import date

    from portfolio_pipeline.cli import runs as cli_runs
    from portfolio_pipeline.market import assets as feature_assets
    from portfolio_pipeline.market import features as core_features
    from portfolio_pipeline.operations.alerts import failure_reason

    ohlcv = sample_ohlcv.filter(
        pl.col("symbol").is_in(["BTCUSDT", "ETHUSDT"])
        & pl.col("date").is_between(date(2023, 1, 1), date(2023, 8, 31))
    )
    flat = ohlcv.with_columns(
        pl.when((pl.col("symbol") == "ETHUSDT") & (pl.col("date") >= date(2023, 7, 1)))
        .then(1000.0)
        .otherwise(pl.col("volume"))
        .alias("volume")
    )
    warned = _features_run(tmp_warehouse, flat, monkeypatch)
    assert warned.success  # a legitimately undefined z-score does not stop the run
    (evaluation,) = warned.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert "column volume_z_20" in evaluation.description
    assert "ETHUSDT from 2023-07-20" in evaluation.description

    def broken(frame, periods_per_year=365):  # a feature that went non-finite on bad input
        out = core_features.compute_market_features(frame, periods_per_year)
        return out.with_columns(
            pl.when((pl.col("symbol") == "BTCUSDT") & (pl.col("date") >= date(2023, 8, 10)))
            .then(float("inf"))
            .otherwise(pl.col("atr_14"))
            .alias("atr_14")
        )

    monkeypatch.setattr(feature_assets, "compute_market_features", broken)
    instance = dg.DagsterInstance.ephemeral()
    failed = _features_run(tmp_warehouse, ohlcv, monkeypatch, instance)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    alert = failure_reason(
        dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(failed.run_id),
        ).for_run_failure()
    )
    for reason in (
        cli_runs.failure_reason(failed),
        alert,
    ):  # the CLI and the run-failure alert
        assert "check market_features.features_finite_after_warm_up (ERROR)" in reason
        assert "rule finite_after_warm_up: column atr_14" in reason
        assert "BTCUSDT from 2023-08-10" in reason
