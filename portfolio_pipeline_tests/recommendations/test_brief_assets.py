"""The market_brief asset: one row per run, replaced on re-materialization, metadata."""

from __future__ import annotations

import dagster as dg

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.recommendations.brief_assets import market_brief
from portfolio_pipeline.warehouse import connection
from portfolio_pipeline_tests.helpers import pipeline_resources
from portfolio_pipeline_tests.recommendations.test_brief import _facts


def test_market_brief_writes_one_row_per_run_with_the_template(tmp_warehouse):
    facts = _facts()
    with connection(tmp_warehouse) as con:
        warehouse.replace_table(con, tables.RECOMMENDATIONS, facts.recommendations)
        warehouse.replace_table(con, tables.RISK_METRICS, facts.risk)
        warehouse.replace_table(con, tables.STRESS_TESTS, facts.stress)
    resources = pipeline_resources(tmp_warehouse, llm_model=None)
    for _ in range(2):  # re-materializing replaces the run's row
        result = dg.materialize(
            [market_brief], resources=resources, instance=dg.DagsterInstance.ephemeral()
        )
        assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["writer"].value == "template-v1" and metadata["run_id"].value == "run-1"
    assert "PORTFOLIO_PIPELINE_LLM_MODEL" in metadata["rejected_reason"].value
    assert "recommends 2 trades" in metadata["brief"].value
    with connection(tmp_warehouse, read_only=True) as con:
        rows = con.execute(f"select run_id, writer, brief from {tables.MARKET_BRIEF}").fetchall()
    assert len(rows) == 1 and rows[0][:2] == ("run-1", "template-v1")
