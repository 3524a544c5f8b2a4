"""Make Dagster's embedded SQLite storage affordable for long single-run backfills.

Dagster's SQLite storages run in WAL mode but keep SQLite's default ``synchronous=FULL``,
which fsyncs on every commit. A single-run backfill of the sample (about 3,400 daily
partitions) writes two events per partition and asset, and on a disk where an fsync costs
~10 ms that bookkeeping alone took minutes. In WAL mode ``synchronous=NORMAL`` is the
setting SQLite recommends: the database cannot be corrupted; at worst the last committed
transactions are lost on a power cut (not on a process crash). PostgreSQL deployments are
unaffected.
"""

from __future__ import annotations

import os
import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine

_installed = False


SYNCHRONOUS_ENV = "PORTFOLIO_PIPELINE_SQLITE_SYNCHRONOUS"
_LEVELS = ("OFF", "NORMAL", "FULL")


def synchronous_level() -> str:
    """``NORMAL`` unless ``PORTFOLIO_PIPELINE_SQLITE_SYNCHRONOUS`` says ``OFF`` or ``FULL``."""
    level = os.environ.get(SYNCHRONOUS_ENV, "").strip().upper() or "NORMAL"
    if level not in _LEVELS:
        raise ValueError(f"{SYNCHRONOUS_ENV}={level!r} is not one of {', '.join(_LEVELS)}")
    return level


def _on_connect(dbapi_connection, _record) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        # Read at every connection (the storages open one per event), so a bulk backfill can
        # switch it for its own duration (cli.materialize).
        dbapi_connection.execute(f"PRAGMA synchronous={synchronous_level()}")


def install() -> None:
    global _installed
    if not _installed:
        event.listen(Engine, "connect", _on_connect)
        _installed = True
