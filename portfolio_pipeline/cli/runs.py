"""``portfolio-pipeline materialize``: run an asset selection in process, the raw assets by month."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta

from portfolio_pipeline.cli.common import (
    CliError,
    ensure_dagster_home,
)
from portfolio_pipeline.settings import Settings


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


def partition_bounds(settings: Settings, partition: str | None) -> tuple[str, str]:
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
    bounds = partition_bounds(settings, partition)  # fail fast on a malformed range
    ensure_dagster_home(settings)
    from portfolio_pipeline import warehouse
    from portfolio_pipeline.warehouse import writer_lock

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
    from portfolio_pipeline.market.partitions import month_keys
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
        with bulk_backfill(tags, bounds):
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
                f"run {result.run_id} failed after {took:.1f}s: {failure_reason(result)}"
            )
        _print_step_times(instance, result.run_id)
        print(f"run {result.run_id} succeeded in {took:.1f}s", flush=True)
    return 0


BULK_BACKFILL_DAYS = 31


@contextlib.contextmanager
def bulk_backfill(tags: dict[str, str], bounds: tuple[str, str]):
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


def failure_reason(result) -> str:
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
