"""How the raw assets are partitioned: one calendar month (UTC) per partition.

Dagster records a few events per partition and asset (planned, materialized, check rows),
and with one partition per day that bookkeeping was nearly all of a first backfill: about
35 ms per day of history, minutes for ten years. A month is 30 times fewer partitions and
still a small unit of replacement: re-materializing a partition re-reads and replaces that
month, and the nightly run refreshes the current month to date (benchmarks/backfill.py).

The partitions start with the month of ``PORTFOLIO_PIPELINE_START`` (read from that day on)
and end with the current month; a run never reads past yesterday (UTC), because a day is
complete only after its close.
The definitions are built from the settings passed to ``build_definitions``; the raw assets
are declared with :data:`DEFAULT_PARTITIONS` (the default start) and re-partitioned there.
"""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from portfolio_pipeline.settings import DEFAULT_START

# Single-run backfills (BackfillPolicy) are marked beta; we rely on them deliberately.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

MONTH_FORMAT = "%Y-%m"


def history_partitions(start: date) -> dg.MonthlyPartitionsDefinition:
    """Monthly partitions keyed ``YYYY-MM`` from the month of ``start`` to the current month
    (``end_offset=1``: the month in progress is a partition, read up to yesterday)."""
    return dg.MonthlyPartitionsDefinition(
        start_date=start.replace(day=1).strftime(MONTH_FORMAT),
        fmt=MONTH_FORMAT,
        timezone="UTC",
        end_offset=1,
    )


DEFAULT_PARTITIONS = history_partitions(DEFAULT_START)


def yesterday_utc() -> date:
    """The newest complete UTC day."""
    return datetime.now(UTC).date() - timedelta(days=1)


def month_key(day: date) -> str:
    """The partition key of the month holding ``day``."""
    return day.strftime(MONTH_FORMAT)


def month_keys(first: date, last: date) -> list[str]:
    """The partition keys of every month from ``first``'s to ``last``'s, in order."""
    keys, month = [], first.replace(day=1)
    while month <= last:
        keys.append(month_key(month))
        month = (month + timedelta(days=32)).replace(day=1)
    return keys


def partition_window(context: dg.AssetExecutionContext, first_day: date) -> tuple[date, date]:
    """First and last UTC day this run reads (one month or a backfill range of months):
    from ``first_day`` (the start setting) at the earliest to yesterday at the latest."""
    window = context.partition_time_window
    start, end = window.start.date(), (window.end - timedelta(days=1)).date()
    start, end = max(start, first_day), min(end, yesterday_utc())
    if end < start:
        keys = context.partition_key_range
        raise dg.Failure(
            f"partition {keys.start}"
            + (f"...{keys.end}" if keys.end != keys.start else "")
            + f" has no complete day yet (first day {start}, newest complete day {end})"
        )
    return start, end


def with_history_partitions(assets: list, start: date) -> list:
    """``assets`` with every asset declared on :data:`DEFAULT_PARTITIONS` (the raw assets)
    re-partitioned from ``start``'s month, the others unchanged: partitions are a
    definition-time fact, so they come from the settings given to ``build_definitions``, not
    from the environment at import."""
    partitions = history_partitions(start)
    if partitions == DEFAULT_PARTITIONS:
        return assets
    return [
        asset.map_asset_specs(lambda spec: spec.replace_attributes(partitions_def=partitions))
        if isinstance(asset, dg.AssetsDefinition) and asset.partitions_def == DEFAULT_PARTITIONS
        else asset
        for asset in assets
    ]
