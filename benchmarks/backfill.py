"""First backfill of the two raw assets over N days of the shipped sample, as the CLI runs it
(one single-run backfill per asset, a SQLite Dagster instance): how much of the wall time is
Dagster's per-partition bookkeeping rather than data work.

The range is the N days ending 2025-12-31 (the sample's last day); ``PORTFOLIO_PIPELINE_START``
is set to its first day, so a range longer than the sample (10 years = 3,650 days) is still
one backfill (days without candles are not an error). ``data_seconds`` is the same work done
directly through the core (fetch from the source, Great Expectations validation, one
idempotent ``replace_rows``) for the same range; ``bookkeeping_seconds_per_1000_days`` =
(run wall - data) / days * 1000, and ``bookkeeping_cpu_seconds_per_1000_days`` the same in
CPU seconds of this process (the runs execute in process), which a busy machine inflates less.
Modes: ``sqlite=fsync_every_commit`` (``PRAGMA synchronous=NORMAL``) and ``sqlite=cli_default``
(the CLI turns fsyncs off for a backfill longer than a month).

Run alone: ``python -m benchmarks.backfill [--days N ...] [--sqlite MODE]``; the default is
365 days in both modes; ``--days 3650 --sqlite cli_default`` is the 10-year figure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from benchmarks._common import emit

LAST = date(2025, 12, 31)
MODES = {"fsync_every_commit": "NORMAL", "cli_default": None}


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _data_seconds(settings, first: date, last: date, path: Path) -> tuple[float, float]:
    from portfolio_pipeline import warehouse
    from portfolio_pipeline.definitions import build_resources
    from portfolio_pipeline.market import quality
    from portfolio_pipeline.market.assets import RAW_OHLCV_DDL
    from portfolio_pipeline.news.assets import RAW_NEWS_DDL

    wall, cpu = _clock()
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
    end_wall, end_cpu = _clock()
    return end_wall - wall, end_cpu - cpu


def _run_seconds(first: date, last: date, synchronous: str | None) -> dict[str, float]:
    """Run and direct-data wall and CPU seconds in a fresh instance and warehouse;
    ``synchronous`` None = the CLI's own choice (OFF for a bulk backfill), else forced."""
    from portfolio_pipeline.cli import materialize
    from portfolio_pipeline.settings import load_settings
    from portfolio_pipeline.sqlite_tuning import SYNCHRONOUS_ENV

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PORTFOLIO_PIPELINE_WAREHOUSE"] = str(Path(tmp) / "warehouse.duckdb")
        os.environ["PORTFOLIO_PIPELINE_START"] = first.isoformat()
        os.environ["DAGSTER_HOME"] = tmp
        (Path(tmp) / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        if synchronous:
            os.environ[SYNCHRONOUS_ENV] = synchronous
        else:
            os.environ.pop(SYNCHRONOUS_ENV, None)
        settings = load_settings()
        # Import the definitions first: a fixed cost that is no part of the bookkeeping.
        import portfolio_pipeline.definitions  # noqa: F401

        wall, cpu = _clock()
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON lines
            for asset in ("raw_ohlcv", "raw_news"):
                materialize(asset, f"{first}...{last}", settings)
        end_wall, end_cpu = _clock()
        data_wall, data_cpu = _data_seconds(settings, first, last, Path(tmp) / "direct.duckdb")
    os.environ.pop(SYNCHRONOUS_ENV, None)
    return {
        "run": end_wall - wall,
        "run_cpu": end_cpu - cpu,
        "data": data_wall,
        "data_cpu": data_cpu,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backfill")
    parser.add_argument("--days", type=int, nargs="+", default=[365])
    parser.add_argument("--sqlite", choices=[*MODES, "both"], default="both")
    args = parser.parse_args(argv)
    modes = list(MODES) if args.sqlite == "both" else [args.sqlite]
    for days in args.days:
        first = LAST - timedelta(days=days - 1)
        for mode in modes:
            took = _run_seconds(first, LAST, MODES[mode])
            extra = {"days": days, "first": str(first), "last": str(LAST), "sqlite": mode}
            for metric, key in (
                ("run_seconds", "run"),
                ("run_cpu_seconds", "run_cpu"),
                ("data_seconds", "data"),
                ("data_cpu_seconds", "data_cpu"),
            ):
                emit("backfill", metric, round(took[key], 2), "s", **extra)
            for metric, run, data in (
                ("bookkeeping_seconds_per_1000_days", "run", "data"),
                ("bookkeeping_cpu_seconds_per_1000_days", "run_cpu", "data_cpu"),
            ):
                value = (took[run] - took[data]) / days * 1000
                emit("backfill", metric, round(value, 2), "s", **extra)


if __name__ == "__main__":
    main(sys.argv[1:])
