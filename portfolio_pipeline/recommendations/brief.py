"""The market brief of a recommendation run: a template, a model's prompt, and the number check.

Pure (no dagster). :func:`write_brief` asks a text-generation model (when one is given) to
write the brief from the run's facts only (:mod:`~portfolio_pipeline.recommendations.brief_facts`);
a generated brief that states a number the facts do not hold is rejected, and the
deterministic :func:`template_brief` is used, with the reason. Without a model the template
writes the same facts.

Table ``portfolio.market_brief``: one row per recommendation run (see
:data:`MARKET_BRIEF_DDL`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Protocol

import polars as pl

from portfolio_pipeline import tables
from portfolio_pipeline.recommendations.brief_facts import BriefFacts, facts_lines, pct

TEMPLATE_WRITER = "template-v1"
MARKET_BRIEF_DDL = """
    run_id VARCHAR NOT NULL, as_of DATE NOT NULL, generated_at TIMESTAMPTZ NOT NULL,
    brief VARCHAR NOT NULL, writer VARCHAR NOT NULL, model VARCHAR NOT NULL,
    rejected_reason VARCHAR, prompt VARCHAR, facts VARCHAR NOT NULL
"""
_REPLAY_IN_TEMPLATE = ("replay recommended ", "replay target ", "replay never_trade ")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")

BRIEF_INSTRUCTIONS = (
    "You are a careful portfolio analyst. Write a market brief of three or four short "
    "paragraphs about one rebalancing run: what changed, what the recommendations are and "
    "why, the risk, and the news. Use only the FACTS below. Every number you write must "
    "appear in the FACTS exactly as written there; do not compute, round or invent numbers."
)


class TextWriter(Protocol):
    """A text-generation model: ``generate(prompt)`` returns the continuation only."""

    name: str

    def generate(self, prompt: str) -> str: ...


@dataclass(frozen=True)
class Brief:
    """One brief: its text, who wrote it (``template-v1`` or ``llm``), the model, why a
    generated brief was rejected (or the model not used), the prompt and the facts."""

    run_id: str
    as_of: object
    text: str
    writer: str
    model: str
    rejected_reason: str | None
    prompt: str | None
    facts: str

    def to_frame(self) -> pl.DataFrame:
        """The ``portfolio.market_brief`` row."""
        return pl.DataFrame(
            {
                "run_id": [self.run_id],
                "as_of": [self.as_of],
                "generated_at": [datetime.now(UTC)],
                "brief": [self.text],
                "writer": [self.writer],
                "model": [self.model],
                "rejected_reason": [self.rejected_reason],
                "prompt": [self.prompt],
                "facts": [self.facts],
            },
            schema_overrides={"rejected_reason": pl.String, "prompt": pl.String},
        )


def build_prompt(facts: BriefFacts) -> str:
    """The instructions and the run's facts: all a model is told."""
    return BRIEF_INSTRUCTIONS + "\n\nFACTS:\n" + "\n".join(facts_lines(facts)) + "\n\nBRIEF:\n"


def _normalise(number: str) -> str:
    try:
        return str(Decimal(number.replace(",", "")).normalize())
    except InvalidOperation:
        return number


def ungrounded_numbers(text: str, grounding: str) -> list[str]:
    """The numbers in ``text`` that ``grounding`` does not hold (commas and trailing zeros
    ignored: ``1,000.50`` matches ``1000.5``; signs ignored, so "fell 3.2%" may restate
    ``-3.2%``)."""
    allowed = {_normalise(n) for n in _NUMBER.findall(grounding)}
    return [n for n in _NUMBER.findall(text) if _normalise(n) not in allowed]


def template_brief(facts: BriefFacts) -> str:
    """The deterministic brief: the same facts in four paragraphs."""
    return "\n\n".join(
        p
        for p in (
            _changes_paragraph(facts),
            _recommendations_paragraph(facts),
            _risk_paragraph(facts),
            _news_paragraph(facts),
        )
        if p
    )


