"""Every strategy over one window, with the rebalance-frequency x cost sensitivity table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from portfolio_pipeline.portfolio.backtest.decisions import single_threaded_blas
from portfolio_pipeline.portfolio.backtest.engine import (
    _as_panel,
    _check_run,
    equity_frame,
    path_metrics,
    weight_path,
)
from portfolio_pipeline.portfolio.backtest.schedule import REBALANCE_FREQUENCIES
from portfolio_pipeline.portfolio.metrics import METRIC_KEYS
from portfolio_pipeline.portfolio.strategies import (
    EstimationCache,
    MarketPanel,
    Strategy,
)

# Windows are not fixed here: they come from the data (market.windows.windows_from_dates).
DEFAULT_SENSITIVITY_COSTS_BPS: tuple[float, ...] = (0.0, 10.0, 25.0, 50.0)


@dataclass(frozen=True)
class GridResult:
    """Main runs (one per strategy) and the frequency x cost sensitivity table."""

    equity: pl.DataFrame
    metrics: pl.DataFrame
    decisions: pl.DataFrame
    sensitivity: pl.DataFrame


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
