"""Readers, writers, crashes and disk faults against the published-snapshot warehouse."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from portfolio_pipeline import warehouse
from portfolio_pipeline.warehouse import writer_lock

REPO = Path(__file__).resolve().parents[2]


def _rows(n: int, start: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {"id": list(range(start, start + n)), "value": [float(i) for i in range(n)]}
    )


def _seed(path: Path, n: int = 100) -> None:
    with warehouse.connection(path) as con:
        warehouse.replace_table(con, "m.t", _rows(n))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _count(path: Path) -> tuple[int, int]:
    with warehouse.connection(path, read_only=True) as con:
        return con.execute("select count(*), count(distinct id) from m.t").fetchone()


def _python(code: str, *, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        text=True,
        **kwargs,
    )


# --------------------------------------------------------------------------- readers
ANALYST = """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1] if len(sys.argv) > 1 else {path!r}, read_only=True)
    print(con.execute("select count(*) from m.t").fetchone()[0], flush=True)
    sys.stdin.readline()  # hold the connection until told
    print(con.execute("select count(*) from m.t").fetchone()[0], flush=True)
"""


def test_a_reader_holding_the_file_never_blocks_writes_and_keeps_its_snapshot(tmp_warehouse):
    _seed(tmp_warehouse, 100)
    reader = _python(
        ANALYST.format(path=str(tmp_warehouse)), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert reader.stdout.readline().strip() == "100"
        for extra in range(3):  # several runs while the analyst's connection stays open
            with warehouse.connection(tmp_warehouse, lock_timeout=0) as con:
                warehouse.append_rows(con, "m.t", _rows(10, start=1000 + 10 * extra))
        assert _count(tmp_warehouse) == (130, 130)  # a new connection sees every run
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "100"  # its snapshot, never a half-run
    finally:
        reader.stdin.close()
        assert reader.wait(timeout=30) == 0


def test_a_failed_session_publishes_nothing_and_an_idle_one_keeps_the_file(tmp_warehouse):
    _seed(tmp_warehouse)
    before, inode = _digest(tmp_warehouse), tmp_warehouse.stat().st_ino
    with (
        pytest.raises(ValueError, match="model diverged"),
        warehouse.connection(tmp_warehouse) as con,
    ):
        warehouse.append_rows(con, "m.t", _rows(5, start=500))
        raise ValueError("model diverged")
    assert _digest(tmp_warehouse) == before
    assert not warehouse.leftover_working_copies(tmp_warehouse)
    with warehouse.connection(tmp_warehouse) as con:  # reads only
        assert con.execute("select count(*) from m.t").fetchone()[0] == 100
    assert tmp_warehouse.stat().st_ino == inode  # nothing written: nothing published


def test_nested_write_sessions_are_refused(tmp_warehouse):
    with (
        warehouse.connection(tmp_warehouse),
        pytest.raises(warehouse.WarehouseError, match="already open in this thread"),
        warehouse.connection(tmp_warehouse),
    ):
        pass


def test_writes_are_refused_on_a_snapshot_connection(tmp_warehouse):
    _seed(tmp_warehouse)
    with pytest.raises(warehouse.WarehouseError, match="write through"):
        warehouse.connect(tmp_warehouse, read_only=False)
    with (
        warehouse.connection(tmp_warehouse, read_only=True) as con,
        pytest.raises(duckdb.InvalidInputException, match="read-only"),
    ):
        con.execute("delete from m.t")


# --------------------------------------------------------------------------- writer lock
HOLDER = """
    import sys, time
    from portfolio_pipeline import warehouse
    with warehouse.connection({path!r}, owner="run 1a2b3c") as con:
        print("held", flush=True)
        time.sleep({hold})
