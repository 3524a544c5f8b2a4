"""The endpoints (pure, no dagster). Every one reads the newest published snapshot, accepts
typed parameters only (never SQL) and is documented on the OpenAPI page (``/docs``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Annotated, Literal, TypeVar

import duckdb
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from portfolio_pipeline.serving import (
    brief,
    dashboard,
    health,
    models,
    performance,
    queries,
    risk_report,
)
from portfolio_pipeline.serving.app import AppContext
from portfolio_pipeline.serving.snapshot import Snapshot, WarehouseUnavailable

T = TypeVar("T")
router = APIRouter()
ERRORS: dict[int | str, dict] = {
    404: {"model": models.Problem, "description": "nothing matches"},
    503: {"model": models.Problem, "description": "warehouse missing or from an older schema"},
}
Window = Annotated[
    Literal["validation", "test"] | None, Query(description="validation or test window")
]


def context(request: Request) -> AppContext:
    return request.app.state.ctx


class Reading:
    """One request's view of the newest snapshot: a cursor and the snapshot's memo."""

    def __init__(self, snap: Snapshot, cur: duckdb.DuckDBPyConnection) -> None:
        self.snap, self.cur = snap, cur

    def memo(self, key: tuple, compute: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        return self.snap.memo(key, lambda: compute(self.cur))


def reading(ctx: Annotated[AppContext, Depends(context)]) -> Iterator[Reading]:
    with ctx.reader.snapshot() as snap, ctx.reader.cursor(snap) as cur:
        yield Reading(snap, cur)


Read = Annotated[Reading, Depends(reading)]


def known_strategy(
    read: Read,
    strategy: Annotated[str | None, Query(description="a strategy name, e.g. hrp")] = None,
) -> str | None:
    """422 naming ``strategy`` when no recommendation or backtest knows it."""
    if strategy is None:
        return None
    names = read.memo(("strategies",), queries.strategies)
    if strategy not in names:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "strategy"), "input": strategy,
              "msg": f"unknown strategy {strategy!r}; known: {', '.join(names) or 'none yet'}"}]
        )  # fmt: skip
    return strategy


Strategy = Annotated[str | None, Depends(known_strategy)]


@router.get(
    "/health",
    response_model=models.Health,
    responses={503: {"model": models.Health, "description": "stale data or no warehouse"}},
    summary="Freshness of the data and the recommendations; the last nightly run",
)
def get_health(ctx: Annotated[AppContext, Depends(context)], response: Response) -> models.Health:
    """503 when a live source's data is older than the freshness limit, or when there is no
    readable warehouse (``reason`` says why). Open without a token."""
    try:
        with ctx.reader.snapshot() as snap, ctx.reader.cursor(snap) as cur:
            report = health.health(
                cur, ctx.config, ctx.runs, published_at=snap.identity.modified_at
            )
    except WarehouseUnavailable as exc:
        report = models.Health(
            status="unavailable", reason=str(exc), checked_at=datetime.now(UTC),
            freshness_limit_seconds=ctx.config.max_data_age.total_seconds(),
            last_nightly_run=health.nightly_status(ctx.runs),
        )  # fmt: skip
    if report.status != "ok":
        response.status_code = 503
    return report


@router.get("/recommendations/latest", response_model=models.RecommendationSet, responses=ERRORS)
def latest_recommendations(read: Read, strategy: Strategy = None) -> models.RecommendationSet:
    """The newest run of ``portfolio.recommendations`` (of ``strategy`` when given)."""
    return read.memo(
        ("recommendations", None, strategy),
        lambda cur: queries.recommendation_set(cur, strategy=strategy),
    )


@router.get("/recommendations", response_model=models.RecommendationSet, responses=ERRORS)
def recommendations_on(
    read: Read,
    as_of: Annotated[date, Query(description="decision day, YYYY-MM-DD")],
    strategy: Strategy = None,
) -> models.RecommendationSet:
    """The newest run issued for the close of ``as_of``."""
    return read.memo(
        ("recommendations", as_of, strategy),
        lambda cur: queries.recommendation_set(cur, as_of=as_of, strategy=strategy),
    )


@router.get("/recommendations/track-record", response_model=models.TrackRecord, responses=ERRORS)
def track_record(read: Read) -> models.TrackRecord:
    """Past recommendations whose horizon has elapsed: hit rate and value added per run."""
    return read.memo(("track-record",), performance.track_record)


@router.get("/brief/latest", response_model=brief.MarketBrief, responses=ERRORS)
def latest_brief(
    read: Read,
    run_id: Annotated[str | None, Query(description="a recommendation run id")] = None,
) -> brief.MarketBrief:
    """The market brief of the newest recommendation run (or of ``run_id``): its text, the
    writer (the template or a local model) and why a generated brief was rejected."""
    return read.memo(("brief", run_id), lambda cur: brief.latest_brief(cur, run_id))


@router.get("/backtests", response_model=list[models.StrategyBacktest], responses=ERRORS)
def backtests(read: Read, strategy: Strategy = None, window: Window = None):
    """Every strategy's walk-forward backtest metrics on validation and test."""
    return read.memo(
        ("backtests", strategy, window),
        lambda cur: performance.backtests(cur, strategy=strategy, window=window),
    )


