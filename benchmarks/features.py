"""compute_market_features: the shipped sample, and a 500-symbol x 10-year synthetic panel.

The synthetic panel is a block bootstrap of the sample's real daily rows (log return, open
gap, high/low excursions, volume), so its volatility and fat tails look like crypto. The
large run happens in a fresh child process so that its peak memory is its own.
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks._common import emit

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PATH = REPO_ROOT / "data" / "crypto_ohlcv_daily.parquet"
SYNTHETIC_SYMBOLS = 500
SYNTHETIC_DAYS = 3650
BLOCK_DAYS = 20


def synthetic_panel(
    sample: pl.DataFrame, n_symbols: int, n_days: int, block: int = BLOCK_DAYS, seed: int = 7
) -> pl.DataFrame:
    """Block-bootstrapped OHLCV panel of shape (n_symbols * n_days, 7)."""
    rows = (
        sample.sort("symbol", "date")
        .with_columns(prev_close=pl.col("close").shift(1).over("symbol"))
        .drop_nulls("prev_close")
        .select(
            (pl.col("close") / pl.col("prev_close")).log().alias("log_ret"),
            (pl.col("open") / pl.col("prev_close")).log().alias("open_gap"),
            (pl.col("high") / pl.col("close")).log().alias("high_up"),
            (pl.col("low") / pl.col("close")).log().alias("low_down"),
            pl.col("quote_volume").fill_null(pl.col("volume") * pl.col("close")).alias("notional"),
        )
    )
    source = rows.to_numpy()
    rng = np.random.default_rng(seed)
    blocks = -(-n_days // block)
    starts = rng.integers(0, len(source) - block, size=(n_symbols, blocks))
    index = (starts[:, :, None] + np.arange(block)).reshape(n_symbols, -1)[:, :n_days]
    drawn = source[index]  # (n_symbols, n_days, 5)
    log_close = np.log(rng.uniform(0.01, 1000.0, size=(n_symbols, 1))) + np.cumsum(
        drawn[:, :, 0], axis=1
    )
    close = np.exp(log_close)
    prev_close = np.concatenate([close[:, :1], close[:, :-1]], axis=1)
    open_ = prev_close * np.exp(drawn[:, :, 1])
    high = np.maximum.reduce([close * np.exp(drawn[:, :, 2]), open_, close])
    low = np.minimum.reduce([close * np.exp(drawn[:, :, 3]), open_, close])
    volume = drawn[:, :, 4] / close
    dates = pl.date_range(
        date(2016, 1, 1), date(2016, 1, 1) + timedelta(days=n_days - 1), eager=True
    )
    return pl.DataFrame(
        {
            "symbol": np.repeat([f"SYN{i:03d}USDT" for i in range(n_symbols)], n_days),
            "date": pl.concat([dates] * n_symbols),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": volume.ravel(),
        }
    )


def _features_in_fresh_process(parquet_path: str, queue) -> None:
    from portfolio_pipeline.market.features import compute_market_features

    panel = pl.read_parquet(parquet_path)
    before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    features = compute_market_features(panel)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((seconds, features.height, features.width, before_mb, peak_mb))


def main() -> None:
    from portfolio_pipeline.market.features import compute_market_features, returns_covariance

    sample = pl.read_parquet(SAMPLE_PATH)
    compute_market_features(sample)  # warm-up (thread pool, first allocations)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        features = compute_market_features(sample)
        timings.append(time.perf_counter() - started)
    emit("features", "sample_seconds", round(min(timings), 3), "s",
         rows=features.height, symbols=features["symbol"].n_unique(), columns=features.width)  # fmt: skip
    started = time.perf_counter()
    covariance = returns_covariance(features, 90, date(2024, 6, 30))
    emit("features", "returns_covariance_seconds", round(time.perf_counter() - started, 4), "s",
         symbols=len(covariance.symbols), window=90)  # fmt: skip

    started = time.perf_counter()
    panel = synthetic_panel(sample, SYNTHETIC_SYMBOLS, SYNTHETIC_DAYS)
    build_seconds = time.perf_counter() - started
    emit("features", "synthetic_panel_build_seconds", round(build_seconds, 2), "s",
         rows=panel.height, symbols=SYNTHETIC_SYMBOLS, days=SYNTHETIC_DAYS)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "panel.parquet")
        panel.write_parquet(path)
        del panel
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        child = context.Process(target=_features_in_fresh_process, args=(path, queue))
        child.start()
        seconds, rows, width, before_mb, peak_mb = queue.get()
        child.join()
    emit("features", "synthetic_500x10y_seconds", round(seconds, 2), "s",
         rows=rows, symbols=SYNTHETIC_SYMBOLS, days=SYNTHETIC_DAYS, columns=width, goal_s=10)  # fmt: skip
    emit("features", "synthetic_500x10y_peak_rss", round(peak_mb, 1), "MiB",
         input_loaded_rss_mib=round(before_mb, 1), goal_mib=4096)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
