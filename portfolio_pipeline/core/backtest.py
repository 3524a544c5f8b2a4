"""Walk-forward, cost-aware backtests of the strategies in :mod:`.strategies`.

Timeline (no look-ahead)
------------------------
For a window ``[start, end]`` the engine decides at the close of every day ``d`` from
``start - 1`` to ``end - 1`` and books the return of ``d + 1``. On a rebalance day the strategy
sees the panel rows ``<= d`` only; the new weights pay the trading cost at the close of ``d``
and earn ``close[d+1] / close[d]``. Between rebalances the weights drift with prices. All the
accounting (drift, cost on turnover from the DRIFTED weights, cash last, delisting to cash) is
:mod:`portfolio_pipeline.core.accounting`, the same code the RL environment uses.

Rebalance days: ``daily`` every day; ``weekly`` the last trading day of each ISO week (Sunday
for crypto); ``monthly`` the last trading day of each month. The first decision (``start - 1``)
always trades, from an all-cash portfolio.

The equity frame (``portfolio.backtest_equity``) has one row per day ``D`` of the window:
``equity`` at the close of ``D`` (1.0 before the first decision), ``daily_return`` =
``equity[D] / equity[D-1] - 1`` (net of costs), and the ``turnover``/``cost`` of the trade made
at the close of ``decided_at = D - 1`` that this return pays for; ``weights`` (JSON, cash as
``USDT``) are the weights held over ``D`` right after that trade.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from portfolio_pipeline.core import accounting
from portfolio_pipeline.core.metrics import METRIC_KEYS, performance_summary
from portfolio_pipeline.core.strategies import (
    TARGET_WEIGHTS_SCHEMA,
    EstimationCache,
    MarketPanel,
    Strategy,
    decision_frame,
)

REBALANCE_FREQUENCIES: tuple[str, ...] = ("daily", "weekly", "monthly")
# Windows are not fixed here: they come from the data (core.windows.windows_from_dates).
DEFAULT_SENSITIVITY_COSTS_BPS: tuple[float, ...] = (0.0, 10.0, 25.0, 50.0)

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

    equity : rows of ``portfolio.backtest_equity`` (see module docstring).
    metrics : :func:`performance_summary` of the daily returns plus ``strategy``,
        ``rebalance``, ``cost_bps`` (a row of ``portfolio.backtest_metrics``).
    decisions : ``as_of, strategy, symbol, weight, reason`` of every rebalance decision.
    """

    strategy: str
    equity: pl.DataFrame
    metrics: dict[str, Any]
    decisions: pl.DataFrame


@dataclass(frozen=True)
class GridResult:
    """Main runs (one per strategy) and the frequency x cost sensitivity table."""

    equity: pl.DataFrame
    metrics: pl.DataFrame
    decisions: pl.DataFrame
    sensitivity: pl.DataFrame


def is_rebalance_day(day: date, next_day: date, frequency: str) -> bool:
    """True when ``day`` closes a rebalancing period (``next_day`` is the next panel date)."""
    if frequency == "daily":
        return True
    if frequency == "weekly":
        return day.isocalendar()[:2] != next_day.isocalendar()[:2]
    if frequency == "monthly":
        return (day.year, day.month) != (next_day.year, next_day.month)
    raise ValueError(f"rebalance must be one of {REBALANCE_FREQUENCIES}, got {frequency!r}")


def period_start_row(dates: np.ndarray, row: int, frequency: str) -> int:
    """First row of the period (``daily``: the row itself; ISO week; month) containing ``row``.

    This is when a live target is re-decided: on the first trading day of each period, which
    is known on that day (the backtests' *last* day of a period needs tomorrow's date).
    ``dates`` are the panel's sorted ``datetime64[D]`` dates; only rows ``<= row`` are read.
    """
    if frequency not in REBALANCE_FREQUENCIES:
        raise ValueError(
            f"target refresh must be one of {REBALANCE_FREQUENCIES}, got {frequency!r}"
        )
    if frequency == "daily":
        return row

    def period(r: int) -> tuple[int, int]:
        day = dates[r].astype("datetime64[D]").astype(date)
        return day.isocalendar()[:2] if frequency == "weekly" else (day.year, day.month)

    current, start = period(row), row
    while start > 0 and period(start - 1) == current:
        start -= 1
    return start


def window_rows(panel: MarketPanel, start: date, end: date, what: str) -> tuple[int, int]:
    """Panel rows of the first and last day of ``[start, end]``; the row before the first is
    the first decision, so it must exist. ``what`` names the caller in the error."""
    first_row = int(np.searchsorted(panel.dates, np.datetime64(start, "D"), side="left"))
    last_row = int(np.searchsorted(panel.dates, np.datetime64(end, "D"), side="right")) - 1
    if first_row < 1 or first_row > last_row:
        raise ValueError(
            f"{what}: need prices on the day before {start} and within "
            f"[{start}, {end}]; panel covers {panel.dates[0]}..{panel.dates[-1]}"
        )
    return first_row, last_row


