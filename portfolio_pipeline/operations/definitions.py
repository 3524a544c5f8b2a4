"""Operations: jobs, schedules, sensors, alerts and freshness checks (see docs/OPERATIONS.md).

``definitions.py`` calls :func:`build_operations` with the project's assets and passes the
result to ``dagster.Definitions``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg

from portfolio_pipeline.settings import Settings


@dataclass(frozen=True)
class Operations:
    jobs: list
    schedules: list[dg.ScheduleDefinition]
    sensors: list[dg.SensorDefinition]
    asset_checks: list[dg.AssetChecksDefinition]


def _asset_key_names(assets: Iterable) -> set[str]:
    names: set[str] = set()
    for asset in assets:
        for key in getattr(asset, "keys", ()):
            names.add(key.to_user_string())
    return names


def build_operations(assets: Iterable, settings: Settings) -> Operations:
    """Jobs, schedules, sensors and checks for ``assets`` (groups that are absent select nothing)."""
    from portfolio_pipeline.operations import alerts, checks, jobs, schedules, sensors

    assets = list(assets)
    existing = _asset_key_names(assets)
    asset_jobs = {job.name: job for job in jobs.build_asset_jobs(existing)}
    holdings_targets = any(name in existing for name in jobs.HOLDINGS_REFRESH_ASSETS)
    return Operations(
        jobs=[*asset_jobs.values(), jobs.inbox_ingest_job],
        schedules=[
            schedules.build_nightly_refresh_schedule(
                asset_jobs[jobs.DAILY_REFRESH_JOB], first_day=settings.start_date
            ),
            schedules.build_policy_retraining_schedule(asset_jobs[jobs.POLICY_RETRAINING_JOB]),
        ],
        sensors=[
            sensors.build_inbox_sensor(jobs.inbox_ingest_job, settings.inbox_dir),
            sensors.build_holdings_sensor(
                asset_jobs[jobs.HOLDINGS_REFRESH_JOB],
                settings.holdings_path,
                has_targets=holdings_targets,
            ),
            alerts.run_failure_alert_sensor,
            alerts.risk_limit_sensor,
            alerts.raw_data_freshness_sensor,
        ],
        asset_checks=list(checks.freshness_checks),
    )
