"""Helpers for tests that materialize slices of the Dagster graph."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from portfolio_pipeline.definitions import build_resources
from portfolio_pipeline.settings import load_settings


def pipeline_resources(warehouse_path: Path, monkeypatch, **env: str) -> dict:
    """The project's resources built from the environment, pointed at ``warehouse_path``
    (and optional env overrides, undone by ``monkeypatch`` after the test)."""
    monkeypatch.setenv("PORTFOLIO_PIPELINE_WAREHOUSE", str(warehouse_path))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return build_resources(load_settings())


def materialize_range(assets, start: str, end: str, resources: dict, **kwargs):
    """Materialize partitioned ``assets`` over ``start..end`` in one run."""
    return dg.materialize(
        assets,
        resources=resources,
        tags={ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end},
        instance=dg.DagsterInstance.ephemeral(),
        **kwargs,
    )