def _as_panel(ohlcv: pl.DataFrame | MarketPanel, end: date) -> MarketPanel:
    if isinstance(ohlcv, MarketPanel):
        return ohlcv
    return MarketPanel.from_ohlcv(ohlcv.filter(pl.col("date") <= end))


def _weights_json(symbols: Sequence[str], weights: np.ndarray) -> str:
    return json.dumps(
        {s: round(float(w), 10) for s, w in zip(symbols, weights, strict=True) if w > 1e-12}
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

    Parameters
    ----------
    ohlcv : raw OHLCV frame or a prebuilt :class:`MarketPanel` (reuse one across runs).
    strategy : a :class:`~portfolio_pipeline.core.strategies.Strategy`.
    start, end : first and last day whose return is booked (inclusive).
    rebalance : ``daily`` | ``weekly`` | ``monthly``; a strategy with a
        ``rebalance_frequency`` of its own (a DRL policy acting daily) trades at that one, and
        its metrics row says so.
    cost_bps : proportional cost per unit of traded value, in basis points.
    periods_per_year : annualisation for the metrics (365 crypto, 252 equities).
    cache : share one :class:`EstimationCache` across runs over the same panel.

    Returns
    -------
    BacktestResult
    """
    if rebalance not in REBALANCE_FREQUENCIES:
        raise ValueError(f"rebalance must be one of {REBALANCE_FREQUENCIES}, got {rebalance!r}")
    if cost_bps < 0:
        raise ValueError(f"cost_bps must be >= 0, got {cost_bps}")
    if end <= start:
        raise ValueError(f"backtest window is empty: start {start} >= end {end}")
    panel = _as_panel(ohlcv, end)
    cache = cache if cache is not None else EstimationCache()
    first_row, last_row = window_rows(panel, start, end, f"backtest {strategy.name}")
    rebalance = strategy.rebalance_frequency or rebalance
    if rebalance not in REBALANCE_FREQUENCIES:
        raise ValueError(
            f"{strategy.name}: rebalance must be one of {REBALANCE_FREQUENCIES}, got {rebalance!r}"
        )
    cost_rate = cost_bps / 10_000.0
    symbols = [*panel.symbols, panel.cash_symbol]
    n = panel.n_assets
    drifted = np.zeros(n + 1)
    drifted[-1] = 1.0
    value = 1.0
    columns: dict[str, list[Any]] = {k: [] for k in EQUITY_SCHEMA}
    decision_frames: list[pl.DataFrame] = []
    for row in range(first_row - 1, last_row):
        day, next_day = panel.date_at(row), panel.date_at(row + 1)
        trade = row == first_row - 1 or (
            strategy.rebalances and is_rebalance_day(day, next_day, rebalance)
        )
        if trade:
            decision = strategy.decide(panel, row, cache)
            # Only today's prices decide what can be bought: tomorrow's are unknown at d.
            target = accounting.restrict_to_tradable(
                decision.weights, accounting.tradable_mask(panel.close[row])
            )
            decision_frames.append(decision_frame(panel, decision, day, strategy.name))
        else:
            target = drifted
        today, tomorrow = panel.close[row], panel.close[row + 1]
        delisted_next = np.isfinite(today) & ~np.isfinite(tomorrow)
        result = accounting.step(
            drifted,
            target,
            accounting.price_relatives(today, tomorrow),
            cost_rate,
            delisted_next=delisted_next,
        )
        value *= result.growth
        columns["strategy"].append(strategy.name)
        columns["date"].append(next_day)
        columns["equity"].append(value)
        columns["daily_return"].append(result.growth - 1.0)
        columns["turnover"].append(result.turnover)
        columns["cost"].append(result.cost)
        columns["decided_at"].append(day)
        columns["rebalanced"].append(bool(trade))
        columns["weights"].append(_weights_json(symbols, target))
        drifted = result.next_weights
    equity = pl.DataFrame(columns, schema=EQUITY_SCHEMA)
    metrics = performance_summary(
        equity.select("date", "daily_return"),
        periods_per_year,
        turnover=equity.get_column("turnover"),
    )
    metrics = {
        "strategy": strategy.name,
        **metrics,
        "rebalance": rebalance,
        "cost_bps": cost_bps,
        "periods_per_year": periods_per_year,
    }
    decisions = (
        pl.concat(decision_frames)
        if decision_frames
        else pl.DataFrame(schema=TARGET_WEIGHTS_SCHEMA)
    )
    return BacktestResult(strategy.name, equity, metrics, decisions)


def metrics_frame(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """Metric dicts -> frame ``strategy, start, end, <metrics>, rebalance, cost_bps,
    periods_per_year`` (the annualisation the metrics used)."""
    schema: dict[str, Any] = {"strategy": pl.Utf8, "start": pl.Date, "end": pl.Date}
    schema.update({k: pl.Float64 for k in METRIC_KEYS if k not in ("start", "end")})
    schema.update({"rebalance": pl.Utf8, "cost_bps": pl.Float64, "periods_per_year": pl.Int32})
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)


def run_backtest_grid(
    ohlcv: pl.DataFrame | MarketPanel,
    strategies: Sequence[Strategy],
    start: date,
    end: date,
    rebalance: str = "weekly",
    cost_bps: float = 10.0,
    *,
    sensitivity_rebalances: Sequence[str] = REBALANCE_FREQUENCIES,
    sensitivity_costs_bps: Sequence[float] = DEFAULT_SENSITIVITY_COSTS_BPS,
    periods_per_year: int = 365,
    cache: EstimationCache | None = None,
) -> GridResult:
    """Every strategy over one window, plus a rebalance-frequency x cost sensitivity table.

    The main runs (``rebalance``, ``cost_bps``) give ``equity`` (-> ``portfolio.backtest_equity``)
    and ``metrics`` (-> ``portfolio.backtest_metrics``). ``sensitivity`` has one row per
    (strategy, rebalance, cost_bps) with the same metric columns; pass empty sequences to skip
    it. Strategy decisions are memoised per day in ``cache``, so the weights of a day are
    optimised once for all frequencies and cost levels.
    """
    panel = _as_panel(ohlcv, end)
    cache = cache if cache is not None else EstimationCache()
    equities, metric_rows, decisions = [], [], []
    for strategy in strategies:
        result = run_backtest(
            panel,
            strategy,
            start,
            end,
            rebalance,
            cost_bps,
            periods_per_year=periods_per_year,
            cache=cache,
        )
        equities.append(result.equity)
        metric_rows.append(result.metrics)
        decisions.append(result.decisions)
    sensitivity_rows = []
    for strategy in strategies:
        for frequency in sensitivity_rebalances:
            for cost in sensitivity_costs_bps:
                if frequency == rebalance and cost == cost_bps:
                    sensitivity_rows.extend(
                        m for m in metric_rows if m["strategy"] == strategy.name
                    )
                    continue
                result = run_backtest(
                    panel,
                    strategy,
                    start,
                    end,
                    frequency,
                    cost,
                    periods_per_year=periods_per_year,
                    cache=cache,
                )
                sensitivity_rows.append(result.metrics)
    return GridResult(
        equity=pl.concat(equities),
        metrics=metrics_frame(metric_rows),
        decisions=pl.concat(decisions),
        sensitivity=metrics_frame(sensitivity_rows),
    )


def select_default_strategy(
    validation_metrics: pl.DataFrame,
    *,
    metric: str = "sharpe",
    test_start: date | None = None,
) -> str:
    """Pick the recommendation strategy by its VALIDATION-window ``metric`` (highest wins).

    ``validation_metrics`` is a metrics frame (``strategy, start, end, sharpe, ...``) computed
    on a window that must end before ``test_start`` when given: choosing on the test window
    would leak the test result into the choice. Ties go to the alphabetically first name;
    strategies with a NaN metric are ignored.
    """
    if validation_metrics.is_empty():
        raise ValueError("select_default_strategy: validation metrics are empty")
    if metric not in validation_metrics.columns:
        raise ValueError(f"select_default_strategy: no column {metric!r}")
    if test_start is not None and "end" in validation_metrics.columns:
        latest = validation_metrics.get_column("end").max()
        if latest is not None and latest >= test_start:
            raise ValueError(
                f"select_default_strategy: validation window ends {latest}, not before the "
                f"test window starts ({test_start}); choosing there would leak the test"
            )
    usable = validation_metrics.filter(pl.col(metric).is_not_nan() & pl.col(metric).is_not_null())
    if usable.is_empty():
        raise ValueError(f"select_default_strategy: every strategy has a NaN {metric}")
    best = usable.sort([metric, "strategy"], descending=[True, False]).row(0, named=True)
    return str(best["strategy"])


def plot_equity_curves(equity: pl.DataFrame, title: str = "Backtest") -> bytes:
    """PNG of equity curves (top) and drawdowns (bottom) per strategy, for asset metadata."""
    from portfolio_pipeline.core.plots import figure_png, pyplot

    plt = pyplot()

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, height_ratios=[2, 1])
    for name in sorted(equity.get_column("strategy").unique().to_list()):
        part = equity.filter(pl.col("strategy") == name).sort("date")
        dates = part.get_column("date").to_list()
        values = part.get_column("equity").to_numpy()
        peaks = np.maximum.accumulate(np.concatenate(([1.0], values)))[1:]
        top.plot(dates, values, label=name, linewidth=1.2)
        bottom.plot(dates, values / peaks - 1.0, linewidth=1.0)
    top.set_ylabel("equity (start = 1)")
    top.set_title(title)
    top.legend(fontsize=8, ncol=3)
    top.grid(alpha=0.3)
    bottom.set_ylabel("drawdown")
    bottom.grid(alpha=0.3)
    return figure_png(fig)
