"""Track record, strategy backtests, the recommendation replay's processes and their equity
curves, read from the warehouse (pure, no dagster)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from portfolio_pipeline import tables
from portfolio_pipeline.recommendations import track_record as track
from portfolio_pipeline.serving import models
from portfolio_pipeline.serving.queries import METRIC_COLUMNS, clean, records, require
from portfolio_pipeline.warehouse import table_exists

WINDOWS = ("validation", "test")
PROCESS_COLUMNS = ("process", "window", "strategy", "start", "end", *METRIC_COLUMNS)


def track_record(cur: duckdb.DuckDBPyConnection) -> models.TrackRecord:
    """Hit rate and value added of past recommendations whose horizon has elapsed."""
    require(cur, tables.RECOMMENDATION_OUTCOMES, tuple(track.OUTCOME_SCHEMA))
    outcomes = cur.execute(f"select * from {tables.RECOMMENDATION_OUTCOMES}").pl()
    summary = track.summarize(outcomes)
    runs = [
        models.TrackRecordRun.model_validate({k: clean(v) for k, v in row.items()})
        for row in track.per_run(outcomes).iter_rows(named=True)
    ]
    return models.TrackRecord(
        runs=summary.runs,
        trades=summary.trades,
        hit_rate=clean(summary.hit_rate),
        value_added=summary.value_added,
        value_added_pct=summary.value_added_pct,
        summary=summary.describe(),
        per_run=runs,
    )


def backtests(
    cur: duckdb.DuckDBPyConnection, *, strategy: str | None = None, window: str | None = None
) -> list[models.StrategyBacktest]:
    """Each strategy's metrics on validation (``strategy_validation``, which picks the
    strategy the recommendations follow) and on test (``backtest_metrics``)."""
    found: list[models.StrategyBacktest] = []
    for name, table in (
        ("validation", tables.STRATEGY_VALIDATION),
        ("test", tables.BACKTEST_METRICS),
    ):
        if window not in (None, name):
            continue
        require(cur, table, ("strategy", "start", "end", *METRIC_COLUMNS))
        selected = "selected_for_recommendations" if name == "validation" else "null"
        rows = records(
            cur,
            f"select *, {selected} as selected_for_recommendations from {table} "
            "where ? is null or strategy = ? order by sharpe desc nulls last",
            [strategy, strategy],
        )
        found += [_model(models.StrategyBacktest, row, window=name) for row in rows]
    return found


def processes(
    cur: duckdb.DuckDBPyConnection, *, window: str | None = None
) -> list[models.ProcessMetrics]:
    """The recommendation replay: each process (recommended, ungated, target, band_5pct,
    never_trade and the gate's confidence grid) on validation and test."""
    require(cur, tables.RECOMMENDATION_BACKTEST_METRICS, PROCESS_COLUMNS)
    rows = records(
        cur,
        f"select * from {tables.RECOMMENDATION_BACKTEST_METRICS} "
        'where ? is null or "window" = ? order by "window" desc, process',
        [window, window],
    )
    return [_model(models.ProcessMetrics, row) for row in rows]


def _model(kind, row: dict, **extra):
    fields = kind.model_fields
    return kind.model_validate({k: v for k, v in {**row, **extra}.items() if k in fields})


@dataclass(frozen=True)
class EquityCurve:
    """One process's equity (starting at 1) on one window, one point per day."""

    process: str
    window: str
    dates: tuple[date, ...]
    equity: tuple[float, ...]


def equity_curves(cur: duckdb.DuckDBPyConnection, *, skip_grid: bool = True) -> list[EquityCurve]:
    """The replay's equity curves by window; the gate's confidence grid (``recommended_cNN``,
    a selection device) is left out unless ``skip_grid`` is False."""
    table = tables.RECOMMENDATION_BACKTEST
    if not table_exists(cur, table):
        return []
    require(cur, table, ("process", "window", "date", "equity"))
    grid = "and process not like 'recommended\\_c%' escape '\\'" if skip_grid else ""
    result = cur.execute(
        f'select process, "window", list(date order by date), list(equity order by date) '
        f"from {table} where equity is not null {grid} group by all "
        f'order by "window" desc, process'
    ).fetchall()
    return [EquityCurve(p, w, tuple(d), tuple(e)) for p, w, d, e in result]
