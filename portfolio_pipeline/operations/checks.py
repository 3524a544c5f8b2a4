"""Freshness of the raw data, as asset checks that run with every raw materialization.

A LIVE source (``binance``, ``alphavantage``) whose newest stored data became complete more
than ``PORTFOLIO_PIPELINE_MAX_DATA_AGE_HOURS`` (default 36) hours ago fails the check (WARN:
it flags, it does not stop the run). The ``sample`` and ``files`` sources are snapshots: the
check passes and says they are exempt. ``raw_data_freshness_sensor`` (operations/alerts.py)
evaluates the same rule hourly between runs and posts an alert.
"""

import os
from datetime import timedelta

import dagster as dg

from portfolio_pipeline import tables
from portfolio_pipeline.market.resources import OhlcvSourceResource
from portfolio_pipeline.news.resources import NewsSourceResource
from portfolio_pipeline.operations.notifications import DEFAULT_MAX_AGE, Freshness, assess_freshness
from portfolio_pipeline.warehouse.resources import WarehouseResource

MAX_AGE_ENV = "PORTFOLIO_PIPELINE_MAX_DATA_AGE_HOURS"


def max_data_age() -> timedelta:
    text = os.environ.get(MAX_AGE_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_AGE
    try:
        hours = float(text)
    except ValueError as exc:
        raise ValueError(f"{MAX_AGE_ENV}={text!r} is not a number of hours") from exc
    if hours <= 0:
        raise ValueError(f"{MAX_AGE_ENV}={text!r} must be positive")
    return timedelta(hours=hours)


def ohlcv_freshness(
    warehouse_resource: WarehouseResource, ohlcv_source: OhlcvSourceResource
) -> Freshness:
    """Newest candle of the configured universe vs. the clock."""
    from portfolio_pipeline.warehouse import table_exists

    newest = None
    with warehouse_resource.connect(read_only=True) as con:
        if table_exists(con, tables.RAW_OHLCV):
            newest = con.execute(
                f"select max(date) from {tables.RAW_OHLCV} where list_contains(?, symbol)",
                [list(ohlcv_source.symbols)],
            ).fetchone()[0]
    return assess_freshness(
        "raw_ohlcv",
        newest,
        source=ohlcv_source.kind,
        live=ohlcv_source.is_live,
        max_age=max_data_age(),
    )


def news_freshness(
    warehouse_resource: WarehouseResource, news_source: NewsSourceResource
) -> Freshness:
    """Newest article vs. the clock."""
    from portfolio_pipeline.warehouse import table_exists

    newest = None
    with warehouse_resource.connect(read_only=True) as con:
        if table_exists(con, tables.RAW_NEWS):
            newest = con.execute(f"select max(published_at) from {tables.RAW_NEWS}").fetchone()[0]
    return assess_freshness(
        "raw_news",
        newest,
        source=news_source.kind,
        live=news_source.is_live,
        max_age=max_data_age(),
    )


def _result(freshness: Freshness) -> dg.AssetCheckResult:
    age = freshness.age
    return dg.AssetCheckResult(
        passed=not freshness.stale,
        severity=dg.AssetCheckSeverity.WARN,
        description=freshness.describe(),
        metadata={
            "source": freshness.source,
            "live_source": freshness.live,
            "newest_complete_at": str(freshness.newest) if freshness.newest else "none",
            "age_hours": round(age.total_seconds() / 3600, 1) if age is not None else -1.0,
            "max_age_hours": freshness.max_age.total_seconds() / 3600,
        },
    )


@dg.asset_check(
    asset="raw_ohlcv",
    name="raw_ohlcv_is_fresh",
    blocking=False,
    description="Live source: the newest candle closed at most 36 h ago "
    "(PORTFOLIO_PIPELINE_MAX_DATA_AGE_HOURS). Sample/files sources are exempt.",
)
def raw_ohlcv_is_fresh(
    warehouse_resource: WarehouseResource, ohlcv_source: OhlcvSourceResource
) -> dg.AssetCheckResult:
    return _result(ohlcv_freshness(warehouse_resource, ohlcv_source))


@dg.asset_check(
    asset="raw_news",
    name="raw_news_is_fresh",
    blocking=False,
    description="Live source: the newest article is at most 36 h old "
    "(PORTFOLIO_PIPELINE_MAX_DATA_AGE_HOURS). Sample/files sources are exempt.",
)
def raw_news_is_fresh(
    warehouse_resource: WarehouseResource, news_source: NewsSourceResource
) -> dg.AssetCheckResult:
    return _result(news_freshness(warehouse_resource, news_source))


freshness_checks = [raw_ohlcv_is_fresh, raw_news_is_fresh]
