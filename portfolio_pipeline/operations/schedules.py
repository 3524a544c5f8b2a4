"""Schedules, in UTC: the nightly refresh and the weekly deep-RL retraining.

=======================================  ==============  ==========================================
variable                                 default         meaning
=======================================  ==============  ==========================================
``PORTFOLIO_PIPELINE_NIGHTLY_CRON``      ``30 0 * * *``  nightly refresh (00:30 UTC: yesterday's
                                                         candle closed at 00:00 UTC)
``PORTFOLIO_PIPELINE_RETRAIN_CRON``      ``0 2 * * 0``   weekly policy retraining (Sunday 02:00)
``PORTFOLIO_PIPELINE_REFRESH_DAYS``      ``1``           days ending yesterday whose raw month
                                                         partitions are refreshed per night (the
                                                         month to date; 2+ also re-reads the last
                                                         month during a new month's first days)
``PORTFOLIO_PIPELINE_SCHEDULES_RUNNING`` ``0``           ``1``: schedules start RUNNING
=======================================  ==============  ==========================================

Schedules start STOPPED: a nightly run retrains forecasts and the sample source never has new
days, so a laptop should not do it unasked. Turn them on in the UI (Automation) or set
``PORTFOLIO_PIPELINE_SCHEDULES_RUNNING=1`` on a server; a toggle made in the UI is stored in
the instance and wins over the default.
"""

import os
from datetime import UTC, date, timedelta

import dagster as dg

from portfolio_pipeline.market.partitions import month_keys
from portfolio_pipeline.run_tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from portfolio_pipeline.settings import DEFAULT_START

NIGHTLY_CRON_ENV = "PORTFOLIO_PIPELINE_NIGHTLY_CRON"
RETRAIN_CRON_ENV = "PORTFOLIO_PIPELINE_RETRAIN_CRON"
REFRESH_DAYS_ENV = "PORTFOLIO_PIPELINE_REFRESH_DAYS"
SCHEDULES_RUNNING_ENV = "PORTFOLIO_PIPELINE_SCHEDULES_RUNNING"
DEFAULT_NIGHTLY_CRON = "30 0 * * *"
DEFAULT_RETRAIN_CRON = "0 2 * * 0"
TRUE_WORDS = ("1", "true", "yes", "on")


def env_flag(name: str, default: bool) -> bool:
    text = os.environ.get(name, "").strip().lower()
    return default if not text else text in TRUE_WORDS


def cron_from_env(name: str, default: str) -> str:
    cron = os.environ.get(name, "").strip() or default
    try:  # Dagster's own validation through its public API (the checker itself is private)
        dg.ScheduleDefinition(name="cron_probe", cron_schedule=cron, job_name="cron_probe")
    except dg.DagsterInvalidDefinitionError:
        raise ValueError(f"{name}={cron!r} is not a valid cron string (e.g. {default!r})") from None
    return cron


def refresh_days_from_env() -> int:
    text = os.environ.get(REFRESH_DAYS_ENV, "").strip() or "1"
    if not text.isdigit() or not 1 <= int(text) <= 366:
        raise ValueError(f"{REFRESH_DAYS_ENV}={text!r} must be a whole number of days, 1..366")
    return int(text)


def _schedule_status() -> dg.DefaultScheduleStatus:
    running = env_flag(SCHEDULES_RUNNING_ENV, default=False)
    return dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED


def build_nightly_refresh_schedule(
    job, cron: str | None = None, refresh_days: int | None = None, first_day: date = DEFAULT_START
) -> dg.ScheduleDefinition:
    """The nightly run: the raw partitions (months) holding the ``refresh_days`` days ending
    yesterday, none before ``first_day`` (the settings' start), and everything downstream."""
    cron = cron or cron_from_env(NIGHTLY_CRON_ENV, DEFAULT_NIGHTLY_CRON)
    refresh_days = refresh_days or refresh_days_from_env()

    @dg.schedule(
        name="nightly_refresh_schedule",
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=_schedule_status(),
        description=f"Refresh the raw month partition(s) holding the {refresh_days} day(s) ending "
        f"yesterday (the month to date) and everything downstream except DRL retraining; "
        f"cron '{cron}' UTC.",
    )
    def nightly_refresh_schedule(context: dg.ScheduleEvaluationContext):
        # A daily candle is complete at 00:00 UTC of the next day: the newest complete day at
        # tick time is the day before the tick (UTC). Its month's partition is read to date.
        yesterday = context.scheduled_execution_time.astimezone(UTC).date() - timedelta(days=1)
        start = max(yesterday - timedelta(days=refresh_days - 1), first_day)
        if yesterday < start:
            return dg.SkipReason(
                f"nothing to refresh: yesterday ({yesterday}) is before the first day "
                f"({first_day}, PORTFOLIO_PIPELINE_START)"
            )
        keys = month_keys(start, yesterday)
        if len(keys) == 1:
            return dg.RunRequest(run_key=yesterday.isoformat(), partition_key=keys[0])
        return dg.RunRequest(
            run_key=f"{start}...{yesterday}",
            tags={
                ASSET_PARTITION_RANGE_START_TAG: keys[0],
                ASSET_PARTITION_RANGE_END_TAG: keys[-1],
            },
        )

    return nightly_refresh_schedule


def build_policy_retraining_schedule(job, cron: str | None = None) -> dg.ScheduleDefinition:
    cron = cron or cron_from_env(RETRAIN_CRON_ENV, DEFAULT_RETRAIN_CRON)

    @dg.schedule(
        name="weekly_policy_retraining_schedule",
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=_schedule_status(),
        description=f"Retrain the deep-RL policy and refresh what depends on it; cron '{cron}' UTC.",
    )
    def weekly_policy_retraining_schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time.astimezone(UTC)
        return dg.RunRequest(run_key=f"retrain-{tick:%Y-%m-%dT%H:%M}")

    return weekly_policy_retraining_schedule
