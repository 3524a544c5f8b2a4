"""Resources shared by every concern: the DuckDB warehouse."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from portfolio_pipeline.core import warehouse, writer_lock


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file every asset reads and writes (one file, UTC).

    ``connect(read_only=True)`` reads the published snapshot, as analysts and sensors do.
    ``connect()`` is a write session on a private working copy, published atomically by
    rename when the block ends (``core/warehouse.py``): readers never block a run, and a
    crash or an error leaves the published file as it was.

    A run takes the warehouse's writer lock at its first write and keeps it until the run
    ends, so two runs (the CLI while the daemon runs a schedule) never interleave their
    writes: the second waits (``PORTFOLIO_PIPELINE_LOCK_TIMEOUT``, default 1800 s), then
    fails with a message naming the holder's pid, run, command and start time.
    """

    path: str

    _run_id: str | None = PrivateAttr(default=None)
    _holds_lock: bool = PrivateAttr(default=False)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_id = context.run_id

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._holds_lock:
            writer_lock.release(self.path)
            self._holds_lock = False

    def _hold_for_run(self) -> None:
        if self._holds_lock or not self._run_id:
            return
        log = dg.get_dagster_logger()
        warehouse.acquire_writer_lock(self.path, owner=f"run {self._run_id}", on_wait=log.info)
        self._holds_lock = True

    @contextlib.contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if read_only:
            with warehouse.connection(self.path, read_only=True) as con:
                yield con
            return
        self._hold_for_run()
        owner = f"run {self._run_id}" if self._run_id else ""
        with warehouse.connection(self.path, owner=owner) as con:
            yield con
