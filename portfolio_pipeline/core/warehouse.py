"""DuckDB warehouse helpers: connections, table DDL and transactional writes.

Pure (no dagster). Every write that replaces data happens inside one transaction, so a
failure half-way leaves the previous rows in place, and re-running a write with the same
input gives the same table (idempotent).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class WarehouseError(RuntimeError):
    """A warehouse operation failed; the message names the table and the reason."""


def _check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise WarehouseError(f"invalid table name {name!r}: expected 'schema.table'")
    return name


def connect(
    path: str | Path, *, read_only: bool = False, lock_timeout: float = 10.0
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file (created when missing unless ``read_only``), in UTC.

    DuckDB lets one process write a file at a time; another process that opens it while a
    step holds it gets a lock error. Steps hold the file for seconds, so opening retries for
    up to ``lock_timeout`` seconds before giving up with a clear error.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise WarehouseError(
            f"warehouse {path} does not exist yet: run `portfolio-pipeline materialize` first"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:  # typically the lock held by a running step
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise WarehouseError(
                    f"cannot open warehouse {path}: {exc} (is a pipeline run writing it?)"
                ) from exc
            time.sleep(0.2)
    con.execute("SET TimeZone = 'UTC'")
    return con


@contextlib.contextmanager
def connection(path: str | Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(path, read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, _, name = _check_ident(table).rpartition(".")
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [schema or "main", name],
        ).fetchone()[0]
    )


def ensure_table(con: duckdb.DuckDBPyConnection, table: str, ddl_columns: str) -> None:
    """Create ``schema.table`` with the given column DDL when it does not exist."""
    schema, _, _ = _check_ident(table).rpartition(".")
    if schema:
        con.execute(f"create schema if not exists {schema}")
    con.execute(f"create table if not exists {table} ({ddl_columns})")


def _create_like(con: duckdb.DuckDBPyConnection, table: str, frame_name: str) -> None:
    schema, _, _ = table.rpartition(".")
    if schema:
        con.execute(f"create schema if not exists {schema}")
    con.execute(f"create table if not exists {table} as select * from {frame_name} limit 0")


def _add_missing_columns(con: duckdb.DuckDBPyConnection, table: str, frame_name: str) -> None:
    existing = {r[0] for r in con.execute(f"describe {table}").fetchall()}
    for name, dtype, *_ in con.execute(f"describe {frame_name}").fetchall():
        if name not in existing:
            con.execute(f'alter table {table} add column "{name}" {dtype}')


@contextlib.contextmanager
def _registered(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> Iterator[str]:
    name = "__incoming_frame"
    con.register(name, frame.to_arrow())
    try:
        yield name
    finally:
        con.unregister(name)


def replace_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pl.DataFrame,
    *,
    where: str,
    params: Sequence[object] = (),
    ddl_columns: str | None = None,
) -> int:
    """Atomically delete the rows matching ``where`` and insert ``frame``.

    The unit of idempotent writes: a partition write deletes its window and inserts its
    rows in one transaction, so a failure leaves the old rows untouched. Returns the number
    of rows deleted.
    """
    _check_ident(table)
    with _registered(con, frame) as incoming:
        con.execute("begin transaction")
        try:
            if ddl_columns is not None:
                ensure_table(con, table, ddl_columns)
            else:
                _create_like(con, table, incoming)
            _add_missing_columns(con, table, incoming)
            deleted = con.execute(f"delete from {table} where {where}", list(params)).fetchone()[0]
            if frame.height:
                con.execute(f"insert into {table} by name select * from {incoming}")
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    return int(deleted)


def replace_date_window(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pl.DataFrame,
    *,
    date_column: str,
    start: date,
    end: date,
    ddl_columns: str | None = None,
) -> int:
    """Replace every row whose ``date_column`` falls in ``[start, end]`` (UTC days)."""
    if frame.height:
        out = frame.filter(
            (pl.col(date_column).cast(pl.Date) < start) | (pl.col(date_column).cast(pl.Date) > end)
        )
        if out.height:
            raise WarehouseError(
                f"{table}: {out.height} incoming rows fall outside the window {start}..{end} "
                f"(first: {out[date_column][0]})"
            )
    return replace_rows(
        con,
        table,
        frame,
        where=f"cast({date_column} as date) between ? and ?",
        params=(start, end),
        ddl_columns=ddl_columns,
    )


def replace_table(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    """Replace the whole table by ``frame`` (schema follows the frame), atomically."""
    _check_ident(table)
    schema, _, _ = table.rpartition(".")
    with _registered(con, frame) as incoming:
        con.execute("begin transaction")
        try:
            if schema:
                con.execute(f"create schema if not exists {schema}")
            con.execute(f"create or replace table {table} as select * from {incoming}")
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise


def append_rows(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    """Append ``frame`` (for history tables: registries, recommendations, risk)."""
    replace_rows(con, table, frame, where="false")


def read_frame(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()
) -> pl.DataFrame:
    return con.execute(sql, list(params)).pl()


def read_table(con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame:
    if not table_exists(con, table):
        raise WarehouseError(
            f"table {table} does not exist yet: materialize its asset first "
            f"(portfolio-pipeline materialize --select ...)"
        )
    return con.execute(f"select * from {_check_ident(table)}").pl()
