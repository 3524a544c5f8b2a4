"""Console script ``portfolio-pipeline``: materialize, query, status, recommendations, backtest.

Every command exits non-zero with a one-line reason on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from portfolio_pipeline import tables
from portfolio_pipeline.settings import REPO_ROOT, Settings, load_settings


class CliError(RuntimeError):
    pass


def ensure_dagster_home(settings: Settings) -> Path:
    """Use ``$DAGSTER_HOME`` if set, else ``data/dagster_home`` with the repo's dagster.yaml."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = settings.data_dir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    source = REPO_ROOT / "dagster.yaml"
    target = home / "dagster.yaml"
    if source.exists() and (not target.exists() or target.read_bytes() != source.read_bytes()):
        shutil.copyfile(source, target)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _print_frame(frame: pl.DataFrame, fmt: str = "table") -> None:
    if fmt == "csv":
        sys.stdout.write(frame.write_csv())
    elif fmt == "json":
        sys.stdout.write(json.dumps(frame.to_dicts(), default=str, indent=1) + "\n")
    else:
        with pl.Config(
            tbl_rows=max(frame.height, 1),
            tbl_cols=-1,
            tbl_width_chars=220,
            fmt_str_lengths=110,
            tbl_hide_dataframe_shape=True,
            float_precision=6,
        ):
            print(frame)


# --------------------------------------------------------------------------- materialize
def _parse_day(value: str, partition: str | None, *, last: bool) -> date:
    """A ``YYYY-MM-DD`` day, or a ``YYYY-MM`` month's first (or ``last``) day."""
    try:
        if len(value) == 7:
            first = date.fromisoformat(f"{value}-01")
            return (
                (first + timedelta(days=32)).replace(day=1) - timedelta(days=1) if last else first
            )
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CliError(
            f"--partition {partition!r}: {value!r} is not a YYYY-MM-DD day or a YYYY-MM month"
        ) from exc


def _partition_bounds(settings: Settings, partition: str | None) -> tuple[str, str]:
    """The first and last day asked for (``YYYY-MM-DD``), within the start setting and
    yesterday."""
    if partition and "..." in partition:
        start, end = partition.split("...", 1)
    elif partition:
        start = end = partition
    else:
        start = settings.start_date.isoformat()
        end = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    first, last = _parse_day(start, partition, last=False), _parse_day(end, partition, last=True)
    if first > last:
        raise CliError(f"--partition {partition!r}: start is after end")
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    last = min(last, yesterday) if len(end) == 7 else last  # a month asked for: to date
    if last > yesterday:
        raise CliError(
            f"--partition {partition!r}: {last} is after yesterday ({yesterday} UTC), the newest "
            "complete day"
        )
    if first.replace(day=1) < settings.start_date.replace(day=1):
        raise CliError(
            f"--partition {partition!r}: {first} is before the first partition (the month of "
            f"{settings.start_date}, PORTFOLIO_PIPELINE_START)"
        )
    return first.isoformat(), last.isoformat()


def materialize(
    selection: str, partition: str | None, settings: Settings, log_level: str = "WARNING"
) -> int:
    """Materialize the selection: partitioned assets in one run over the partition range
    (the months holding the days asked for: whole months are re-read, the current one to
    yesterday), then the unpartitioned assets downstream of them in a second run (in
    process)."""
    bounds = _partition_bounds(settings, partition)  # fail fast on a malformed range
    ensure_dagster_home(settings)
    from portfolio_pipeline.core import warehouse, writer_lock

    # One writing run at a time: take the warehouse's writer lock before starting (the runs
    # below take it again in this process), so a run already writing is named up front.
    warehouse.acquire_writer_lock(
        settings.warehouse_path,
        owner=f"portfolio-pipeline materialize --select {selection}",
        on_wait=lambda text: print(f"portfolio-pipeline materialize: {text}", file=sys.stderr),
    )
    try:
        return _materialize_locked(selection, bounds, settings, log_level)
    finally:
        writer_lock.release(settings.warehouse_path)


