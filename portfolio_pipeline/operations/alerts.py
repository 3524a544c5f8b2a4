"""Alert sensors: failed runs, risk limits, stale live data -> webhook / Telegram.

Channels are configured by environment variable (``operations.notifications.py``); with none, alerts are
logged in the sensor's tick log. A delivery error fails the tick (visible in the UI) and the
cursor does not move, so the alert is retried on the next tick instead of being lost.

Sensors read the published warehouse read-only, as analysts do: a run writes a working copy
and publishes it by rename (``warehouse/store.py``), so a tick during a run reads the last
published snapshot and never makes the run fail.
"""

import os

import dagster as dg

from portfolio_pipeline import tables
from portfolio_pipeline.market.resources import OhlcvSourceResource
from portfolio_pipeline.news.resources import NewsSourceResource
from portfolio_pipeline.operations import notifications as alerts
from portfolio_pipeline.operations.checks import news_freshness, ohlcv_freshness
from portfolio_pipeline.operations.sensors import sensor_status
from portfolio_pipeline.run_tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_TAG,
)
from portfolio_pipeline.warehouse import WarehouseError, table_exists
from portfolio_pipeline.warehouse.resources import WarehouseResource

UI_URL_ENV = "PORTFOLIO_PIPELINE_UI_URL"


def _ui_url() -> str:
    return os.environ.get(UI_URL_ENV, "").strip() or "http://127.0.0.1:3000"


def failed_check_lines(events) -> list[str]:
    """``check <asset>.<check> (ERROR|WARN): <description>`` for every failed asset check
    among ``events`` (DagsterEvents): a blocking check's step failure only names the check,
    its description names the rule, column(s), symbol(s) and dates."""
    lines = []
    for event in events:
        if event is None or event.event_type_value != "ASSET_CHECK_EVALUATION":
            continue
        evaluation = event.asset_check_evaluation_data
        if evaluation.passed:
            continue
        lines.append(
            f"check {evaluation.asset_key.to_user_string()}.{evaluation.check_name} "
            f"({evaluation.severity.value}): {evaluation.description or 'failed'}"
        )
    return lines


def failure_reason(context: dg.RunFailureSensorContext) -> str:
    """Failed checks' descriptions, then the failed steps' messages (a quality gate names
    rule, symbols, dates), else the run's."""
    entries = context.instance.all_logs(
        context.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    )
    lines = failed_check_lines(entry.dagster_event for entry in entries)
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        message = data.user_failure_data.description if data.user_failure_data else None
        if not message and data.error:
            message = data.error.message.strip()
        lines.append(f"step {event.step_key}: {message or 'failed'}")
    return "\n".join(lines) or (context.failure_event.message or "")


def run_label(run: dg.DagsterRun) -> str:
    """``job daily_refresh_job``, or ``assets raw_ohlcv, raw_news`` for an ad-hoc asset run."""
    if not run.job_name.startswith("__"):
        return f"job {run.job_name}"
    keys = sorted(k.to_user_string() for k in (run.asset_selection or ()))
    return f"assets {', '.join(keys)}" if keys else f"job {run.job_name}"


def run_partition(run: dg.DagsterRun) -> str | None:
    tags = run.tags
    if PARTITION_TAG in tags:
        return tags[PARTITION_TAG]
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    return f"{start}...{end}" if start and end else None


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    default_status=sensor_status(),
    minimum_interval_seconds=30,
    description="Posts every failed run (job, run id, failing steps and their messages, a link "
    "to the run) to the configured webhook / Telegram chat.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    text = alerts.format_run_failure(
        run_label(run), run.run_id, failure_reason(context), _ui_url(), partition=run_partition(run)
    )
    delivered = alerts.send_alert(text)
    context.log.info(
        f"failure of run {run.run_id} alerted via {', '.join(delivered) or 'log only'}"
    )


@dg.sensor(
    name="risk_limit_sensor",
    minimum_interval_seconds=300,
    default_status=sensor_status(),
    description="Alerts when the latest portfolio.risk_metrics of the current portfolio breach "
    "their limits (VaR 95 > PORTFOLIO_PIPELINE_VAR95_LIMIT, default 8%; max drawdown > "
    "PORTFOLIO_PIPELINE_DRAWDOWN_LIMIT, default 50%); once per distinct breach.",
)
def risk_limit_sensor(context: dg.SensorEvaluationContext, warehouse_resource: WarehouseResource):
    limits = alerts.RiskLimits.from_env()
    try:
        with warehouse_resource.connect(read_only=True) as con:
            if not table_exists(con, tables.RISK_METRICS):
                return dg.SkipReason(f"{tables.RISK_METRICS} does not exist yet")
            latest = con.execute(
                f"select * from {tables.RISK_METRICS} "
                f"where as_of = (select max(as_of) from {tables.RISK_METRICS})"
            ).pl()
    except WarehouseError as exc:  # no file yet, or a path that is not a DuckDB file
        return dg.SkipReason(f"warehouse not readable now: {exc}")
    breaches = alerts.risk_limit_breaches(latest, limits)
    if not breaches:
        context.update_cursor("")
        limits_text = ", ".join(f"{m} <= {v:g}" for m, v in limits.limits.items())
        return dg.SkipReason(f"within limits ({limits_text})")
    signature = alerts.breach_signature(breaches)
    if signature == context.cursor:
        return dg.SkipReason(f"already alerted: {signature}")
    delivered = alerts.send_alert(alerts.format_breaches(breaches))
    context.update_cursor(signature)
    return dg.SkipReason(f"alerted {len(breaches)} breach(es) via {', '.join(delivered) or 'log'}")


@dg.sensor(
    name="raw_data_freshness_sensor",
    minimum_interval_seconds=3600,
    default_status=sensor_status(),
    description="Hourly: alerts when a LIVE source's newest stored data is older than 36 h "
    "(PORTFOLIO_PIPELINE_MAX_DATA_AGE_HOURS); the sample and files sources are exempt.",
)
def raw_data_freshness_sensor(
    context: dg.SensorEvaluationContext,
    warehouse_resource: WarehouseResource,
    ohlcv_source: OhlcvSourceResource,
    news_source: NewsSourceResource,
):
    if not (ohlcv_source.is_live or news_source.is_live):
        return dg.SkipReason(
            f"sources '{ohlcv_source.kind}' and '{news_source.kind}' are snapshots: exempt"
        )
    try:
        verdicts = [
            ohlcv_freshness(warehouse_resource, ohlcv_source),
            news_freshness(warehouse_resource, news_source),
        ]
    except WarehouseError as exc:
        return dg.SkipReason(f"warehouse not readable now: {exc}")
    stale = [v for v in verdicts if v.stale]
    if not stale:
        context.update_cursor("")
        return dg.SkipReason("; ".join(v.describe() for v in verdicts))
    signature = "|".join(f"{v.dataset}:{v.newest}" for v in stale)
    if signature == context.cursor:
        return dg.SkipReason(f"already alerted: {signature}")
    text = "[portfolio-pipeline] stale data:\n" + "\n".join(f"- {v.describe()}" for v in stale)
    delivered = alerts.send_alert(text)
    context.update_cursor(signature)
    return dg.SkipReason(f"alerted stale {signature} via {', '.join(delivered) or 'log'}")