@router.get("/processes", response_model=list[models.ProcessMetrics], responses=ERRORS)
def processes(read: Read, window: Window = None):
    """The recommendation replay's metrics per process (recommended, ungated, target,
    band_5pct, never_trade, the gate's confidence grid) and window."""
    return read.memo(("processes", window), lambda cur: performance.processes(cur, window=window))


@router.get("/risk", response_model=models.Risk, responses=ERRORS)
def risk(read: Read, ctx: Annotated[AppContext, Depends(context)]) -> models.Risk:
    """VaR, CVaR, drawdown and stress tests of the current, recommended and target
    portfolios on the latest day, and the current portfolio's limit breaches."""
    return read.memo(("risk",), lambda cur: risk_report.risk(cur, ctx.limits))


@router.get("/forecasts/latest", response_model=models.ForecastSet, responses=ERRORS)
def forecasts(
    read: Read,
    symbol: Annotated[str | None, Query(pattern=r"^[A-Z0-9]{1,20}$")] = None,
    horizon_days: Annotated[int | None, Query(ge=1, le=366)] = None,
) -> models.ForecastSet:
    """The newest return quantiles (q10, q50, q90) per symbol and horizon."""
    return read.memo(
        ("forecasts", symbol, horizon_days),
        lambda cur: risk_report.forecasts(cur, symbol=symbol, horizon_days=horizon_days),
    )


@router.get("/metrics", include_in_schema=True, response_class=Response)
def metrics(ctx: Annotated[AppContext, Depends(context)]) -> Response:
    """Prometheus text format: freshness, runs, trades, risk, breaches, API requests."""
    return Response(generate_latest(ctx.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/", response_class=HTMLResponse, summary="The one-page dashboard")
def page(ctx: Annotated[AppContext, Depends(context)]) -> HTMLResponse:
    try:
        with ctx.reader.snapshot() as snap, ctx.reader.cursor(snap) as cur:
            data = _dashboard_data(ctx, Reading(snap, cur), snap)
    except WarehouseUnavailable as exc:
        return HTMLResponse(f"<!doctype html><p>warehouse unavailable: {exc}</p>", status_code=503)
    return HTMLResponse(dashboard.render_dashboard(data))


def _dashboard_data(ctx: AppContext, read: Reading, snap: Snapshot) -> dashboard.DashboardData:
    expected = (queries.SchemaMismatch, queries.NotFound)
    cur = read.cur
    extra = [s for s in (make(cur) for make in ctx.extra_sections) if s is not None]
    return dashboard.DashboardData(
        health=health.health(cur, ctx.config, ctx.runs, published_at=snap.identity.modified_at),
        recommendations=dashboard.section(
            lambda: read.memo(("recommendations", None, None), queries.recommendation_set),
            expected,
        ),
        curves=dashboard.section(
            lambda: read.memo(("curves",), performance.equity_curves), expected
        ),
        track_record=dashboard.section(
            lambda: read.memo(("track-record",), performance.track_record), expected
        ),
        risk=dashboard.section(
            lambda: read.memo(("risk",), lambda c: risk_report.risk(c, ctx.limits)), expected
        ),
        extra_sections=extra,
    )
