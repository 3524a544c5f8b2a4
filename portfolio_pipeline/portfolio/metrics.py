"""Performance and tail-risk metrics of a return series (pure numpy + polars).

Every function takes SIMPLE periodic returns ``r_t = V_t / V_{t-1} - 1`` and an explicit
``periods_per_year`` (365 for crypto, 252 for equities); nothing is annualised with a
hard-coded constant.

Definitions used throughout (``n`` returns, ``P = periods_per_year``):

- ``total_return`` = ``prod(1 + r_t) - 1``.
- ``cagr`` = ``(1 + total_return) ** (P / n) - 1`` (the ``n`` returns span ``n / P`` years).
- ``ann_vol`` = sample standard deviation of ``r_t`` (``ddof=1``) times ``sqrt(P)``.
- ``sharpe`` = ``mean(r_t) / std(r_t, ddof=1) * sqrt(P)``, risk-free rate 0 (cash, USDT,
  earns nothing in this project).
- ``sortino`` = ``mean(r_t) / downside_deviation * sqrt(P)`` with the downside deviation
  ``sqrt(mean(min(r_t, 0) ** 2))`` over ALL periods (target return 0).
- ``max_drawdown`` = ``max_t (1 - E_t / max_{s<=t} E_s)`` on the equity ``E`` compounded from 1
  (the starting value counts as a peak); a POSITIVE fraction of value lost (0.35 = -35%).
- ``calmar`` = ``cagr / max_drawdown`` (NaN when there was no drawdown).
- ``turnover`` = annualised one-way turnover, ``sum(turnover_t) / n * P`` where ``turnover_t``
  is the fraction of value traded (buys plus sells of risky assets) on period ``t``; only
  when a turnover series is given, else NaN.
- ``var_95`` = historical Value at Risk at 95%: ``-quantile(r, 0.05)`` (numpy's linear
  interpolation), a POSITIVE loss fraction for one period.
- ``cvar_95`` = historical Conditional VaR (expected shortfall) at 95%: ``-mean(r_t)`` over
  the returns at or below ``quantile(r, 0.05)``; positive loss fraction, ``>= var_95``.
"""

from __future__ import annotations

import math
from datetime import date
from statistics import NormalDist
from typing import Any, cast

import numpy as np
import polars as pl

# Half the 10-90% range of a unit normal (1.28155): turns a q10..q90 band into a sigma.
Z_10_90 = NormalDist().inv_cdf(0.9)
# A standard deviation below this is a flat series (float noise, not risk).
FLAT_STD = 1e-15


def sharpe_ratio(returns: Any, periods_per_year: int, *, flat: float = float("nan")) -> float:
    """``mean / std (ddof=1) * sqrt(periods_per_year)`` of per-period returns, risk-free 0.

    ``flat`` is returned when the Sharpe ratio is undefined (fewer than 2 returns, or a flat
    series): NaN in reports; a caller that must rank candidates (the DRL search) passes 0.
    """
    values = np.asarray(returns, dtype=np.float64)
    if values.size < 2:
        return flat
    std = float(values.std(ddof=1))
    if not std > FLAT_STD:
        return flat
    return float(values.mean() / std * math.sqrt(periods_per_year))


METRIC_KEYS: tuple[str, ...] = (
    "start",
    "end",
    "total_return",
    "cagr",
    "ann_vol",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "turnover",
    "var_95",
    "cvar_95",
)


def _as_float_array(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr))[:5].tolist()
        raise ValueError(f"{name} must be finite; non-finite values at positions {bad}")
    return arr


def _split_returns_input(
    returns: Any, return_column: str | None
) -> tuple[np.ndarray, date | None, date | None]:
    """Accept a polars frame (date + return column), a polars Series or an array."""
    if isinstance(returns, pl.DataFrame):
        frame = returns
        if "date" in frame.columns:
            frame = frame.sort("date")
        if return_column is None:
            candidates = [
                c for c in ("daily_return", "return", "ret", "returns") if c in frame.columns
            ]
            numeric = [c for c in frame.columns if c != "date" and frame.schema[c].is_numeric()]
            if candidates:
                return_column = candidates[0]
            elif len(numeric) == 1:
                return_column = numeric[0]
            else:
                raise ValueError(
                    "performance_summary: cannot tell which column holds the returns "
                    f"(columns {frame.columns}); pass return_column="
                )
        values = frame.get_column(return_column).to_numpy()
        if "date" in frame.columns and frame.height:
            dates = frame.get_column("date")
            # polars types min/max as any literal; a ``date`` column gives dates
            return values, cast(date | None, dates.min()), cast(date | None, dates.max())
        return values, None, None
    if isinstance(returns, pl.Series):
        return returns.to_numpy(), None, None
    return np.asarray(returns), None, None


