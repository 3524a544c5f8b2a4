"""Load check: concurrent ``portfolio-pipeline query`` readers while materializations run.

Seeds a fresh warehouse with the shipped OHLCV, then starts ``--readers`` processes that
loop the query command (``cli.main(["query", ...])``: the command's own code path, without
the interpreter start-up) for at least ``--seconds`` and until a run has finished, while ``portfolio-pipeline materialize
--select SEL --partition RANGE`` runs again and again in another process. Every read and
every run must succeed: a DuckDB lock conflict would show up as a failed read or run.

Figures: reads, failed reads, read latency p50/p99/max, writer runs and failed runs, and how
many distinct published snapshots (file inode and change time) the readers saw.

The issue's check is ``--readers 20 --seconds 60 --select '*'`` (a full materialization; needs
the CPU for 20 readers next to CatBoost and Ray). ``make bench`` runs a smaller default that
fits a 2-core laptop: 4 readers for 60 s, against repeated runs of ``raw_ohlcv`` (one week)
and ``market_features``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import emit

SQL = (
    "select count(*) as n, max(date) as last, count(distinct symbol) as symbols "
    "from market.raw_ohlcv"
)
DATA = Path(__file__).resolve().parents[1] / "data"


def reader(path: str, stop: str, pause: float, out: str) -> None:
    """One reader: loop the query command until the ``stop`` file appears; write its record."""
    os.environ["PORTFOLIO_PIPELINE_WAREHOUSE"] = path
    from portfolio_pipeline.cli import main

    latencies, failures, snapshots = [], [], set()
    first = True  # the first query pays the lazy imports (duckdb): kept out of the latencies
    while not os.path.exists(stop):
        started = time.perf_counter()
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(["query", SQL, "--format", "csv"])
        if not first:
            latencies.append(time.perf_counter() - started)
        first = False
        if code != 0:
            failures.append(err.getvalue().strip())
        with contextlib.suppress(FileNotFoundError):
            stat = os.stat(path)  # inode numbers are recycled: add the change time
            snapshots.add(f"{stat.st_ino}:{stat.st_ctime_ns}")
        time.sleep(pause)
    Path(out).write_text(
        json.dumps({"latencies": latencies, "failures": failures, "snapshots": sorted(snapshots)})
    )


def _seed(path: Path) -> None:
    import polars as pl

    from portfolio_pipeline import warehouse

    with warehouse.connection(path) as con:
        warehouse.replace_table(
            con, "market.raw_ohlcv", pl.read_parquet(DATA / "crypto_ohlcv_daily.parquet")
        )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.warehouse_readers")
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--select", default="key:raw_ohlcv or key:market_features")
    parser.add_argument("--partition", default="2024-01-01...2024-01-07")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between queries")
    parser.add_argument("--reader", nargs=4, metavar=("PATH", "STOP_FILE", "PAUSE", "OUT"))
    args = parser.parse_args()
    if args.reader:
        path, stop, pause, out = args.reader
        reader(path, stop, float(pause), out)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        path = tmp_dir / "warehouse.duckdb"
        _seed(path)
        home = tmp_dir / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {**os.environ, "DAGSTER_HOME": str(home), "PORTFOLIO_PIPELINE_WAREHOUSE": str(path)}
        root = Path(__file__).resolve().parents[1]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        stop = tmp_dir / "stop"
        readers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.warehouse_readers",
                    "--reader",
                    str(path),
                    str(stop),
                    str(args.pause),
                    str(tmp_dir / f"reader{i}.json"),
                ],
                env=env,
                cwd=root,
            )  # fmt: skip
            for i in range(args.readers)
        ]
        # Runs follow one another until the readers have read for ``seconds`` *and* at least
        # one run has finished while they read: every read overlaps some run.
        runs, failed_runs, run_seconds = 0, [], []
        began = time.monotonic()
        while runs == 0 or time.monotonic() - began < args.seconds:
            started = time.perf_counter()
            run = subprocess.run(
                [sys.executable, "-m", "portfolio_pipeline.cli", "materialize",
                 "--select", args.select, "--partition", args.partition],
                env=env, cwd=root, capture_output=True, text=True,
            )  # fmt: skip
            run_seconds.append(time.perf_counter() - started)
            runs += 1
            if run.returncode != 0:
                failed_runs.append(run.stderr.strip().splitlines()[-1:])
        stop.touch()
        for r in readers:
            r.wait()
        records = [
            json.loads((tmp_dir / f"reader{i}.json").read_text()) for i in range(len(readers))
        ]
    latencies = sorted(x for r in records for x in r["latencies"])
    failures = [f for r in records for f in r["failures"]]
    snapshots = len({i for r in records for i in r["snapshots"]})
    shape = {"readers": args.readers, "seconds": args.seconds, "select": args.select}
    emit("warehouse_readers", "reads", len(latencies), "queries", **shape)
    emit("warehouse_readers", "failed_reads", len(failures), "queries", first=failures[:1])
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    emit("warehouse_readers", "read_latency_p50", round(statistics.median(latencies), 4), "s")
    emit("warehouse_readers", "read_latency_p99", round(p99, 4), "s")
    emit("warehouse_readers", "read_latency_max", round(latencies[-1], 4), "s")
    emit(
        "warehouse_readers",
        "writer_runs",
        runs,
        "runs",
        run_seconds=[round(s, 1) for s in run_seconds],
    )
    emit("warehouse_readers", "failed_writer_runs", len(failed_runs), "runs", first=failed_runs[:1])
    emit("warehouse_readers", "snapshots_seen", snapshots, "published files")
    return 1 if failures or failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
