"""The market brief on the API (``GET /brief/latest``) and on the dashboard."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
from fastapi.testclient import TestClient

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.operations.notifications import RiskLimits
from portfolio_pipeline.recommendations.brief import MARKET_BRIEF_DDL
from portfolio_pipeline.serving.app import create_app
from portfolio_pipeline.serving.brief import brief_section


def _write_briefs(path, rows) -> None:
    frame = pl.DataFrame(
        rows,
        schema={
            "run_id": pl.String, "as_of": pl.Date, "generated_at": pl.Datetime("us", "UTC"),
            "brief": pl.String, "writer": pl.String, "model": pl.String,
            "rejected_reason": pl.String, "prompt": pl.String, "facts": pl.String,
        },
        orient="row",
    )  # fmt: skip
    with warehouse.connection(path) as con:
        warehouse.ensure_table(con, tables.MARKET_BRIEF, MARKET_BRIEF_DDL)
        warehouse.append_rows(con, tables.MARKET_BRIEF, frame)


def test_the_latest_brief_and_a_named_run_are_served_and_shown(config, tiny_path):
    older = datetime(2025, 12, 30, 1, tzinfo=UTC)
    newer = datetime(2025, 12, 31, 1, tzinfo=UTC)
    _write_briefs(
        tiny_path,
        [
            ("run-a", date(2025, 12, 30), older, "Old brief.", "template-v1", "template",
             None, None, "{}"),
            ("run-b", date(2025, 12, 31), newer, "Buy <TRX>.\n\nRisk is 3.5%.", "llm",
             "tiny-gpt2", "states 31.50 which is not in the tables", "prompt", "{}"),
        ],
    )  # fmt: skip
    with TestClient(
        create_app(config, limits=RiskLimits(), extra_sections=[brief_section])
    ) as client:
        latest = client.get("/brief/latest").json()
        assert latest["run_id"] == "run-b" and latest["brief"].startswith("Buy <TRX>")
        assert latest["rejected_reason"] == "states 31.50 which is not in the tables"
        assert (
            client.get("/brief/latest", params={"run_id": "run-a"}).json()["brief"] == "Old brief."
        )
        missing = client.get("/brief/latest", params={"run_id": "nope"})
        assert missing.status_code == 404 and "run nope" in missing.json()["detail"]
        page = client.get("/").text
    assert '<div id="brief"><p>Buy &lt;TRX&gt;.</p><p>Risk is 3.5%.</p>' in page  # escaped
    assert "the generated brief was rejected: states 31.50" in page


def test_no_brief_yet_is_a_404_and_no_dashboard_section(config):
    with TestClient(
        create_app(config, limits=RiskLimits(), extra_sections=[brief_section])
    ) as client:
        response = client.get("/brief/latest")
        page = client.get("/")
    assert response.status_code == 404
    assert "no market brief" in response.json()["detail"]
    assert page.status_code == 200 and 'id="brief"' not in page.text
