"""Risk measures of a portfolio (``portfolio.risk_metrics``): VaR, Cornish-Fisher VaR, CVaR,
volatility, drawdown and the forecast volatility."""

from __future__ import annotations

import math
from datetime import date
from statistics import NormalDist
from typing import cast

import numpy as np
import polars as pl

from portfolio_pipeline.portfolio.metrics import (
    Z_10_90,
    historical_cvar,
    historical_var,
    max_drawdown,
)
from portfolio_pipeline.portfolio.risk.history import PortfolioHistory, portfolio_history
from portfolio_pipeline.portfolio.strategies import MarketPanel
from portfolio_pipeline.settings import CASH_SYMBOL

RISK_SCHEMA = {"as_of": pl.Date, "portfolio": pl.Utf8, "metric": pl.Utf8, "value": pl.Float64}


def cornish_fisher_var(returns: np.ndarray, level: float) -> float:
    """Cornish-Fisher (modified) VaR at ``level`` as a positive loss fraction."""
    if returns.size < 3:
        return float("nan")
    mean = float(returns.mean())
    std = float(returns.std(ddof=1))
    centred = returns - mean
    pop_std = float(np.sqrt(np.mean(centred**2)))
    if pop_std == 0:
        return float(-mean)
    skew = float(np.mean(centred**3) / pop_std**3)
    excess_kurt = float(np.mean(centred**4) / pop_std**4 - 3.0)
    z = NormalDist().inv_cdf(1.0 - level)
    z_cf = (
        z
        + (z**2 - 1) * skew / 6
        + (z**3 - 3 * z) * excess_kurt / 24
        - (2 * z**3 - 5 * z) * skew**2 / 36
    )
    return float(-(mean + z_cf * std))


def _forecast_sigmas(
    forecasts: pl.DataFrame,
    symbols: list[str],
    as_of: date,
    horizon_days: int | None,
    periods_per_year: int = 365,
) -> dict[str, float]:
    """Daily volatility per symbol from the latest forecasts known at ``as_of``: either a
    volatility forecast (``vol_forecast``, annualised) or a return-quantile band (q10..q90 of
    the H-day log return, read as a normal band)."""
    known = forecasts.filter((pl.col("as_of") <= as_of) & pl.col("symbol").is_in(symbols))
    if horizon_days is None and known.height:
        # polars types min() as any literal; horizon_days is an integer column
        horizon_days = int(cast(int, known.get_column("horizon_days").min()))
    if horizon_days is None:  # no forecast known at as_of (the filter below finds none either)
        return {}
    known = known.filter(pl.col("horizon_days") == horizon_days)
    if known.is_empty():
        return {}
    latest = known.group_by("symbol").agg(pl.all().sort_by("as_of").last())
    if "vol_forecast" in latest.columns:
        sigma = pl.col("vol_forecast") / math.sqrt(periods_per_year)
    else:
        sigma = (pl.col("q90") - pl.col("q10")) / (2 * Z_10_90) / math.sqrt(horizon_days)
    return {
        s: float(v)
        for s, v in latest.select("symbol", sigma.alias("s")).iter_rows()
        if v is not None and math.isfinite(v) and v >= 0
    }


def compute_risk_metrics(
    ohlcv: pl.DataFrame | MarketPanel,
    weights: pl.DataFrame,
    as_of: date,
    *,
    portfolio: str = "current",
    periods_per_year: int = 365,
    lookback_days: int = 365,
    forecasts: pl.DataFrame | None = None,
    forecast_horizon_days: int | None = None,
    cash_symbol: str = CASH_SYMBOL,
) -> pl.DataFrame:
    """Risk metrics of ``weights`` at ``as_of`` -> ``portfolio.risk_metrics`` rows.

    ``lookback_days`` counts bars (pass ``periods_per_year`` for one year of sessions).
    Returns columns ``as_of, portfolio, metric, value`` (definitions in
    :mod:`portfolio_pipeline.portfolio.risk`).
    """
    history = portfolio_history(ohlcv, weights, as_of, lookback_days, cash_symbol)
    r = history.portfolio_returns
    # The annualisation used by ann_vol / forecast_ann_vol, recorded next to them.
    values: dict[str, float] = {
        "n_observations": float(r.size),
        "periods_per_year": float(periods_per_year),
    }
    values.update(_return_measures(history, periods_per_year))
    if forecasts is not None and history.symbols and r.size >= 2:
        values.update(
            _forecast_measures(history, forecasts, as_of, forecast_horizon_days, periods_per_year)
        )
    return pl.DataFrame(
        {
            "as_of": [as_of] * len(values),
            "portfolio": [portfolio] * len(values),
            "metric": list(values),
            "value": list(values.values()),
        },
        schema=RISK_SCHEMA,
    )


def _return_measures(history: PortfolioHistory, periods_per_year: int) -> dict[str, float]:
    """VaR, CVaR, volatility and drawdown of the portfolio's historical returns."""
    r = history.portfolio_returns
    values: dict[str, float] = {}
    if history.symbols and r.size >= 2:
        for level, tag in ((0.95, "95"), (0.99, "99")):
            values[f"var_hist_{tag}"] = historical_var(r, level)
            values[f"var_cf_{tag}"] = cornish_fisher_var(r, level)
            values[f"cvar_{tag}"] = historical_cvar(r, level)
        values["ann_vol"] = float(r.std(ddof=1) * math.sqrt(periods_per_year))
        values["max_drawdown"] = max_drawdown(r)
    else:  # all cash (or no common history): no risk measurable from returns
        for key in ("var_hist_95", "var_cf_95", "cvar_95", "var_hist_99", "var_cf_99", "cvar_99"):
            values[key] = 0.0 if not history.symbols else float("nan")
        values["ann_vol"] = 0.0 if not history.symbols else float("nan")
        values["max_drawdown"] = 0.0 if not history.symbols else float("nan")
    return values


def _forecast_measures(
    history: PortfolioHistory,
    forecasts: pl.DataFrame,
    as_of: date,
    forecast_horizon_days: int | None,
    periods_per_year: int,
) -> dict[str, float]:
    """``forecast_ann_vol`` (forecast sigmas, historical correlations) and the share of risky
    weight that had a forecast."""
    sigmas = _forecast_sigmas(
        forecasts, history.symbols, as_of, forecast_horizon_days, periods_per_year
    )
    hist_sigma = history.asset_returns.std(axis=0, ddof=1)
    sigma = np.array(
        [sigmas.get(s, hist_sigma[i]) for i, s in enumerate(history.symbols)], dtype=float
    )
    if history.asset_returns.shape[1] > 1:
        correlation = np.corrcoef(history.asset_returns, rowvar=False)
    else:
        correlation = np.ones((1, 1))
    correlation = np.nan_to_num(correlation, nan=0.0)
    np.fill_diagonal(correlation, 1.0)
    ws = history.weights * sigma
    values: dict[str, float] = {}
    values["forecast_ann_vol"] = float(
        math.sqrt(max(ws @ correlation @ ws, 0.0)) * math.sqrt(periods_per_year)
    )
    covered = sum(w for s, w in zip(history.symbols, history.weights, strict=True) if s in sigmas)
    values["forecast_coverage"] = float(covered / history.weights.sum())
    return values
