"""Walk-forward, cost-aware backtests of the strategies in :mod:`.strategies`.

Timeline (no look-ahead)
------------------------
For a window ``[start, end]`` the engine decides at the close of every day ``d`` from
``start - 1`` to ``end - 1`` and books the return of ``d + 1``. On a rebalance day the strategy
sees the panel rows ``<= d`` only; the new weights pay the trading cost at the close of ``d``
and earn ``close[d+1] / close[d]``. Between rebalances the weights drift with prices. All the
accounting (drift, cost on turnover from the DRIFTED weights, cash last, delisting to cash) is
:mod:`portfolio_pipeline.portfolio.accounting`, the same code the RL environment uses.

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from portfolio_pipeline.common import parallel
from portfolio_pipeline.market.windows import EvaluationWindows, with_window_columns
from portfolio_pipeline.portfolio import accounting
from portfolio_pipeline.portfolio.metrics import METRIC_KEYS, performance_summary
from portfolio_pipeline.portfolio.strategies import (
    TARGET_WEIGHTS_SCHEMA,
    EstimationCache,
    MarketPanel,
    Strategy,
    decision_frame,
)

REBALANCE_FREQUENCIES: tuple[str, ...] = ("daily", "weekly", "monthly")
# Windows are not fixed here: they come from the data (market.windows.windows_from_dates).
DEFAULT_SENSITIVITY_COSTS_BPS: tuple[float, ...] = (0.0, 10.0, 25.0, 50.0)

# Live targets (target_weights) and the recommendation replay refresh on the backtests' cadence.
DEFAULT_TARGET_REFRESH = "weekly"
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
    rebalance = strategy.rebalance_frequency or rebalance
    if rebalance not in REBALANCE_FREQUENCIES:
        raise ValueError(
            f"{strategy.name}: rebalance must be one of {REBALANCE_FREQUENCIES}, got {rebalance!r}"
        )
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
            decision = strategy.decide(panel, row, estimates)
            # Only today's prices decide what can be bought: tomorrow's are unknown at d.
            target = accounting.restrict_to_tradable(
                decision.weights, accounting.tradable_mask(panel.close[row])
            )
            decision_frames.append(decision_frame(panel, decision, day, strategy.name))
        else:
            target = drifted
        today, tomorrow = panel.close[row], panel.close[row + 1]
        # Cost 0 here: the cost of every level is applied to the same path in path_returns.
        result = accounting.step(
            drifted,
            target,
            accounting.price_relatives(today, tomorrow),
            0.0,
            delisted_next=np.isfinite(today) & ~np.isfinite(tomorrow),
        )
        gross[t], turnover[t], rebalanced[t], targets[t] = (
            result.growth,
            result.turnover,
            trade,
            target,
        )
        drifted = result.next_weights
    decisions = (
        pl.concat(decision_frames)
        if decision_frames
        else pl.DataFrame(schema=TARGET_WEIGHTS_SCHEMA)
    )
    return WeightPath(
        strategy=strategy.name,
        rebalance=rebalance,
        decided_at=decided_at[:-1],
        dates=decided_at[1:],
        gross=gross,
        turnover=turnover,
        rebalanced=rebalanced,
        targets=targets,
        decisions=decisions,
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
    """Rows of ``portfolio.backtest_equity`` (see the module docstring) for one run."""
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
    it. Each strategy's decisions are memoised per day in the strategy and the moments per
    day in ``cache`` (shared by all strategies), and one :class:`WeightPath` per frequency
    serves every cost level.
    """
    _check_run(start, end, rebalance, cost_bps)
    for frequency in sensitivity_rebalances:
        for cost_level in sensitivity_costs_bps:
            _check_run(start, end, frequency, cost_level)
    panel = _as_panel(ohlcv, end)
    cache = cache if cache is not None else EstimationCache()
    with single_threaded_blas():
        return _grid(
            panel,
            strategies,
            start,
            end,
            rebalance,
            cost_bps,
            sensitivity_rebalances,
            sensitivity_costs_bps,
            periods_per_year,
            cache,
        )


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the block with one BLAS thread (restored after).

    A decision works on matrices of at most a few hundred assets (Ledoit-Wolf, the
    positive-definite check's eigenvalues, HRP's correlations): too small for BLAS threads to
    pay, and OpenBLAS's threads spin while they wait. At 100 assets one thread cut the CPU
    time of a Ledoit-Wolf estimate from ~50 ms to ~4 ms on a busy 2-core machine, with the
    same numbers (the sample's backtest tables are equal to the last bit either way).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _grid(
    panel: MarketPanel,
    strategies: Sequence[Strategy],
    start: date,
    end: date,
    rebalance: str,
    cost_bps: float,
    sensitivity_rebalances: Sequence[str],
    sensitivity_costs_bps: Sequence[float],
    periods_per_year: int,
    cache: EstimationCache,
) -> GridResult:
    """:func:`run_backtest_grid` once its inputs are checked."""
    symbols = [*panel.symbols, panel.cash_symbol]
    equities, metric_rows, decisions, sensitivity_rows = [], [], [], []
    for strategy in strategies:
        main = weight_path(panel, strategy, start, end, rebalance, cache)
        metrics, growth, cost = path_metrics(main, cost_bps, periods_per_year)
        equities.append(equity_frame(main, growth, cost, symbols))
        metric_rows.append(metrics)
        decisions.append(main.decisions)
        paths = {main.rebalance: main}  # by the frequency traded (a DRL policy: always daily)
        for frequency in sensitivity_rebalances:
            traded = strategy.rebalance_frequency or frequency
            if traded not in paths:
                paths[traded] = weight_path(panel, strategy, start, end, frequency, cache)
            for cost_level in sensitivity_costs_bps:
                if frequency == rebalance and cost_level == cost_bps:
                    sensitivity_rows.append(metrics)
                else:
                    row, _, _ = path_metrics(paths[traded], cost_level, periods_per_year)
                    sensitivity_rows.append(row)
    return GridResult(
        equity=pl.concat(equities),
        metrics=metrics_frame(metric_rows),
        decisions=pl.concat(decisions),
        sensitivity=metrics_frame(sensitivity_rows),
    )