def _materialize_locked(
    selection: str, bounds: tuple[str, str], settings: Settings, log_level: str
) -> int:
    import dagster as dg

    from portfolio_pipeline.definitions import build_definitions
    from portfolio_pipeline.ingestion.partitions import month_keys
    from portfolio_pipeline.run_tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    defs = build_definitions(settings)  # partitions from these settings, not the import's
    graph = defs.resolve_asset_graph()
    try:
        keys = (
            dg.AssetSelection.from_string(selection).required_multi_asset_neighbors().resolve(graph)
        )
    except Exception as exc:
        raise CliError(f"--select {selection!r}: {exc}") from exc
    if not keys:
        raise CliError(f"--select {selection!r} matches no asset")
    partitioned = sorted(k for k in keys if graph.get(k).is_partitioned)
    unpartitioned = [k for k in graph.toposorted_asset_keys if k in keys and k not in partitioned]
    job = defs.resolve_implicit_global_asset_job_def()
    instance = dg.DagsterInstance.get()
    runs: list[tuple[list, dict[str, str], str]] = []
    if partitioned:
        start, end = bounds
        months = month_keys(date.fromisoformat(start), date.fromisoformat(end))
        tags = {
            ASSET_PARTITION_RANGE_START_TAG: months[0],
            ASSET_PARTITION_RANGE_END_TAG: months[-1],
        }
        label = months[0] if len(months) == 1 else f"{months[0]}...{months[-1]}"
        runs.append((partitioned, tags, f"days {start}...{end}: monthly partitions {label}"))
    if unpartitioned:
        runs.append((unpartitioned, {}, "unpartitioned"))
    for run_keys, tags, label in runs:
        names = ", ".join(k.to_user_string() for k in run_keys)
        print(f"materializing {names} ({label})", flush=True)
        started = time.perf_counter()
        with _bulk_backfill(tags, bounds):
            result = job.execute_in_process(
                instance=instance,
                asset_selection=run_keys,
                tags=tags,
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            )
        took = time.perf_counter() - started
        if not result.success:
            raise CliError(
                f"run {result.run_id} failed after {took:.1f}s: {_failure_reason(result)}"
            )
        _print_step_times(instance, result.run_id)
        print(f"run {result.run_id} succeeded in {took:.1f}s", flush=True)
    return 0


BULK_BACKFILL_DAYS = 31


@contextlib.contextmanager
def _bulk_backfill(tags: dict[str, str], bounds: tuple[str, str]):
    """During a partitioned run over more than a month of days, let the SQLite instance skip
    fsyncs (``PRAGMA synchronous=OFF``, see sqlite_tuning): the run writes a few events per
    month and asset (two per day before the partitions were monthly), and on a slow disk
    those fsyncs were most of a first backfill's time. A
    process crash is still safe; an OS crash or power cut during the backfill may damage the
    SQLite run history under $DAGSTER_HOME (never the DuckDB warehouse). An explicit
    PORTFOLIO_PIPELINE_SQLITE_SYNCHRONOUS is always respected; PostgreSQL is unaffected."""
    from portfolio_pipeline.sqlite_tuning import SYNCHRONOUS_ENV

    start, end = (date.fromisoformat(b) for b in bounds)
    bulk = bool(tags) and (end - start).days + 1 > BULK_BACKFILL_DAYS
    if not bulk or os.environ.get(SYNCHRONOUS_ENV):
        yield
        return
    os.environ[SYNCHRONOUS_ENV] = "OFF"
    try:
        yield
    finally:
        os.environ.pop(SYNCHRONOUS_ENV, None)


def _failure_reason(result) -> str:
    from portfolio_pipeline.operations.alerts import failed_check_lines

    # A blocking check fails its step with only the check's name: show what it found first.
    checks = "".join(f"\n  {line}" for line in failed_check_lines(result.all_events))
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            message = data.user_failure_data.description if data.user_failure_data else None
            if not message and data.error:
                error = data.error
                while error.cause is not None:  # the user's exception, not Dagster's wrapper
                    error = error.cause
                message = error.message.strip()
            return f"step {event.step_key}: {message}{checks}"
    return f"see the run logs (dagster UI or DAGSTER_HOME){checks}"


def _print_step_times(instance, run_id: str) -> None:
    for stats in instance.get_run_step_stats(run_id):
        if stats.start_time and stats.end_time:
            print(f"  {stats.step_key:<28} {stats.end_time - stats.start_time:7.1f}s")


# --------------------------------------------------------------------------- queries
def _read_only(settings: Settings):
    from portfolio_pipeline.core.warehouse import connect

    return connect(settings.warehouse_path, read_only=True)


def query(sql: str, settings: Settings, fmt: str = "table") -> int:
    import duckdb

    con = _read_only(settings)
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
    _print_frame(frame, fmt)
    return 0


