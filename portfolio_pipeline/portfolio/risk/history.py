"""The return history of today's weights: held assets, their window returns, the portfolio's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from portfolio_pipeline.portfolio.strategies import MarketPanel
from portfolio_pipeline.settings import CASH_SYMBOL


@dataclass(frozen=True)
class PortfolioHistory:
    """Held risky assets, their weights and window returns, plus the portfolio returns.

    symbols : k held risky symbols; weights : (k,); asset_returns : (n, k);
    portfolio_returns : (n,) ``asset_returns @ weights`` (cash adds 0); dates : (n,).
    """

    symbols: list[str]
    weights: np.ndarray
    asset_returns: np.ndarray
    portfolio_returns: np.ndarray
    dates: np.ndarray


def _weight_map(
    weights: pl.DataFrame, tolerance: float = 1e-6, cash_symbol: str = CASH_SYMBOL
) -> dict[str, float]:
    if not {"symbol", "weight"} <= set(weights.columns):
        raise ValueError("weights frame needs columns symbol, weight")
    mapping: dict[str, float] = {}
    for symbol, weight in weights.select("symbol", "weight").iter_rows():
        if weight is None or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight of {symbol} must be a finite number >= 0, got {weight}")
        mapping[symbol] = mapping.get(symbol, 0.0) + float(weight)
    total = sum(mapping.values())
    if abs(total - 1.0) > tolerance:
        raise ValueError(f"weights must sum to 1 (cash {cash_symbol} included), got {total:.8f}")
    return mapping


def portfolio_history(
    ohlcv: pl.DataFrame | MarketPanel,
    weights: pl.DataFrame,
    as_of: date,
    lookback_days: int,
    cash_symbol: str = CASH_SYMBOL,
) -> PortfolioHistory:
    """Historical per-bar returns of today's weights over the ``lookback_days`` BARS (rows)
    ending at ``as_of``."""
    panel = (
        ohlcv
        if isinstance(ohlcv, MarketPanel)
        else MarketPanel.from_ohlcv(ohlcv.filter(pl.col("date") <= as_of))
    )
    mapping = _weight_map(weights, cash_symbol=cash_symbol)
    held = [s for s, w in mapping.items() if s != cash_symbol and w > 0]
    unknown = [s for s in held if s not in panel.symbols]
    if unknown:
        raise ValueError(f"no price history up to {as_of} for {', '.join(unknown)}")
    row = panel.row_of(as_of)
    lo = max(0, row - lookback_days + 1)
    columns = [panel.symbols.index(s) for s in held]
    returns = panel.returns[lo : row + 1][:, columns]
    dates = panel.dates[lo : row + 1]
    complete = np.isfinite(returns).all(axis=1)
    returns, dates = returns[complete], dates[complete]
    w = np.array([mapping[s] for s in held])
    return PortfolioHistory(held, w, returns, returns @ w, dates)
