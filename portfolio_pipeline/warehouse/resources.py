"""Resources shared by every concern: the DuckDB warehouse."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from portfolio_pipeline import warehouse
from portfolio_pipeline.warehouse import writer_lock

_RUN_HOLDS: dict[str, str] = {}  # warehouse path -> the launched run holding its writer lock


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file every asset reads and writes (one file, UTC).

    ``connect(read_only=True)`` reads the published snapshot, as analysts and sensors do.
    ``connect()`` is a write session on a private working copy, published atomically by
    rename when the block ends (``warehouse/store.py``): readers never block a run, and a
    crash or an error leaves the published file as it was.

    Writers take the warehouse's writer lock: a launched run from its first write until it
    ends, an in-process run for each write session (``portfolio-pipeline materialize``
    holds it for the whole command). A second writer waits
    (``PORTFOLIO_PIPELINE_LOCK_TIMEOUT``, default 1800 s), then fails with a message naming
    the holder's pid, run, command and start time.
    """

    path: str

    _run_id: str | None = PrivateAttr(default=None)
    _launched: bool = PrivateAttr(default=False)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Only a setup (no teardown): a teardown would make this a context-manager resource,
        # which every build_*_context(resources=...) caller would have to open with `with`.
        self._run_id = context.run_id
        run = context.dagster_run
        # A launched run (daemon, UI) has a remote origin and a process of its own (the run
        # worker); execute_in_process / materialize() runs inside a longer-lived process.
        self._launched = run is not None and run.remote_job_origin is not None

    def _hold_for_run(self) -> None:
        """A launched run keeps the writer lock from its first write until its process ends.

        The run worker is the run's own process, so the kernel drops the lock when the run
        ends, however it ends. In-process runs (the CLI, tests, notebooks) take the lock per
        write session instead, since their process outlives the run; the CLI holds it for
        its whole ``materialize``.
        """
        run_id = self._run_id
        if not (self._launched and run_id) or _RUN_HOLDS.get(self.path) == run_id:
            return
        if _RUN_HOLDS.pop(self.path, None) is not None:  # a worker reused for another run
            writer_lock.release(self.path)
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
