"""Helpers for tests that materialize slices of the Dagster graph."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import dagster as dg

from portfolio_pipeline.definitions import build_resources
from portfolio_pipeline.run_tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from portfolio_pipeline.settings import Settings, load_settings


def settings_for_tests(warehouse_path: Path, **overrides) -> Settings:
    """The default settings pointed at ``warehouse_path``, with ``overrides`` of
    :class:`Settings` fields: tests pass settings, they do not steer through the environment."""
    return replace(load_settings(), warehouse_path=Path(warehouse_path), **overrides)


def pipeline_resources(warehouse_path: Path, **overrides) -> dict:
    """The project's resources built from :func:`settings_for_tests`."""
    return build_resources(settings_for_tests(warehouse_path, **overrides))


def materialize_range(assets, start: str, end: str, resources: dict, **kwargs):
    """Materialize partitioned ``assets`` over the months ``start..end`` (``YYYY-MM``
    partition keys) in one run."""
    return dg.materialize(
        assets,
        resources=resources,
        tags={ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end},
        instance=dg.DagsterInstance.ephemeral(),
        **kwargs,
    )


def risk_rows(
    as_of: date, values: dict[tuple[str, str], float], generated_at: datetime | None = None
):
    """Rows of ``portfolio.risk_metrics`` (as_of, portfolio, metric, value[, generated_at])."""
    import polars as pl

    frame = pl.DataFrame(
        {
            "as_of": [as_of] * len(values),
            "portfolio": [p for p, _ in values],
            "metric": [m for _, m in values],
            "value": list(values.values()),
        }
    )
    if generated_at is not None:
        frame = frame.with_columns(pl.lit(generated_at).alias("generated_at"))
    return frame


def walk_forward_like_forecasts(ohlcv, signal: float, *, horizon: int = 8, start=None, seed=0):
    """Forecasts shaped like ``ml.forecast_backtest`` whose median is ``signal`` x the log
    return that followed plus noise: a stand-in with a KNOWN information content (1 = knows
    the future, 0 = pure noise) for testing what consumes forecasts. Not a model."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    frame = ohlcv.sort("symbol", "date").with_columns(
        (pl.col("close").shift(-horizon).over("symbol") / pl.col("close")).log().alias("realized")
    )
    if start is not None:
        frame = frame.filter(pl.col("date") >= start)
    median = signal * frame["realized"].fill_null(0.0).to_numpy() + rng.normal(
        0, 0.05, frame.height
    )
    return frame.select(
        pl.col("date").alias("as_of"),
        "symbol",
        pl.lit(horizon).alias("horizon_days"),
        pl.lit(0).alias("fold"),
        pl.Series("q10", median - 0.2),
        pl.Series("q50", median),
        pl.Series("q90", median + 0.2),
        "realized",
    )
