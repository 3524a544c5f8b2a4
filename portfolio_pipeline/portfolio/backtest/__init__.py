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

Modules
-------
``schedule``   rebalance days, window rows, decision rows.
``engine``     one strategy over one window (:func:`run_backtest`).
``grid``       every strategy, and the frequency x cost sensitivity (:func:`run_backtest_grid`).
``decisions``  decisions taken ahead as parallel tasks (:func:`decide_in_parallel`).
``selection``  the recommendation strategy, chosen on validation.
``windowed``   validation, selection and test together (:func:`run_windowed_backtests`).
``plots``      equity curves and drawdowns.
"""

from __future__ import annotations

from portfolio_pipeline.portfolio.backtest.decisions import decide_in_parallel, single_threaded_blas
from portfolio_pipeline.portfolio.backtest.engine import (
    EQUITY_SCHEMA,
    BacktestResult,
    WeightPath,
    equity_frame,
    path_metrics,
    path_returns,
    run_backtest,
    weight_path,
)
from portfolio_pipeline.portfolio.backtest.grid import (
    DEFAULT_SENSITIVITY_COSTS_BPS,
    GridResult,
    metrics_frame,
    run_backtest_grid,
)
from portfolio_pipeline.portfolio.backtest.plots import plot_equity_curves
from portfolio_pipeline.portfolio.backtest.schedule import (
    DEFAULT_TARGET_REFRESH,
    REBALANCE_FREQUENCIES,
    decision_rows,
    is_rebalance_day,
    period_start_row,
    window_rows,
)
from portfolio_pipeline.portfolio.backtest.selection import select_default_strategy
from portfolio_pipeline.portfolio.backtest.windowed import WindowedBacktests, run_windowed_backtests

__all__ = [
    "BacktestResult",
    "DEFAULT_SENSITIVITY_COSTS_BPS",
    "DEFAULT_TARGET_REFRESH",
    "EQUITY_SCHEMA",
    "GridResult",
    "REBALANCE_FREQUENCIES",
    "WeightPath",
    "WindowedBacktests",
    "decide_in_parallel",
    "decision_rows",
    "equity_frame",
    "is_rebalance_day",
    "metrics_frame",
    "path_metrics",
    "path_returns",
    "period_start_row",
    "plot_equity_curves",
    "run_backtest",
    "run_backtest_grid",
    "run_windowed_backtests",
    "select_default_strategy",
    "single_threaded_blas",
    "weight_path",
    "window_rows",
]
