"""What the data and the settings say about the market at hand: calendar, benchmark, cash.

Pure (no dagster). One place decides these, so that features, forecasts, the environment,
risk, backtests and recommendations agree on them, and every asset can say in its metadata
which calendar, benchmark and cash it used.

Benchmark rule (``PORTFOLIO_PIPELINE_BENCHMARK`` blank): ``BTCUSDT`` when it is in the
universe (the crypto market series), else the symbol with the largest traded value
(``quote_volume``, or ``close * volume`` where it is missing) over the last
:data:`TRADED_VALUE_DAYS` calendar days of history, among the symbols that trade on the latest
day. The benchmark is the forecasts' market series, the stress proxy, the DRL buy-and-hold
reference and the symbol shown in previews and plots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast

import polars as pl

from portfolio_pipeline.market.calendar import TradingCalendar, infer_calendar

CRYPTO_BENCHMARK = "BTCUSDT"
TRADED_VALUE_DAYS = 365
RULE_SETTING = "setting"
RULE_CRYPTO = "BTCUSDT in the universe"
RULE_TRADED_VALUE = "largest traded value"


class MarketContextError(ValueError):
    """The benchmark setting names a symbol that is not in the data, or there is no data."""


@dataclass(frozen=True)
class Benchmark:
    """The market series symbol and the rule that chose it (recorded in metadata)."""

    symbol: str
    rule: str


@dataclass(frozen=True)
class MarketContext:
    """Calendar, benchmark and cash of one OHLCV history under the current settings."""

    calendar: TradingCalendar
    benchmark: Benchmark
    cash_symbol: str

    def as_metadata(self) -> dict[str, Any]:
        return {
            **self.calendar.as_metadata(),
            "benchmark": self.benchmark.symbol,
            "benchmark_rule": self.benchmark.rule,
            "cash_symbol": self.cash_symbol,
        }


def choose_benchmark(ohlcv: pl.DataFrame, setting: str | None = None) -> Benchmark:
    """The benchmark symbol of ``ohlcv`` (``symbol, date, close, volume[, quote_volume]``).

    Raises
    ------
    MarketContextError
        When ``ohlcv`` is empty, or ``setting`` names a symbol without rows.
    """
    if ohlcv.is_empty():
        raise MarketContextError("benchmark: no OHLCV rows to choose a benchmark from")
    symbols = set(ohlcv.get_column("symbol").unique().to_list())
    if setting:
        if setting not in symbols:
            raise MarketContextError(
                f"benchmark: PORTFOLIO_PIPELINE_BENCHMARK={setting} is not in the data "
                f"(symbols: {', '.join(sorted(symbols))})"
            )
        return Benchmark(setting, RULE_SETTING)
    if CRYPTO_BENCHMARK in symbols:
        return Benchmark(CRYPTO_BENCHMARK, RULE_CRYPTO)
    latest = cast(date, ohlcv.get_column("date").max())
    value = pl.col("close") * pl.col("volume")
    if "quote_volume" in ohlcv.columns:
        value = pl.coalesce(pl.col("quote_volume"), value)
    trading = ohlcv.filter(pl.col("date") == latest).get_column("symbol").unique()
    ranked = (
        ohlcv.filter(
            (pl.col("date") > latest - timedelta(days=TRADED_VALUE_DAYS))
            & pl.col("symbol").is_in(trading.implode())
        )
        .group_by("symbol")
        .agg(value.fill_nan(None).sum().alias("traded_value"))
        .sort(["traded_value", "symbol"], descending=[True, False], nulls_last=True)
    )
    return Benchmark(str(ranked.item(0, "symbol")), RULE_TRADED_VALUE)


def market_context(ohlcv: pl.DataFrame, settings: Any) -> MarketContext:
    """Calendar (``settings.periods_per_year`` or inferred), benchmark and cash of ``ohlcv``."""
    if ohlcv.is_empty():
        raise MarketContextError("market context: no OHLCV rows")
    calendar = infer_calendar(
        ohlcv.get_column("date").unique().to_list(), getattr(settings, "periods_per_year", None)
    )
    benchmark = choose_benchmark(ohlcv, getattr(settings, "benchmark_symbol", None))
    return MarketContext(calendar, benchmark, getattr(settings, "cash_symbol", "USDT"))
