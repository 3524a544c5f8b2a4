"""WarehouseResource in Dagster runs: readers held open, and who holds the writer lock when."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from portfolio_pipeline import warehouse
from portfolio_pipeline.warehouse import writer_lock
from portfolio_pipeline.warehouse.resources import WarehouseResource

REPO = Path(__file__).resolve().parents[1]


@dg.asset
def first_table(warehouse_resource: WarehouseResource) -> None:
    with warehouse_resource.connect() as con:
        warehouse.replace_table(con, "m.first", pl.DataFrame({"x": [1, 2, 3]}))


@dg.asset(deps=[first_table])
def second_table(warehouse_resource: WarehouseResource) -> None:
    with warehouse_resource.connect() as con:
        n = con.execute("select count(*) from m.first").fetchone()[0]
        warehouse.replace_table(con, "m.second", pl.DataFrame({"n": [n]}))


def test_an_in_process_run_writes_while_a_reader_holds_the_file(tmp_warehouse):
    with warehouse.connection(tmp_warehouse) as con:
        warehouse.replace_table(con, "m.first", pl.DataFrame({"x": [0]}))
    analyst = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, sys; c = duckdb.connect({str(tmp_warehouse)!r}, read_only=True); "
         "print(c.execute('select count(*) from m.first').fetchone()[0], flush=True); "
         "sys.stdin.readline(); print(c.execute('select count(*) from m.first').fetchone()[0])"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert analyst.stdout.readline().strip() == "1"
        resource = WarehouseResource(path=str(tmp_warehouse))
        result = dg.materialize(
            [first_table, second_table], resources={"warehouse_resource": resource}
        )
        assert result.success
        # The test process outlives the run: an in-process run locks per session only.
        assert not writer_lock.held_here(tmp_warehouse)
        with warehouse.connection(tmp_warehouse, read_only=True) as con:
            assert con.execute("select n from m.second").fetchone()[0] == 3
        analyst.stdin.write("\n")
        analyst.stdin.flush()
        assert analyst.stdout.readline().strip() == "1"  # still its snapshot
    finally:
        analyst.stdin.close()
        assert analyst.wait(timeout=30) == 0


LAUNCHED_RUN = """
    import time
    from types import SimpleNamespace
    import polars as pl
    from portfolio_pipeline import warehouse
    from portfolio_pipeline.warehouse.resources import WarehouseResource

    resource = WarehouseResource(path={path!r})
    # What Dagster hands a launched run's resources: a run id and a run with a remote origin.
    run = SimpleNamespace(remote_job_origin=object())
    resource.setup_for_execution(SimpleNamespace(run_id="run-7c8d", dagster_run=run))
    with resource.connect() as con:  # step 1
        warehouse.replace_table(con, "m.t", pl.DataFrame({{"x": [1]}}))
    print("between steps", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("end", ["sigterm", "sigkill"])
def test_a_launched_run_keeps_the_lock_between_steps_until_its_process_ends(tmp_warehouse, end):
    run = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(LAUNCHED_RUN.format(path=str(tmp_warehouse)))],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stdin=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert run.stdout.readline().strip() == "between steps"
        with (
            pytest.raises(warehouse.WarehouseError, match=r"run run-7c8d.*since"),
            warehouse.connection(tmp_warehouse, lock_timeout=0.3),
        ):
            pass
    finally:
        run.kill() if end == "sigkill" else run.terminate()
        run.wait(timeout=30)
    with warehouse.connection(tmp_warehouse, lock_timeout=0) as con:  # the run is over
        warehouse.append_rows(con, "m.t", pl.DataFrame({"x": [2]}))
    with warehouse.connection(tmp_warehouse, read_only=True) as con:
        assert con.execute("select count(*) from m.t").fetchone()[0] == 2
