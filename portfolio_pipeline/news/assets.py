"""News: raw articles (monthly partitions, behind data-quality gates), their sentiment per
article and symbol, the point-in-time daily sentiment and the daily digest."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.market import quality
from portfolio_pipeline.market.assets import (
    fetch_or_fail,
    quality_check_results,
    quality_check_specs,
    raw_ohlcv,
)
from portfolio_pipeline.market.partitions import (
    DEFAULT_PARTITIONS,
    partition_window,
)
from portfolio_pipeline.market.resources import OhlcvSourceResource
from portfolio_pipeline.metadata import table_metadata
from portfolio_pipeline.news.articles import score_news
from portfolio_pipeline.news.daily import daily_sentiment as build_daily_sentiment
from portfolio_pipeline.news.digest import news_digest as build_news_digest
from portfolio_pipeline.news.resources import (
    NewsSourceResource,
    SentimentModelResource,
    SummaryModelResource,
)
from portfolio_pipeline.news.summaries import attach_summaries, day_documents, summarise_days
from portfolio_pipeline.news.timing import NewsTiming
from portfolio_pipeline.settings import Settings
from portfolio_pipeline.warehouse.resources import WarehouseResource

NEWS_SUMMARIES_DDL = """
    symbol VARCHAR NOT NULL, date DATE NOT NULL, n_articles INTEGER, input_hash VARCHAR,
    summary VARCHAR, model VARCHAR NOT NULL, current BOOLEAN
"""
RAW_NEWS_DDL = """
    id VARCHAR NOT NULL, published_at TIMESTAMPTZ NOT NULL, title VARCHAR, summary VARCHAR,
    source VARCHAR, url VARCHAR, symbols VARCHAR[], subject VARCHAR, provider VARCHAR,
    provider_sentiment DOUBLE, ingested_at TIMESTAMPTZ
