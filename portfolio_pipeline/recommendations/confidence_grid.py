"""The gate's confidence level chosen on the validation window: the gated process replayed at
each level of a grid, next to the comparison processes, in one pass."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from portfolio_pipeline.recommendations.processes import (
    gated_at,
)
from portfolio_pipeline.recommendations.replay import SimulationResult


def confidence_grid_table(metrics: pl.DataFrame, levels: Sequence[float]) -> pl.DataFrame:
    """Validation-window metrics of the recommended process at each gate confidence level."""
    names = {gated_at(c).name: c for c in levels}
    rows = metrics.filter((pl.col("window") == "validation") & pl.col("process").is_in(list(names)))
    return rows.with_columns(
        pl.col("process").replace_strict(names, return_dtype=pl.Float64).alias("confidence")
    ).sort("confidence")


def select_confidence(grid: pl.DataFrame, metric: str = "sharpe") -> float:
    """The level with the best validation ``metric``; ties go to the higher (stricter) level."""
    usable = grid.filter(pl.col(metric).is_not_null() & pl.col(metric).is_not_nan())
    if usable.is_empty():
        raise ValueError(f"gate confidence: every level has an undefined validation {metric}")
    best = usable.sort([metric, "confidence"], descending=[True, True]).row(0, named=True)
    return float(best["confidence"])


def name_recommended(
    result: SimulationResult, confidence: float
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Copy the grid process at ``confidence`` under the name ``recommended`` (daily, metrics)."""
    source = gated_at(confidence).name

    def with_copy(frame: pl.DataFrame) -> pl.DataFrame:
        chosen = frame.filter(pl.col("process") == source)
        if chosen.is_empty():
            raise ValueError(f"no simulated process {source!r} to name 'recommended'")
        return pl.concat([chosen.with_columns(pl.lit("recommended").alias("process")), frame])

    return with_copy(result.daily), with_copy(result.metrics)
