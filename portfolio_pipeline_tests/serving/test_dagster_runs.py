"""Run statuses from a real Dagster instance (a temporary DAGSTER_HOME) and without one."""

from __future__ import annotations

import dagster as dg
import pytest
from fastapi.testclient import TestClient

from portfolio_pipeline.operations.notifications import RiskLimits
from portfolio_pipeline.serving.app import create_app
from portfolio_pipeline.serving.dagster_runs import DagsterRunStatus
from portfolio_pipeline.serving.health import NIGHTLY_JOB

pytestmark = pytest.mark.slow  # runs Dagster jobs in process


@dg.asset
def tiny_number() -> int:
    return 1


@dg.asset
def always_fails() -> int:
    raise ValueError("boom")


DEFS = dg.Definitions(
    assets=[tiny_number, always_fails],
    jobs=[
        dg.define_asset_job(NIGHTLY_JOB, selection=[tiny_number]),
        dg.define_asset_job("broken_job", selection=[always_fails]),
    ],
)

FAILING_NIGHTLY = dg.Definitions(
    assets=[always_fails], jobs=[dg.define_asset_job(NIGHTLY_JOB, selection=[always_fails])]
)


@pytest.fixture()
def instance(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as inst:
        yield inst


def test_no_dagster_home_is_unknown_with_the_reason(monkeypatch, config):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    runs = DagsterRunStatus()
    assert runs.latest_runs() == [] and "DAGSTER_HOME is not set" in runs.unknown_reason()
    with TestClient(create_app(config, runs=runs, limits=RiskLimits())) as client:
        nightly = client.get("/health").json()["last_nightly_run"]
    assert nightly["status"] == "UNKNOWN" and "DAGSTER_HOME" in nightly["reason"]


def test_an_instance_without_runs(instance):
    runs = DagsterRunStatus()
    assert runs.latest_runs() == []
    assert runs.unknown_reason() == "no runs recorded in the Dagster instance"


def test_latest_run_per_job_from_the_instance(instance, config):
    DEFS.resolve_job_def(NIGHTLY_JOB).execute_in_process(instance=instance)
    DEFS.resolve_job_def("broken_job").execute_in_process(instance=instance, raise_on_error=False)
    runs = DagsterRunStatus(cache_s=0)
    statuses = {s.job: s for s in runs.latest_runs()}
    assert statuses[NIGHTLY_JOB].status == "SUCCESS"
    assert statuses["broken_job"].status == "FAILURE"
    assert statuses[NIGHTLY_JOB].duration_seconds > 0
    assert runs.unknown_reason() is None
    with TestClient(create_app(config, runs=runs, limits=RiskLimits())) as client:
        nightly = client.get("/health").json()["last_nightly_run"]
        metrics = client.get("/metrics").text
    assert (nightly["status"], nightly["job"]) == ("SUCCESS", NIGHTLY_JOB)
    assert f'portfolio_pipeline_last_run_success{{job="{NIGHTLY_JOB}"}} 1.0' in metrics
    assert 'portfolio_pipeline_last_run_success{job="broken_job"} 0.0' in metrics
    # a newer failed nightly run replaces the success
    FAILING_NIGHTLY.resolve_job_def(NIGHTLY_JOB).execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert {s.job: s.status for s in runs.latest_runs()}[NIGHTLY_JOB] == "FAILURE"


def test_the_nightly_run_is_found_behind_many_newer_runs(instance, monkeypatch):
    from portfolio_pipeline.serving import dagster_runs

    DEFS.resolve_job_def(NIGHTLY_JOB).execute_in_process(instance=instance)
    DEFS.resolve_job_def("broken_job").execute_in_process(instance=instance, raise_on_error=False)
    monkeypatch.setattr(dagster_runs, "RUNS_READ", 1)  # only the newest (broken_job) is scanned
    statuses = {s.job: s.status for s in DagsterRunStatus().latest_runs()}
    assert statuses == {"broken_job": "FAILURE", NIGHTLY_JOB: "SUCCESS"}
