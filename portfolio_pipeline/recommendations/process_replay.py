"""Every candidate process replayed on one footing, the ``recommended`` one chosen on
validation (:mod:`.process_selection`) and the rule's rolling-origin record over the years."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

from portfolio_pipeline.portfolio.strategies import Strategy
from portfolio_pipeline.recommendations.confidence_grid import confidence_grid_table
from portfolio_pipeline.recommendations.process_selection import (
    ProcessChoice,
    choose_process,
    rolling_origin,
)
from portfolio_pipeline.recommendations.processes import (
    PROCESSES,
    ProcessSpec,
    SimulationSettings,
    band_edge_at,
    cost_aware_at,
    gated_at,
)
from portfolio_pipeline.recommendations.replay import simulate_recommendations

MAIN_WINDOWS = ("validation", "test")


@dataclass(frozen=True)
class ProcessReplay:
    """``daily`` (validation and test rows) and ``metrics`` (every window, with the chosen
    process copied as ``recommended`` on validation and test), the gate's confidence ``grid``,
    the ``choice`` and its ``spec``, and the ``rolling`` origin table (one row per year)."""

    daily: pl.DataFrame
    metrics: pl.DataFrame
    grid: pl.DataFrame
    choice: ProcessChoice
    spec: ProcessSpec
    rolling: pl.DataFrame


def replay_and_choose(
    ohlcv: pl.DataFrame,
    strategy: Strategy,
    forecast_backtest: pl.DataFrame | None,
    windows: dict[str, tuple[date, date]],
    *,
    start_weights: dict[str, float] | None,
    start_value: float,
    settings: SimulationSettings,
    candidates: Sequence[ProcessSpec],
    confidence_levels: Sequence[float],
    years: bool = True,
) -> ProcessReplay:
    """Replay ``candidates`` on ``windows`` (and on every calendar year when ``years``),
    choose on ``validation`` and record the rule year by year."""
    specs = {spec.name: spec for spec in candidates}
    yearly = yearly_windows(ohlcv, windows) if years else {}
    result = simulate_recommendations(
        ohlcv,
        strategy,
        forecast_backtest,
        {**windows, **{k: v for k, v in yearly.items() if v not in windows.values()}},
        start_weights=start_weights,
        start_value=start_value,
        settings=settings,
        processes=list(candidates),
    )
    metrics = _with_aliases(result.metrics, windows, yearly)
    metrics = _with_parameters(metrics, specs)
    choice = choose_process(metrics, "validation")
    daily = result.daily.filter(pl.col("window").is_in(MAIN_WINDOWS))
    rolling = rolling_origin(metrics, sorted(int(y) for y in yearly), specs) if yearly else None
    return ProcessReplay(
        daily=_copy_as_recommended(daily, choice.process),
        metrics=_copy_as_recommended(metrics, choice.process, MAIN_WINDOWS),
        grid=confidence_grid_table(metrics, confidence_levels),
        choice=choice,
        spec=specs[choice.process],
        rolling=rolling if rolling is not None else pl.DataFrame(),
    )


def yearly_windows(
    ohlcv: pl.DataFrame, windows: dict[str, tuple[date, date]]
) -> dict[str, tuple[date, date]]:
    """One window per calendar year after the first year of data (the strategies' look-back
    needs it), up to the last date; a partial last year is kept (it is what happened)."""
    dates = ohlcv.get_column("date")
    first, last = dates.min(), dates.max()
    assert isinstance(first, date) and isinstance(last, date)
    out = {}
    for year in range(first.year + 2, last.year + 1):
        out[str(year)] = (date(year, 1, 1), min(date(year, 12, 31), last))
    return out


def _with_aliases(
    metrics: pl.DataFrame,
    windows: dict[str, tuple[date, date]],
    yearly: dict[str, tuple[date, date]],
) -> pl.DataFrame:
    """A year that is exactly a main window (validation = 2023) was replayed once: its rows
    are copied under the year's name."""
    copies = [
        metrics.filter(pl.col("window") == name).with_columns(pl.lit(year).alias("window"))
        for year, span in yearly.items()
        for name, main in windows.items()
        if span == main
    ]
    return pl.concat([metrics, *copies]) if copies else metrics


def _with_parameters(metrics: pl.DataFrame, specs: dict[str, ProcessSpec]) -> pl.DataFrame:
    """Each row's process family and parameters (risk aversion, cost multiplier, confidence,
    band width; null where not used)."""
    table = pl.DataFrame(
        [
            {"process": name, "family": spec.family, **spec.parameters()}
            for name, spec in specs.items()
        ],
        schema={
            "process": pl.Utf8,
            "family": pl.Utf8,
            "risk_aversion": pl.Float64,
            "cost_multiplier": pl.Float64,
            "confidence": pl.Float64,
            "band": pl.Float64,
        },
    )
    return metrics.join(table, on="process", how="left")


def _copy_as_recommended(
    frame: pl.DataFrame, source: str, windows: Sequence[str] | None = None
) -> pl.DataFrame:
    """``frame`` plus the rows of ``source`` (on ``windows``) named ``recommended``, with
    ``source_process`` naming what was chosen."""
    chosen = frame.filter(pl.col("process") == source)
    if windows is not None:
        chosen = chosen.filter(pl.col("window").is_in(list(windows)))
    if chosen.is_empty():
        raise ValueError(f"no simulated process {source!r} to name 'recommended'")
    copy = chosen.with_columns(pl.lit("recommended").alias("process"))
    return pl.concat([copy, frame]).with_columns(
        pl.when(pl.col("process") == "recommended")
        .then(pl.lit(source))
        .otherwise(pl.col("process"))
        .alias("source_process")
    )


def spec_from_row(row: dict) -> ProcessSpec:
    """Rebuild a process from its stored family and parameters (the nightly asset's way of
    following the process the replay chose)."""
    family = row["family"]
    if family == "gated":
        return gated_at(row["confidence"])
    if family == "cost_aware":
        return cost_aware_at(row["risk_aversion"], row["cost_multiplier"], row["confidence"])
    if family == "band_edge":
        return band_edge_at(row["risk_aversion"])
    return PROCESSES[family]
