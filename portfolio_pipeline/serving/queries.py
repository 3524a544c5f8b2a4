"""Warehouse tables -> the API's models (pure, no dagster; parameters bound, never SQL text).

Every reader first checks that its table exists with the columns it reads
(:func:`require`): a warehouse written by an older version of the pipeline gets a
:class:`SchemaMismatch` that names the table and the missing columns, not a SQL error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from typing import Any

import duckdb

from portfolio_pipeline import tables
from portfolio_pipeline.serving import models
from portfolio_pipeline.serving.snapshot import WarehouseUnavailable
from portfolio_pipeline.warehouse import table_exists

# The replayed process that the live recommendations follow (recommendations.processes.PROCESSES).
RECOMMENDED_PROCESS = "recommended"
METRIC_COLUMNS = tuple(
    name for name in models.PerformanceMetrics.model_fields if name not in ("start", "end")
)
RECOMMENDATION_COLUMNS = ("as_of", "generated_at", "run_id", "strategy", "symbol", "action")


class SchemaMismatch(WarehouseUnavailable):
    """A table is missing or lacks columns this server reads (HTTP 503, naming the table)."""


class NotFound(LookupError):
    """Nothing matches the request (HTTP 404); the message says what was looked for."""


def require(cur: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str]) -> None:
    """Fail with a message naming ``table`` unless it exists with every one of ``columns``."""
    if not table_exists(cur, table):
        raise SchemaMismatch(
            f"table {table} does not exist in the warehouse yet: run `portfolio-pipeline "
            f"materialize` (or `make run`) to build it"
        )
    have = {row[0] for row in cur.execute(f"describe {table}").fetchall()}
    missing = [c for c in columns if c not in have]
    if missing:
        raise SchemaMismatch(
            f"table {table} was written by an older version of the pipeline: it lacks "
            f"column(s) {', '.join(missing)}; rerun `portfolio-pipeline materialize` to "
            f"rebuild it"
        )


def clean(value: Any) -> Any:
    """NaN and infinities become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def records(
    cur: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()
) -> list[dict[str, Any]]:
    result = cur.execute(sql, list(params))
    names = [d[0] for d in result.description]
    return [{n: clean(v) for n, v in zip(names, row, strict=True)} for row in result.fetchall()]


def scalar(cur: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> Any:
    """The first column of the first row (None when there is no row)."""
    row = cur.execute(sql, list(params)).fetchone()
    return None if row is None else row[0]


# --------------------------------------------------------------------------- recommendations
def strategies(cur: duckdb.DuckDBPyConnection) -> list[str]:
    """Strategies that have recommendations or backtests (what ``strategy=`` may name)."""
    names: set[str] = set()
    for table in (tables.RECOMMENDATIONS, tables.BACKTEST_METRICS, tables.STRATEGY_VALIDATION):
        if table_exists(cur, table):
            names.update(
                r[0] for r in cur.execute(f"select distinct strategy from {table}").fetchall()
            )
    return sorted(n for n in names if n)


def recommendation_set(
    cur: duckdb.DuckDBPyConnection, *, as_of: date | None = None, strategy: str | None = None
) -> models.RecommendationSet:
    """The newest run (by ``generated_at``) matching ``as_of`` and ``strategy``."""
    require(cur, tables.RECOMMENDATIONS, RECOMMENDATION_COLUMNS)
    filters: list[str] = ["true"]
    params: list[object] = []
    if as_of is not None:
        filters.append("as_of = ?")
        params.append(as_of)
    if strategy is not None:
        filters.append("strategy = ?")
        params.append(strategy)
    latest = cur.execute(
        f"select run_id from {tables.RECOMMENDATIONS} where {' and '.join(filters)} "
        "order by generated_at desc, run_id limit 1",
        params,
    ).fetchone()
    if latest is None:
        wanted = ", ".join(
            f"{k}={v}" for k, v in (("as_of", as_of), ("strategy", strategy)) if v is not None
        )
        raise NotFound(f"no recommendations in {tables.RECOMMENDATIONS} for {wanted or 'any day'}")
    rows = records(
        cur,
        f"select * from {tables.RECOMMENDATIONS} where run_id = ? "
        "order by action = 'HOLD', action, notional desc nulls last, symbol",
        [latest[0]],
    )
    return _recommendation_set(rows)


def _recommendation_set(rows: list[dict[str, Any]]) -> models.RecommendationSet:
    first = rows[0]
    trades = [r for r in rows if r["action"] != "HOLD"]
    value = first.get("portfolio_value")
    traded = sum(abs(r.get("notional") or 0.0) for r in trades)
    fields = set(models.Recommendation.model_fields)
    return models.RecommendationSet(
        run_id=first["run_id"],
        as_of=first["as_of"],
        generated_at=first["generated_at"],
        strategy=first["strategy"],
        process=first.get("process") or RECOMMENDED_PROCESS,
        gate_confidence=first.get("gate_confidence"),
        horizon_days=first.get("horizon_days"),
        cost_bps=first.get("cost_bps"),
        portfolio_value=value,
        trades=len(trades),
        turnover=traded / value if value else 0.0,
        rows=[models.Recommendation.model_validate({k: r.get(k) for k in fields}) for r in rows],
    )


def recommendation_days(cur: duckdb.DuckDBPyConnection) -> list[date]:
    if not table_exists(cur, tables.RECOMMENDATIONS):
        return []
    return [
        r[0]
        for r in cur.execute(
            f"select distinct as_of from {tables.RECOMMENDATIONS} order by as_of"
        ).fetchall()
    ]
