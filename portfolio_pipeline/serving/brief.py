"""The market brief of a recommendation run, for the API (``GET /brief/latest``) and the
dashboard (pure, no dagster). The brief itself is written by the ``market_brief`` asset
(``recommendations.brief``); this only reads ``portfolio.market_brief``."""

from __future__ import annotations

from datetime import date, datetime
from html import escape

import duckdb
from pydantic import BaseModel

from portfolio_pipeline import tables
from portfolio_pipeline.recommendations.brief import read_latest_brief
from portfolio_pipeline.serving.queries import NotFound


class MarketBrief(BaseModel):
    """One row of ``portfolio.market_brief``: the text, who wrote it, and why a generated
    brief was replaced by the template (``rejected_reason``)."""

    run_id: str
    as_of: date
    generated_at: datetime
    brief: str
    writer: str
    model: str
    rejected_reason: str | None = None


def latest_brief(cur: duckdb.DuckDBPyConnection, run_id: str | None = None) -> MarketBrief:
    """The newest brief (of ``run_id`` when given); :class:`NotFound` (404) when none."""
    row = read_latest_brief(cur, run_id)
    if row is None:
        wanted = f"run {run_id}" if run_id else "any run"
        raise NotFound(f"no market brief for {wanted} in {tables.MARKET_BRIEF}")
    return MarketBrief.model_validate({k: row.get(k) for k in MarketBrief.model_fields})


def brief_section(cur: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
    """The dashboard's "Market brief" section, or None when no brief was written yet."""
    try:
        brief = latest_brief(cur)
    except NotFound:
        return None
    paragraphs = "".join(f"<p>{escape(p)}</p>" for p in brief.brief.split("\n\n") if p.strip())
    source = (
        f"written by {escape(brief.writer)} ({escape(brief.model)}) for run {escape(brief.run_id)}"
    )
    if brief.rejected_reason:
        source += f"; the generated brief was rejected: {escape(brief.rejected_reason)}"
    return "Market brief", f'<div id="brief">{paragraphs}<p class="muted">{source}</p></div>'
