"""Market data: raw daily OHLCV (one UTC calendar month per partition, behind data-quality
gates) and the technical features computed from it.

The raw assets are declared with the default partitions (``partitions.DEFAULT_PARTITIONS``);
:func:`~portfolio_pipeline.market.partitions.with_history_partitions` gives them the partitions
of a :class:`Settings`' start date (``build_definitions`` calls it). The quality-gate helpers
here are shared with ``news.assets``' ``raw_news``.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import polars as pl

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.market import quality
from portfolio_pipeline.market.context import market_context
from portfolio_pipeline.market.features import compute_market_features
from portfolio_pipeline.market.partitions import (
    DEFAULT_PARTITIONS,
    partition_window,
)
from portfolio_pipeline.market.resources import OhlcvSourceResource
from portfolio_pipeline.market.sources.base import SourceError
from portfolio_pipeline.metadata import names, table_metadata
from portfolio_pipeline.settings import Settings
from portfolio_pipeline.warehouse.resources import WarehouseResource

RAW_OHLCV_DDL = """
    symbol VARCHAR NOT NULL, date DATE NOT NULL,
    open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE,
    quote_volume DOUBLE, num_trades BIGINT,
    taker_buy_base_volume DOUBLE, taker_buy_quote_volume DOUBLE,
    source VARCHAR, ingested_at TIMESTAMPTZ
"""


def quality_check_specs(
    rules: tuple[quality.Rule, ...], asset_name: str
) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            rule.name,
            asset=asset_name,
            description=rule.description,
            blocking=rule.severity == quality.ERROR,
        )
        for rule in rules
    ]


def quality_check_results(report: quality.ValidationReport) -> Iterator[dg.AssetCheckResult]:
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


def fetch_or_fail(fetch, what: str, start, end):
    try:
        return fetch()
    except SourceError as exc:
        raise dg.Failure(f"{what} {start}..{end}: {exc}") from exc


@dg.asset(
    partitions_def=DEFAULT_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=quality_check_specs(quality.OHLCV_RULES, "raw_ohlcv"),
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
    frame = fetch_or_fail(
        lambda: client.fetch(ohlcv_source.symbols, start, end), "raw_ohlcv", start, end
    )
    report = quality.validate_ohlcv(frame)
    yield from quality_check_results(report)
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
