"""The shipped dagster.postgres.yaml against a real PostgreSQL server: a materialization, then
the real daemon ticking a schedule and a sensor, whose state and runs land in PostgreSQL.

Needs the PostgreSQL server binaries (``apt-get install postgresql``; ``.ci/run`` installs
them). Without them the test skips, except in CI (``CI=true``) where it fails.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
import pytest
import yaml

from portfolio_pipeline import warehouse
from portfolio_pipeline.definitions import build_resources
from portfolio_pipeline.market.assets import raw_ohlcv
from portfolio_pipeline.market.partitions import month_key
from portfolio_pipeline.settings import load_settings
from portfolio_pipeline_tests.conftest import DATA_DIR
from portfolio_pipeline_tests.operations.servers import (
    REPO_ROOT,
    ephemeral_postgres,
    process_group,
    tool,
    wait_for,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres():
    with ephemeral_postgres() as server:
        yield server


@pytest.fixture()
def project(tmp_path, postgres, monkeypatch):
    """A project home (sample data linked in, an inbox) and a DAGSTER_HOME using the shipped
    dagster.postgres.yaml; scheduled runs stay queued so that the test launches no full refresh."""
    home = tmp_path / "home"
    (home / "data" / "inbox").mkdir(parents=True)
    for name in ("crypto_ohlcv_daily.parquet", "crypto_news.parquet"):
        (home / "data" / name).symlink_to(DATA_DIR / name)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    config = yaml.safe_load((REPO_ROOT / "dagster.postgres.yaml").read_text())
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    config["run_coordinator"]["config"]["tag_concurrency_limits"] = [
        {"key": "dagster/schedule_name", "limit": 0}
    ]
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    env = {
        **postgres.env(),
        "DAGSTER_HOME": str(dagster_home),
        "PORTFOLIO_PIPELINE_HOME": str(home),
        "PORTFOLIO_PIPELINE_WAREHOUSE": str(home / "data" / "warehouse.duckdb"),
        "PORTFOLIO_PIPELINE_SYMBOLS": "BTCUSDT,ETHUSDT",
        "PORTFOLIO_PIPELINE_NIGHTLY_CRON": "* * * * *",
        "PORTFOLIO_PIPELINE_SCHEDULES_RUNNING": "1",
        "PORTFOLIO_PIPELINE_SENSORS_RUNNING": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {"home": home, "dagster_home": dagster_home, "env": env}


def _runs(instance, **tags):
    return instance.get_runs(filters=dg.RunsFilter(tags=tags))


def test_postgres_instance_materialization_schedule_and_sensor_ticks(
    project, postgres, sample_ohlcv
):
    daemon = tool("dagster-daemon")
    assert daemon, "dagster-daemon is not installed in this environment"
    instance = dg.DagsterInstance.from_config(str(project["dagster_home"]))
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"

    # 1. A materialization recorded in PostgreSQL.
    result = dg.materialize(
        [raw_ohlcv],
        resources=build_resources(load_settings()),
        partition_key="2023-12",
        instance=instance,
    )
    assert result.success
    event = instance.get_latest_materialization_event(raw_ohlcv.key)
    assert event.run_id == result.run_id and event.asset_materialization.partition == "2023-12"
    assert postgres.query("select status from runs where run_id = %s", (result.run_id,)) == [
        ("SUCCESS",)
    ]

    # 2. The real daemon: the inbox sensor ingests a file, the nightly schedule ticks.
    inbox_file = project["home"] / "data" / "inbox" / "candles.csv"
    sample_ohlcv.filter(
        pl.col("symbol").is_in(["BTCUSDT", "ETHUSDT"])
        & pl.col("date").is_between(date(2024, 1, 3), date(2024, 1, 4))
    ).select("symbol", "date", "open", "high", "low", "close", "volume").write_csv(inbox_file)
    os.utime(inbox_file, (0, 0))  # settled long ago: the sensor takes it on its first tick
    env = {**os.environ, **project["env"]}
    with process_group(
        [daemon, "run", "-w", str(REPO_ROOT / "workspace.yaml")],
        env=env,
        log_path=project["dagster_home"] / "daemon.log",
    ) as proc:
        try:
            inbox_run = wait_for(
                lambda: next(
                    (
                        r
                        for r in _runs(instance, **{"dagster/sensor_name": "inbox_sensor"})
                        if r.is_finished
                    ),
                    None,
                ),
                timeout_s=75,
                what="the inbox sensor's run to finish",
            )
            scheduled = wait_for(
                lambda: [
                    r
                    for r in _runs(
                        instance, **{"dagster/schedule_name": "nightly_refresh_schedule"}
                    )
                    if r.status != dg.DagsterRunStatus.NOT_STARTED  # created, not yet submitted
                ],
                timeout_s=75,
                what="a nightly_refresh_schedule tick (cron '* * * * *')",
            )
        except TimeoutError:
            assert proc.poll() is None, "the daemon exited"
            raise AssertionError(
                (project["dagster_home"] / "daemon.log").read_text()[-4000:]
            ) from None

    assert inbox_run.status == dg.DagsterRunStatus.SUCCESS, inbox_run.status
    assert inbox_run.job_name == "inbox_ingest_job"
    with warehouse.connection(project["home"] / "data" / "warehouse.duckdb", read_only=True) as con:
        days = con.execute(
            "select distinct cast(date as varchar) from market.raw_ohlcv order by 1"
        ).fetchall()
    # December 2023 from the partition, then the inbox file's two January days.
    assert len(days) == 33 and [d for (d,) in days][-3:] == [
        "2023-12-31",
        "2024-01-03",
        "2024-01-04",
    ]
    assert (project["home"] / "data" / "inbox" / "processed").is_dir() and not inbox_file.exists()

    run = scheduled[0]
    today = datetime.now(UTC).date()
    assert run.job_name == "daily_refresh_job"
    # Yesterday's month relative to the tick (the day before, if midnight passed since).
    assert run.tags["dagster/partition"] in {month_key(today - timedelta(days=n)) for n in (1, 2)}
    assert run.status == dg.DagsterRunStatus.QUEUED  # held by the test's tag limit
    # Tick history (schedule and sensor state) is stored in PostgreSQL too.
    kinds = dict(postgres.query("select type, count(*) from job_ticks group by type"))
    assert kinds.get("SCHEDULE", 0) >= 1 and kinds.get("SENSOR", 0) >= 2
    states = {state.instigator_name: state for state in instance.all_instigator_state()}
    assert {"inbox_sensor", "holdings_sensor", "nightly_refresh_schedule"} <= set(states)
    assert states["holdings_sensor"].instigator_data.cursor is None  # no holdings.csv here
