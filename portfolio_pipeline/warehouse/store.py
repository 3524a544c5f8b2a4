"""DuckDB warehouse: snapshot readers and published write sessions (table writes: ``frames``).

Pure (no dagster).

Readers never block writers, and writers never block readers
---------------------------------------------------------------
DuckDB lets one process open a file read-write, and any open read-only connection (a
notebook, ``duckdb -readonly``, a BI tool) blocks that writer. So the pipeline never writes
the published file ``warehouse.duckdb`` in place. A *write session* (:func:`connection`
without ``read_only``):

1. takes the writer lock ``warehouse.duckdb.lock`` (:mod:`.writer_lock`: one writing run at
   a time, and a message naming the holder to whoever waits);
2. copies the published file to a private working copy ``warehouse.duckdb.<pid>-<n>.work``;
3. runs the session's writes there (each ``replace_*`` is one DuckDB transaction);
4. on success: ``CHECKPOINT``, close, ``fsync``, then ``os.replace`` the working copy over the
   published path and ``fsync`` the directory. On any error, or a crash at any point, the
   working copy is discarded and the published file is untouched.

A rename swaps the directory entry only: readers that have the old file open keep reading
that inode, a consistent snapshot, until they close; every connection opened after the
rename sees the new data. A session that wrote nothing publishes nothing.

Readers (:func:`connect`, ``connection(read_only=True)``) open the published file read-only
with ``enable_external_access = false`` and the configuration locked, so SQL can read the
tables and nothing else: no COPY TO, ATTACH, INSTALL/LOAD, file table functions.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb

from portfolio_pipeline.warehouse import writer_lock
from portfolio_pipeline.warehouse.faults import fault_point

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
WORK_SUFFIX = ".work"
_FICLONE = 0x40049409  # Linux ioctl: copy-on-write clone (btrfs, XFS); else a plain copy
_SPACE_MARGIN = (
    2**20
)  # the copy must fit with room to start; a write that outgrows it fails cleanly


class WarehouseError(RuntimeError):
    """A warehouse operation failed; the message names the file or table and the reason."""


def check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise WarehouseError(f"invalid table name {name!r}: expected 'schema.table'")
    return name


_SESSIONS = itertools.count(1)


def working_path(path: str | Path) -> Path:
    """A fresh name for the private working copy of one write session.

    Unique per session (pid and a counter), never reused: DuckDB caches an open database per
    path in a process, so a connection leaked by an earlier session must never be handed
    back for a new working copy (it would still point at the file published since).
    """
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}-{next(_SESSIONS)}{WORK_SUFFIX}")


def leftover_working_copies(path: str | Path) -> list[Path]:
    """Working copies (and their WALs) left next to ``path`` by sessions that crashed."""
    path = Path(path)
    pattern = f"{path.name}.*{WORK_SUFFIX}"
    return sorted([*path.parent.glob(pattern), *path.parent.glob(pattern + ".wal")])


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _check_not_directory(path: Path) -> None:
    if path.is_dir():
        raise WarehouseError(
            f"warehouse path {path} is a directory, not a DuckDB file: point "
            f"PORTFOLIO_PIPELINE_WAREHOUSE at a file (e.g. {path / 'warehouse.duckdb'})"
        )


_STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


def _is_storage_fault(exc: BaseException) -> bool:
    """A failure of the disk under the working copy (not of the session's own logic)."""
    if isinstance(exc, OSError):
        return exc.errno in _STORAGE_ERRNOS
    return isinstance(exc, duckdb.IOException)


def _storage_error(path: Path, doing: str, exc: BaseException) -> WarehouseError:
    reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "space left" in str(exc):
        reason = f"no space left on device in {path.parent}"
    elif isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        reason = f"{path.parent} is not writable ({exc.strerror})"
    return WarehouseError(
        f"warehouse {path}: {doing} failed: {reason}; nothing was published, the stored "
        f"warehouse is unchanged"
    )


def connect(
    path: str | Path, *, read_only: bool = True, lock_timeout: float = 10.0
) -> duckdb.DuckDBPyConnection:
    """Open the published warehouse read-only, in UTC, without access to files or extensions.

    The connection reads a consistent snapshot: the file as published when it was opened.
    It never blocks a pipeline run (runs write a working copy and rename it over the path).
    A process that opened the published file *read-write* (``duckdb`` without
    ``-readonly``) would block it; opening retries for up to ``lock_timeout`` seconds.

    Writes go through :func:`connection` (a write session); ``read_only=False`` is refused.
    """
    if not read_only:
        raise WarehouseError(
            "warehouse.connect opens read-only snapshots; write through "
            "warehouse.connection(path), which publishes its writes atomically"
        )
    path = Path(path)
    _check_not_directory(path)
    if not path.exists():
        raise WarehouseError(
            f"warehouse {path} does not exist yet: run `portfolio-pipeline materialize` first"
        )
    deadline = time.monotonic() + lock_timeout
    while True:
        try:
            con = duckdb.connect(str(path), read_only=True)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise WarehouseError(
                    f"cannot open warehouse {path}: {str(exc).splitlines()[0]} (a process has it "
                    f"open read-write; open it with read_only=True / duckdb -readonly)"
                ) from exc
            time.sleep(0.2)
    con.execute("SET TimeZone = 'UTC'")
    # Set before anything else runs, then frozen: SQL from a user can read tables only.
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


_ACTIVE = threading.local()
_SESSION_GUARD = threading.Lock()
_SESSION_LOCKS: dict[str, threading.Lock] = {}


def _session_lock(key: str) -> threading.Lock:
    with _SESSION_GUARD:
        return _SESSION_LOCKS.setdefault(key, threading.Lock())


def clone_file(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst``: a copy-on-write clone where the file system has them."""
    with open(src, "rb") as source, open(dst, "wb") as target:
        try:
            fcntl.ioctl(target.fileno(), _FICLONE, source.fileno())
            return
        except OSError:
            pass  # no reflink on this file system: copy the bytes
    shutil.copyfile(src, dst)


def _discard(work: Path) -> None:
    for stale in (work, _wal(work)):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def _prepare_working_copy(path: Path) -> Path:
    for stale in leftover_working_copies(path):  # crashed sessions'; we hold the writer lock
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    work = working_path(path)
    if not path.exists():
        return work
    size = path.stat().st_size + (_wal(path).stat().st_size if _wal(path).exists() else 0)
    free = shutil.disk_usage(path.parent).free
    if free < size + _SPACE_MARGIN:
        raise WarehouseError(
            f"warehouse {path}: not enough disk space for the working copy: it needs about "
            f"{(size + _SPACE_MARGIN) / 2**20:.0f} MiB in {path.parent}, {free / 2**20:.0f} MiB "
            f"free; nothing was written, the stored warehouse is unchanged"
        )
    try:
        fault_point("copy")
        clone_file(path, work)
        if _wal(path).exists():  # a legacy in-place writer's log: replay it in the copy
            clone_file(_wal(path), _wal(work))
    except OSError as exc:
        _discard(work)
        raise _storage_error(path, "copying the published file to the working copy", exc) from exc
    return work


_HEADER_BYTES = 3 * 4096  # DuckDB's file header and its two alternating database headers


def _fingerprint(work: Path) -> tuple[int, bytes, int]:
    """What changes when a session writes: a committed write lands in the WAL, and a
    checkpoint (automatic for large writes) rewrites a database header (its iteration
    count). Exact where a timestamp could miss a change within its resolution."""
    with open(work, "rb") as db:
        header = db.read(_HEADER_BYTES)
    wal = _wal(work)
    return work.stat().st_size, header, wal.stat().st_size if wal.exists() else 0


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(work: Path, path: Path) -> None:
    try:
        fault_point("publish")
        _fsync(work)
        with contextlib.suppress(FileNotFoundError):
            _wal(path).unlink()  # a legacy log must not be replayed onto the new file
        os.replace(work, path)
    except OSError as exc:
        _discard(work)
        raise _storage_error(path, "publishing the working copy", exc) from exc
    # Published: the rename is visible to every new reader. Flushing the directory makes it
    # survive a power cut; a file system that cannot fsync a directory still has a
    # consistent file, old or new.
    with contextlib.suppress(OSError):
        _fsync(path.parent)


def acquire_writer_lock(
    path: str | Path,
    *,
    owner: str = "",
    timeout: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> None:
    """Take the writer lock of the warehouse at ``path`` (see :mod:`.writer_lock`).

    Release it with ``writer_lock.release(path)``. Raises :class:`WarehouseError` naming the
    holder after ``timeout`` seconds, or when the path or its directory cannot be written.
    """
    path = Path(path)
    _check_not_directory(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer_lock.acquire(path, owner=owner, timeout=timeout, on_wait=on_wait)
    except writer_lock.WriterLockError as exc:
        raise WarehouseError(str(exc)) from exc
    except OSError as exc:
        raise _storage_error(path, "creating the warehouse directory", exc) from exc


def _connect_working_copy(path: Path, work: Path) -> duckdb.DuckDBPyConnection:
    """A UTC connection to the working copy ``work`` of ``path``; on failure the copy is
    discarded and the error names the warehouse."""
    try:
        con = duckdb.connect(str(work))
        con.execute("SET TimeZone = 'UTC'")
    except (duckdb.Error, OSError) as exc:
        _discard(work)
        raise _storage_error(path, "opening the working copy", exc) from exc
    return con


def _checkpoint_and_publish(
    path: Path, work: Path, con: duckdb.DuckDBPyConnection, before: tuple[int, bytes, int]
) -> None:
    """Checkpoint and close the session's connection, then publish the working copy over
    ``path`` if the session changed it (else discard it)."""
    try:
        changed = _fingerprint(work) != before
        con.execute("CHECKPOINT")
        con.close()
    except (duckdb.Error, OSError) as exc:
        with contextlib.suppress(Exception):
            con.close()
        _discard(work)
        raise _storage_error(path, "checkpointing the working copy", exc) from exc
    if changed:
        _publish(work, path)
    else:
        _discard(work)


@contextlib.contextmanager
def write_session(
    path: str | Path,
    *,
    lock_timeout: float | None = None,
    owner: str = "",
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to a working copy, published atomically when the block ends.

    See the module docstring. ``owner`` and ``on_wait`` go to :func:`writer_lock.acquire`;
    ``lock_timeout`` None reads ``PORTFOLIO_PIPELINE_LOCK_TIMEOUT`` (default 1800 s).

    Raises
    ------
    WarehouseError : the path is a directory, the directory is read-only, the disk is full,
        another run holds the writer lock past ``lock_timeout`` (naming it), or a session on
        the same file is already open in this thread. The stored warehouse is then unchanged.
    """
    path = Path(path)
    _check_not_directory(path)
    key = str(path.resolve())
    active: set[str] = _ACTIVE.__dict__.setdefault("paths", set())
    if key in active:
        raise WarehouseError(
            f"warehouse {path}: a write session is already open in this thread; use its "
            f"connection (a nested session would publish over the outer one's writes)"
        )
    with _session_lock(key):
        acquire_writer_lock(path, owner=owner, timeout=lock_timeout, on_wait=on_wait)
        active.add(key)
        try:
            work = _prepare_working_copy(path)
            con = _connect_working_copy(path, work)
            before = _fingerprint(work)
            try:
                yield con
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    con.close()
                _discard(work)
                if _is_storage_fault(exc):
                    raise _storage_error(path, "writing the working copy", exc) from exc
                raise
            _checkpoint_and_publish(path, work, con, before)
        finally:
            active.discard(key)
            writer_lock.release(path)


@contextlib.contextmanager
def connection(
    path: str | Path,
    *,
    read_only: bool = False,
    lock_timeout: float | None = None,
    owner: str = "",
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only snapshot (``read_only=True``) or a published write session (default)."""
    if read_only:
        con = connect(path, read_only=True)
        try:
            yield con
        finally:
            con.close()
        return
    with write_session(path, lock_timeout=lock_timeout, owner=owner, on_wait=on_wait) as con:
        yield con
