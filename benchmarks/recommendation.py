"""The recommendation process replayed day by day on the validation and test windows from the
data (2023 and 2024-01-01..2025-12-31 on the sample) for the 21 sample symbols, exactly as the
``recommendation_backtest`` asset runs it: every candidate process and parameter set (the
gate at six levels, the cost-aware optimisation at 3 x 2 and the cost/risk band at 3 settings,
the target, a 5-point band, never trading), HRP targets, 10 bps, minimum notional 50,
turnover cap 50%; then the same with every calendar year for the rolling-origin table.

Forecasts: ``ml.forecast_backtest`` from the warehouse when a pipeline run left one there
(``forecasts: "warehouse"``); otherwise noise forecasts of the same shape
(``forecasts: "synthetic"``): the timing does not depend on their content.
Every process starts at the strategy's target (``--from-holdings``: at the shipped holdings'
weights). Run alone: ``python -m benchmarks.recommendation``.

``--symbols N`` replays a block-bootstrapped panel of N symbols (the generator of
:mod:`benchmarks.scale`, ``--years`` long, default 10, ending 2025-12-31) with noise
forecasts and a 100,000 USDT portfolio instead of the sample: timings only, its returns mean
nothing (``python -m benchmarks.recommendation --symbols 100``).
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
from portfolio_pipeline.recommendations import processes
from portfolio_pipeline.recommendations.process_replay import replay_and_choose
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


def _option(argv: list[str], name: str, default: float | None) -> float | None:
    return float(argv[argv.index(name) + 1]) if name in argv else default


def main(argv: list[str]) -> None:
    settings = load_settings()
    ohlcv = pl.read_parquet(settings.sample_ohlcv_path)
    n_symbols = _option(argv, "--symbols", None)
    if n_symbols is not None:  # a bootstrapped panel: noise forecasts, start at the target
        from benchmarks.scale import scaled_panel

        ohlcv = scaled_panel(ohlcv, int(n_symbols), float(_option(argv, "--years", 10.0) or 10))
        forecasts, source = _forecasts(ohlcv, settings.warehouse_path / "not-read")
        start_value, start_weights = 100_000.0, None
    else:
        forecasts, source = _forecasts(ohlcv, settings.warehouse_path)
        held = load_holdings(settings.holdings_path, settings.symbols)
        valued = value_holdings(held, latest_prices(ohlcv, ohlcv["date"].max()))
        start_value = float(valued["value"].sum())
        start_weights = (
            None
            if "--from-holdings" not in argv
            else dict(valued.select("symbol", "weight").iter_rows())
        )
    dates = ohlcv.get_column("date").unique().to_list()
    windows = windows_from_dates(dates)
    periods_per_year = infer_calendar(dates).periods_per_year
    (strategy,) = build_strategies(("hrp",))
    symbols = ohlcv["symbol"].n_unique()
    candidates = processes.candidate_processes()
    windows_by_name = {"validation": windows.validation, "test": windows.test}
    sim_settings = processes.SimulationSettings(periods_per_year=periods_per_year)

    def run(years: bool):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = replay_and_choose(
            ohlcv,
            strategy,
            forecasts,
            windows_by_name,
            start_weights=start_weights,
            start_value=start_value,
            settings=sim_settings,
            candidates=candidates,
            confidence_levels=processes.DEFAULT_CONFIDENCE_GRID,
            years=years,
        )
        return result, time.perf_counter() - started, time.process_time() - cpu_started

    # Every candidate process and parameter set on validation and test (issue 22: <= 60 s).
    result, seconds, cpu_seconds = run(False)
    emit(NAME, "all_processes_two_windows_seconds", round(seconds, 2), "s", symbols=symbols,
         processes=len(candidates), forecasts=source)  # fmt: skip
    emit(NAME, "all_processes_two_windows_cpu_seconds", round(cpu_seconds, 2), "s",
         processes=len(candidates))  # fmt: skip
    emit(NAME, "recommended_process", result.choice.process, "name", forecasts=source)
    for row in result.metrics.iter_rows(named=True):
        for key in ("sharpe", "total_return", "turnover", "cost_paid", "trading_days"):
            emit(NAME, key, row[key], "days" if key == "trading_days" else "ratio",
                 process=row["process"], window=row["window"], forecasts=source)  # fmt: skip
    # The same plus every calendar year, and the rolling-origin table (issue 22: <= 3 min).
    rolling, seconds, cpu_seconds = run(True)
    emit(NAME, "with_rolling_origin_seconds", round(seconds, 2), "s", symbols=symbols,
         processes=len(candidates), years=rolling.rolling.height, forecasts=source)  # fmt: skip
    emit(NAME, "with_rolling_origin_cpu_seconds", round(cpu_seconds, 2), "s")
    emit(NAME, "peak_rss", round(peak_rss_mb(), 1), "MiB")
    for row in rolling.rolling.iter_rows(named=True):
        emit(NAME, "rolling_origin_sharpe", row["sharpe"], "ratio", year=row["year"],
             process=row["process"], target=row.get("sharpe__target"))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
