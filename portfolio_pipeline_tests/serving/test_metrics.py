"""``GET /metrics``: every family the issue lists, with the tiny warehouse's known values."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from portfolio_pipeline.operations.notifications import RiskLimits
from portfolio_pipeline.serving import models
from portfolio_pipeline.serving.app import create_app
from portfolio_pipeline.serving.health import NIGHTLY_JOB


def samples(client) -> dict[tuple[str, tuple], float]:
    reply = client.get("/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in found, f"{name}{labels} missing; have {sorted(k for k in found if k[0] == name)}"
    return found[key]


@dataclass(frozen=True)
class FixedRuns:
    runs: tuple[models.RunStatus, ...]
    nightly_job: str = NIGHTLY_JOB

    def latest_runs(self) -> list[models.RunStatus]:
        return list(self.runs)

    def unknown_reason(self) -> str | None:
        return None if self.runs else "no runs"


def test_warehouse_families(client):
    found = samples(client)
    assert value(found, "portfolio_pipeline_warehouse_up", reason="") == 1
    assert (
        value(found, "portfolio_pipeline_recommended_trades", strategy="hrp", as_of="2025-01-10")
        == 2
    )
    assert value(
        found, "portfolio_pipeline_recommended_turnover_ratio", strategy="hrp", as_of="2025-01-10"
    ) == pytest.approx(0.15)
    assert (
        value(found, "portfolio_pipeline_var_ratio", portfolio="current", metric="var_hist_95")
        == 0.09
    )
    assert (
        value(found, "portfolio_pipeline_cvar_ratio", portfolio="recommended", metric="cvar_95")
        == 0.07
    )
    assert value(found, "portfolio_pipeline_max_drawdown_ratio", portfolio="current") == 0.3
    assert value(
        found, "portfolio_pipeline_drawdown_ratio", process="recommended", window="test"
    ) == (pytest.approx(0.05))
    assert value(found, "portfolio_pipeline_risk_limit_breaches") == 1
    assert (
        value(
            found, "portfolio_pipeline_risk_limit_breach", portfolio="current", metric="var_hist_95"
        )
        == 0.09
    )
    age = value(found, "portfolio_pipeline_data_age_seconds", dataset="market.raw_ohlcv",
                source="sample", live="false")  # fmt: skip
    expected = (datetime.now(UTC) - datetime(2025, 1, 11, tzinfo=UTC)).total_seconds()
    assert age == pytest.approx(expected, abs=120)
    assert (
        value(found, "portfolio_pipeline_data_stale", dataset="market.raw_ohlcv", source="sample")
        == 0
    )


def test_request_counts_and_latencies(client):
    client.get("/recommendations/latest")
    client.get("/recommendations/latest")
    client.get("/recommendations", params={"as_of": "bad"})
    client.get("/no/such/path")
    found = samples(client)
    count = "portfolio_pipeline_api_requests_total"
    assert value(found, count, method="GET", route="/recommendations/latest", status="200") == 2
    assert value(found, count, method="GET", route="/recommendations", status="422") == 1
    assert value(found, count, method="GET", route="unmatched", status="404") == 1
    latency = "portfolio_pipeline_api_request_duration_seconds_count"
    assert value(found, latency, method="GET", route="/recommendations/latest") == 2


def test_run_status_families(config):
    runs = FixedRuns((
        models.RunStatus(job=NIGHTLY_JOB, status="FAILURE", run_id="r1", duration_seconds=12.5,
                         ended_at=datetime(2025, 1, 11, tzinfo=UTC)),
        models.RunStatus(job="policy_retraining_job", status="SUCCESS", run_id="r2"),
    ))  # fmt: skip
    with TestClient(create_app(config, runs=runs, limits=RiskLimits())) as client:
        found = samples(client)
        nightly = client.get("/health").json()["last_nightly_run"]
    assert value(found, "portfolio_pipeline_run_status_known", reason="") == 1
    assert value(found, "portfolio_pipeline_last_run_success", job=NIGHTLY_JOB) == 0
    assert value(found, "portfolio_pipeline_last_run_success", job="policy_retraining_job") == 1
    assert (
        value(found, "portfolio_pipeline_last_run_status", job=NIGHTLY_JOB, status="FAILURE") == 1
    )
    assert value(found, "portfolio_pipeline_last_run_duration_seconds", job=NIGHTLY_JOB) == 12.5
    assert (nightly["status"], nightly["run_id"]) == ("FAILURE", "r1")


def test_unknown_runs_and_missing_warehouse_degrade(tmp_path, config):
    gone = replace(config, warehouse_path=tmp_path / "missing.duckdb")
    with TestClient(create_app(gone, runs=FixedRuns(()), limits=RiskLimits())) as client:
        found = samples(client)
    assert value(found, "portfolio_pipeline_run_status_known", reason="no runs") == 0
    (up,) = [k for k in found if k[0] == "portfolio_pipeline_warehouse_up"]
    assert found[up] == 0 and "does not exist yet" in dict(up[1])["reason"]
    assert not any(k[0] == "portfolio_pipeline_last_run_success" for k in found)
    assert not any(k[0] == "portfolio_pipeline_var_ratio" for k in found)
