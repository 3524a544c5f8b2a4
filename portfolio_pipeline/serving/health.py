"""Freshness of the data and of the recommendations, and the nightly run's outcome (pure).

A source is stale when it is live (``config.LIVE_*_SOURCES``) and its newest data is older
than the freshness limit: the rule of the freshness check and sensor
(``operations.notifications.assess_freshness``). The sample and files sources are snapshots,
exempt, so a warehouse built from the sample is never stale. Run statuses come from a
:class:`RunStatusSource` (``serving.dagster_runs`` reads the Dagster instance).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

import duckdb

from portfolio_pipeline import tables
from portfolio_pipeline.operations.notifications import Freshness, assess_freshness
from portfolio_pipeline.serving import models
from portfolio_pipeline.serving.config import ServeConfig
from portfolio_pipeline.serving.queries import scalar
from portfolio_pipeline.warehouse import table_exists

# The job whose last run /health reports (operations.jobs.DAILY_REFRESH_JOB; a test checks it
# here, where the name can be read without importing dagster).
NIGHTLY_JOB = "daily_refresh_job"


class RunStatusSource(Protocol):
    """Where the last runs' outcomes come from."""

    @property
    def nightly_job(self) -> str:
        """The job whose last run ``/health`` reports."""
        ...

    def latest_runs(self) -> list[models.RunStatus]:
        """The latest run of each job (empty when unknown)."""
        ...

    def unknown_reason(self) -> str | None:
        """Why run statuses are unknown (no instance, no runs), or None."""
        ...


@dataclass(frozen=True)
class NoRunStatus:
    """No Dagster instance is read: every status is unknown, for ``reason``."""

    reason: str = "no Dagster instance configured for this server"
    nightly_job: str = NIGHTLY_JOB

    def latest_runs(self) -> list[models.RunStatus]:
        return []

    def unknown_reason(self) -> str | None:
        return self.reason


def nightly_status(runs: RunStatusSource) -> models.RunStatus:
    for status in runs.latest_runs():
        if status.job == runs.nightly_job:
            return status
    reason = runs.unknown_reason() or f"no run of {runs.nightly_job} recorded yet"
    return models.RunStatus(job=runs.nightly_job, status="UNKNOWN", reason=reason)


def source_freshness(
    cur: duckdb.DuckDBPyConnection, config: ServeConfig, now: datetime
) -> list[Freshness]:
    """Freshness of the market data (the configured universe) and of the news."""
    newest_day = latest_data_day(cur, config)
    newest_news: datetime | None = None
    if table_exists(cur, tables.RAW_NEWS):
        newest_news = scalar(cur, f"select max(published_at) from {tables.RAW_NEWS}")
    limit = config.max_data_age
    return [
        assess_freshness(
            tables.RAW_OHLCV, newest_day, source=config.ohlcv_source, live=config.ohlcv_live,
            now=now, max_age=limit,
        ),
        assess_freshness(
            tables.RAW_NEWS, newest_news, source=config.news_source, live=config.news_live,
            now=now, max_age=limit,
        ),
    ]  # fmt: skip


def latest_data_day(cur: duckdb.DuckDBPyConnection, config: ServeConfig) -> date | None:
    """The newest stored day of the configured universe's market data."""
    if not table_exists(cur, tables.RAW_OHLCV):
        return None
    symbols = list(config.symbols)
    return scalar(
        cur,
        f"select max(date) from {tables.RAW_OHLCV} where len(?) = 0 or list_contains(?, symbol)",
        [symbols, symbols],
    )


def latest_recommendation(
    cur: duckdb.DuckDBPyConnection, now: datetime
) -> models.RecommendationRun | None:
    if not table_exists(cur, tables.RECOMMENDATIONS):
        return None
    row = cur.execute(
        f"select run_id, as_of, generated_at, strategy from {tables.RECOMMENDATIONS} "
        "order by generated_at desc limit 1"
    ).fetchone()
    if row is None:
        return None
    run_id, as_of, generated_at, strategy = row
    return models.RecommendationRun(
        run_id=run_id,
        as_of=as_of,
        generated_at=generated_at,
        age_seconds=(now - generated_at).total_seconds(),
        strategy=strategy,
    )


def health(
    cur: duckdb.DuckDBPyConnection,
    config: ServeConfig,
    runs: RunStatusSource,
    *,
    published_at: datetime | None = None,
    now: datetime | None = None,
) -> models.Health:
    now = now or datetime.now(UTC)
    verdicts = source_freshness(cur, config, now)
    market = verdicts[0]
    stale = [v for v in verdicts if v.stale]
    return models.Health(
        status="stale" if stale else "ok",
        reason="; ".join(v.describe() for v in stale) or None,
        checked_at=now,
        freshness_limit_seconds=config.max_data_age.total_seconds(),
        latest_data_day=latest_data_day(cur, config),
        data_age_seconds=market.age.total_seconds() if market.age is not None else None,
        sources=[_source_model(v) for v in verdicts],
        latest_recommendation=latest_recommendation(cur, now),
        last_nightly_run=nightly_status(runs),
        snapshot_published_at=published_at,
    )


def _source_model(verdict: Freshness) -> models.SourceFreshness:
    age = verdict.age
    return models.SourceFreshness(
        dataset=verdict.dataset,
        source=verdict.source,
        live=verdict.live,
        newest=verdict.newest,
        age_seconds=age.total_seconds() if age is not None else None,
        stale=verdict.stale,
        description=verdict.describe(),
    )