"""


@dg.asset(
    partitions_def=DEFAULT_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=quality_check_specs(quality.NEWS_RULES, "raw_news"),
    kinds={"duckdb", "polars"},
    metadata={"table": tables.RAW_NEWS},
)
def raw_news(
    context: dg.AssetExecutionContext,
    warehouse_resource: WarehouseResource,
    news_source: NewsSourceResource,
    settings: dg.ResourceParam[Settings],
):
    """One row per article published during the partition's UTC days: title, summary,
    source, url and the ``...USDT`` symbols it mentions, table ``news.raw_news``.

    Partitioned by publication month (``YYYY-MM``, UTC); the current month is read up to
    yesterday. A day without news writes nothing and is not an error. Re-materializing
    replaces exactly those days' articles; failed blocking rules write nothing.
    """
    start, end = partition_window(context, settings.start_date)
    client = news_source.client()
    frame = fetch_or_fail(lambda: client.fetch(start, end), "raw_news", start, end)
    report = quality.validate_news(frame)
    yield from quality_check_results(report)
    if not report.ok:
        raise dg.Failure(description=f"raw_news {start}..{end}: " + report.failure_message())
    frame = frame.with_columns(pl.lit(datetime.now(UTC)).alias("ingested_at"))
    with warehouse_resource.connect() as con:
        deleted = warehouse.replace_rows(
            con,
            tables.RAW_NEWS,
            frame,
            where="cast(published_at as date) between ? and ?",
            params=(start, end),
            ddl_columns=RAW_NEWS_DDL,
        )
        total = con.execute(f"select count(*) from {tables.RAW_NEWS}").fetchone()[0]
    context.log.info(f"raw_news {start}..{end} from {client.name}: {frame.height} articles")
    yield dg.MaterializeResult(
        metadata={
            **table_metadata(
                frame.select("published_at", "title", "source", "symbols"),
                tables.RAW_NEWS,
                date_column="published_at",
            ),
            "source": client.name,
            "rows_replaced": deleted,
            "table_rows_total": int(total),
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
    metadata={"table": tables.NEWS_SUMMARIES},
)
def news_summaries(
    context: dg.AssetExecutionContext,
    warehouse_resource: WarehouseResource,
    settings: dg.ResourceParam[Settings],
    summary_model: SummaryModelResource,
):
    """One row per symbol (and ``MARKET``), usable day and summary model: a summary of that
    day's articles, strongest first, from a seq2seq model (``PORTFOLIO_PIPELINE_SUMMARY_MODEL``)
    or, without one, extractive (the day's strongest headlines; the ``model`` column and the
    metadata say which), table ``features.news_summaries``.

    Incremental: a day is summarised once per model (again only if its articles change);
    ``current`` marks the rows of the model that ran last, the ones the digest shows."""
    summarizer = summary_model.summarizer()
    reason = getattr(summarizer, "fallback_reason", None)
    if reason:
        context.log.info(f"summaries: {summarizer.name} ({reason})")
    with warehouse_resource.connect() as con:
        news = warehouse.read_table(con, tables.RAW_NEWS)
        scores = warehouse.read_table(con, tables.NEWS_SENTIMENT)
        documents = day_documents(news, scores, news_timing(con, settings))
        exists = warehouse.table_exists(con, tables.NEWS_SUMMARIES)
        done = warehouse.read_table(con, tables.NEWS_SUMMARIES) if exists else None
        new = summarise_days(documents, summarizer, done)
        # Rows of other models stay: switching back to a model reuses its summaries.
        warehouse.replace_rows(
            con,
            tables.NEWS_SUMMARIES,
            new.with_columns(pl.lit(True).alias("current")),
            where="model = ? and list_contains(?, symbol || '|' || cast(date as varchar))",
            params=(summarizer.name, [f"{s}|{d}" for s, d in new.select("symbol", "date").rows()]),
            ddl_columns=NEWS_SUMMARIES_DDL,
        )
        con.execute(f"update {tables.NEWS_SUMMARIES} set current = (model = ?)", [summarizer.name])
        current = warehouse.read_frame(
            con, f"select * from {tables.NEWS_SUMMARIES} where current order by symbol, date"
        )
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                current.sort("date", descending=True), tables.NEWS_SUMMARIES, date_column="date"
            ),
            "model": summarizer.name,
            "fallback_reason": str(reason or ""),
            "days_summarised_this_run": new.height,
            "days_reused": documents.height - new.height,
        }
    )


@dg.asset(
    deps=[news_sentiment, news_summaries],
    kinds={"duckdb", "polars"},
    metadata={"table": tables.NEWS_DIGEST},
)
def news_digest(warehouse_resource: WarehouseResource, settings: dg.ResourceParam[Settings]):
    """Per symbol and day, the three headlines that moved the sentiment score most (by
    |score|), with their scores and links, and the day's summary (``summary``, written by
    ``summary_model``: a seq2seq model or ``extractive-v1``), table ``features.news_digest``:
    what to read instead of the raw news."""
    with warehouse_resource.connect() as con:
        news = warehouse.read_table(con, tables.RAW_NEWS)
        scores = warehouse.read_table(con, tables.NEWS_SENTIMENT)
        digest = build_news_digest(news, scores, top_n=3, timing=news_timing(con, settings))
        summaries = (
            warehouse.read_frame(
                con,
                f"select symbol, date, summary, model from {tables.NEWS_SUMMARIES} where current",
            )
            if warehouse.table_exists(con, tables.NEWS_SUMMARIES)
            else pl.DataFrame(
                schema={
                    "symbol": pl.String,
                    "date": pl.Date,
                    "summary": pl.String,
                    "model": pl.String,
                }
            )
        )
        digest = attach_summaries(digest, summaries)
        warehouse.replace_table(con, tables.NEWS_DIGEST, digest)
    models = digest["summary_model"].drop_nulls().unique().sort().to_list()
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                digest.sort("date", descending=True), tables.NEWS_DIGEST, date_column="date"
            ),
            "summary_model": ", ".join(models),
        }
    )
