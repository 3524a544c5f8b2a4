from __future__ import annotations

import warnings
from datetime import date, timedelta

import dagster as dg

from portfolio_pipeline.settings import load_settings

# Single-run backfills (BackfillPolicy) are marked beta; we rely on them deliberately.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

# One UTC day per partition, up to yesterday (a day is complete only after its close).
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=load_settings().start_date.isoformat(), timezone="UTC", end_offset=0
)


def partition_window(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """First and last UTC day covered by this run (one partition or a backfill range)."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()
