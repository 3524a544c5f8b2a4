"""Ingest the whole shipped sample (every monthly partition, one run per asset) into a fresh
warehouse: wall seconds and peak memory."""

from __future__ import annotations

import os
import tempfile
import time
from datetime import date
from pathlib import Path

from benchmarks._common import emit, peak_rss_mb


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PORTFOLIO_PIPELINE_WAREHOUSE"] = str(Path(tmp) / "warehouse.duckdb")
        os.environ["DAGSTER_HOME"] = tmp
        from portfolio_pipeline.cli import materialize
        from portfolio_pipeline.market.partitions import month_keys
        from portfolio_pipeline.settings import load_settings
        from portfolio_pipeline.warehouse import connection

        settings = load_settings()
        first, last = date(2017, 8, 17), date(2025, 12, 31)  # the shipped sample's days
        for asset in ("raw_ohlcv", "raw_news"):
            started = time.perf_counter()
            materialize(asset, f"{first}...{last}", settings)
            emit(
                "ingest",
                f"{asset}_seconds",
                round(time.perf_counter() - started, 2),
                "s",
                days=(last - first).days + 1,
                partitions=len(month_keys(first, last)),
            )
        with connection(settings.warehouse_path, read_only=True) as con:
            rows = con.execute("select count(*) from market.raw_ohlcv").fetchone()[0]
        emit("ingest", "raw_ohlcv_rows", rows, "rows")
        emit("ingest", "peak_rss", round(peak_rss_mb(), 1), "MiB")


if __name__ == "__main__":
    main()
