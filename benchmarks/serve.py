"""Load on the API: N concurrent clients on one endpoint for D seconds (issue 24, item 5).

``python -m benchmarks.serve [--warehouse PATH] [--clients 20] [--duration 60]
[--path /recommendations/latest] [--with-nightly-job]``

Starts ``portfolio-pipeline serve`` on a free loopback port against the warehouse
(default: the configured one), then runs the clients (threads with one HTTP session each).
A request fails when it raises or answers anything but 200. ``--with-nightly-job`` launches
``portfolio-pipeline materialize --select '*'`` (what ``make run`` runs) against the same
warehouse in the background when the clients start, so the API is measured while a run
writes and publishes new snapshots; the job's exit code and wall time are reported too.
``--publish-every S`` is the light stand-in: every S seconds a write session rewrites
``portfolio.recommendations`` with its own rows (same content) and publishes a new file, so
the server switches snapshots under load (point it at a copy of the warehouse).
Prints JSON lines: requests, failed_requests, throughput, p50/p99/max latency, start time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from benchmarks._common import emit
from portfolio_pipeline.settings import REPO_ROOT, load_settings
from portfolio_pipeline_tests.operations.servers import free_port, process_group, wait_for

NAME = "serve"


def _client(url: str, deadline: float, latencies: list[float], failures: list[str]) -> None:
    session = requests.Session()
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            reply = session.get(url, timeout=30)
            ok = reply.status_code == 200
            reason = f"HTTP {reply.status_code}: {reply.text[:200]}"
        except requests.RequestException as exc:
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        latencies.append(time.perf_counter() - started)
        if not ok:
            failures.append(reason)


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def _nightly_job(env: dict, log: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "portfolio_pipeline", "materialize", "--select", "*"]
    return subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def _publisher(warehouse: Path, every: float, deadline: float, counts: list[int]) -> None:
    from portfolio_pipeline import tables
    from portfolio_pipeline import warehouse as store

    while time.monotonic() + every < deadline:
        time.sleep(every)
        with store.connection(warehouse) as con:
            rows = con.execute(f"select * from {tables.RECOMMENDATIONS}").pl()
            store.replace_table(con, tables.RECOMMENDATIONS, rows)
        counts.append(1)


def run(args: argparse.Namespace) -> int:
    warehouse = Path(args.warehouse or load_settings().warehouse_path).resolve()
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    env = {**os.environ, "PORTFOLIO_PIPELINE_WAREHOUSE": str(warehouse)}
    env.pop("PORTFOLIO_PIPELINE_API_TOKEN", None)
    port = free_port()
    serve = [sys.executable, "-m", "portfolio_pipeline", "serve", "--port", str(port),
             "--log-level", "warning"]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    with process_group(serve, env=env, log_path=work / "serve.log"):
        wait_for(lambda: _answers(base), 60, "the API server", interval_s=0.05)
        emit(NAME, "server_start_to_first_answer", time.perf_counter() - started, "s")
        job = _nightly_job(env, work / "nightly.log") if args.with_nightly_job else None
        published: list[int] = []
        if args.publish_every:
            deadline = time.monotonic() + args.duration
            threading.Thread(
                target=_publisher, args=(warehouse, args.publish_every, deadline, published),
                daemon=True,
            ).start()  # fmt: skip
        latencies, failures = _load(base + args.path, args.clients, args.duration)
        job_result = _finish(job, args.duration)
    extra = {"clients": args.clients, "path": args.path, "concurrent_nightly_job": bool(job),
             "snapshots_published": len(published)}  # fmt: skip
    emit(NAME, "requests", len(latencies), "count", **extra)
    emit(NAME, "failed_requests", len(failures), "count", **extra)
    emit(NAME, "throughput", len(latencies) / args.duration, "requests/s", **extra)
    for label, q in (("p50_latency", 0.5), ("p99_latency", 0.99)):
        emit(NAME, label, 1000 * _percentile(latencies, q), "ms", **extra)
    emit(NAME, "max_latency", 1000 * max(latencies), "ms", **extra)
    if job_result is not None:
        emit(NAME, "nightly_job_exit_code", job_result[0], "code")
        emit(NAME, "nightly_job_wall_time", job_result[1], "s", note="includes time after the load")
    for reason in sorted(set(failures))[:5]:
        print(f"# failure: {reason}", file=sys.stderr)
    return 1 if failures else 0


def _answers(base: str) -> bool:
    try:
        return requests.get(base + "/health", timeout=2).status_code in (200, 503)
    except requests.RequestException:
        return False


def _load(url: str, clients: int, duration: float) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    failures: list[str] = []
    deadline = time.monotonic() + duration
    threads = [
        threading.Thread(target=_client, args=(url, deadline, latencies, failures))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures


def _finish(job: subprocess.Popen | None, duration: float) -> tuple[int, float] | None:
    if job is None:
        return None
    started = time.monotonic() - duration
    code = job.wait()
    return code, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve", description=__doc__)
    parser.add_argument("--warehouse", default=None, help="default: PORTFOLIO_PIPELINE_WAREHOUSE")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--path", default="/recommendations/latest")
    parser.add_argument("--with-nightly-job", action="store_true",
                        help="materialize the whole graph (make run) during the load")  # fmt: skip
    parser.add_argument("--publish-every", type=float, default=0.0,
                        help="seconds between republishing the recommendations (0: never)")  # fmt: skip
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
