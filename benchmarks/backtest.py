"""Backtest grid on the shipped sample: every classic strategy over the held-out test window
(from the data, core.windows: 2024-01-01..2025-12-31 on the sample; weekly, 10 bps) plus the
daily/weekly/monthly x 0/10/25/50 bps sensitivity table, the validation run (2023) and the
default-strategy choice.

Prints one JSON line per figure: timings, then the test-window metrics of every strategy.
Run alone: ``python -m benchmarks.backtest`` (``--no-daily`` skips the daily column, which
re-optimises every day and dominates the run time).
"""

from __future__ import annotations

import sys
import time

import polars as pl

from benchmarks._common import emit
from portfolio_pipeline.core.backtest import (
    REBALANCE_FREQUENCIES,
    run_backtest_grid,
    select_default_strategy,
)
from portfolio_pipeline.core.calendar import calendar_from_settings
from portfolio_pipeline.core.metrics import METRIC_KEYS
from portfolio_pipeline.core.strategies import EstimationCache, MarketPanel, build_strategies
from portfolio_pipeline.core.windows import windows_from_settings
from portfolio_pipeline.settings import load_settings

NAME = "backtest"


def main(argv: list[str]) -> None:
    settings = load_settings()
    ohlcv = pl.read_parquet(settings.sample_ohlcv_path)
    frequencies = tuple(
        f for f in REBALANCE_FREQUENCIES if not ("--no-daily" in argv and f == "daily")
    )
    dates = ohlcv["date"].unique().to_list()
    windows = windows_from_settings(dates, settings)
    periods_per_year = calendar_from_settings(dates, settings).periods_per_year
    started = time.perf_counter()
    panel = MarketPanel.from_ohlcv(ohlcv)
    cache = EstimationCache()
    strategies = build_strategies()
    validation = run_backtest_grid(
        panel,
        strategies,
        *windows.validation,
        sensitivity_rebalances=(),
        periods_per_year=periods_per_year,
        cache=cache,
    )
    chosen = select_default_strategy(validation.metrics, test_start=windows.test_start)
    validation_s = time.perf_counter() - started
    emit(NAME, "validation_grid_seconds", round(validation_s, 2), "s", strategies=len(strategies))
    emit(NAME, "default_strategy_by_validation_sharpe", 1, "choice", strategy=chosen)
    started = time.perf_counter()
    grid = run_backtest_grid(
        panel,
        strategies,
        *windows.test,
        sensitivity_rebalances=frequencies,
        periods_per_year=periods_per_year,
        cache=cache,
    )
    elapsed = time.perf_counter() - started
    emit(
        NAME,
        "test_grid_seconds",
        round(elapsed, 2),
        "s",
        runs=grid.sensitivity.height,
        frequencies=list(frequencies),
        optimised_decisions=sum(len(s.decisions_) for s in strategies),
    )
    for row in grid.metrics.iter_rows(named=True):
        for metric in METRIC_KEYS[2:]:  # every metric but the window bounds
            emit(
                NAME,
                metric,
                round(row[metric], 6),
                "fraction" if metric not in ("sharpe", "sortino", "calmar") else "ratio",
                strategy=row["strategy"],
                window=f"{row['start']}..{row['end']}",
                rebalance=row["rebalance"],
                cost_bps=row["cost_bps"],
            )
    for row in grid.sensitivity.iter_rows(named=True):
        emit(
            NAME,
            "sensitivity_sharpe",
            round(row["sharpe"], 6),
            "ratio",
            strategy=row["strategy"],
            rebalance=row["rebalance"],
            cost_bps=row["cost_bps"],
            total_return=round(row["total_return"], 6),
        )


if __name__ == "__main__":
    main(sys.argv[1:])
