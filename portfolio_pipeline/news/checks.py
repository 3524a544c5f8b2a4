"""Checks on features and sentiment: finite after warm-up, bounded, point-in-time."""

import dagster as dg
import polars as pl

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.news.assets import (
    daily_sentiment,
    news_sentiment,
    news_timing,
)
from portfolio_pipeline.settings import Settings
from portfolio_pipeline.warehouse.resources import WarehouseResource


@dg.asset_check(asset=news_sentiment, blocking=True)
def sentiment_within_bounds(warehouse_resource: WarehouseResource) -> dg.AssetCheckResult:
    """Scores lie in [-1, 1] and probabilities in [0, 1] summing to 1."""
    with warehouse_resource.connect(read_only=True) as con:
        bad, total = con.execute(
            f"select count(*) filter (where not (score between -1 and 1) or score is null "
            f"or abs(p_positive + p_neutral + p_negative - 1) > 1e-6 "
            f"or least(p_positive, p_neutral, p_negative) < 0), count(*) "
            f"from {tables.NEWS_SENTIMENT}"
        ).fetchone()
    return dg.AssetCheckResult(
        passed=bad == 0,
        description=f"{bad} of {total} rows out of bounds",
        metadata={"rows_out_of_bounds": int(bad)},
    )


@dg.asset_check(asset=daily_sentiment, blocking=True)
def no_sentiment_before_publication(
    warehouse_resource: WarehouseResource, settings: dg.ResourceParam[Settings]
) -> dg.AssetCheckResult:
    """Each day's news count equals the articles usable that very day (crypto: published that
    UTC day; equities: the first session at or after publication, next session after the
    close), and no article is counted on a day before its UTC publication day."""
    with warehouse_resource.connect(read_only=True) as con:
        timing = news_timing(con, settings)
        scores = warehouse.read_table(con, tables.NEWS_SENTIMENT)
        daily = warehouse.read_table(con, tables.DAILY_SENTIMENT)
    usable = timing.with_usable_date(scores.select("symbol", "published_at"))
    early = usable.filter(
        pl.col("date") < pl.col("published_at").dt.convert_time_zone("UTC").dt.date()
    )
    expected = usable.group_by("symbol", "date").agg(pl.len().alias("published"))
    mismatches = [
        (r["symbol"], r["date"], r["news_count"], r["published"])
        for r in daily.join(expected, on=["symbol", "date"], how="left")
        .with_columns(pl.col("published").fill_null(0))
        .filter(pl.col("news_count") != pl.col("published"))
        .sort("date")
        .head(5)
        .iter_rows(named=True)
    ]
    mismatches += [
        (r["symbol"], r["date"], "before publication", r["published_at"])
        for r in early.head(5).iter_rows(named=True)
    ]
    return dg.AssetCheckResult(
        passed=not mismatches,
        description="counts match publication days"
        if not mismatches
        else "news counted before publication: "
        + "; ".join(f"{s} {d} counted {c} vs published {p}" for s, d, c, p in mismatches),
    )
