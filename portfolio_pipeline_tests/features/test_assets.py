import dagster as dg
import polars as pl

from portfolio_pipeline.core.warehouse import connection
from portfolio_pipeline.features import checks
from portfolio_pipeline.features.assets import (
    daily_sentiment,
    market_features,
    news_digest,
    news_sentiment,
)
from portfolio_pipeline.ingestion.assets import raw_news, raw_ohlcv
from portfolio_pipeline_tests.helpers import materialize_range, pipeline_resources


def test_features_and_sentiment_materialize_with_checks(tmp_warehouse, monkeypatch):
    resources = pipeline_resources(
        tmp_warehouse,
        monkeypatch,
        PORTFOLIO_PIPELINE_SENTIMENT_MODEL="lexicon",
        PORTFOLIO_PIPELINE_SYMBOLS="BTCUSDT,ETHUSDT,SOLUSDT",
    )
    assert materialize_range([raw_ohlcv, raw_news], "2021-06-01", "2022-01-31", resources).success
    downstream = [market_features, news_sentiment, daily_sentiment, news_digest]
    defs = dg.Definitions(
        assets=[raw_ohlcv, raw_news, *downstream],
        asset_checks=dg.load_asset_checks_from_modules([checks]),
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
    assert models == [("headline-v3",)]
    assert n_scored == n_articles > 0
    # every symbol (and MARKET) on every market day, zero-count days kept
    assert daily.height == 4 * 245 and daily.filter(pl.col("news_count") == 0).height > 0