def equity_curve(returns: np.ndarray) -> np.ndarray:
    """Equity compounded from 1: ``E_t = prod_{s<=t} (1 + r_s)``, shape ``(n,)``."""
    return np.cumprod(1.0 + np.asarray(returns, dtype=np.float64))


def drawdown_series(returns: np.ndarray) -> np.ndarray:
    """Drawdown ``1 - E_t / running_peak_t`` (positive fractions), shape ``(n,)``.

    The initial value 1 counts as a peak, so a loss on the first period is a drawdown.
    """
    equity = equity_curve(returns)
    peaks = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
    return 1.0 - equity / peaks


def max_drawdown(returns: np.ndarray) -> float:
    """Largest drawdown as a positive fraction (0 when the equity never fell)."""
    if len(returns) == 0:
        return float("nan")
    return float(drawdown_series(returns).max())


def historical_var(returns: np.ndarray, level: float = 0.95) -> float:
    """Historical VaR: ``-quantile(r, 1 - level)``, a positive loss fraction."""
    if len(returns) == 0:
        return float("nan")
    return float(-np.quantile(returns, 1.0 - level))


def historical_cvar(returns: np.ndarray, level: float = 0.95) -> float:
    """Historical CVaR: minus the mean of returns at or below the ``1 - level`` quantile."""
    if len(returns) == 0:
        return float("nan")
    cutoff = np.quantile(returns, 1.0 - level)
    return float(-np.mean(returns[returns <= cutoff]))


def performance_summary(
    returns: Any,
    periods_per_year: int,
    *,
    turnover: Any | None = None,
    return_column: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> dict[str, Any]:
    """Summarise simple periodic returns with the columns of ``portfolio.backtest_metrics``.

    Parameters
    ----------
    returns : polars.DataFrame | polars.Series | array-like of shape (n,)
        Simple returns. A frame may carry a ``date`` column (then ``start``/``end`` come from
        it) and the returns in ``daily_return``/``return``/``ret`` or ``return_column``.
    periods_per_year : int
        365 for crypto, 252 for equities.
    turnover : array-like of shape (n,), optional
        One-way turnover per period (fraction of value); gives the ``turnover`` metric.
    return_column : str, optional
        Column holding the returns when a frame is given and the name is not standard.
    start, end : datetime.date, optional
        Override the window bounds (else from the frame's dates, else None).

    Returns
    -------
    dict
        Exactly the keys of :data:`METRIC_KEYS`; see the module docstring for definitions.
        Metrics that are undefined (no returns, zero volatility) are NaN.
    """
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    raw, first_date, last_date = _split_returns_input(returns, return_column)
    r = _as_float_array(raw, "returns")
    if np.any(r <= -1.0):
        raise ValueError("returns must be > -1 (a simple return of -100% wipes the portfolio)")
    n = r.size
    nan = float("nan")
    out: dict[str, Any] = {
        "start": start if start is not None else first_date,
        "end": end if end is not None else last_date,
    }
    if n == 0:
        out.update({k: nan for k in METRIC_KEYS if k not in ("start", "end")})
        return out
    out.update(_return_ratios(r, periods_per_year))
    out["turnover"] = _annualised_turnover(turnover, n, periods_per_year)
    out["var_95"] = historical_var(r, 0.95)
    out["cvar_95"] = historical_cvar(r, 0.95)
    return out


def _return_ratios(r: np.ndarray, periods_per_year: int) -> dict[str, float]:
    """Total return, CAGR, volatility, Sharpe, Sortino, drawdown and Calmar of ``r`` (n > 0)."""
    n = r.size
    nan = float("nan")
    total = float(np.prod(1.0 + r) - 1.0)
    cagr = float((1.0 + total) ** (periods_per_year / n) - 1.0)
    std = float(np.std(r, ddof=1)) if n > 1 else nan
    mean = float(np.mean(r))
    ann_vol = std * math.sqrt(periods_per_year) if n > 1 else nan
    sharpe = sharpe_ratio(r, periods_per_year)
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))
    sortino = mean / downside * math.sqrt(periods_per_year) if downside > 0 else nan
    mdd = max_drawdown(r)
    calmar = cagr / mdd if mdd > 0 else nan
    return {
        "total_return": total,
        "cagr": cagr,
        "ann_vol": ann_vol,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": mdd,
        "calmar": calmar,
    }


def _annualised_turnover(turnover: Any | None, n: int, periods_per_year: int) -> float:
    """Mean one-way turnover per period times ``periods_per_year`` (NaN without turnover)."""
    if turnover is None:
        return float("nan")
    t = _as_float_array(
        turnover.to_numpy() if isinstance(turnover, pl.Series) else turnover, "turnover"
    )
    if t.size != n:
        raise ValueError(f"turnover has {t.size} values but returns has {n}")
    return float(t.sum() / n * periods_per_year)
