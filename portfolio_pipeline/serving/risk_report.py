"""Risk (VaR, CVaR, stress tests, limit breaches) and the latest forecasts (pure, no dagster)."""

from __future__ import annotations

from collections import defaultdict

import duckdb
import polars as pl

from portfolio_pipeline import tables
from portfolio_pipeline.operations.notifications import RiskLimits, risk_limit_breaches
from portfolio_pipeline.serving import models
from portfolio_pipeline.serving.queries import NotFound, clean, records, require
from portfolio_pipeline.warehouse import table_exists

RISK_COLUMNS = ("as_of", "portfolio", "metric", "value")
STRESS_COLUMNS = ("as_of", "portfolio", "scenario", "pnl_pct")
FORECAST_COLUMNS = ("as_of", "symbol", "horizon_days", "q10", "q50", "q90")


def risk(cur: duckdb.DuckDBPyConnection, limits: RiskLimits) -> models.Risk:
    """The latest day's risk metrics per portfolio (current, recommended, each strategy's
    target), its stress tests and the current portfolio's limit breaches."""
    require(cur, tables.RISK_METRICS, RISK_COLUMNS)
    latest = cur.execute(
        f"select * from {tables.RISK_METRICS} "
        f"where as_of = (select max(as_of) from {tables.RISK_METRICS})"
    ).pl()
    if latest.is_empty():
        raise NotFound(f"{tables.RISK_METRICS} is empty")
    as_of = latest["as_of"][0]
    by_portfolio: dict[str, dict[str, float | None]] = defaultdict(dict)
    for row in latest.sort("portfolio", "metric").iter_rows(named=True):
        by_portfolio[row["portfolio"]][row["metric"]] = clean(row["value"])
    order = sorted(by_portfolio, key=lambda p: (p.startswith("target:"), p != "current", p))
    breaches = risk_limit_breaches(latest, limits)
    return models.Risk(
        as_of=as_of,
        portfolios=[models.PortfolioRisk(portfolio=p, metrics=by_portfolio[p]) for p in order],
        stress_tests=_stress(cur, as_of),
        limits=dict(limits.limits),
        limited_portfolios=list(limits.portfolios),
        breaches=[
            models.LimitBreach(
                portfolio=b.portfolio, metric=b.metric, value=b.value, limit=b.limit,
                description=b.describe(),
            )
            for b in breaches
        ],
    )  # fmt: skip


def _stress(cur: duckdb.DuckDBPyConnection, as_of) -> list[models.StressResult]:
    if not table_exists(cur, tables.STRESS_TESTS):
        return []
    require(cur, tables.STRESS_TESTS, STRESS_COLUMNS)
    rows = records(
        cur,
        f"select * from {tables.STRESS_TESTS} where as_of = ? "
        "order by portfolio <> 'current', portfolio <> 'recommended', portfolio, scenario",
        [as_of],
    )
    fields = models.StressResult.model_fields
    return [models.StressResult.model_validate({k: r.get(k) for k in fields}) for r in rows]


def latest_risk_frame(cur: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The latest day's ``portfolio.risk_metrics`` rows (empty when there is no table)."""
    if not table_exists(cur, tables.RISK_METRICS):
        return pl.DataFrame()
    require(cur, tables.RISK_METRICS, RISK_COLUMNS)
    return cur.execute(
        f"select * from {tables.RISK_METRICS} "
        f"where as_of = (select max(as_of) from {tables.RISK_METRICS})"
    ).pl()


def forecasts(
    cur: duckdb.DuckDBPyConnection, *, symbol: str | None = None, horizon_days: int | None = None
) -> models.ForecastSet:
    """The newest day's return quantiles per symbol and horizon, with the volatility
    forecast of the same symbol, day and horizon when there is one."""
    require(cur, tables.RETURN_FORECASTS, FORECAST_COLUMNS)
    vol = table_exists(cur, tables.VOLATILITY_FORECASTS)
    join = (
        f"left join {tables.VOLATILITY_FORECASTS} v using (as_of, symbol, horizon_days)"
        if vol
        else ""
    )
    rows = records(
        cur,
        f"select r.*, {'v.vol_forecast' if vol else 'null as vol_forecast'}, "
        f"r.model_version as model_version from {tables.RETURN_FORECASTS} r {join} "
        f"where r.as_of = (select max(as_of) from {tables.RETURN_FORECASTS}) "
        "and (? is null or r.symbol = ?) and (? is null or r.horizon_days = ?) "
        "order by r.horizon_days, r.symbol",
        [symbol, symbol, horizon_days, horizon_days],
    )
    if not rows:
        raise NotFound(
            f"no forecasts in {tables.RETURN_FORECASTS} for symbol={symbol} "
            f"horizon_days={horizon_days}"
        )
    fields = models.Forecast.model_fields
    return models.ForecastSet(
        as_of=rows[0]["as_of"],
        rows=[models.Forecast.model_validate({k: r.get(k) for k in fields}) for r in rows],
    )
