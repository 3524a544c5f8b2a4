"""The CLI killed in the middle of a write, and two writers at once, end to end."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portfolio_pipeline import warehouse

REPO = Path(__file__).resolve().parents[1]


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "PORTFOLIO_PIPELINE_FAULT"}
    environment.update(
        PYTHONPATH=str(REPO),
        DAGSTER_HOME=str(tmp_path / "dagster_home"),
        PORTFOLIO_PIPELINE_WAREHOUSE=str(tmp_path / "warehouse.duckdb"),
        PORTFOLIO_PIPELINE_SYMBOLS="BTCUSDT,ETHUSDT,SOLUSDT",
        **env,
    )
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return subprocess.run(
        [sys.executable, "-m", "portfolio_pipeline.cli", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _counts(path: Path) -> tuple[int, int, str]:
    with warehouse.connection(path, read_only=True) as con:
        n, distinct, last = con.execute(
            "select count(*), count(distinct (symbol, date)), max(date) from market.raw_ohlcv"
        ).fetchone()
    return n, distinct, str(last)


@pytest.mark.integration
@pytest.mark.slow
def test_a_run_killed_mid_write_leaves_the_warehouse_and_the_next_run_heals(tmp_path):
    # Every fault point is tried on the core in core/test_warehouse_concurrency.py; here the
    # real CLI run dies inside raw_ohlcv's transaction (after its DELETE, before its INSERT).
    fault = "in_write:market.raw_ohlcv"
    path = tmp_path / "warehouse.duckdb"
    seeded = _cli(tmp_path, "materialize", "--select", "raw_ohlcv", "--partition", "2023-12")
    assert seeded.returncode == 0, seeded.stderr
    assert _counts(path) == (93, 93, "2023-12-31")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    analyst = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, sys; c = duckdb.connect({str(path)!r}, read_only=True); "
         "print(c.execute('select count(*) from market.raw_ohlcv').fetchone()[0], flush=True); "
         "sys.stdin.readline(); "
         "print(c.execute('select count(*) from market.raw_ohlcv').fetchone()[0], flush=True)"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert analyst.stdout.readline().strip() == "93"
    rng = ("--partition", "2023-12-15...2024-01-06")  # whole months: December and January
    killed = _cli(
        tmp_path, "materialize", "--select", "raw_ohlcv", *rng, PORTFOLIO_PIPELINE_FAULT=fault
    )
    assert killed.returncode == -9, killed.stderr  # SIGKILL inside the write path
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert _counts(path) == (93, 93, "2023-12-31")  # published file unchanged and readable
    healed = _cli(tmp_path, "materialize", "--select", "raw_ohlcv", *rng)
    assert healed.returncode == 0, healed.stderr
    assert _counts(path) == (186, 186, "2024-01-31")  # 3 symbols x 62 days: none lost or doubled
    analyst.stdin.write("\n")
    analyst.stdin.flush()
    assert analyst.stdout.readline().strip() == "93"  # held its snapshot through all of it
    analyst.stdin.close()
    assert analyst.wait(timeout=30) == 0


def test_a_second_cli_run_names_the_run_holding_the_warehouse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import time; from portfolio_pipeline import warehouse\n"
         f"warehouse.acquire_writer_lock({str(path)!r}, owner='run 5e6f7a')\n"
         "print('held', flush=True); time.sleep(60)"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        second = _cli(
            tmp_path, "materialize", "--select", "raw_ohlcv", "--partition", "2024-01-01",
            PORTFOLIO_PIPELINE_LOCK_TIMEOUT="0.5",
        )  # fmt: skip
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert second.returncode == 1
    notice, failure = second.stderr.strip().splitlines()[-2:]
    assert "waiting for the warehouse writer lock" in notice and "run 5e6f7a" in notice
    assert failure.startswith("portfolio-pipeline materialize: error: warehouse ")
    assert f"pid {holder.pid}" in failure and "run 5e6f7a" in failure
    assert "PORTFOLIO_PIPELINE_LOCK_TIMEOUT" in failure
    assert not path.exists()  # it wrote nothing