"""


def test_a_second_writer_waits_then_names_the_holder(tmp_warehouse):
    _seed(tmp_warehouse)
    holder = _python(HOLDER.format(path=str(tmp_warehouse), hold=3), stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(warehouse.WarehouseError) as failed,
            warehouse.connection(tmp_warehouse, lock_timeout=0.3),
        ):
            pass
        message = str(failed.value)
        assert f"pid {holder.pid}" in message and "run 1a2b3c" in message
        assert "since 20" in message and "PORTFOLIO_PIPELINE_LOCK_TIMEOUT" in message
        told: list[str] = []
        started = time.monotonic()
        with warehouse.connection(tmp_warehouse, lock_timeout=60, on_wait=told.append) as con:
            warehouse.append_rows(con, "m.t", _rows(1, start=9000))
        assert time.monotonic() - started > 0.5  # it waited for the holder to finish
        assert told and f"pid {holder.pid}" in told[0]
    finally:
        assert holder.wait(timeout=30) == 0
    assert _count(tmp_warehouse) == (101, 101)


def test_the_lock_is_reentrant_in_a_process_and_freed_by_a_crash(tmp_warehouse):
    warehouse.acquire_writer_lock(tmp_warehouse, owner="cli")
    try:
        with warehouse.connection(tmp_warehouse, lock_timeout=0) as con:  # same process
            warehouse.replace_table(con, "m.t", _rows(3))
        assert writer_lock.held_here(tmp_warehouse)
    finally:
        writer_lock.release(tmp_warehouse)
    assert not writer_lock.held_here(tmp_warehouse)
    killed = _python(HOLDER.format(path=str(tmp_warehouse), hold=60), stdout=subprocess.PIPE)
    assert killed.stdout.readline().strip() == "held"
    killed.kill()
    killed.wait(timeout=30)
    with warehouse.connection(tmp_warehouse, lock_timeout=0) as con:  # no stale lock
        warehouse.append_rows(con, "m.t", _rows(1, start=50))


@pytest.mark.parametrize("value", ["soon", "-5"])
def test_a_bad_lock_timeout_names_the_variable(tmp_warehouse, monkeypatch, value):
    monkeypatch.setenv(writer_lock.LOCK_TIMEOUT_ENV, value)
    with (
        pytest.raises(warehouse.WarehouseError, match=writer_lock.LOCK_TIMEOUT_ENV),
        warehouse.connection(tmp_warehouse),
    ):
        pass


# --------------------------------------------------------------------------- crashes
WRITER = """
    from portfolio_pipeline import warehouse
    import polars as pl
    with warehouse.connection({path!r}) as con:
        warehouse.replace_rows(
            con, "m.t", pl.DataFrame({{"id": list(range(50, 150)), "value": [1.0] * 100}}),
            where="id >= 50",
        )
        warehouse.replace_table(con, "m.other", pl.DataFrame({{"x": [1]}}))
    print("done", flush=True)
