"""``portfolio-pipeline serve``: the read-only API, dashboard and metrics under uvicorn.

It refuses to start on a non-loopback host without ``PORTFOLIO_PIPELINE_API_TOKEN``
(``serving.config``). Run statuses come from the Dagster instance at ``$DAGSTER_HOME``, or
from the project's default ``data/dagster_home`` when it exists (it is never created here).
"""

from __future__ import annotations

import os

from portfolio_pipeline.settings import Settings


def build_app(settings: Settings, host: str | None = None, port: int | None = None):
    """The configured app and its config (the exposure check done)."""
    from portfolio_pipeline.serving.app import create_app
    from portfolio_pipeline.serving.brief import brief_section
    from portfolio_pipeline.serving.config import load_serve_config
    from portfolio_pipeline.serving.dagster_runs import DagsterRunStatus

    config = load_serve_config(settings, host=host, port=port)
    config.check_exposure()
    default_home = settings.data_dir / "dagster_home"
    if not os.environ.get("DAGSTER_HOME") and (default_home / "dagster.yaml").exists():
        os.environ["DAGSTER_HOME"] = str(default_home)
    return create_app(config, runs=DagsterRunStatus(), extra_sections=[brief_section]), config


def serve(settings: Settings, host: str | None, port: int | None, log_level: str = "info") -> int:
    import uvicorn

    app, config = build_app(settings, host, port)
    auth = "bearer token required" if config.token else "no token (loopback only)"
    print(
        f"serving {config.warehouse_path} on http://{config.host}:{config.port} ({auth}); "
        f"dashboard /, API docs /docs, metrics /metrics",
        flush=True,
    )
    uvicorn.run(app, host=config.host, port=config.port, log_level=log_level.lower())
    return 0
