"""A digest of the recommendation replay's full output, to show a speed-up changed nothing:
``simulate_recommendations`` exactly as ``benchmarks.recommendation`` sets it up (HRP, every
candidate process, the forecasts from the warehouse or the synthetic stand-in), then SHA-256
over every column of ``daily`` and ``metrics`` (floats by ``repr``: bit for bit).

``python -m benchmarks._recommendation_hash [main|all] [--profile FILE]``: ``main`` replays
validation and test, ``all`` adds every calendar year; ``--profile`` writes a cProfile dump.
Run it with ``PYTHONHASHSEED=0`` before and after a change and compare the digests.
A check, not a benchmark: the leading underscore keeps it out of ``make bench``, whose modules
print JSON figures.
"""

from __future__ import annotations

import cProfile
import hashlib
import sys
import time

import polars as pl

from benchmarks.recommendation import _forecasts
from portfolio_pipeline.market.calendar import infer_calendar
from portfolio_pipeline.market.windows import windows_from_dates
from portfolio_pipeline.portfolio.holdings import latest_prices, load_holdings, value_holdings
from portfolio_pipeline.portfolio.strategies import build_strategies
from portfolio_pipeline.recommendations import processes
from portfolio_pipeline.recommendations.process_replay import yearly_windows
from portfolio_pipeline.recommendations.replay import simulate_recommendations
from portfolio_pipeline.settings import load_settings


def digest(**frames: pl.DataFrame) -> str:
    h = hashlib.sha256()
    for name, frame in frames.items():
        h.update(name.encode())
        h.update(str(frame.schema).encode())
        for column in frame.columns:
            h.update(column.encode())
            h.update(repr(frame.get_column(column).to_list()).encode())
    return h.hexdigest()


def main(argv: list[str]) -> None:
    mode = argv[0] if argv and not argv[0].startswith("-") else "main"
    settings = load_settings()
    ohlcv = pl.read_parquet(settings.sample_ohlcv_path)
    forecasts, source = _forecasts(ohlcv, settings.warehouse_path)
    dates = ohlcv.get_column("date").unique().to_list()
    split = windows_from_dates(dates)
    windows = {"validation": split.validation, "test": split.test}
    if mode == "all":
        yearly = yearly_windows(ohlcv, windows)
        windows |= {k: v for k, v in yearly.items() if v not in windows.values()}
    held = load_holdings(settings.holdings_path, settings.symbols)
    valued = value_holdings(held, latest_prices(ohlcv, ohlcv["date"].max()))
    (strategy,) = build_strategies(("hrp",))
    sim = processes.SimulationSettings(periods_per_year=infer_calendar(dates).periods_per_year)
    profile = cProfile.Profile() if "--profile" in argv else None
    started, cpu_started = time.perf_counter(), time.process_time()
    if profile:
        profile.enable()
    result = simulate_recommendations(
        ohlcv,
        strategy,
        forecasts,
        windows,
        start_weights=None,
        start_value=float(valued["value"].sum()),
        settings=sim,
        processes=list(processes.candidate_processes()),
    )
    if profile:
        profile.disable()
        profile.dump_stats(argv[argv.index("--profile") + 1])
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(
        f"mode={mode} forecasts={source} windows={len(windows)} rows={result.daily.height} "
        f"wall={wall:.1f}s cpu={cpu:.1f}s sha256={digest(daily=result.daily, metrics=result.metrics)}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
