"""The warehouse: one DuckDB file that readers open read-only and runs publish whole.

``store``: read-only snapshot connections and write sessions published by atomic rename
(``writer_lock``: one writer at a time; ``faults``: fault points for the drills); ``frames``:
table DDL and the idempotent ``replace_*`` / ``append_rows`` writes. Import the package
(``from portfolio_pipeline import warehouse``) and call ``warehouse.connection(...)``,
``warehouse.replace_rows(...)``: the names below are its API. ``resources`` holds the Dagster
resource and is not imported here, so the package stays free of dagster.
"""

from portfolio_pipeline.warehouse.frames import (
    append_rows,
    ensure_table,
    read_frame,
    read_table,
    replace_date_window,
    replace_rows,
    replace_table,
    table_exists,
)
from portfolio_pipeline.warehouse.store import (
    WORK_SUFFIX,
    WarehouseError,
    acquire_writer_lock,
    clone_file,
    connect,
    connection,
    leftover_working_copies,
    working_path,
    write_session,
)

__all__ = [
    "WORK_SUFFIX",
    "WarehouseError",
    "acquire_writer_lock",
    "append_rows",
    "clone_file",
    "connect",
    "connection",
    "ensure_table",
    "leftover_working_copies",
    "read_frame",
    "read_table",
    "replace_date_window",
    "replace_rows",
    "replace_table",
    "table_exists",
    "working_path",
    "write_session",
]
