"""The gate's confidence level chosen on the validation window: the gated process replayed at
each level of a grid, next to the comparison processes, in one pass."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

from portfolio_pipeline.portfolio.strategies import Strategy
from portfolio_pipeline.recommendations.processes import (
    DEFAULT_CONFIDENCE_GRID,
    PROCESS_NAMES,
    SimulationSettings,
    gated_at,
)
from portfolio_pipeline.recommendations.replay import SimulationResult, simulate_recommendations


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


@dataclass(frozen=True)
class ConfidenceReplay:
    """The replay as the asset stores it: ``daily`` and ``metrics`` with the chosen level's
    process named ``recommended`` (grid levels kept as ``recommended_cNN``), the validation
    ``grid`` (one row per level, ``selected``) and the ``confidence`` in force."""

    daily: pl.DataFrame
    metrics: pl.DataFrame
    grid: pl.DataFrame
    confidence: float


def replay_with_confidence_grid(
    ohlcv: pl.DataFrame,
    strategy: Strategy,
    forecast_backtest: pl.DataFrame | None,
    windows: dict[str, tuple[date, date]],
    *,
    start_weights: dict[str, float] | None,
    start_value: float,
    settings: SimulationSettings,
    levels: Sequence[float] = DEFAULT_CONFIDENCE_GRID,
    configured_confidence: float | None = None,
) -> ConfidenceReplay:
    """Replay every comparison process and the gated one at each confidence level, in one
    pass, then choose the level on the ``validation`` window (best Sharpe, ties to the
    stricter level) unless ``configured_confidence`` is given."""
    levels = sorted({*levels, *([configured_confidence] if configured_confidence else [])})
    others = [name for name in PROCESS_NAMES if name != "recommended"]
    result = simulate_recommendations(
        ohlcv,
        strategy,
        forecast_backtest,
        windows,
        start_weights=start_weights,
        start_value=start_value,
        settings=settings,
        processes=[*(gated_at(c) for c in levels), *others],
    )
    grid = confidence_grid_table(result.metrics, levels)
    confidence = configured_confidence or select_confidence(grid)
    daily, metrics = name_recommended(result, confidence)
    grid = grid.with_columns((pl.col("confidence") == confidence).alias("selected"))
    return ConfidenceReplay(daily, metrics, grid, confidence)
