"""Table DDL, idempotent writes and reads on a warehouse connection (pure, no dagster).

Each ``replace_*`` is one DuckDB transaction: it deletes exactly the rows it replaces and
inserts the new ones, so a rerun of a step never duplicates or loses rows. Columns missing
from an existing table are added, never dropped."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

import duckdb
import polars as pl

from portfolio_pipeline.warehouse.faults import fault_point
from portfolio_pipeline.warehouse.store import WarehouseError, check_ident


def _first_value(row: tuple[Any, ...] | None) -> Any:
    """The first value of a row that the statement always returns (a count, a DELETE's row
    count); DuckDB's ``fetchone`` is typed Optional for statements without rows."""
    assert row is not None, "the statement returned no row"
    return row[0]


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, _, name = check_ident(table).rpartition(".")
    return bool(
        _first_value(
            con.execute(
                "select count(*) from information_schema.tables "
                "where table_schema = ? and table_name = ?",
                [schema or "main", name],
            ).fetchone()
        )
    )


def ensure_table(con: duckdb.DuckDBPyConnection, table: str, ddl_columns: str) -> None:
    """Create ``schema.table`` with the given column DDL when it does not exist."""
    schema, _, _ = check_ident(table).rpartition(".")
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
    check_ident(table)
    with _registered(con, frame) as incoming:
        con.execute("begin transaction")
        try:
            if ddl_columns is not None:
                ensure_table(con, table, ddl_columns)
            else:
                _create_like(con, table, incoming)
            _add_missing_columns(con, table, incoming)
            deleted = _first_value(
                con.execute(f"delete from {table} where {where}", list(params)).fetchone()
            )
            fault_point("in_write", table)
            if frame.height:
                con.execute(f"insert into {table} by name select * from {incoming}")
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    fault_point("after_write", table)
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
    check_ident(table)
    schema, _, _ = table.rpartition(".")
    with _registered(con, frame) as incoming:
        con.execute("begin transaction")
        try:
            if schema:
                con.execute(f"create schema if not exists {schema}")
            con.execute(f"create or replace table {table} as select * from {incoming}")
            fault_point("in_write", table)
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    fault_point("after_write", table)


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
    return con.execute(f"select * from {check_ident(table)}").pl()
