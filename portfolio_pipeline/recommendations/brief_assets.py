"""The market brief: one grounded text per recommendation run."""

import dagster as dg

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.metadata import table_metadata
from portfolio_pipeline.recommendations.assets import recommendations
from portfolio_pipeline.recommendations.brief import MARKET_BRIEF_DDL, write_brief
from portfolio_pipeline.recommendations.brief_facts import read_brief_facts
from portfolio_pipeline.recommendations.resources import BriefModelResource
from portfolio_pipeline.settings import Settings
from portfolio_pipeline.warehouse.resources import WarehouseResource


@dg.asset(
    deps=[
        recommendations,
        "risk_metrics",
        "stress_tests",
        "recommendation_backtest",
        "news_digest",
        "return_forecasts",
    ],
    kinds={"duckdb"},
    metadata={"table": tables.MARKET_BRIEF},
)
def market_brief(
    context: dg.AssetExecutionContext,
    warehouse_resource: WarehouseResource,
    settings: dg.ResourceParam[Settings],
    brief_model: BriefModelResource,
):
    """One row per recommendation run: a few paragraphs on what changed, the
    recommendations and why, the risk and the news, table ``portfolio.market_brief``.

    Written by a local text-generation model (``PORTFOLIO_PIPELINE_LLM_MODEL``) from a prompt
    holding only the run's own tables (recommendations with reasons, the replay's process
    comparison, risk and stress, the digest, the forecasts); a brief stating a number not in
    them is rejected. Without a model, or on rejection, a deterministic template writes the
    same facts; ``writer``, ``model`` and ``rejected_reason`` say which and why, and the
    prompt is stored with the row. Re-materializing replaces the run's row."""
    writer, reason = brief_model.writer()
    with warehouse_resource.connect() as con:
        facts = read_brief_facts(con, cash_symbol=settings.cash_symbol)
        brief = write_brief(facts, writer, reason)
        row = brief.to_frame()
        warehouse.replace_rows(
            con,
            tables.MARKET_BRIEF,
            row,
            where="run_id = ?",
            params=(brief.run_id,),
            ddl_columns=MARKET_BRIEF_DDL,
        )
    if brief.rejected_reason:
        context.log.warning(f"market brief: template used ({brief.rejected_reason})")
    return dg.MaterializeResult(
        metadata={
            **table_metadata(row.drop("prompt", "facts"), tables.MARKET_BRIEF),
            "brief": dg.MetadataValue.md(brief.text),
            "writer": brief.writer,
            "model": brief.model,
            "rejected_reason": brief.rejected_reason or "",
            "run_id": brief.run_id,
            "as_of": str(brief.as_of),
        }
    )
