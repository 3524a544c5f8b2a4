"""Dagster run-tag names this project writes or reads, written once.

A run over a range of daily partitions (one backfill run under ``BackfillPolicy.single_run``)
is requested by tagging the run with the first and last partition keys. Dagster 1.13 exports no
public constant for these tags (they live in the private ``dagster._core.storage.tags``) and
``RunRequest`` takes no partition range, so the strings are named here instead of importing a
private module that may move on any upgrade. The CLI, schedule and alert tests run such range
backfills end to end, so a renamed tag would fail them.
"""

from __future__ import annotations

#: first partition key of a partition-range run
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
#: last partition key of a partition-range run (inclusive)
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
#: the partition key of a single-partition run
PARTITION_TAG = "dagster/partition"
