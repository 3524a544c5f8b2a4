"""``portfolio-pipeline serve`` as a real process: it starts, answers, keeps tokens out of its
logs and refuses to expose itself without a token."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from portfolio_pipeline_tests.operations.servers import REPO_ROOT
from portfolio_pipeline_tests.serving import tiny_warehouse as tiny
from portfolio_pipeline_tests.serving.server import running_server

pytestmark = pytest.mark.slow


def test_serve_answers_and_never_logs_the_token(tiny_path, tmp_path):
    token = "tok-" + "x7" * 16
    log = tmp_path / "serve.log"
    with running_server(tiny_path, log, PORTFOLIO_PIPELINE_API_TOKEN=token) as server:
        assert server.get("/health").json()["status"] == "ok"
        assert server.get("/recommendations/latest").status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        latest = server.get("/recommendations/latest", headers=auth).json()
        assert latest["run_id"] == tiny.NEW_RUN
        assert (
            server.get("/metrics", headers={"Authorization": "Bearer " + token[:-1]}).status_code
            == 401
        )
    text = log.read_text()
    assert "GET /recommendations/latest" in text  # the access log is on
    assert token not in text and token[:-1] not in text


def test_a_reachable_host_without_token_refuses_to_start():
    env = {k: v for k, v in os.environ.items() if k != "PORTFOLIO_PIPELINE_API_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "portfolio_pipeline", "serve", "--host", "0.0.0.0", "--port", "1"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "refusing to serve on 0.0.0.0" in result.stderr
    assert "PORTFOLIO_PIPELINE_API_TOKEN" in result.stderr


def test_the_app_loads_without_torch_or_dagster(tiny_path):
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "from portfolio_pipeline.cli.serve import build_app\n"
        "from portfolio_pipeline.settings import load_settings\n"
        "build_app(load_settings())\n"
        "heavy = [m for m in ('torch', 'transformers', 'ray', 'great_expectations', 'dagster',"
        " 'catboost', 'skfolio') if m in sys.modules]\n"
        "print(heavy)"
    )
    env = {**os.environ, "PORTFOLIO_PIPELINE_WAREHOUSE": str(tiny_path)}
    env.pop("DAGSTER_HOME", None)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_reads_never_fail_while_runs_publish_snapshots(tiny_path, tmp_path):
    """Clients read ``/recommendations/latest`` while ten runs publish new files: no request
    fails and each answer is one whole run (its rows all carry the run id it names)."""
    import threading
    from datetime import timedelta

    answers: list[tuple[int, str, set]] = []
    stop = threading.Event()

    def client(server) -> None:
        while not stop.is_set():
            reply = server.get("/recommendations/latest")
            body = reply.json()
            answers.append(
                (reply.status_code, body.get("run_id"), {r["symbol"] for r in body.get("rows", [])})
            )

    with running_server(tiny_path, tmp_path / "serve.log") as server:
        threads = [threading.Thread(target=client, args=(server,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for i in range(10):
            tiny.publish_new_run(tiny_path, f"run-{i}", tiny.GENERATED_AT + timedelta(days=i + 1))
        stop.set()
        for thread in threads:
            thread.join()
        final = server.get("/recommendations/latest").json()["run_id"]
    assert answers and all(code == 200 for code, _, _ in answers)
    assert all(symbols == {"AAAUSDT", "BBBUSDT", "CCCUSDT", "USDT"} for _, _, symbols in answers)
    assert final == "run-9"
    assert not list(tiny_path.parent.glob("*.snapshot"))


def test_the_load_benchmark_runs(tiny_path):
    """``benchmarks.serve`` end to end, briefly (its figures are not asserted: no timed test)."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.serve", "--warehouse", str(tiny_path),
         "--clients", "2", "--duration", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    import json

    figures = {r["metric"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert figures["failed_requests"]["value"] == 0 and figures["requests"]["value"] > 0
    assert {"p50_latency", "p99_latency", "throughput"} <= set(figures)
