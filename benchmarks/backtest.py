"""Backtest grid, as the ``backtests`` asset runs it: every strategy over the validation window
(strategy selection, weekly, 10 bps) and the held-out test window, plus the test window's
daily/weekly/monthly x 0/10/25/50 bps sensitivity table. Windows come from the data
(market.windows: on the sample, validation 2023 and test 2024-2025).

Two panels:

- the shipped sample (default): every classic strategy, the default-strategy choice and the
  test-window metrics of every strategy;
- ``--n-assets N``: a block-bootstrapped panel of N symbols x ``--years`` (default 10) of the
  sample's real daily rows (the generator of :mod:`benchmarks.scale`), with every classic
  strategy plus ``forecast_mv`` fed by a trailing-statistics stand-in forecast (NOT a model:
  q50 = 20-day mean log return x h, q10/q90 = q50 -/+ 1.2816 x 20-day std x sqrt(h), known at
  the close of its day), so that every optimiser the asset runs is timed.

Figures (JSON lines): ``strategy_seconds`` per strategy (its decisions and accounting in both
grids; the moments shared by all strategies are counted once, in ``moments_seconds``),
``total_seconds`` (panel, moments, every strategy: the grid work of the asset) and
``total_cpu_seconds`` (the same in CPU time, steadier on a shared machine), the decision
days optimised, and on the sample the test-window metrics. Run alone:
``python -m benchmarks.backtest [--n-assets 100] [--years 10] [--no-daily]`` (``--no-daily``
skips the daily column, which re-optimises every day and dominates the run time).
As in the asset, on a machine with 2+ cores (or with ``RAY_ADDRESS``) the decisions are taken
first as Ray tasks (``portfolio.backtest.decide_in_parallel``), reported as the ``strategy_seconds``
of ``decisions_as_ray_tasks``; ``PORTFOLIO_PIPELINE_PARALLEL=sequential`` times the in-process
path, where each strategy's seconds include its decisions.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import polars as pl

from benchmarks._common import emit
from portfolio_pipeline.common import parallel
from portfolio_pipeline.market.calendar import calendar_from_settings
from portfolio_pipeline.market.windows import EvaluationWindows, windows_from_settings
from portfolio_pipeline.portfolio import strategies as st
from portfolio_pipeline.portfolio.backtest import (
    REBALANCE_FREQUENCIES,
    decide_in_parallel,
    run_backtest_grid,
    select_default_strategy,
)
from portfolio_pipeline.portfolio.metrics import METRIC_KEYS, Z_10_90
from portfolio_pipeline.settings import load_settings

NAME = "backtest"
STANDIN_HORIZON = 8
STANDIN_WINDOW = 20


class TimedEstimationCache(st.EstimationCache):
    """An :class:`EstimationCache` that adds up the seconds spent estimating moments."""

    seconds: float = 0.0

    def estimate(self, panel, row, lookback, min_history):  # noqa: D102 (as the parent)
        started = time.perf_counter()
        try:
            return super().estimate(panel, row, lookback, min_history)
        finally:
            self.seconds += time.perf_counter() - started


def standin_forecasts(ohlcv: pl.DataFrame, horizon: int = STANDIN_HORIZON) -> pl.DataFrame:
    """Trailing-statistics quantiles per (as_of, symbol): causal, cheap, NOT a model."""
    log_ret = (pl.col("close") / pl.col("close").shift(1)).log().over("symbol")
    frame = ohlcv.sort("symbol", "date").with_columns(log_ret.alias("lr"))
    mean = pl.col("lr").rolling_mean(STANDIN_WINDOW).over("symbol") * horizon
    std = pl.col("lr").rolling_std(STANDIN_WINDOW).over("symbol") * np.sqrt(horizon)
    return (
        frame.select(
            pl.col("date").alias("as_of"),
            "symbol",
            pl.lit(horizon).alias("horizon_days"),
            (mean - Z_10_90 * std).alias("q10"),
            mean.alias("q50"),
            (mean + Z_10_90 * std).alias("q90"),
        )
        .drop_nulls()
        .filter(pl.col("q90") > pl.col("q10"))
    )


def run_grids(
    panel: st.MarketPanel,
    strategies: list[st.Strategy],
    windows: EvaluationWindows,
    frequencies: tuple[str, ...],
    periods_per_year: int,
) -> tuple[dict[str, float], float, list]:
    """Both grids per strategy (as the asset runs them, one shared cache); seconds each."""
    cache = TimedEstimationCache()
    seconds, validations, tests = {}, [], []
    if parallel.resolve_backend(cpus_per_task=1) == parallel.RAY:  # as run_windowed_backtests
        started = time.perf_counter()
        runs = [(windows.validation, "weekly")]
        runs += [(windows.test, f) for f in sorted({"weekly", *frequencies})]
        decide_in_parallel(panel, strategies, runs)
        seconds["decisions_as_ray_tasks"] = time.perf_counter() - started
    for strategy in strategies:
        moments_before, started = cache.seconds, time.perf_counter()
        validations.append(
            run_backtest_grid(
                panel,
                [strategy],
                *windows.validation,
                sensitivity_rebalances=(),
                periods_per_year=periods_per_year,
                cache=cache,
            )
        )
        tests.append(
            run_backtest_grid(
                panel,
                [strategy],
                *windows.test,
                sensitivity_rebalances=frequencies,
                periods_per_year=periods_per_year,
                cache=cache,
            )
        )
        elapsed = time.perf_counter() - started
        seconds[strategy.name] = elapsed - (cache.seconds - moments_before)
    return seconds, cache.seconds, [validations, tests]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backtest")
    parser.add_argument("--n-assets", type=int, default=None, help="bootstrapped panel size")
    parser.add_argument("--years", type=float, default=10.0)
    parser.add_argument("--no-daily", action="store_true")
    args = parser.parse_args(argv)
    settings = load_settings()
    sample = pl.read_parquet(settings.sample_ohlcv_path)
    if args.n_assets is None:
        ohlcv, panel_name = sample, "sample"
    else:
        from benchmarks.scale import scaled_panel

        ohlcv, panel_name = scaled_panel(sample, args.n_assets, args.years), "bootstrapped"
    frequencies = tuple(f for f in REBALANCE_FREQUENCIES if not (args.no_daily and f == "daily"))
    dates = ohlcv["date"].unique().to_list()
    windows = windows_from_settings(dates, settings)
    periods_per_year = calendar_from_settings(dates, settings).periods_per_year
    forecasts = standin_forecasts(ohlcv) if args.n_assets is not None else None
    strategies = st.build_strategies(
        forecasts=forecasts, forecast_options={"horizon_days": STANDIN_HORIZON}
    )
    extra = {"panel": panel_name, "n_assets": ohlcv["symbol"].n_unique(), "days": len(dates)}
    started, cpu_started = time.perf_counter(), time.process_time()
    panel = st.MarketPanel.from_ohlcv(ohlcv.filter(pl.col("date") <= windows.test_end))
    panel_seconds = time.perf_counter() - started
    seconds, moments, (validations, tests) = run_grids(
        panel, strategies, windows, frequencies, periods_per_year
    )
    total, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    for name, value in seconds.items():
        emit(NAME, "strategy_seconds", round(value, 2), "s", strategy=name, **extra)
    emit(NAME, "moments_seconds", round(moments, 2), "s", **extra)
    # CPU seconds of this process (all its threads): steadier than wall time on a busy machine
    emit(NAME, "total_cpu_seconds", round(cpu, 2), "s", **extra)
    emit(NAME, "panel_seconds", round(panel_seconds, 2), "s", **extra)
    emit(
        NAME,
        "total_seconds",
        round(total, 2),
        "s",
        strategies=len(strategies),
        frequencies=list(frequencies),
        optimised_decisions=sum(len(s.decisions_) for s in strategies),
        windows=windows.as_metadata(),
        **extra,
    )
    validation = pl.concat([g.metrics for g in validations])
    chosen = select_default_strategy(validation, test_start=windows.test_start)
    emit(NAME, "default_strategy_by_validation_sharpe", 1, "choice", strategy=chosen, **extra)
    if args.n_assets is not None:
        return  # a bootstrapped panel's returns mean nothing: timings only
    for row in pl.concat([g.metrics for g in tests]).iter_rows(named=True):
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
    for row in pl.concat([g.sensitivity for g in tests]).iter_rows(named=True):
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
