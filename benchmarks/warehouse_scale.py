"""The single DuckDB writer at 500-1,000 symbols: write throughput of the forecast tables.

Builds, for ``--symbols`` x ``--years`` daily rows, the frames a nightly run writes and times
the project's own write path (:func:`portfolio_pipeline.warehouse.store.connection`: writer
lock, working copy of the published file, write, checkpoint, fsync, atomic rename):

* ``backtest_replace``: ``ml.forecast_backtest`` (as_of x symbol x 2 horizons, what the
  walk-forward rewrites each run) replaced whole, into a warehouse that already holds the
  market features of the same panel; rows/s and the published file size;
* ``daily_partition_replace``: the nightly idempotent partition write of
  ``ml.return_forecasts`` (one as_of: symbols x 2 horizons) into that warehouse: here the
  session's copy of the whole published file dominates;
* ``working_copy``: that copy alone (the price of every write session, in MiB/s);
* ``parquet_write`` / ``parquet_view_query``: the same backtest frame written as one
  per-run Parquet file, and an aggregate over it through a DuckDB view (the alternative
  when the single writer is the bottleneck).

Values are random normals (Float64): their compression is the worst case, as real forecasts.

Usage: ``python -m benchmarks.warehouse_scale [--symbols 1000] [--years 10]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks._common import emit, peak_rss_mb

NAME = "warehouse_scale"
END = date(2025, 12, 31)
FEATURE_COLUMNS = 16  # features.market_features' numeric columns


def _panel(n_symbols: int, years: float) -> pl.DataFrame:
    days = int(round(years * 365.25))
    dates = pl.date_range(END - timedelta(days=days - 1), END, eager=True)
    symbols = pl.Series("symbol", [f"S{i:04d}USDT" for i in range(n_symbols)])
    return symbols.to_frame().join(dates.alias("date").to_frame(), how="cross")


def _random(keys: pl.DataFrame, columns: list[str], seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return keys.with_columns([pl.Series(c, rng.normal(0.0, 0.05, keys.height)) for c in columns])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--years", type=float, default=10.0)
    args = parser.parse_args(argv)

    from portfolio_pipeline import tables, warehouse

    panel = _panel(args.symbols, args.years)
    features = _random(panel, [f"f{i}" for i in range(FEATURE_COLUMNS)], 0)
    backtest = pl.concat(
        [
            _random(panel, ["q10", "q50", "q90", "realized"], h).select(
                pl.col("date").alias("as_of"),
                "symbol",
                pl.lit(h, dtype=pl.Int32).alias("horizon_days"),
                (pl.col("date").dt.year() - 2000).cast(pl.Int32).alias("fold"),
                "q10",
                "q50",
                "q90",
                "realized",
            )  # fmt: skip
            for h in (1, 8)
        ]
    )
    common = {"symbols": args.symbols, "years": args.years}
    with tempfile.TemporaryDirectory(prefix="wh_scale_") as tmp:
        path = Path(tmp) / "warehouse.duckdb"
        with warehouse.connection(path) as con:
            warehouse.replace_table(con, tables.MARKET_FEATURES, features)
        started = time.perf_counter()
        with warehouse.connection(path) as con:
            warehouse.replace_table(con, tables.FORECAST_BACKTEST, backtest)
        seconds = time.perf_counter() - started
        size_mib = path.stat().st_size / 2**20
        emit(NAME, "backtest_replace_seconds", round(seconds, 2), "s", rows=backtest.height,
             **common)  # fmt: skip
        emit(NAME, "backtest_replace_rows_per_second", round(backtest.height / seconds), "rows/s",
             **common)  # fmt: skip
        emit(NAME, "published_file_mib", round(size_mib, 1), "MiB",
             rows=backtest.height + features.height, **common)  # fmt: skip

        work = warehouse.working_path(path)
        started = time.perf_counter()
        warehouse.clone_file(path, work)  # the exact copy every write session makes
        copy_s = time.perf_counter() - started
        work.unlink()
        emit(NAME, "working_copy_mib_per_second", round(size_mib / copy_s, 1), "MiB/s",
             seconds=round(copy_s, 3), **common)  # fmt: skip

        latest = backtest.filter(pl.col("as_of") == END).select(
            "as_of", "symbol", "horizon_days", "q10", "q50", "q90"
        )
        history = backtest.filter(pl.col("as_of") > END - timedelta(days=365)).select(
            latest.columns
        )
        with warehouse.connection(path) as con:
            warehouse.replace_table(con, tables.RETURN_FORECASTS, history)
        started = time.perf_counter()
        with warehouse.connection(path) as con:
            warehouse.replace_rows(
                con, tables.RETURN_FORECASTS, latest, where="as_of = ?", params=(END,)
            )
        emit(NAME, "daily_partition_replace_seconds", round(time.perf_counter() - started, 3),
             "s", rows=latest.height, file_mib=round(path.stat().st_size / 2**20, 1),
             **common)  # fmt: skip

        parquet = Path(tmp) / "runs" / "run=0001" / "forecast_backtest.parquet"
        parquet.parent.mkdir(parents=True)
        started = time.perf_counter()
        backtest.write_parquet(parquet)
        seconds = time.perf_counter() - started
        emit(NAME, "parquet_write_rows_per_second", round(backtest.height / seconds), "rows/s",
             seconds=round(seconds, 2), mib=round(parquet.stat().st_size / 2**20, 1),
             **common)  # fmt: skip
        import duckdb

        con = duckdb.connect()
        glob = str(Path(tmp) / "runs" / "*" / "forecast_backtest.parquet").replace("'", "''")
        con.execute(
            "create view forecast_backtest as select * from "
            f"read_parquet('{glob}', hive_partitioning = true)"
        )
        started = time.perf_counter()
        con.execute(
            "select horizon_days, avg(abs(q50 - realized)) from forecast_backtest "
            "where as_of >= date '2024-01-01' group by 1"
        ).fetchall()
        emit(NAME, "parquet_view_query_seconds", round(time.perf_counter() - started, 3), "s",
             **common)  # fmt: skip
        con.close()
    emit(NAME, "peak_rss", round(peak_rss_mb(), 1), "MiB", **common)
    return 0


if __name__ == "__main__":
    sys.exit(main())
