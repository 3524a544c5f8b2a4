"""Raw daily OHLCV and news, one UTC calendar month per partition, behind data-quality gates.

The assets are declared with the default partitions (``partitions.DEFAULT_PARTITIONS``);
:func:`with_history_partitions` gives them the partitions of a :class:`Settings`' start date
(``build_definitions`` calls it).
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import polars as pl

from portfolio_pipeline import tables
from portfolio_pipeline.core import quality, warehouse
from portfolio_pipeline.core.sources.base import SourceError
from portfolio_pipeline.ingestion.partitions import (
    DEFAULT_PARTITIONS,
    history_partitions,
    partition_window,
)
from portfolio_pipeline.ingestion.resources import NewsSourceResource, OhlcvSourceResource
from portfolio_pipeline.metadata import names, table_metadata
from portfolio_pipeline.resources import WarehouseResource
from portfolio_pipeline.settings import Settings

RAW_OHLCV_DDL = """
    symbol VARCHAR NOT NULL, date DATE NOT NULL,
    open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE,
    quote_volume DOUBLE, num_trades BIGINT,
    taker_buy_base_volume DOUBLE, taker_buy_quote_volume DOUBLE,
    source VARCHAR, ingested_at TIMESTAMPTZ
"""
RAW_NEWS_DDL = """
    id VARCHAR NOT NULL, published_at TIMESTAMPTZ NOT NULL, title VARCHAR, summary VARCHAR,
    source VARCHAR, url VARCHAR, symbols VARCHAR[], subject VARCHAR, provider VARCHAR,
    provider_sentiment DOUBLE, ingested_at TIMESTAMPTZ
"""


def _check_specs(rules: tuple[quality.Rule, ...], asset_name: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            rule.name,
            asset=asset_name,
            description=rule.description,
            blocking=rule.severity == quality.ERROR,
        )
        for rule in rules
    ]


def _check_results(report: quality.ValidationReport) -> Iterator[dg.AssetCheckResult]:
    for result in report.results:
        yield dg.AssetCheckResult(
            check_name=result.rule.name,
            passed=result.passed,
            severity=(
                dg.AssetCheckSeverity.ERROR
                if result.rule.severity == quality.ERROR
                else dg.AssetCheckSeverity.WARN
            ),
            description=result.message,
            metadata={"failing_rows": result.failing_rows},
        )


def _fetch(fetch, what: str, start, end):
    try:
        return fetch()
    except SourceError as exc:
        raise dg.Failure(f"{what} {start}..{end}: {exc}") from exc


@dg.asset(
    partitions_def=DEFAULT_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=_check_specs(quality.OHLCV_RULES, "raw_ohlcv"),
    kinds={"duckdb", "polars"},
    metadata={"table": tables.RAW_OHLCV},
)
def raw_ohlcv(
    context: dg.AssetExecutionContext,
    warehouse_resource: WarehouseResource,
    ohlcv_source: OhlcvSourceResource,
    settings: dg.ResourceParam[Settings],
):
    """One row per symbol and UTC day: daily candles (open, high, low, close, base volume,
    quote volume) from the configured source, table ``market.raw_ohlcv``.

    Partitioned by calendar month (``YYYY-MM``, UTC); the current month is read up to
    yesterday. Re-materializing a month (or a range of months, in one run) replaces exactly
    those days' rows for the configured universe, in one transaction. Great Expectations
    rules run before the write; a failed blocking rule fails the run, names the rule,
    symbols and dates, and writes nothing. A day on which the source has no candle is not
    an error.
    """
    start, end = partition_window(context, settings.start_date)
    client = ohlcv_source.client()
    frame = _fetch(lambda: client.fetch(ohlcv_source.symbols, start, end), "raw_ohlcv", start, end)
    report = quality.validate_ohlcv(frame)
    yield from _check_results(report)
    if not report.ok:
        raise dg.Failure(
            description=f"raw_ohlcv {start}..{end}: " + report.failure_message(),
            metadata={"rules_failed": ", ".join(r.rule.name for r in report.blocking_failures)},
        )
    frame = frame.with_columns(pl.lit(datetime.now(UTC)).alias("ingested_at"))
    symbols = list(ohlcv_source.symbols)
    with warehouse_resource.connect() as con:
        deleted = warehouse.replace_rows(
            con,
            tables.RAW_OHLCV,
            frame,
            where="date between ? and ? and list_contains(?, symbol)",
            params=(start, end, symbols),
            ddl_columns=RAW_OHLCV_DDL,
        )
        total = con.execute(f"select count(*) from {tables.RAW_OHLCV}").fetchone()[0]
    context.log.info(
        f"raw_ohlcv {start}..{end} from {client.name}: wrote {frame.height} rows, "
        f"replaced {deleted}"
    )
    yield dg.MaterializeResult(
        metadata={
            **table_metadata(frame, tables.RAW_OHLCV, date_column="date"),
            "source": client.name,
            "rows_replaced": deleted,
            "table_rows_total": int(total),
            "symbols_present": names(sorted(frame["symbol"].unique().to_list())),
        }
    )


@dg.asset(
    partitions_def=DEFAULT_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=_check_specs(quality.NEWS_RULES, "raw_news"),
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
    frame = _fetch(lambda: client.fetch(start, end), "raw_news", start, end)
    report = quality.validate_news(frame)
    yield from _check_results(report)
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


def with_history_partitions(assets: list, settings: Settings) -> list:
    """``assets`` with the raw assets re-partitioned from ``settings.start_date``'s month
    (the others unchanged): partitions are a definition-time fact, so they come from the
    settings given to ``build_definitions``, not from the environment at import."""
    partitions = history_partitions(settings.start_date)
    if partitions == DEFAULT_PARTITIONS:
        return assets
    raw = {raw_ohlcv.key, raw_news.key}
    return [
        asset.map_asset_specs(lambda spec: spec.replace_attributes(partitions_def=partitions))
        if isinstance(asset, dg.AssetsDefinition) and set(asset.keys) & raw
        else asset
        for asset in assets
    ]
