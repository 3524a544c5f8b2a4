"""The warehouse's writer lock: one writing run at a time, and a message naming the holder.

An exclusive ``flock`` on ``<warehouse>.lock``. The kernel drops it when the holder's process
ends, however it ends (SIGKILL included), so a crash never leaves a stale lock; the file's
text (pid, host, run, command, start time) only serves to name the holder to whoever waits.

Within one process the lock is re-entrant (a count): the CLI takes it for a whole
``materialize`` and the runs it executes in process take it again for their writes.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

LOCK_TIMEOUT_ENV = "PORTFOLIO_PIPELINE_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT_S = 1800.0  # a full run on the sample takes ~6 min on 2 cores
POLL_S = 0.2


class WriterLockError(RuntimeError):
    """The writer lock could not be taken; the message names the holder or the reason."""


def lock_path(warehouse: str | Path) -> Path:
    warehouse = Path(warehouse)
    return warehouse.with_name(warehouse.name + ".lock")


def lock_timeout_from_env() -> float:
    """Seconds a writer waits for the lock (``PORTFOLIO_PIPELINE_LOCK_TIMEOUT``, default 1800)."""
    text = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        value = float(text)
    except ValueError as exc:
        raise WriterLockError(f"{LOCK_TIMEOUT_ENV}={text!r} is not a number of seconds") from exc
    if value < 0 or value != value:
        raise WriterLockError(f"{LOCK_TIMEOUT_ENV}={text!r} must be >= 0 seconds")
    return value


def describe_holder(path: str | Path) -> str:
    """The holder as recorded in the lock file, in words ('unknown' when unreadable)."""
    try:
        info = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return "an unknown process"
    if not info:
        return "an unknown process"
    parts = [f"pid {info.get('pid')} on {info.get('host')}"]
    if info.get("owner"):
        parts.append(str(info["owner"]))
    if info.get("command"):
        parts.append(f"command {info['command']!r}")
    if info.get("since"):
        parts.append(f"since {info['since']}")
    return ", ".join(parts)


@dataclass
class _Held:
    fd: int
    count: int
    owner: str


_HELD: dict[str, _Held] = {}
_GUARD = threading.Lock()


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def acquire(
    warehouse: str | Path,
    *,
    owner: str = "",
    timeout: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Path:
    """Take the writer lock of ``warehouse`` (re-entrant in this process); return its path.

    Parameters
    ----------
    owner : what holds it, in words (``run 1a2b…``), shown to anyone who waits.
    timeout : seconds to wait for another holder; None reads ``PORTFOLIO_PIPELINE_LOCK_TIMEOUT``.
    on_wait : called once with the holder's description when the lock is busy.

    Raises
    ------
    WriterLockError : after ``timeout`` seconds, naming the holder; or when the lock file
        cannot be created (read-only directory, a directory in the way).
    """
    path = lock_path(warehouse)
    key = str(path.resolve())
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:
            held.count += 1
            return path
    timeout = lock_timeout_from_env() if timeout is None else timeout
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise WriterLockError(
            f"cannot create the writer lock {path}: {exc.strerror} (the warehouse directory "
            f"{path.parent} must exist and be writable by the pipeline; nothing was written)"
        ) from exc
    _wait_for_lock(fd, path, warehouse, timeout, on_wait)
    _write_holder(fd, owner)
    with _GUARD:
        _HELD[key] = _Held(fd=fd, count=1, owner=owner)
    return path


def _wait_for_lock(
    fd: int,
    path: Path,
    warehouse: str | Path,
    timeout: float,
    on_wait: Callable[[str], None] | None,
) -> None:
    """Poll until the lock on ``fd`` is ours; after ``timeout`` seconds close ``fd`` and raise
    a :class:`WriterLockError` naming the holder (``on_wait`` hears of it once)."""
    deadline = time.monotonic() + timeout
    told = False
    while not _try_lock(fd):
        holder = describe_holder(path)
        if time.monotonic() >= deadline:
            os.close(fd)
            raise WriterLockError(
                f"warehouse {Path(warehouse)} is being written by another run: {holder} "
                f"(waited {timeout:g} s; {LOCK_TIMEOUT_ENV} sets the wait)"
            )
        if not told and on_wait is not None:
            on_wait(f"waiting for the warehouse writer lock held by {holder}")
            told = True
        time.sleep(POLL_S)


def _write_holder(fd: int, owner: str) -> None:
    """Describe this process in the lock file (pid, host, owner, command, since), for whoever
    waits on it."""
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "owner": owner,
        "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:200]
        if sys.argv
        else "",
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)


def release(warehouse: str | Path) -> None:
    """Give back one hold; the lock is released when the last hold in this process ends."""
    key = str(lock_path(warehouse).resolve())
    with _GUARD:
        held = _HELD.get(key)
        if held is None:
            return
        held.count -= 1
        if held.count > 0:
            return
        del _HELD[key]
    # The text stays: describe_holder is only read while someone holds the flock.
    fcntl.flock(held.fd, fcntl.LOCK_UN)
    os.close(held.fd)


def held_here(warehouse: str | Path) -> bool:
    """Whether this process holds the writer lock of ``warehouse``."""
    with _GUARD:
        return str(lock_path(warehouse).resolve()) in _HELD
