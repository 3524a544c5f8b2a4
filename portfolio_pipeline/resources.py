"""Resources shared by every concern: the DuckDB warehouse."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from portfolio_pipeline.core import warehouse, writer_lock

_RUN_HOLDS: dict[str, str] = {}  # warehouse path -> the run holding its writer lock here


def release_run_hold(path: str) -> None:
    """Release the writer lock an in-process run took on ``path`` (no-op when none)."""
    if _RUN_HOLDS.pop(str(path), None) is not None:
        writer_lock.release(str(path))


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

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Only a setup (no teardown): a teardown would make this a context-manager resource,
        # which every build_*_context(resources=...) caller would have to open with `with`.
        self._run_id = context.run_id

    def _hold_for_run(self) -> None:
        """Keep the writer lock from the run's first write until the run's process ends.

        A launched run is one process (the run worker), so the kernel drops the lock when
        the run ends, however it ends. In-process runs (the CLI, tests) hand it over here
        when the next run writes, and the CLI releases it after each run.
        """
        run_id = self._run_id
        if not run_id or _RUN_HOLDS.get(self.path) == run_id:
            return
        if self.path in _RUN_HOLDS:  # an earlier run of this process has ended
            release_run_hold(self.path)
        log = dg.get_dagster_logger()
        warehouse.acquire_writer_lock(self.path, owner=f"run {run_id}", on_wait=log.info)
        _RUN_HOLDS[self.path] = run_id

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
