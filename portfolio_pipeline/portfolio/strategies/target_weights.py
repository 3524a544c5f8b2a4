"""Target weights as table rows: one decision, or every strategy at one day
(``portfolio.target_weights``)."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from portfolio_pipeline.portfolio.strategies.base import Decision, Strategy
from portfolio_pipeline.portfolio.strategies.estimation import EstimationCache
from portfolio_pipeline.portfolio.strategies.panel import MarketPanel
from portfolio_pipeline.settings import CASH_SYMBOL

TARGET_WEIGHTS_SCHEMA: dict[str, type[pl.DataType]] = {
    "as_of": pl.Date,
    "strategy": pl.Utf8,
    "symbol": pl.Utf8,
    "weight": pl.Float64,
    "reason": pl.Utf8,
}


def decision_frame(
    panel: MarketPanel, decision: Decision, as_of: date, strategy: str
) -> pl.DataFrame:
    """One decision as rows ``as_of, strategy, symbol, weight, reason`` (cash as
    ``panel.cash_symbol``)."""
    symbols = [*panel.symbols, panel.cash_symbol]
    return pl.DataFrame(
        {
            "as_of": [as_of] * len(symbols),
            "strategy": [strategy] * len(symbols),
            "symbol": symbols,
            "weight": decision.weights.astype(np.float64),
            "reason": [decision.reason] * len(symbols),
        },
        schema=TARGET_WEIGHTS_SCHEMA,
    )


def compute_target_weights(
    ohlcv: pl.DataFrame,
    strategies: list[Strategy],
    as_of: date,
    *,
    drop_zero: bool = False,
    cash_symbol: str = CASH_SYMBOL,
) -> pl.DataFrame:
    """Target weights of each strategy at the close of ``as_of`` -> ``portfolio.target_weights``.

    Only OHLCV rows dated ``<= as_of`` are used (later rows are dropped before anything is
    computed). Returns columns ``as_of, strategy, symbol, weight, reason``; the weights of
    each strategy (cash ``USDT`` included) sum to 1.
    """
    known = ohlcv.filter(pl.col("date") <= as_of)
    if known.is_empty():
        raise ValueError(f"no OHLCV rows on or before {as_of}")
    panel = MarketPanel.from_ohlcv(known, cash_symbol=cash_symbol)
    row = panel.row_of(as_of)
    if panel.date_at(row) != as_of:
        raise ValueError(f"no OHLCV rows on {as_of} (latest is {panel.date_at(row)})")
    cache = EstimationCache()
    frames = [decision_frame(panel, s.decide(panel, row, cache), as_of, s.name) for s in strategies]
    out = pl.concat(frames)
    if drop_zero:
        out = out.filter(pl.col("weight") > 0)
    return out