"""


@pytest.mark.parametrize(
    "fault", ["copy", "in_write:m.t", "after_write:m.t", "after_write:m.other", "publish"]
)
def test_sigkill_anywhere_in_a_write_leaves_the_published_file(tmp_warehouse, fault):
    _seed(tmp_warehouse, 100)
    before = _digest(tmp_warehouse)
    reader = _python(
        ANALYST.format(path=str(tmp_warehouse)), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert reader.stdout.readline().strip() == "100"
    crashed = _python(
        WRITER.format(path=str(tmp_warehouse)),
        env={"PORTFOLIO_PIPELINE_FAULT": fault},
        stdout=subprocess.PIPE,
    )
    out, _ = crashed.communicate(timeout=60)
    assert crashed.returncode == -9 and "done" not in out
    assert _digest(tmp_warehouse) == before  # unchanged, byte for byte
    assert _count(tmp_warehouse) == (100, 100)  # and readable
    reader.stdin.write("\n")
    reader.stdin.flush()
    assert reader.stdout.readline().strip() == "100"
    assert reader.wait(timeout=30) == 0
    rerun = _python(WRITER.format(path=str(tmp_warehouse)), stdout=subprocess.PIPE)
    assert rerun.communicate(timeout=60)[0].strip() == "done"
    assert _count(tmp_warehouse) == (150, 150)  # no duplicated, no lost row
    assert not warehouse.leftover_working_copies(tmp_warehouse)


# --------------------------------------------------------------------------- disk faults
def test_a_directory_as_warehouse_path_is_named(tmp_path):
    folder = tmp_path / "warehouse.duckdb"
    folder.mkdir()
    for opener in (
        lambda: warehouse.connect(folder),
        lambda: warehouse.connection(folder).__enter__(),
    ):
        with pytest.raises(warehouse.WarehouseError, match="is a directory"):
            opener()


@pytest.mark.parametrize("fault", ["copy=enospc", "in_write:m.t=enospc", "publish=enospc"])
def test_injected_enospc_is_a_clear_error_and_loses_nothing(tmp_warehouse, monkeypatch, fault):
    _seed(tmp_warehouse)
    before = _digest(tmp_warehouse)
    monkeypatch.setenv("PORTFOLIO_PIPELINE_FAULT", fault)
    with (
        pytest.raises(warehouse.WarehouseError, match="no space left on device.*unchanged"),
        warehouse.connection(tmp_warehouse) as con,
    ):
        warehouse.append_rows(con, "m.t", _rows(10, start=500))
    assert _digest(tmp_warehouse) == before and _count(tmp_warehouse) == (100, 100)
    assert not warehouse.leftover_working_copies(tmp_warehouse)


def _in_private_mount(setup: str, code: str, tmp_path: Path) -> dict:
    """Run ``code`` as root in a private mount namespace after the shell ``setup``."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small or read-only file system needs root")
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(code))
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-ec",
         f"{setup}\n{sys.executable} {script}"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if (
        result.returncode != 0
        and "unshare" in result.stderr
        and "Operation not permitted" in (result.stderr)
    ):
        pytest.skip(f"no mount namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


FAULT_PROBE = """
    import hashlib, json, numpy as np, polars as pl
    from pathlib import Path
    from portfolio_pipeline import warehouse
    path = Path({path!r})
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        with warehouse.connection(path) as con:
            noise = np.random.default_rng(0).random({n})  # incompressible doubles
            warehouse.append_rows(con, "m.t", pl.DataFrame({{"id": range(10**6, 10**6 + {n}),
                                                            "value": noise}}))
        error = None
    except warehouse.WarehouseError as exc:
        error = str(exc)
    with warehouse.connection(path, read_only=True) as con:
        rows = con.execute("select count(*) from m.t").fetchone()[0]
    print(json.dumps({{"error": error, "rows": rows,
                      "same": hashlib.sha256(path.read_bytes()).hexdigest() == before,
                      "leftovers": sorted(p.name for p in path.parent.iterdir())}}))
"""


def test_a_full_disk_is_a_clear_error_and_loses_nothing(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    path = mount / "warehouse.duckdb"
    # An 8 MiB file system: the seeded warehouse and its copy fit, 3M more rows do not.
    seed = f"""from portfolio_pipeline import warehouse; import polars as pl
with warehouse.connection({str(path)!r}) as con:
    warehouse.replace_table(con, "m.t", pl.DataFrame({{"id": range(100), "value": [1.0] * 100}}))"""
    (tmp_path / "seed.py").write_text(seed)
    result = _in_private_mount(
        f"mount -t tmpfs -o size=8m tmpfs {mount}\n{sys.executable} {tmp_path / 'seed.py'}",
        FAULT_PROBE.format(path=str(path), n=3_000_000),
        tmp_path,
    )
    assert result["error"] and "no space left on device" in result["error"], result
    assert "unchanged" in result["error"]
    assert result["same"] and result["rows"] == 100
    assert not [name for name in result["leftovers"] if name.endswith((".work", ".work.wal"))]


def test_a_read_only_directory_is_a_clear_error_and_loses_nothing(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "warehouse.duckdb"
    _seed(path)
    for stale in folder.glob("*.lock"):
        stale.unlink()  # a first write in a read-only directory cannot create it either
    result = _in_private_mount(
        f"mount --bind {folder} {folder}\nmount -o remount,bind,ro {folder}",
        FAULT_PROBE.format(path=str(path), n=10),
        tmp_path,
    )
    assert result["error"] and "writable" in result["error"]
    assert result["same"] and result["rows"] == 100


def test_a_connection_leaked_by_a_session_is_never_handed_to_the_next(tmp_warehouse):
    _seed(tmp_warehouse)
    with warehouse.connection(tmp_warehouse) as con:
        leaked = con.cursor()  # keeps DuckDB's cached database of that working copy alive
        warehouse.append_rows(con, "m.t", _rows(1, start=700))
    published_inode = tmp_warehouse.stat().st_ino
    with warehouse.connection(tmp_warehouse) as con:  # a new file, not the cached database
        warehouse.append_rows(con, "m.t", _rows(1, start=701))
    assert tmp_warehouse.stat().st_ino != published_inode
    assert _count(tmp_warehouse) == (102, 102)
    leaked.close()
