"""The ``backtests`` asset's computation: the validation grid, the selection on it, the test grid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import polars as pl

from portfolio_pipeline.common import parallel
from portfolio_pipeline.market.windows import EvaluationWindows, with_window_columns
from portfolio_pipeline.portfolio.backtest.decisions import decide_in_parallel
from portfolio_pipeline.portfolio.backtest.grid import (
    DEFAULT_SENSITIVITY_COSTS_BPS,
    GridResult,
    run_backtest_grid,
)
from portfolio_pipeline.portfolio.backtest.schedule import REBALANCE_FREQUENCIES
from portfolio_pipeline.portfolio.backtest.selection import (
    edges_over_bases,
    select_default_strategy,
)
from portfolio_pipeline.portfolio.strategies import (
    EstimationCache,
    MarketPanel,
    Strategy,
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
    derived_from: Mapping[str, str] | None = None,
) -> WindowedBacktests:
    """Validation grid, strategy selection on it, then the test grid with its sensitivity.

    Steps: the validation window's grid (no sensitivity table), :func:`select_default_strategy`
    on its metrics, the test window's grid, then the window columns on every table.
    ``derived_from`` maps a strategy built on another (a residual DRL policy) to its base: it
    is selected only when it beats that base on validation by more than noise
    (:func:`~.selection.edges_over_bases`; the columns ``base_strategy``, ``edge_over_base_z``
    and ``edge_over_base_p`` of the validation metrics say by how much). One
    :class:`EstimationCache` serves both windows (the strategies memoise their decisions).
    """
    cache = EstimationCache()
    if parallel.resolve_backend(cpus_per_task=1) == parallel.RAY:  # one solver thread each
        runs = [(windows.validation, rebalance)]
        runs += [(windows.test, f) for f in {rebalance, *sensitivity_rebalances}]
        decide_in_parallel(panel, strategies, runs)
    validation, edges, selected = _validate_and_select(
        panel, strategies, windows, rebalance, cost_bps, periods_per_year, cache, derived_from
    )
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
        validation.join(edges, on="strategy", how="left").with_columns(
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


def _validate_and_select(
    panel: MarketPanel,
    strategies: Sequence[Strategy],
    windows: EvaluationWindows,
    rebalance: str,
    cost_bps: float,
    periods_per_year: int,
    cache: EstimationCache,
    derived_from: Mapping[str, str] | None,
) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """The validation grid's metrics, the derived strategies' edges over their bases and the
    strategy selected on them."""
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
    edges = edges_over_bases(validation.equity, derived_from or {})
    selected = select_default_strategy(
        validation.metrics, test_start=windows.test_start, edges=edges
    )
    return validation.metrics, edges, selected
