"""The last run of each job, read from the Dagster instance (wiring: imports dagster).

``DagsterRunStatus`` is the :class:`~portfolio_pipeline.serving.health.RunStatusSource` the
server uses: the instance at ``$DAGSTER_HOME`` (``DagsterInstance.get()``), read at most every
``cache_s`` seconds. Without an instance (no ``DAGSTER_HOME``, an unreadable one) or without
runs, statuses are unknown and :meth:`unknown_reason` says why; nothing fails. dagster is
imported on first use, so the server starts without it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from portfolio_pipeline.serving import models
from portfolio_pipeline.serving.health import NIGHTLY_JOB

RUNS_READ = 200  # the newest run records scanned for the latest run of each job


def _timestamp(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def latest_per_job(records: list[Any]) -> list[models.RunStatus]:
    """The newest record of each job (``records`` newest first, as Dagster returns them)."""
    seen: dict[str, models.RunStatus] = {}
    for record in records:
        run = record.dagster_run
        if run.job_name in seen:
            continue
        start, end = record.start_time, record.end_time
        seen[run.job_name] = models.RunStatus(
            job=run.job_name,
            status=run.status.value,
            run_id=run.run_id,
            started_at=_timestamp(start),
            ended_at=_timestamp(end),
            duration_seconds=(end - start) if start is not None and end is not None else None,
        )
    return sorted(seen.values(), key=lambda s: s.job)


def _default_instance() -> Any:
    if not os.environ.get("DAGSTER_HOME", "").strip():
        raise LookupError("DAGSTER_HOME is not set: no Dagster instance to read run statuses")
    import dagster as dg

    return dg.DagsterInstance.get()


class DagsterRunStatus:
    """Run statuses from a Dagster instance, cached for ``cache_s`` seconds."""

    def __init__(
        self, instance: Callable[[], Any] = _default_instance, *, cache_s: float = 10.0
    ) -> None:
        self._instance_factory = instance
        self._instance: Any = None
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._runs: list[models.RunStatus] = []
        self._reason: str | None = "the Dagster instance has not been read yet"

    nightly_job = NIGHTLY_JOB

    def latest_runs(self) -> list[models.RunStatus]:
        self._refresh()
        return list(self._runs)

    def unknown_reason(self) -> str | None:
        self._refresh()
        return self._reason

    def _refresh(self) -> None:
        # A request never waits for another's read: it answers with the last one (the first
        # read imports dagster and opens the instance, which takes seconds; see ``warm_up``).
        if not self._lock.acquire(blocking=False):
            return
        try:
            if time.monotonic() - self._read_at < self.cache_s:
                return
            self._read_at = time.monotonic()
            try:
                if self._instance is None:
                    self._instance = self._instance_factory()
                records = list(self._instance.get_run_records(limit=RUNS_READ))
                records += self._nightly_if_older(records)
            except LookupError as exc:  # no DAGSTER_HOME
                self._runs, self._reason = [], str(exc)
                return
            except Exception as exc:  # an instance whose storage is unreadable now
                self._instance = None
                self._runs, self._reason = [], f"Dagster instance not readable: {exc}"
                return
            self._runs = latest_per_job(records)
            self._reason = None if self._runs else "no runs recorded in the Dagster instance"
        finally:
            self._lock.release()

    def _nightly_if_older(self, records: list[Any]) -> list[Any]:
        """The nightly job's last run when it is older than the newest ``RUNS_READ`` runs."""
        if any(r.dagster_run.job_name == self.nightly_job for r in records):
            return []
        import dagster as dg

        return list(
            self._instance.get_run_records(
                filters=dg.RunsFilter(job_name=self.nightly_job), limit=1
            )
        )

    def warm_up(self) -> threading.Thread:
        """Read the instance once in the background (the server starts without waiting)."""
        thread = threading.Thread(target=self._refresh, name="dagster-run-status", daemon=True)
        thread.start()
        return thread
