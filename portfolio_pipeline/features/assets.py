"""Technical features per symbol-day, and point-in-time news sentiment."""

import dagster as dg
import polars as pl

from portfolio_pipeline import tables
from portfolio_pipeline.core import warehouse
from portfolio_pipeline.core.features import compute_market_features
from portfolio_pipeline.core.market import market_context
from portfolio_pipeline.core.sentiment import NewsTiming, score_news
from portfolio_pipeline.core.sentiment import daily_sentiment as build_daily_sentiment
from portfolio_pipeline.core.sentiment import news_digest as build_news_digest
from portfolio_pipeline.features.resources import SentimentModelResource
from portfolio_pipeline.ingestion.assets import raw_news, raw_ohlcv
from portfolio_pipeline.ingestion.resources import OhlcvSourceResource
from portfolio_pipeline.metadata import table_metadata
from portfolio_pipeline.resources import WarehouseResource
from portfolio_pipeline.settings import Settings


@dg.asset(
    deps=[raw_ohlcv],
    kinds={"duckdb", "polars"},
    metadata={"table": tables.MARKET_FEATURES},
)
def market_features(
    context: dg.AssetExecutionContext,
    warehouse_resource: WarehouseResource,
    settings: dg.ResourceParam[Settings],
):
    """One row per symbol and UTC day: returns (1/5/20/60/120 days), annualised volatility
    (20/60 days), RSI-14 and ATR-14 (Wilder), MACD 12/26/9, Bollinger %b (20, 2σ), volume
    z-score, 60-day drawdown, calendar features and cross-sectional ranks, table
    ``features.market_features``. Strictly causal: the row for day d uses candles up to d."""
    with warehouse_resource.connect() as con:
        ohlcv = warehouse.read_table(con, tables.RAW_OHLCV)
        market = market_context(ohlcv, settings)
        features = compute_market_features(ohlcv, periods_per_year=market.calendar.periods_per_year)
        warehouse.replace_table(con, tables.MARKET_FEATURES, features)
    context.log.info(f"market_features: {features.height} rows, {features.width} columns")
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                features,
                tables.MARKET_FEATURES,
                date_column="date",
                preview=features.filter(pl.col("symbol") == market.benchmark.symbol).tail(10),
            ),
            **market.as_metadata(),
            "columns": dg.MetadataValue.text(", ".join(features.columns)),
        }
    )


@dg.asset(
    deps=[raw_news],
    kinds={"duckdb", "polars"},
    metadata={"table": tables.NEWS_SENTIMENT},
)
def news_sentiment(
    context: dg.AssetExecutionContext,
    warehouse_resource: WarehouseResource,
    sentiment_model: SentimentModelResource,
):
    """One row per (article, tagged symbol), plus one market-wide row (symbol ``MARKET``) per
    article: score = p_positive − p_negative in [−1, 1] from a financial-sentiment transformer
    (FinBERT by default) or, when no model can be loaded, the finance lexicon (the ``model``
    column says which), table ``features.news_sentiment``.

    Incremental: only articles not yet scored by the current model are scored."""
    scorer = sentiment_model.scorer()
    if getattr(scorer, "fallback_reason", None):
        context.log.warning(
            f"sentiment model unavailable ({scorer.fallback_reason}); scoring with {scorer.name}"
        )
    with warehouse_resource.connect() as con:
        news = warehouse.read_table(con, tables.RAW_NEWS)
        if warehouse.table_exists(con, tables.NEWS_SENTIMENT):
            done = con.execute(
                f"select distinct id from {tables.NEWS_SENTIMENT} where model = ?", [scorer.name]
            ).pl()["id"]
            stale = con.execute(
                f"select count(distinct id) from {tables.NEWS_SENTIMENT} "
                f"where id not in (select id from {tables.RAW_NEWS})"
            ).fetchone()[0]
        else:
            done, stale = pl.Series("id", [], dtype=pl.Utf8), 0
        todo = news.filter(~pl.col("id").is_in(done.implode()))
        scored = score_news(todo, scorer) if todo.height else None
        if scored is None and not warehouse.table_exists(con, tables.NEWS_SENTIMENT):
            # No news at all (an equities universe without a news feed): an empty table, so
            # the sentiment inputs downstream are all "no news" instead of a failure.
            scored = score_news(todo, scorer)
        if scored is not None:
            warehouse.replace_rows(
                con,
                tables.NEWS_SENTIMENT,
                scored,
                where="list_contains(?, id)",
                params=(todo["id"].to_list(),),
            )
        if stale:  # articles removed from raw_news (re-ingested day) lose their scores
            con.execute(
                f"delete from {tables.NEWS_SENTIMENT} where id not in (select id from {tables.RAW_NEWS})"
            )
        table = warehouse.read_table(con, tables.NEWS_SENTIMENT)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                table.sort("published_at", descending=True),
                tables.NEWS_SENTIMENT,
                date_column="published_at",
            ),
            "model": scorer.name,
            "fallback_reason": str(getattr(scorer, "fallback_reason", None) or ""),
            "articles_scored_this_run": todo.height,
            "articles": table["id"].n_unique() if table.height else 0,
        }
    )


