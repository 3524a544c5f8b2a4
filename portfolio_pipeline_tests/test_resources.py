"""WarehouseResource in real Dagster runs: readers held open, the run-level writer lock."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import polars as pl

from portfolio_pipeline.core import warehouse, writer_lock
from portfolio_pipeline.resources import WarehouseResource, release_run_hold

REPO = Path(__file__).resolve().parents[1]

SECOND_WRITER = """
    from portfolio_pipeline.core import warehouse
    try:
        with warehouse.connection({path!r}, lock_timeout=0.2):
            print("not blocked")
    except warehouse.WarehouseError as exc:
        print(exc)
"""


@dg.asset
def first_table(warehouse_resource: WarehouseResource) -> None:
    with warehouse_resource.connect() as con:
        warehouse.replace_table(con, "m.first", pl.DataFrame({"x": [1, 2, 3]}))


@dg.asset(deps=[first_table])
def second_table(warehouse_resource: WarehouseResource):
    # Between the run's write sessions the lock stays with the run: another writer is told
    # which run holds it.
    other = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SECOND_WRITER.format(path=warehouse_resource.path))],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    with warehouse_resource.connect() as con:
        n = con.execute("select count(*) from m.first").fetchone()[0]
        warehouse.replace_table(con, "m.second", pl.DataFrame({"n": [n]}))
    return dg.MaterializeResult(metadata={"other_writer": other.stdout.strip()})


def test_a_run_writes_while_a_reader_holds_the_file_and_keeps_the_lock(tmp_warehouse):
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
        materialization = result.asset_materializations_for_node("second_table")[0]
        blocked = materialization.metadata["other_writer"].value
        assert f"run {result.run_id}" in blocked and "being written by another run" in blocked
        assert writer_lock.held_here(tmp_warehouse)  # in process: until the next run or exit
        release_run_hold(str(tmp_warehouse))
        assert not writer_lock.held_here(tmp_warehouse)
        with warehouse.connection(tmp_warehouse, read_only=True) as con:
            assert con.execute("select n from m.second").fetchone()[0] == 3
        analyst.stdin.write("\n")
        analyst.stdin.flush()
        assert analyst.stdout.readline().strip() == "1"  # still its snapshot
    finally:
        analyst.stdin.close()
        assert analyst.wait(timeout=30) == 0
