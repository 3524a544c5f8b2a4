"""Sensors that react to files: the inbox and the holdings file.

Both start RUNNING (``PORTFOLIO_PIPELINE_SENSORS_RUNNING=0`` starts them stopped): they only
act on files the user puts there, and cost a directory listing or a hash per tick.
"""

import hashlib
import os
from pathlib import Path

import dagster as dg

from portfolio_pipeline.market.resources import OhlcvSourceResource
from portfolio_pipeline.operations import inbox
from portfolio_pipeline.operations.jobs import InboxFileConfig

SENSORS_RUNNING_ENV = "PORTFOLIO_PIPELINE_SENSORS_RUNNING"
MAX_FILES_PER_TICK = 20  # keeps a tick well inside the 60 s sensor timeout


def sensor_status() -> dg.DefaultSensorStatus:
    text = os.environ.get(SENSORS_RUNNING_ENV, "").strip().lower()
    running = not text or text in ("1", "true", "yes", "on")
    return dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED


def build_inbox_sensor(
    job, inbox_dir: Path, *, settle_seconds: float = 5.0, minimum_interval_seconds: int = 30
) -> dg.SensorDefinition:
    inbox_dir = Path(inbox_dir)

    @dg.sensor(
        name="inbox_sensor",
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=sensor_status(),
        description=f"Validates OHLCV/news CSV or Parquet files dropped into {inbox_dir} and "
        "ingests each content exactly once (run key = SHA-256 of the file); accepted files go "
        "to processed/, rejected ones to rejected/ with a .reason.txt.",
    )
    def inbox_sensor(context: dg.SensorEvaluationContext, ohlcv_source: OhlcvSourceResource):
        files = inbox.pending_files(inbox_dir, settle_seconds=settle_seconds)
        if not files:
            return dg.SkipReason(f"no new file in {inbox_dir}")
        requests, notes = [], []
        for path in files[:MAX_FILES_PER_TICK]:
            content_hash = inbox.content_hash(path)
            earlier = inbox.already_ingested(inbox_dir, content_hash)
            if earlier is not None:
                # Same bytes as a file ingested before: keep it out of the inbox, write nothing.
                duplicate = inbox.processed_path(inbox_dir, content_hash, path.name)
                path.replace(duplicate)
                notes.append(f"{path.name}: duplicate of {earlier.name}, not ingested again")
                continue
            verdict = inbox.inspect_inbox_file(path, universe=ohlcv_source.symbols)
            if not verdict.accepted:
                inbox.move_rejected(path, inbox_dir, verdict.reason)
                notes.append(f"{path.name}: rejected: {verdict.reason}")
                continue
            processed = inbox.move_accepted(verdict, inbox_dir)
            notes.append(verdict.summary())
            requests.append(
                dg.RunRequest(
                    run_key=content_hash,
                    run_config=dg.RunConfig(
                        ops={
                            "ingest_inbox_file": InboxFileConfig(
                                path=str(processed), kind=verdict.kind, content_hash=content_hash
                            )
                        }
                    ),
                    tags={"portfolio_pipeline/inbox_file": path.name},
                )
            )
        for note in notes:
            context.log.info(note)
        if requests:
            return dg.SensorResult(run_requests=requests)
        return dg.SkipReason("; ".join(notes))

    return inbox_sensor


def file_fingerprint(path: Path) -> str | None:
    """SHA-256 of the file's bytes, or None when it does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_holdings_sensor(
    job, holdings_path: Path, *, has_targets: bool = True, minimum_interval_seconds: int = 60
) -> dg.SensorDefinition:
    holdings_path = Path(holdings_path)

    @dg.sensor(
        name="holdings_sensor",
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=sensor_status(),
        description=f"When {holdings_path} changes (content hash), refreshes holdings, "
        "recommendations and risk.",
    )
    def holdings_sensor(context: dg.SensorEvaluationContext):
        fingerprint = file_fingerprint(holdings_path)
        if fingerprint is None:
            return dg.SkipReason(f"{holdings_path} does not exist")
        if context.cursor is None:
            # The first tick only records the baseline: the nightly refresh already reflects
            # the file as it is now; only a later change needs an extra run.
            context.update_cursor(fingerprint)
            return dg.SkipReason(f"baseline recorded for {holdings_path.name}")
        if fingerprint == context.cursor:
            return dg.SkipReason(f"{holdings_path.name} unchanged")
        context.update_cursor(fingerprint)
        if not has_targets:
            return dg.SkipReason(f"{holdings_path.name} changed, but no holdings asset exists yet")
        # No run key: the cursor already deduplicates, and going back to an earlier file
        # (A -> B -> A) must refresh again.
        return dg.RunRequest(tags={"portfolio_pipeline/holdings_sha256": fingerprint[:16]})

    return holdings_sensor
