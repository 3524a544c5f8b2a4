"""First backfill of the two raw assets over N days of the shipped sample, as the CLI runs it
(one single-run backfill per asset, a SQLite Dagster instance): how much of the wall time is
Dagster's per-partition bookkeeping rather than data work.

``data_seconds`` is the same work done directly through the core (fetch from the source,
Great Expectations validation, one idempotent ``replace_rows``) for the same range;
``bookkeeping_seconds_per_1000_days`` = (run wall - data) / days * 1000. Measured twice:
``sqlite=fsync_every_commit`` (``PRAGMA synchronous=NORMAL``, what every run used before) and
``sqlite=cli_default`` (the CLI turns fsyncs off for a backfill longer than a month).
Run alone: ``python -m benchmarks.backfill [days ...]`` (default 365).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from benchmarks._common import emit

FIRST = date(2021, 1, 1)


def _data_seconds(settings, first: date, last: date, path: Path) -> float:
    from portfolio_pipeline.core import quality, warehouse
    from portfolio_pipeline.definitions import build_resources
    from portfolio_pipeline.ingestion.assets import RAW_NEWS_DDL, RAW_OHLCV_DDL

    started = time.perf_counter()
    resources = build_resources(settings)
    ohlcv_source, news_source = resources["ohlcv_source"], resources["news_source"]
    prices = ohlcv_source.client().fetch(ohlcv_source.symbols, first, last)
    quality.validate_ohlcv(prices)
    news = news_source.client().fetch(first, last)
    quality.validate_news(news)
    with warehouse.connection(path) as con:
        warehouse.replace_rows(
            con, "market.raw_ohlcv", prices, where="date between ? and ?",
            params=(first, last), ddl_columns=RAW_OHLCV_DDL,
        )  # fmt: skip
        warehouse.replace_rows(
            con, "news.raw_news", news, where="cast(published_at as date) between ? and ?",
            params=(first, last), ddl_columns=RAW_NEWS_DDL,
        )  # fmt: skip
    return time.perf_counter() - started


def _run_seconds(first: date, last: date, synchronous: str | None) -> tuple[float, float]:
    """(run wall, direct data work) in a fresh instance and warehouse; ``synchronous`` None =
    the CLI's own choice (OFF for a bulk backfill), else forced."""
    from portfolio_pipeline.cli import materialize
    from portfolio_pipeline.settings import load_settings
    from portfolio_pipeline.sqlite_tuning import SYNCHRONOUS_ENV

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PORTFOLIO_PIPELINE_WAREHOUSE"] = str(Path(tmp) / "warehouse.duckdb")
        os.environ["DAGSTER_HOME"] = tmp
        if synchronous:
            os.environ[SYNCHRONOUS_ENV] = synchronous
        else:
            os.environ.pop(SYNCHRONOUS_ENV, None)
        settings = load_settings()
        started = time.perf_counter()
        for asset in ("raw_ohlcv", "raw_news"):
            materialize(asset, f"{first}...{last}", settings)
        wall = time.perf_counter() - started
        data = _data_seconds(settings, first, last, Path(tmp) / "direct.duckdb")
    os.environ.pop(SYNCHRONOUS_ENV, None)
    return wall, data


def main(argv: list[str]) -> None:
    spans = [int(a) for a in argv] or [365]
    for days in spans:
        last = FIRST + timedelta(days=days - 1)
        for mode, synchronous in (("fsync_every_commit", "NORMAL"), ("cli_default", None)):
            wall, data = _run_seconds(FIRST, last, synchronous)
            extra = {"days": days, "first": str(FIRST), "last": str(last), "sqlite": mode}
            emit("backfill", "run_seconds", round(wall, 2), "s", **extra)
            emit("backfill", "data_seconds", round(data, 2), "s", **extra)
            emit(
                "backfill",
                "bookkeeping_seconds_per_1000_days",
                round((wall - data) / days * 1000, 2),
                "s",
                **extra,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