@dataclass(frozen=True)
class WindowedBacktests:
    """What the ``backtests`` asset stores: the validation grid and the held-out test grid.

    validation_metrics : one row per strategy over the validation window, with
        ``selected_for_recommendations`` and the window columns (``portfolio.strategy_validation``).
    test : the test window's grid; its ``metrics`` and ``sensitivity`` carry the window columns.
    selected : the strategy with the best validation Sharpe (never chosen on the test window).
    """

    validation_metrics: pl.DataFrame
    test: GridResult
    selected: str


def run_windowed_backtests(
    panel: MarketPanel,
    strategies: Sequence[Strategy],
    windows: EvaluationWindows,
    rebalance: str = "weekly",
    cost_bps: float = 10.0,
    *,
    sensitivity_rebalances: Sequence[str] = REBALANCE_FREQUENCIES,
    sensitivity_costs_bps: Sequence[float] = DEFAULT_SENSITIVITY_COSTS_BPS,
    periods_per_year: int = 365,
) -> WindowedBacktests:
    """Validation grid, strategy selection on it, then the test grid with its sensitivity.

    Steps: the validation window's grid (no sensitivity table), :func:`select_default_strategy`
    on its metrics, the test window's grid, then the window columns on every table. One
    :class:`EstimationCache` serves both windows (the strategies memoise their decisions).
    """
    cache = EstimationCache()
    if parallel.resolve_backend(cpus_per_task=1) == parallel.RAY:  # one solver thread each
        runs = [(windows.validation, rebalance)]
        runs += [(windows.test, f) for f in {rebalance, *sensitivity_rebalances}]
        decide_in_parallel(panel, strategies, runs)
    validation = run_backtest_grid(
        panel,
        strategies,
        *windows.validation,
        rebalance,
        cost_bps,
        sensitivity_rebalances=(),
        periods_per_year=periods_per_year,
        cache=cache,
    )
    selected = select_default_strategy(validation.metrics, test_start=windows.test_start)
    test = run_backtest_grid(
        panel,
        strategies,
        *windows.test,
        rebalance,
        cost_bps,
        sensitivity_rebalances=tuple(sensitivity_rebalances),
        sensitivity_costs_bps=tuple(sensitivity_costs_bps),
        periods_per_year=periods_per_year,
        cache=cache,
    )
    validation_metrics = with_window_columns(
        validation.metrics.with_columns(
            (pl.col("strategy") == selected).alias("selected_for_recommendations")
        ),
        windows,
    )
    test = replace(
        test,
        metrics=with_window_columns(test.metrics, windows),
        sensitivity=with_window_columns(test.sensitivity, windows),
    )
    return WindowedBacktests(validation_metrics, test, selected)


def decision_rows(
    panel: MarketPanel, strategy: Strategy, start: date, end: date, rebalance: str
) -> list[int]:
    """The panel rows at which :func:`weight_path` asks ``strategy`` for a decision."""
    first_row, last_row = window_rows(panel, start, end, f"backtest {strategy.name}")
    rebalance = strategy.rebalance_frequency or rebalance
    rows = [first_row - 1]
    if strategy.rebalances:
        rows += [
            row
            for row in range(first_row, last_row)
            if is_rebalance_day(panel.date_at(row), panel.date_at(row + 1), rebalance)
        ]
    return rows


def decide_in_parallel(
    panel: MarketPanel,
    strategies: Sequence[Strategy],
    runs: Sequence[tuple[tuple[date, date], str]],
    *,
    chunks: int = 16,
    backend: str | None = None,
) -> None:
    """Take every decision the ``runs`` (``(start, end), rebalance``) will need, in parallel.

    Decision days are independent (each reads rows ``<= row`` only), so they split into
    ``chunks`` tasks of :func:`portfolio_pipeline.common.parallel.map_tasks` (Ray tasks on the
    cluster at ``RAY_ADDRESS``); each task estimates its days' moments once for all the
    strategies. The decisions go into each strategy's memo (:meth:`Strategy.remember`), so the
    backtests that follow only replay them: the same numbers as deciding in this process.
    """
    needed: dict[str, set[int]] = {s.name: set() for s in strategies}
    for strategy in strategies:
        for (start, end), rebalance in runs:
            needed[strategy.name].update(decision_rows(panel, strategy, start, end, rebalance))
    days = sorted(set().union(*needed.values()))
    if not days:
        return
    parts = [list(map(int, part)) for part in np.array_split(days, min(chunks, len(days)))]
    shared = (panel, list(strategies), needed)
    for found in parallel.map_tasks(_decide_days, shared, parts, backend=backend):
        for strategy in strategies:
            strategy.remember(panel, found[strategy.name])


def _decide_days(shared: tuple, days: list[int]) -> dict[str, dict[int, Any]]:
    """One task of :func:`decide_in_parallel`: every needed decision on ``days``."""
    panel, strategies, needed = shared
    cache = EstimationCache()
    out: dict[str, dict[int, Any]] = {s.name: {} for s in strategies}
    with single_threaded_blas():
        for row in days:
            for strategy in strategies:
                if row in needed[strategy.name]:
                    out[strategy.name][row] = strategy.decide(panel, row, cache)
    return out


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
    from portfolio_pipeline.common.plots import figure_png, pyplot

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
