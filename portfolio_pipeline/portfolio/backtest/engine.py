"""One strategy over one window: decide and drift (:func:`weight_path`), then costs, metrics
and the equity rows (:func:`run_backtest`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from portfolio_pipeline.portfolio import accounting
from portfolio_pipeline.portfolio.backtest.schedule import (
    REBALANCE_FREQUENCIES,
    is_rebalance_day,
    window_rows,
)
from portfolio_pipeline.portfolio.metrics import performance_summary
from portfolio_pipeline.portfolio.strategies import (
    TARGET_WEIGHTS_SCHEMA,
    EstimationCache,
    MarketPanel,
    Strategy,
    decision_frame,
)

EQUITY_SCHEMA = {
    "strategy": pl.Utf8,
    "date": pl.Date,
    "equity": pl.Float64,
    "daily_return": pl.Float64,
    "turnover": pl.Float64,
    "cost": pl.Float64,
    "decided_at": pl.Date,
    "rebalanced": pl.Boolean,
    "weights": pl.Utf8,
}


@dataclass(frozen=True)
class BacktestResult:
    """One strategy over one window.

    equity : rows of ``portfolio.backtest_equity`` (see :mod:`portfolio_pipeline.portfolio.backtest`).
    metrics : :func:`performance_summary` of the daily returns plus ``strategy``,
        ``rebalance``, ``cost_bps`` (a row of ``portfolio.backtest_metrics``).
    decisions : ``as_of, strategy, symbol, weight, reason`` of every rebalance decision.
    """

    strategy: str
    equity: pl.DataFrame
    metrics: dict[str, Any]
    decisions: pl.DataFrame


def _as_panel(ohlcv: pl.DataFrame | MarketPanel, end: date) -> MarketPanel:
    if isinstance(ohlcv, MarketPanel):
        return ohlcv
    return MarketPanel.from_ohlcv(ohlcv.filter(pl.col("date") <= end))


def _weights_json(symbols: Sequence[str], weights: np.ndarray) -> str:
    return json.dumps(
        {s: round(float(w), 10) for s, w in zip(symbols, weights, strict=True) if w > 1e-12}
    )


@dataclass(frozen=True)
class WeightPath:
    """What one strategy held at one rebalancing frequency, before costs.

    The weights held never depend on the cost level: trading costs scale the portfolio's
    value, not its composition (see :func:`portfolio_pipeline.portfolio.accounting.step`). So one
    path serves every cost level of the sensitivity table, and only :func:`path_returns`
    differs per cost.

    Attributes
    ----------
    strategy : the strategy's name.
    rebalance : the frequency actually used (the strategy's own one when it has one).
    decided_at, dates : (T,) the decision day ``d`` and the day ``d + 1`` whose return is booked.
    gross : (T,) ``V[d+1] / V[d]`` before costs.
    turnover : (T,) one-way turnover of the trade at the close of ``d`` (0 when not trading).
    rebalanced : (T,) whether the strategy traded at ``d``.
    targets : (T, N+1) weights held over ``d + 1`` right after trading, cash last.
    decisions : rows ``as_of, strategy, symbol, weight, reason`` of every decision taken.
    """

    strategy: str
    rebalance: str
    decided_at: list[date]
    dates: list[date]
    gross: np.ndarray
    turnover: np.ndarray
    rebalanced: np.ndarray
    targets: np.ndarray
    decisions: pl.DataFrame


def _check_run(start: date, end: date, rebalance: str, cost_bps: float) -> None:
    if rebalance not in REBALANCE_FREQUENCIES:
        raise ValueError(f"rebalance must be one of {REBALANCE_FREQUENCIES}, got {rebalance!r}")
    if cost_bps < 0:
        raise ValueError(f"cost_bps must be >= 0, got {cost_bps}")
    if end <= start:
        raise ValueError(f"backtest window is empty: start {start} >= end {end}")


def weight_path(
    panel: MarketPanel,
    strategy: Strategy,
    start: date,
    end: date,
    rebalance: str,
    estimates: EstimationCache,
) -> WeightPath:
    """Decide on rebalance days and let the weights drift in between, over ``[start, end]``.

    The first decision (the day before ``start``) always trades, from all cash. A decision at
    ``d`` sees the panel rows ``<= d`` only and buys only what trades at ``d``.
    """
    first_row, last_row = window_rows(panel, start, end, f"backtest {strategy.name}")
    rebalance = _traded_frequency(strategy, rebalance)
    n_days, n = last_row - first_row + 1, panel.n_assets
    gross, turnover = np.empty(n_days), np.empty(n_days)
    rebalanced = np.zeros(n_days, dtype=bool)
    targets = np.empty((n_days, n + 1))
    decided_at = [panel.date_at(row) for row in range(first_row - 1, last_row + 1)]
    drifted = np.zeros(n + 1)
    drifted[-1] = 1.0
    decision_frames: list[pl.DataFrame] = []
    for t, row in enumerate(range(first_row - 1, last_row)):
        day, next_day = decided_at[t], decided_at[t + 1]
        trade = t == 0 or (strategy.rebalances and is_rebalance_day(day, next_day, rebalance))
        if trade:
            target, frame = _tradable_decision(panel, strategy, row, day, estimates)
            decision_frames.append(frame)
        else:
            target = drifted
        result = _hold_one_day(panel, row, drifted, target)
        gross[t], turnover[t], rebalanced[t], targets[t] = (
            result.growth,
            result.turnover,
            trade,
            target,
        )
        drifted = result.next_weights
    return WeightPath(
        strategy=strategy.name,
        rebalance=rebalance,
        decided_at=decided_at[:-1],
        dates=decided_at[1:],
        gross=gross,
        turnover=turnover,
        rebalanced=rebalanced,
        targets=targets,
        decisions=_decisions_taken(decision_frames),
    )


def _traded_frequency(strategy: Strategy, rebalance: str) -> str:
    """The strategy's own frequency when it has one (a DRL policy acting daily), else
    ``rebalance``; checked."""
    rebalance = strategy.rebalance_frequency or rebalance
    if rebalance not in REBALANCE_FREQUENCIES:
        raise ValueError(
            f"{strategy.name}: rebalance must be one of {REBALANCE_FREQUENCIES}, got {rebalance!r}"
        )
    return rebalance


def _tradable_decision(
    panel: MarketPanel, strategy: Strategy, row: int, day: date, estimates: EstimationCache
) -> tuple[np.ndarray, pl.DataFrame]:
    """The strategy's target at ``row`` restricted to what trades that day, and its rows."""
    decision = strategy.decide(panel, row, estimates)
    # Only today's prices decide what can be bought: tomorrow's are unknown at d.
    target = accounting.restrict_to_tradable(
        decision.weights, accounting.tradable_mask(panel.close[row])
    )
    return target, decision_frame(panel, decision, day, strategy.name)


def _hold_one_day(
    panel: MarketPanel, row: int, drifted: np.ndarray, target: np.ndarray
) -> accounting.StepResult:
    """Trade from ``drifted`` to ``target`` at the close of ``row`` and hold to the next close."""
    today, tomorrow = panel.close[row], panel.close[row + 1]
    # Cost 0 here: the cost of every level is applied to the same path in path_returns.
    return accounting.step(
        drifted,
        target,
        accounting.price_relatives(today, tomorrow),
        0.0,
        delisted_next=np.isfinite(today) & ~np.isfinite(tomorrow),
    )


def _decisions_taken(decision_frames: list[pl.DataFrame]) -> pl.DataFrame:
    """The decision rows of a path (an empty frame with the schema when none)."""
    return (
        pl.concat(decision_frames)
        if decision_frames
        else pl.DataFrame(schema=TARGET_WEIGHTS_SCHEMA)
    )


def path_returns(path: WeightPath, cost_bps: float) -> tuple[np.ndarray, np.ndarray]:
    """``(growth, cost)`` per day of ``path`` net of ``cost_bps`` on its turnover.

    The arithmetic is :func:`accounting.step`'s, element by element: ``cost = rate *
    turnover`` and ``growth = (1 - cost) * gross``.
    """
    cost = (cost_bps / 10_000.0) * path.turnover
    return (1.0 - cost) * path.gross, cost


def path_metrics(
    path: WeightPath, cost_bps: float, periods_per_year: int
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The ``portfolio.backtest_metrics`` row of ``path`` at ``cost_bps``, with the daily
    growth and cost it was computed from."""
    growth, cost = path_returns(path, cost_bps)
    summary = performance_summary(
        growth - 1.0,
        periods_per_year,
        turnover=path.turnover,
        start=min(path.dates),
        end=max(path.dates),
    )
    metrics = {
        "strategy": path.strategy,
        **summary,
        "rebalance": path.rebalance,
        "cost_bps": cost_bps,
        "periods_per_year": periods_per_year,
    }
    return metrics, growth, cost


def equity_frame(
    path: WeightPath, growth: np.ndarray, cost: np.ndarray, symbols: Sequence[str]
) -> pl.DataFrame:
    """Rows of ``portfolio.backtest_equity`` (see :mod:`portfolio_pipeline.portfolio.backtest`) for one run."""
    n_days = len(path.dates)
    return pl.DataFrame(
        {
            "strategy": [path.strategy] * n_days,
            "date": path.dates,
            # a running product, in order: the same rounding as compounding day by day
            "equity": np.cumprod(growth),
            "daily_return": growth - 1.0,
            "turnover": path.turnover,
            "cost": cost,
            "decided_at": path.decided_at,
            "rebalanced": path.rebalanced,
            "weights": [_weights_json(symbols, w) for w in path.targets],
        },
        schema=EQUITY_SCHEMA,
    )


def run_backtest(
    ohlcv: pl.DataFrame | MarketPanel,
    strategy: Strategy,
    start: date,
    end: date,
    rebalance: str = "weekly",
    cost_bps: float = 10.0,
    *,
    periods_per_year: int = 365,
    cache: EstimationCache | None = None,
) -> BacktestResult:
    """Walk-forward backtest of ``strategy`` over ``[start, end]``.

    Steps: check the run, :func:`weight_path` (decide and drift), :func:`path_metrics` (costs
    and metrics), :func:`equity_frame`.

    Parameters
    ----------
    ohlcv : raw OHLCV frame or a prebuilt :class:`MarketPanel` (reuse one across runs).
    strategy : a fitted :class:`~portfolio_pipeline.portfolio.strategies.Strategy`.
    start, end : first and last day whose return is booked (inclusive).
    rebalance : ``daily`` | ``weekly`` | ``monthly``; a strategy with a
        ``rebalance_frequency`` of its own (a DRL policy acting daily) trades at that one, and
        its metrics row says so.
    cost_bps : proportional cost per unit of traded value, in basis points.
    periods_per_year : annualisation for the metrics (365 crypto, 252 equities).
    cache : the moments shared by every strategy deciding on the same panel.

    Returns
    -------
    BacktestResult
    """
    _check_run(start, end, rebalance, cost_bps)
    panel = _as_panel(ohlcv, end)
    cache = cache if cache is not None else EstimationCache()
    path = weight_path(panel, strategy, start, end, rebalance, cache)
    metrics, growth, cost = path_metrics(path, cost_bps, periods_per_year)
    equity = equity_frame(path, growth, cost, [*panel.symbols, panel.cash_symbol])
    return BacktestResult(strategy.name, equity, metrics, path.decisions)
