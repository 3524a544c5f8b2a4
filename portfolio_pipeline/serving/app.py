"""The FastAPI app: read-only JSON endpoints, the dashboard and ``/metrics`` (pure, no dagster).

:func:`create_app` wires one :class:`AppContext` (config, snapshot reader, run statuses, risk
limits, metrics registry) into the routes of ``routes``. Access: with a token configured,
every path but ``/health`` needs ``Authorization: Bearer <token>`` (compared in constant
time) and answers 401 otherwise; the token is never logged. Errors: a warehouse that cannot
be read, or whose schema is older than this server, answers 503 naming the file or table;
nothing found answers 404; a malformed parameter 422 naming the parameter.
"""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import duckdb
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, disable_created_metrics

from portfolio_pipeline.operations.notifications import RiskLimits
from portfolio_pipeline.serving.config import ServeConfig
from portfolio_pipeline.serving.health import NoRunStatus, RunStatusSource
from portfolio_pipeline.serving.metrics import PipelineCollector, RequestMetrics
from portfolio_pipeline.serving.queries import NotFound
from portfolio_pipeline.serving.snapshot import SnapshotReader, WarehouseUnavailable

OPEN_PATHS = frozenset({"/health"})
# A dashboard section from another report (the market brief of issue 25): given a cursor on
# the snapshot, a (title, HTML) pair, or None to show nothing.
ExtraSection = Callable[[duckdb.DuckDBPyConnection], tuple[str, str] | None]


@dataclass
class AppContext:
    config: ServeConfig
    reader: SnapshotReader
    runs: RunStatusSource
    limits: RiskLimits
    registry: CollectorRegistry
    requests: RequestMetrics
    extra_sections: Sequence[ExtraSection] = field(default_factory=tuple)


def authorized(header: str | None, token: str) -> bool:
    """``header`` is ``Bearer <token>``; compared in constant time."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def create_app(
    config: ServeConfig,
    *,
    runs: RunStatusSource | None = None,
    limits: RiskLimits | None = None,
    extra_sections: Sequence[ExtraSection] = (),
) -> FastAPI:
    from portfolio_pipeline.serving import routes

    disable_created_metrics()  # no *_created series: they double every counter's output
    registry = CollectorRegistry()
    ctx = AppContext(
        config=config,
        reader=SnapshotReader(config.warehouse_path),
        runs=runs or NoRunStatus(),
        limits=limits or RiskLimits.from_env(),
        registry=registry,
        requests=RequestMetrics(registry),
        extra_sections=tuple(extra_sections),
    )
    registry.register(PipelineCollector(ctx.reader, config, ctx.runs, ctx.limits))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        warm_up = getattr(ctx.runs, "warm_up", None)
        if warm_up is not None:
            warm_up()
        yield
        ctx.reader.close()

    app = FastAPI(
        title="portfolio-pipeline",
        summary="Read-only answers of the portfolio pipeline: recommendations, backtests, "
        "risk, forecasts, health and metrics.",
        version="1",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.include_router(routes.router)
    _install_middleware(app, ctx)
    _install_error_handlers(app)
    _document_bearer(app, enabled=bool(config.token))
    return app


def _route_template(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def _install_middleware(app: FastAPI, ctx: AppContext) -> None:
    token = ctx.config.token

    @app.middleware("http")
    async def guard_and_measure(request: Request, call_next) -> Response:
        started = time.perf_counter()
        if (
            token
            and request.url.path not in OPEN_PATHS
            and not authorized(request.headers.get("authorization"), token)
        ):
            response: Response = JSONResponse(
                {"detail": "missing or wrong bearer token (Authorization: Bearer <token>)"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        else:
            response = await call_next(request)
        ctx.requests.observe(
            request.method, _route_template(request), response.status_code,
            time.perf_counter() - started,
        )  # fmt: skip
        return response


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WarehouseUnavailable)
    async def unavailable(_: Request, exc: WarehouseUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)


def _document_bearer(app: FastAPI, *, enabled: bool) -> None:
    """Show the bearer requirement on the OpenAPI page when a token is configured."""
    if not enabled:
        return
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        for path, operations in schema.get("paths", {}).items():
            if path not in OPEN_PATHS:
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
