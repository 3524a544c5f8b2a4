"""The read-only commands: ``query``, ``status``, ``recommendations`` (and its track record), ``backtest``."""

from __future__ import annotations

from datetime import date

import polars as pl

from portfolio_pipeline import tables
from portfolio_pipeline.cli.common import (
    CliError,
    print_frame,
    read_only_warehouse,
)
from portfolio_pipeline.settings import Settings


def query(sql: str, settings: Settings, fmt: str = "table") -> int:
    import duckdb

    con = read_only_warehouse(settings)
    try:
        frame = con.execute(sql).pl()
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        if isinstance(exc, duckdb.PermissionException) or "configuration" in first:
            raise CliError(
                f"query refused: `portfolio-pipeline query` is read-only and reaches no file, "
                f"extension or other database ({first})"
            ) from exc
        raise CliError(f"query failed: {first}") from exc
    finally:
        con.close()
    print_frame(frame, fmt)
    return 0


_DATE_COLUMNS = ("date", "as_of", "published_at", "trained_at", "generated_at")


def status(settings: Settings) -> int:
    con = read_only_warehouse(settings)
    try:
        present = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema not in ('information_schema', 'pg_catalog') order by 1, 2"
        ).fetchall()
        rows = []
        for schema, name in present:
            table = f"{schema}.{name}"
            columns = {r[0] for r in con.execute(f"describe {table}").fetchall()}
            date_col = next((c for c in _DATE_COLUMNS if c in columns), None)
            if date_col:
                n, first, last = con.execute(
                    f"select count(*), min({date_col}), max({date_col}) from {table}"
                ).fetchone()
            else:
                n, first, last = (
                    con.execute(f"select count(*) from {table}").fetchone()[0],
                    None,
                    None,
                )
            rows.append(
                {
                    "table": table,
                    "rows": n,
                    "date_column": date_col or "",
                    "first": str(first)[:19] if first is not None else "",
                    "last": str(last)[:19] if last is not None else "",
                }
            )
        print(f"warehouse: {settings.warehouse_path}")
        print_frame(pl.DataFrame(rows) if rows else pl.DataFrame({"table": []}))
        for table, cols in (
            (tables.MODEL_REGISTRY, "model_version, kind, train_end, trained_at"),
            (tables.POLICY_REGISTRY, "policy_id, algorithm, seed, test_sharpe, device, trained_at"),
        ):
            schema, name = table.split(".")
            if (schema, name) in present:
                print(f"\nlatest {table}:")
                print_frame(
                    con.execute(f"select {cols} from {table} order by trained_at desc limit 5").pl()
                )
    finally:
        con.close()
    return 0


def track_record(settings: Settings, fmt: str) -> int:
    """Per evaluated run: trades, hit rate, value added against not trading, running total."""
    from portfolio_pipeline.recommendations import track_record as tr

    con = read_only_warehouse(settings)
    try:
        from portfolio_pipeline.warehouse import table_exists

        if not table_exists(con, tables.RECOMMENDATION_OUTCOMES):
            raise CliError(
                "no track record yet: materialize recommendation_outcomes after a "
                "recommendations run whose horizon has elapsed"
            )
        outcomes = con.execute(f"select * from {tables.RECOMMENDATION_OUTCOMES}").pl()
        pending = con.execute(
            f"select count(distinct run_id) from {tables.RECOMMENDATIONS} where run_id not in "
            f"(select run_id from {tables.RECOMMENDATION_OUTCOMES})"
        ).fetchone()[0]
    finally:
        con.close()
    runs = tr.per_run(outcomes)
    if fmt != "table":
        print_frame(runs, fmt)
        return 0
    print(f"track record: {tr.summarize(outcomes).describe()}; {pending} run(s) still pending")
    print_frame(
        runs.with_columns(
            pl.col("hit_rate").round(3),
            pl.col("value_added").round(2),
            pl.col("value_added_pct").round(5),
            pl.col("cumulative_value_added").round(2),
        )
    )
    return 0


def recommendations(settings: Settings, as_of: str | None, strategy: str | None, fmt: str) -> int:
    con = read_only_warehouse(settings)
    try:
        from portfolio_pipeline.warehouse import table_exists

        if not table_exists(con, tables.RECOMMENDATIONS):
            raise CliError(
                "no recommendations yet: run `portfolio-pipeline materialize` (or `make run`)"
            )
        filters, params = [], []
        if as_of:
            filters.append("as_of = ?")
            params.append(date.fromisoformat(as_of))
        if strategy:
            filters.append("strategy = ?")
            params.append(strategy)
        where = ("where " + " and ".join(filters)) if filters else ""
        latest = con.execute(
            f"select run_id from {tables.RECOMMENDATIONS} {where} "
            "order by generated_at desc limit 1",
            params,
        ).fetchone()
        if not latest:
            raise CliError(f"no recommendations match as_of={as_of} strategy={strategy}")
        frame = con.execute(
            f"select * from {tables.RECOMMENDATIONS} where run_id = ? "
            "order by action = 'HOLD', action, notional desc, symbol",
            [latest[0]],
        ).pl()
    finally:
        con.close()
    if fmt != "table":
        print_frame(frame, fmt)
        return 0
    first = frame.row(0, named=True)
    trades = frame.filter(pl.col("action") != "HOLD")
    print(
        f"recommendations as of {first['as_of']} · strategy {first['strategy']} · "
        f"process {first.get('process') or 'recommended'} · run {first['run_id']} · {trades.height} trade(s), "
        f"{trades['notional'].sum():,.0f} {settings.cash_symbol} notional"
    )
    print_frame(
        frame.select(
            "symbol",
            "action",
            pl.col("current_weight").round(4).alias("current"),
            pl.col("target_weight").round(4).alias("target"),
            pl.col("quantity").round(6),
            pl.col("notional").round(2),
            pl.col("expected_return").round(4).alias("ret_q50"),
            *(
                [pl.col("calibrated_return").round(4).alias("exp_ret")]
                if "calibrated_return" in frame.columns
                else []
            ),
            "reason",
        )
    )
    return 0


def backtest(settings: Settings, fmt: str) -> int:
    con = read_only_warehouse(settings)
    try:
        from portfolio_pipeline.warehouse import table_exists

        if not table_exists(con, tables.BACKTEST_METRICS):
            raise CliError("no backtest yet: materialize the backtest assets first")
        frame = con.execute("select * from portfolio.backtest_metrics order by sharpe desc").pl()
    finally:
        con.close()
    print_frame(frame, fmt)
    return 0
