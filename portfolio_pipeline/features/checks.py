"""Checks on features and sentiment: finite after warm-up, bounded, point-in-time."""

import dagster as dg
import polars as pl

from portfolio_pipeline.core import warehouse
from portfolio_pipeline.features.assets import (
    DAILY_SENTIMENT_TABLE,
    MARKET_FEATURES_TABLE,
    NEWS_SENTIMENT_TABLE,
    daily_sentiment,
    market_features,
    news_sentiment,
)
from portfolio_pipeline.resources import WarehouseResource

WARM_UP_ROWS = 120  # the longest lookback (ret_120d)


@dg.asset_check(asset=market_features, blocking=True)
def features_finite_after_warm_up(warehouse_resource: WarehouseResource) -> dg.AssetCheckResult:
    """Every numeric feature is finite once a symbol has 120 days of history."""
    with warehouse_resource.connect(read_only=True) as con:
        frame = warehouse.read_table(con, MARKET_FEATURES_TABLE)
    numeric = [c for c, t in frame.schema.items() if t.is_float()]
    warm = frame.filter(pl.int_range(pl.len()).over("symbol") >= WARM_UP_ROWS)
    bad = warm.select(
        [(~pl.col(c).is_finite()).fill_null(True).sum().alias(c) for c in numeric]
    ).row(0, named=True)
    failing = {c: n for c, n in bad.items() if n}
    examples = ""
    if failing:
        col = next(iter(failing))
        rows = warm.filter(~pl.col(col).is_finite().fill_null(False)).head(3)
        examples = "; ".join(f"{r['symbol']} {r['date']}" for r in rows.iter_rows(named=True))
    return dg.AssetCheckResult(
        passed=not failing,
        description=(
            "all features finite after warm-up"
            if not failing
            else f"non-finite values after warm-up: {failing} e.g. {examples}"
        ),
        metadata={"rows_checked": warm.height, "columns_checked": len(numeric)},
    )


@dg.asset_check(asset=news_sentiment, blocking=True)
def sentiment_within_bounds(warehouse_resource: WarehouseResource) -> dg.AssetCheckResult:
    """Scores lie in [-1, 1] and probabilities in [0, 1] summing to 1."""
    with warehouse_resource.connect(read_only=True) as con:
        bad, total = con.execute(
            f"select count(*) filter (where not (score between -1 and 1) or score is null "
            f"or abs(p_positive + p_neutral + p_negative - 1) > 1e-6 "
            f"or least(p_positive, p_neutral, p_negative) < 0), count(*) "
            f"from {NEWS_SENTIMENT_TABLE}"
        ).fetchone()
    return dg.AssetCheckResult(
        passed=bad == 0,
        description=f"{bad} of {total} rows out of bounds",
        metadata={"rows_out_of_bounds": int(bad)},
    )


@dg.asset_check(asset=daily_sentiment, blocking=True)
def no_sentiment_before_publication(warehouse_resource: WarehouseResource) -> dg.AssetCheckResult:
    """Each day's news count equals the articles published (UTC) that very day: no article
    is counted on a day before it was published."""
    with warehouse_resource.connect(read_only=True) as con:
        mismatches = con.execute(
            f"""
            with published as (
                select symbol, cast(published_at as date) as date, count(*) as n
                from {NEWS_SENTIMENT_TABLE} group by all
            )
            select d.symbol, d.date, d.news_count, coalesce(p.n, 0) as published
            from {DAILY_SENTIMENT_TABLE} d
            left join published p using (symbol, date)
            where d.news_count <> coalesce(p.n, 0)
            order by d.date limit 5
            """
        ).fetchall()
    return dg.AssetCheckResult(
        passed=not mismatches,
        description="counts match publication days"
        if not mismatches
        else "news counted before publication: "
        + "; ".join(f"{s} {d} counted {c} vs published {p}" for s, d, c, p in mismatches),
    )