_DATE_COLUMNS = ("date", "as_of", "published_at", "trained_at", "generated_at")


def status(settings: Settings) -> int:
    con = _read_only(settings)
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
        _print_frame(pl.DataFrame(rows) if rows else pl.DataFrame({"table": []}))
        for table, cols in (
            (tables.MODEL_REGISTRY, "model_version, kind, train_end, trained_at"),
            (tables.POLICY_REGISTRY, "policy_id, algorithm, seed, test_sharpe, device, trained_at"),
        ):
            schema, name = table.split(".")
            if (schema, name) in present:
                print(f"\nlatest {table}:")
                _print_frame(
                    con.execute(f"select {cols} from {table} order by trained_at desc limit 5").pl()
                )
    finally:
        con.close()
    return 0


def track_record(settings: Settings, fmt: str) -> int:
    """Per evaluated run: trades, hit rate, value added against not trading, running total."""
    from portfolio_pipeline.core import track_record as tr

    con = _read_only(settings)
    try:
        from portfolio_pipeline.core.warehouse import table_exists

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
        _print_frame(runs, fmt)
        return 0
    print(f"track record: {tr.summarize(outcomes).describe()}; {pending} run(s) still pending")
    _print_frame(
        runs.with_columns(
            pl.col("hit_rate").round(3),
            pl.col("value_added").round(2),
            pl.col("value_added_pct").round(5),
            pl.col("cumulative_value_added").round(2),
        )
    )
    return 0


def recommendations(settings: Settings, as_of: str | None, strategy: str | None, fmt: str) -> int:
    con = _read_only(settings)
    try:
        from portfolio_pipeline.core.warehouse import table_exists

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
        _print_frame(frame, fmt)
        return 0
    first = frame.row(0, named=True)
    trades = frame.filter(pl.col("action") != "HOLD")
    print(
        f"recommendations as of {first['as_of']} · strategy {first['strategy']} · "
        f"run {first['run_id']} · {trades.height} trade(s), "
        f"{trades['notional'].sum():,.0f} {settings.cash_symbol} notional"
    )
    _print_frame(
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
    con = _read_only(settings)
    try:
        from portfolio_pipeline.core.warehouse import table_exists

        if not table_exists(con, tables.BACKTEST_METRICS):
            raise CliError("no backtest yet: materialize the backtest assets first")
        frame = con.execute("select * from portfolio.backtest_metrics order by sharpe desc").pl()
    finally:
        con.close()
    _print_frame(frame, fmt)
    return 0


# --------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="portfolio-pipeline",
        description="Dagster portfolio pipeline: materialize assets and query the warehouse.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("materialize", help="materialize assets in process")
    m.add_argument("--select", default="*", help="asset selection, e.g. '*' or 'raw_ohlcv+'")
    m.add_argument(
        "--partition",
        default=None,
        help="for the raw (monthly-partitioned) assets: a day (2024-01-05), a month (2024-01) or "
        "a range (2024-01-05...2024-03-31, 2024-01...2024-03); the months holding those days "
        "are replaced whole (the current month up to yesterday); "
        "default: every month from the configured start to yesterday",
    )
    m.add_argument("--log-level", default="WARNING", help="Dagster console log level")
    q = sub.add_parser("query", help="run read-only SQL against the warehouse")
    q.add_argument("sql")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sub.add_parser("status", help="tables, row counts, date ranges, latest model versions")
    r = sub.add_parser("recommendations", help="latest rebalancing recommendations")
    r.add_argument("--as-of", default=None)
    r.add_argument("--strategy", default=None)
    r.add_argument("--format", choices=("table", "csv", "json"), default="table")
    r.add_argument(
        "--track-record",
        action="store_true",
        help="how past recommendations did once their horizon elapsed (hit rate, value added)",
    )
    b = sub.add_parser("backtest", help="backtest metrics of every strategy")
    b.add_argument("--format", choices=("table", "csv", "json"), default="table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "materialize":
            code = materialize(args.select, args.partition, settings, args.log_level)
        elif args.command == "query":
            code = query(args.sql, settings, args.format)
        elif args.command == "status":
            code = status(settings)
        elif args.command == "recommendations" and args.track_record:
            code = track_record(settings, args.format)
        elif args.command == "recommendations":
            code = recommendations(settings, args.as_of, args.strategy, args.format)
        else:
            code = backtest(settings, args.format)
    except (CliError, ValueError, RuntimeError) as exc:
        print(f"portfolio-pipeline {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