def news_timing(con, settings: Settings) -> NewsTiming:
    """Crypto: the UTC day; equities: the sessions of market.raw_ohlcv and the close setting."""
    if not settings.market_close:
        return NewsTiming()
    sessions = warehouse.read_frame(con, f"select distinct date from {tables.RAW_OHLCV}")
    return NewsTiming.from_settings(settings, sessions["date"].to_list())


@dg.asset(
    deps=[news_sentiment, raw_ohlcv],
    kinds={"duckdb", "polars"},
    metadata={"table": tables.DAILY_SENTIMENT},
)
def daily_sentiment(
    warehouse_resource: WarehouseResource,
    settings: dg.ResourceParam[Settings],
    ohlcv_source: OhlcvSourceResource,
    sentiment_model: SentimentModelResource,
):
    """One row per symbol (and ``MARKET``) and EVERY UTC day of the market data: mean score of
    the news usable that day, article count (0 on days without news, never dropped) and an
    exponentially decayed sentiment that carries information across days without news, table
    ``features.daily_sentiment``. Usable day: crypto, the UTC day the article was published
    (known by that day's close); equities (PORTFOLIO_PIPELINE_MARKET_CLOSE set), the session
    it can first act on: after the close, or on a closed day, the next session."""
    with warehouse_resource.connect() as con:
        scores = warehouse.read_table(con, tables.NEWS_SENTIMENT)
        start, end = con.execute(f"select min(date), max(date) from {tables.RAW_OHLCV}").fetchone()
        timing = news_timing(con, settings)
        frame = build_daily_sentiment(
            scores,
            ohlcv_source.symbols,
            start,
            end,
            half_life_days=sentiment_model.half_life_days,
            timing=timing,
        )
        warehouse.replace_table(con, tables.DAILY_SENTIMENT, frame)
    with_news = frame.filter(pl.col("news_count") > 0)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                with_news.tail(10) if with_news.height else frame, tables.DAILY_SENTIMENT
            ),
            "dagster/row_count": frame.height,
            "first_date": str(start),
            "last_date": str(end),
            "symbol_days_with_news": with_news.height,
            "news_timing": f"session close {timing.close} {timing.timezone}"
            if timing.close
            else "UTC day of publication",
        }
    )


@dg.asset(
    deps=[news_sentiment],
    kinds={"duckdb", "polars"},
    metadata={"table": tables.NEWS_DIGEST},
)
def news_digest(warehouse_resource: WarehouseResource, settings: dg.ResourceParam[Settings]):
    """Per symbol and day, the three headlines that moved the sentiment score most (by
    |score|), with their scores and links, table ``features.news_digest``: what to read
    instead of the raw news."""
    with warehouse_resource.connect() as con:
        news = warehouse.read_table(con, tables.RAW_NEWS)
        scores = warehouse.read_table(con, tables.NEWS_SENTIMENT)
        digest = build_news_digest(news, scores, top_n=3, timing=news_timing(con, settings))
        warehouse.replace_table(con, tables.NEWS_DIGEST, digest)
    return dg.MaterializeResult(
        metadata=table_metadata(
            digest.sort("date", descending=True), tables.NEWS_DIGEST, date_column="date"
        )
    )
