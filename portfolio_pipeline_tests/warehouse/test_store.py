from datetime import date

import polars as pl
import pytest

from portfolio_pipeline import warehouse


def _frame(days, value):
    return pl.DataFrame({"symbol": ["A"] * len(days), "date": days, "close": [value] * len(days)})


def test_replace_date_window_is_idempotent_and_scoped(tmp_warehouse):
    days = [date(2024, 1, d) for d in range(1, 6)]
    with warehouse.connection(tmp_warehouse) as con:
        warehouse.replace_date_window(
            con, "m.t", _frame(days, 1.0), date_column="date", start=days[0], end=days[-1]
        )
        # re-writing days 2..3 replaces exactly those rows
        for _ in range(2):
            deleted = warehouse.replace_date_window(
                con, "m.t", _frame(days[1:3], 2.0), date_column="date", start=days[1], end=days[2]
            )
            assert deleted == 2
        got = con.execute("select date, close from m.t order by date").fetchall()
    assert [c for _, c in got] == [1.0, 2.0, 2.0, 1.0, 1.0]


def test_failed_write_leaves_previous_rows(tmp_warehouse):
    with warehouse.connection(tmp_warehouse) as con:
        warehouse.replace_rows(
            con,
            "m.t",
            _frame([date(2024, 1, 1)], 1.0),
            where="true",
            ddl_columns="symbol VARCHAR, date DATE, close DOUBLE NOT NULL",
        )
        bad = pl.DataFrame(
            {"symbol": ["A"], "date": [date(2024, 1, 1)], "close": [None]},
            schema={"symbol": pl.Utf8, "date": pl.Date, "close": pl.Float64},
        )
        with pytest.raises(Exception, match="NOT NULL"):
            warehouse.replace_rows(con, "m.t", bad, where="true")
        assert con.execute("select close from m.t").fetchall() == [(1.0,)]


def test_rows_outside_window_are_refused(tmp_warehouse):
    with (
        warehouse.connection(tmp_warehouse) as con,
        pytest.raises(warehouse.WarehouseError, match="outside the window"),
    ):
        warehouse.replace_date_window(
            con,
            "m.t",
            _frame([date(2024, 2, 1)], 1.0),
            date_column="date",
            start=date(2024, 1, 1),
            end=date(2024, 1, 31),
        )


def test_read_only_on_missing_file_names_the_fix(tmp_warehouse):
    with pytest.raises(warehouse.WarehouseError, match="materialize"):
        warehouse.connect(tmp_warehouse, read_only=True)


def test_append_keeps_history(tmp_warehouse):
    with warehouse.connection(tmp_warehouse) as con:
        warehouse.append_rows(con, "h.t", _frame([date(2024, 1, 1)], 1.0))
        warehouse.append_rows(con, "h.t", _frame([date(2024, 1, 1)], 2.0))
        assert con.execute("select count(*) from h.t").fetchone()[0] == 2
