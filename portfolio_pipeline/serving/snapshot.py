"""Read-only connections to the published warehouse, renewed when a run publishes a new file.

Pure (no dagster). A run writes a private working copy and renames it over the published
path (``warehouse.store``), so an open read-only connection keeps reading the snapshot it
opened, whole, and never blocks the run. :class:`SnapshotReader` keeps one connection per
published file: before each request it compares the path's identity (inode, size, mtime) with
the open one and, when a run has published since, opens the new file; the old connection is
closed once its last request has finished.

DuckDB keeps one database instance per path in a process, so a second ``connect`` to the same
path would hand back the old snapshot. Each snapshot is therefore opened through a hard link
of its own (``warehouse.duckdb.<pid>-<n>.snapshot``, next to the file, removed as soon as the
connection is open): a new name for exactly the inode that was published. Where no link can
be made (a read-only directory), the path itself is opened once the previous snapshot has
no request left. Results computed from a snapshot are memoised on
it (:meth:`Snapshot.memo`), so a new file is picked up without a restart and an unchanged one
is not re-queried.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from portfolio_pipeline import warehouse

T = TypeVar("T")
_LINKS = itertools.count(1)


class WarehouseUnavailable(RuntimeError):
    """No published warehouse can be read now; the message says why (HTTP 503)."""


@dataclass(frozen=True)
class FileIdentity:
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        stat = os.stat(path)
        return cls(stat.st_ino, stat.st_size, stat.st_mtime_ns)

    @property
    def modified_at(self) -> datetime:
        return datetime.fromtimestamp(self.mtime_ns / 1e9, tz=UTC)


@dataclass
class Snapshot:
    """One published file, opened read-only; ``users`` requests are reading it."""

    identity: FileIdentity
    connection: duckdb.DuckDBPyConnection
    users: int = 0
    retired: bool = False
    _memo: dict[Any, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        """``compute()`` once per snapshot and key (a file never changes once published)."""
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        value = compute()
        with self._lock:
            self._memo.setdefault(key, value)
        return value

    def close(self) -> None:
        self.connection.close()


class SnapshotReader:
    """Hands out cursors on the newest published snapshot of ``path``."""

    def __init__(self, path: str | Path, *, lock_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self._current: Snapshot | None = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """The newest snapshot, held open for the duration of the ``with`` block."""
        snap = self._acquire()
        try:
            yield snap
        finally:
            self._release(snap)

    @contextlib.contextmanager
    def cursor(self, snap: Snapshot) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of ``snap``'s connection: one per thread (DuckDB's rule)."""
        cur = snap.connection.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def close(self) -> None:
        with self._lock:
            if self._current is not None:
                self._current.retired = True
                if self._current.users == 0:
                    self._current.close()
                self._current = None

    def _identity(self) -> FileIdentity:
        if self.path.is_dir():
            raise WarehouseUnavailable(f"warehouse path {self.path} is a directory, not a file")
        try:
            return FileIdentity.of(self.path)
        except FileNotFoundError:
            raise WarehouseUnavailable(
                f"warehouse {self.path} does not exist yet: run `portfolio-pipeline "
                f"materialize` (or `make run`) first"
            ) from None

    def _acquire(self) -> Snapshot:
        identity = self._identity()
        with self._lock:
            current = self._current
            if current is None or current.identity != identity:
                current = self._open(identity)
            current.users += 1
            return current

    def _open(self, identity: FileIdentity) -> Snapshot:
        old = self._current
        alias = self._link()
        if alias is None and old is not None:
            if old.users:
                return old  # no private name: serve the open snapshot until it is free
            old.close()
            old = self._current = None
        target = alias or self.path
        try:
            identity = FileIdentity.of(target)
            con = warehouse.connect(target, lock_timeout=self.lock_timeout)
        except (warehouse.WarehouseError, duckdb.Error, OSError) as exc:
            raise WarehouseUnavailable(f"warehouse {self.path} cannot be read: {exc}") from exc
        finally:
            if alias is not None:
                alias.unlink(missing_ok=True)
        # ``identity`` is the opened inode's: if a run published since the caller's stat, the
        # next request sees the path's newer identity and reopens.
        snap = Snapshot(identity, con)
        self._current = snap
        if old is not None:
            old.retired = True
            if old.users == 0:
                old.close()
        return snap

    def _link(self) -> Path | None:
        alias = self.path.with_name(f"{self.path.name}.{os.getpid()}-{next(_LINKS)}.snapshot")
        try:
            os.link(self.path, alias)
        except FileNotFoundError:
            self._identity()  # raises "does not exist yet"
            raise
        except OSError:
            return None
        return alias

    def _release(self, snap: Snapshot) -> None:
        with self._lock:
            snap.users -= 1
            if snap.retired and snap.users == 0:
                snap.close()
