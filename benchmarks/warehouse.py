"""What publishing by atomic rename costs: the working copy, a write session, a reader.

Builds a warehouse from the whole shipped sample (raw OHLCV, raw news, the real market
features) and times, median of several repeats:

* ``copy``: the published file copied to the working copy (reflink when the file system
  has it, else a byte copy) -- the price every write session pays;
* ``write_session``: a whole session that replaces one day of OHLCV (lock, copy, write,
  checkpoint, fsync, rename), next to the same write on a plain in-place connection;
* ``idle_session``: a session that only reads (copy, then discarded: nothing published);
* ``snapshot_read``: open the published file read-only and count the features.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from benchmarks._common import emit

REPEATS = 7
DATA = Path(__file__).resolve().parents[1] / "data"


def _median_seconds(action) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    import duckdb
    import polars as pl

    from portfolio_pipeline import warehouse
    from portfolio_pipeline.market.features import compute_market_features

    ohlcv = pl.read_parquet(DATA / "crypto_ohlcv_daily.parquet")
    news = pl.read_parquet(DATA / "crypto_news.parquet")
    features = compute_market_features(ohlcv)
    day = date(2024, 1, 2)
    one_day = ohlcv.filter(pl.col("date") == day)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "warehouse.duckdb"
        with warehouse.connection(path) as con:
            warehouse.replace_table(con, "market.raw_ohlcv", ohlcv)
            warehouse.replace_table(con, "news.raw_news", news)
            warehouse.replace_table(con, "features.market_features", features)
        size_mb = path.stat().st_size / 2**20
        rows = ohlcv.height + news.height + features.height
        emit("warehouse", "published_file_size", round(size_mb, 2), "MiB", rows=rows)

        work = warehouse.working_path(path)

        def copy() -> None:
            warehouse.clone_file(path, work)  # the exact copy a write session makes
            work.unlink()

        copy_s = _median_seconds(copy)
        emit("warehouse", "working_copy_seconds", round(copy_s, 4), "s", mib=round(size_mb, 2))
        emit("warehouse", "working_copy_throughput", round(size_mb / copy_s, 1), "MiB/s")

        def session() -> None:
            with warehouse.connection(path) as con:
                warehouse.replace_date_window(
                    con, "market.raw_ohlcv", one_day, date_column="date", start=day, end=day
                )

        emit("warehouse", "write_session_seconds", round(_median_seconds(session), 4), "s")

        plain = Path(tmp) / "in_place.duckdb"
        warehouse.clone_file(path, plain)

        def in_place() -> None:
            con = duckdb.connect(str(plain))
            warehouse.replace_date_window(
                con, "market.raw_ohlcv", one_day, date_column="date", start=day, end=day
            )
            con.execute("CHECKPOINT")
            con.close()

        emit("warehouse", "in_place_write_seconds", round(_median_seconds(in_place), 4), "s")

        def idle() -> None:
            with warehouse.connection(path) as con:
                con.execute("select count(*) from market.raw_ohlcv").fetchone()

        emit("warehouse", "idle_session_seconds", round(_median_seconds(idle), 4), "s")

        def read() -> None:
            with warehouse.connection(path, read_only=True) as con:
                con.execute("select count(*) from features.market_features").fetchone()

        emit("warehouse", "snapshot_read_seconds", round(_median_seconds(read), 4), "s")


if __name__ == "__main__":
    main()
