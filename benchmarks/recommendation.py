"""The recommendation process replayed day by day on the validation and test windows from the
data (2023 and 2024-01-01..2025-12-31 on the sample) for the 21 sample symbols, exactly as the
``recommendation_backtest`` asset runs it: the five processes plus the six-level confidence
grid, HRP targets, 10 bps, minimum notional 50, turnover cap 50%.

Forecasts: ``ml.forecast_backtest`` from the warehouse when a pipeline run left one there
(``forecasts: "warehouse"``); otherwise noise forecasts of the same shape
(``forecasts: "synthetic"``): the timing does not depend on their content.
Every process starts at the strategy's target (``--from-holdings``: at the shipped holdings'
weights). Run alone: ``python -m benchmarks.recommendation``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import polars as pl

from benchmarks._common import emit, peak_rss_mb
from portfolio_pipeline.market.calendar import infer_calendar
from portfolio_pipeline.market.windows import windows_from_dates
from portfolio_pipeline.portfolio.holdings import latest_prices, load_holdings, value_holdings
from portfolio_pipeline.portfolio.strategies import build_strategies
from portfolio_pipeline.recommendations import confidence_grid, processes
from portfolio_pipeline.recommendations.replay import simulate_recommendations
from portfolio_pipeline.settings import load_settings

NAME = "recommendation"
HORIZON = 8


def _forecasts(ohlcv: pl.DataFrame, warehouse_path) -> tuple[pl.DataFrame, str]:
    if warehouse_path.exists():
        import duckdb

        try:
            con = duckdb.connect(str(warehouse_path), read_only=True)
            frame = con.execute(
                "select * from ml.forecast_backtest where horizon_days = ?", [HORIZON]
            ).pl()
            con.close()
            if frame.height:
                return frame, "warehouse"
        except duckdb.Error:
            pass
    rng = np.random.default_rng(0)
    frame = ohlcv.sort("symbol", "date").with_columns(
        (pl.col("close").shift(-HORIZON).over("symbol") / pl.col("close")).log().alias("realized")
    )
    median = rng.normal(0, 0.02, frame.height)
    return frame.select(
        pl.col("date").alias("as_of"),
        "symbol",
        pl.lit(HORIZON).alias("horizon_days"),
        pl.Series("q10", median - 0.15),
        pl.Series("q50", median),
        pl.Series("q90", median + 0.15),
        "realized",
    ), "synthetic"


def main(argv: list[str]) -> None:
    settings = load_settings()
    ohlcv = pl.read_parquet(settings.sample_ohlcv_path)
    forecasts, source = _forecasts(ohlcv, settings.warehouse_path)
    dates = ohlcv.get_column("date").unique().to_list()
    windows = windows_from_dates(dates)
    periods_per_year = infer_calendar(dates).periods_per_year
    held = load_holdings(settings.holdings_path, settings.symbols)
    valued = value_holdings(held, latest_prices(ohlcv, ohlcv["date"].max()))
    (strategy,) = build_strategies(("hrp",))
    symbols = ohlcv["symbol"].n_unique()
    specs = [processes.gated_at(c) for c in processes.DEFAULT_CONFIDENCE_GRID]
    specs += [processes.PROCESSES[n] for n in processes.PROCESS_NAMES if n != "recommended"]
    windows_by_name = {"validation": windows.validation, "test": windows.test}
    start_weights = (
        None
        if "--from-holdings" not in argv
        else dict(valued.select("symbol", "weight").iter_rows())
    )
    sim_settings = processes.SimulationSettings(periods_per_year=periods_per_year)

    def run(names):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = simulate_recommendations(
            ohlcv,
            strategy,
            forecasts,
            windows_by_name,
            start_weights=start_weights,
            start_value=float(valued["value"].sum()),
            settings=sim_settings,
            processes=names,
        )
        return result, time.perf_counter() - started, time.process_time() - cpu_started

    # The replay itself: the five processes of portfolio.recommendation_backtest.
    _, seconds, cpu_seconds = run(processes.PROCESS_NAMES)
    emit(NAME, "two_window_simulation_seconds", round(seconds, 2), "s", symbols=symbols,
         processes=len(processes.PROCESS_NAMES), forecasts=source)  # fmt: skip
    emit(NAME, "two_window_simulation_cpu_seconds", round(cpu_seconds, 2), "s",
         processes=len(processes.PROCESS_NAMES))  # fmt: skip
    # What the asset runs: the four comparisons plus the six-level confidence grid.
    result, seconds, cpu_seconds = run(specs)
    days = result.daily.filter(pl.col("process") == specs[0].name).height
    emit(NAME, "asset_simulation_seconds", round(seconds, 2), "s", symbols=symbols,
         days=days, processes=len(specs), forecasts=source)  # fmt: skip
    emit(NAME, "asset_simulation_cpu_seconds", round(cpu_seconds, 2), "s", processes=len(specs))
    emit(NAME, "simulated_days_per_second", round(days / seconds, 1), "days/s",
         processes=len(specs))  # fmt: skip
    emit(NAME, "peak_rss", round(peak_rss_mb(), 1), "MiB")
    grid = confidence_grid.confidence_grid_table(result.metrics, processes.DEFAULT_CONFIDENCE_GRID)
    chosen = confidence_grid.select_confidence(grid)
    emit(NAME, "gate_confidence_by_validation_sharpe", chosen, "level", forecasts=source)
    for row in result.metrics.filter(pl.col("process").str.starts_with("recommended_c")).iter_rows(
        named=True
    ):
        emit(NAME, "grid_sharpe", row["sharpe"], "ratio", process=row["process"],
             window=row["window"], trading_days=row["trading_days"])  # fmt: skip
    _, metrics = confidence_grid.name_recommended(result, chosen)
    for row in metrics.filter(pl.col("process").is_in(processes.PROCESS_NAMES)).iter_rows(
        named=True
    ):
        for key in ("sharpe", "total_return", "trading_days"):
            emit(NAME, key, row[key], "ratio" if key != "trading_days" else "days",
                 process=row["process"], window=row["window"], forecasts=source)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