def _changes_paragraph(facts: BriefFacts) -> str:
    recs = facts.recommendations
    trades = recs.filter(pl.col("action") != "HOLD")
    value = recs["portfolio_value"][0] if "portfolio_value" in recs.columns else None
    worth = f" on a portfolio of {value:,.2f} {facts.cash_symbol}" if value is not None else ""
    if trades.is_empty():
        return (
            f"What changed: the {facts.strategy} run of {facts.as_of} recommends no trade"
            f"{worth}; all {recs.height} positions stay as they are."
        )
    moves = ", ".join(
        f"{r['action'].lower()} {r['symbol']} ({pct(r['current_weight'])} -> "
        f"{pct(r['target_weight'])})"
        for r in trades.iter_rows(named=True)
    )
    return (
        f"What changed: the {facts.strategy} run of {facts.as_of} recommends {trades.height} "
        f"trades{worth}: {moves}. {recs.height - trades.height} positions stay unchanged."
    )


def _recommendations_paragraph(facts: BriefFacts) -> str:
    recs = facts.recommendations.filter(pl.col("symbol") != facts.cash_symbol)
    moved = recs.with_columns(
        (pl.col("target_weight") - pl.col("current_weight")).abs().alias("_move")
    ).sort(["_move", "target_weight", "symbol"], descending=[True, True, False])
    parts = [
        f"{r['symbol']} {r['action']} (expected return {pct(r['expected_return'])}, "
        f"{pct(r['return_low'])} to {pct(r['return_high'])} over {r['horizon_days']} days): "
        f"{r['reason']}"
        for r in moved.head(4).iter_rows(named=True)
    ]
    return "Recommendations and why: " + " ".join(p.rstrip(".") + "." for p in parts)


def _risk_paragraph(facts: BriefFacts) -> str:
    lines = facts_lines(facts)
    risk = [line for line in lines if line.startswith(("risk ", "stress "))]
    # the recommendation process against following the targets and never trading
    replay = [line for line in lines if line.startswith(_REPLAY_IN_TEMPLATE)]
    if not risk and not replay:
        return ""
    return "Risk: " + "; ".join(risk + replay) + "."


def _news_paragraph(facts: BriefFacts) -> str:
    lines = [line for line in facts_lines(facts) if line.startswith("news")]
    return "News: " + " ".join(
        line.removeprefix("news").lstrip(" :").rstrip(".") + "." for line in lines[:5]
    )


def write_brief(facts: BriefFacts, writer: TextWriter | None, reason: str | None = None) -> Brief:
    """The brief of one run: the model's when it is grounded, else the template's.

    ``reason``: why there is no ``writer`` (no model set, or it failed to load).
    """
    grounding = "\n".join(facts_lines(facts))
    template = Brief(
        facts.run_id, facts.as_of, template_brief(facts), TEMPLATE_WRITER, TEMPLATE_WRITER,
        reason, None, grounding,
    )  # fmt: skip
    if writer is None:
        return template
    prompt = build_prompt(facts)
    try:
        text = writer.generate(prompt).strip()
    except Exception as exc:  # a failed generation must not lose the brief
        return _rejected(template, writer.name, prompt, f"generation failed: {exc!r}")
    if not text:
        return _rejected(template, writer.name, prompt, "the model wrote nothing")
    wrong = ungrounded_numbers(text, grounding)
    if wrong:
        return _rejected(
            template, writer.name, prompt, f"numbers not in the facts: {', '.join(wrong[:10])}"
        )
    return Brief(facts.run_id, facts.as_of, text, "llm", writer.name, None, prompt, grounding)


def _rejected(template: Brief, model: str, prompt: str, reason: str) -> Brief:
    return Brief(
        template.run_id, template.as_of, template.text, TEMPLATE_WRITER, model,
        f"rejected: {reason}", prompt, template.facts,
    )  # fmt: skip


def read_latest_brief(con, run_id: str | None = None) -> dict | None:
    """The latest ``portfolio.market_brief`` row (or run ``run_id``'s) as a dict; None when
    there is none. For the CLI, the API and the dashboard."""
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema || '.' || "
        "table_name = ?",
        [tables.MARKET_BRIEF],
    ).fetchone()[0]
    if not exists:
        return None
    rows = con.execute(
        f"select * from {tables.MARKET_BRIEF} where run_id = coalesce(?, run_id) "
        "order by generated_at desc limit 1",
        [run_id],
    ).pl()
    return rows.row(0, named=True) if rows.height else None
