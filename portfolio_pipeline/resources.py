"""Resources shared by every concern: the DuckDB warehouse."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
import duckdb

from portfolio_pipeline.core import warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file every asset reads and writes (one file, UTC)."""

    path: str

    @contextlib.contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connection(self.path, read_only=read_only) as con:
            yield con
