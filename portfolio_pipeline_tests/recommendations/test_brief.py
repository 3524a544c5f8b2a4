"""The market brief: the template on hand-built tables, the number check with a planted wrong
number, a tiny causal LM through the real loading path, the fallback, the stored row."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.news.tiny_models import build_untrained_causal_lm
from portfolio_pipeline.recommendations.brief import (
    MARKET_BRIEF_DDL,
    TEMPLATE_WRITER,
    build_prompt,
    read_latest_brief,
    template_brief,
    ungrounded_numbers,
    write_brief,
)
from portfolio_pipeline.recommendations.brief_facts import (
    BriefFacts,
    facts_lines,
    read_brief_facts,
    recent_news,
)
from portfolio_pipeline.recommendations.brief_writer import (
    GenerativeBriefWriter,
    load_brief_writer,
)
from portfolio_pipeline.warehouse import connection

AS_OF = date(2025, 12, 31)


def _recommendations() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "as_of": [AS_OF] * 4,
            "generated_at": [datetime(2026, 1, 1, 8, tzinfo=UTC)] * 4,
            "run_id": ["run-1"] * 4,
            "strategy": ["hrp"] * 4,
            "symbol": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "USDT"],
            "current_weight": [0.40, 0.10, 0.20, 0.30],
            "target_weight": [0.30, 0.20, 0.20, 0.30],
            "action": ["SELL", "BUY", "HOLD", "HOLD"],
            "expected_return": [-0.012, 0.021, 0.004, 0.0],
            "return_low": [-0.08, -0.05, -0.06, 0.0],
            "return_high": [0.05, 0.09, 0.07, 0.0],
            "reason": [
                "SELL: hrp target 30.00% vs current 40.00%; gate passed",
                "BUY: hrp target 20.00% vs current 10.00%; gate passed",
                "HOLD: at target",
                "cash",
            ],
            "horizon_days": [7] * 4,
            "portfolio_value": [100_000.0] * 4,
        }
    )


def _facts() -> BriefFacts:
    processes = pl.DataFrame(
        {
            "process": ["recommended", "never_trade", "recommended_c50"],
            "window": ["test"] * 3,
            "start": [date(2024, 1, 1)] * 3,
            "end": [date(2025, 12, 31)] * 3,
            "total_return": [0.42, 0.30, 0.5],
            "sharpe": [1.234, 0.9, 1.5],
            "max_drawdown": [0.21, 0.25, 0.2],
        }
    )
    risk = pl.DataFrame(
        {
            "as_of": [AS_OF] * 4,
            "portfolio": ["recommended"] * 4,
            "metric": ["var_hist_95", "cvar_95", "ann_vol", "max_drawdown"],
            "value": [0.035, 0.052, 0.45, 0.33],
        }
    )
    stress = pl.DataFrame(
        {
            "as_of": [AS_OF] * 2,
            "portfolio": ["recommended"] * 2,
            "scenario": ["ftx", "terra_luna"],
            "pnl_pct": [-18.5, -27.25],
            "description": ["FTX collapse", "Terra/LUNA"],
        }
    )
    digest = pl.DataFrame(
        {
            "symbol": ["MARKET", "MARKET", "BTCUSDT"],
            "date": [date(2025, 12, 30), date(2026, 1, 2), date(2025, 12, 29)],
            "rank": [1, 1, 1],
            "title": ["Bitcoin slips", "From the future", "BTC ETF flows"],
            "summary": ["Bitcoin slips as ETF outflows grow.", "Not known yet.", None],
        }
    )
    forecasts = pl.DataFrame(
        {
            "as_of": [AS_OF] * 2,
            "symbol": ["BTCUSDT", "ETHUSDT"],
            "horizon_days": [7, 7],
            "q10": [-0.08, -0.05],
            "q50": [-0.012, 0.021],
            "q90": [0.05, 0.09],
        }
    )
    return BriefFacts(
        "run-1", AS_OF, "hrp", "USDT", _recommendations(), processes, risk, stress,
        recent_news(digest, AS_OF), forecasts,
    )  # fmt: skip


class _FixedText:
    """A writer that returns a given text: tests the acceptance logic, not a model."""

    def __init__(self, text: str) -> None:
        self.name = "fixed-writer"
        self.text = text

    def generate(self, prompt: str) -> str:
        return self.text


def test_template_states_the_facts_and_only_them():
    facts = _facts()
    text = template_brief(facts)
    assert "recommends 2 trades" in text and "100,000.00 USDT" in text
    assert "sell BTCUSDT (40.00% -> 30.00%)" in text and "buy ETHUSDT (10.00% -> 20.00%)" in text
    assert "var_hist_95 3.50%" in text and "terra_luna: -27.25%" in text
    assert "Sharpe 1.23" in text and "replay never_trade" in text
    assert "Bitcoin slips as ETF outflows grow." in text
    # point in time: news after as_of never reaches the brief
    assert "future" not in text.lower() and "Not known yet" not in text
    assert ungrounded_numbers(text, "\n".join(facts_lines(facts))) == []
    brief = write_brief(facts, None, "no brief model set")
    assert brief.writer == brief.model == TEMPLATE_WRITER and brief.text == text
    assert brief.rejected_reason == "no brief model set" and brief.prompt is None


def test_number_check_rejects_a_planted_wrong_number():
    facts = _facts()
    grounded = "The hrp run sells BTCUSDT from 40.00% to 30.00% and buys ETHUSDT (Sharpe 1.23)."
    accepted = write_brief(facts, _FixedText(grounded))
    assert accepted.writer == "llm" and accepted.text == grounded
    assert accepted.model == "fixed-writer" and accepted.rejected_reason is None
    assert accepted.prompt == build_prompt(facts) and "FACTS:" in accepted.prompt

    planted = grounded.replace("30.00%", "31.50%")
    rejected = write_brief(facts, _FixedText(planted))
    assert rejected.text == template_brief(facts) and rejected.writer == TEMPLATE_WRITER
    assert rejected.model == "fixed-writer" and "31.50" in (rejected.rejected_reason or "")
    assert rejected.prompt == build_prompt(facts)
    assert (
        write_brief(facts, _FixedText("  ")).rejected_reason == "rejected: the model wrote nothing"
    )
    # commas and trailing zeros do not matter; a sign may be dropped ("fell 18.5%")
    assert ungrounded_numbers("1,000.50 and 18.5", "value 1000.5, pnl -18.50%") == []


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory, sample_news: pl.DataFrame) -> Path:
    corpus = [*sample_news["title"].head(1000).to_list(), *facts_lines(_facts())]
    return build_untrained_causal_lm(tmp_path_factory.mktemp("tiny-gpt2"), corpus)


def test_tiny_causal_lm_through_the_real_loading_path(tiny_lm_dir):
    writer, reason = load_brief_writer(str(tiny_lm_dir), max_new_tokens=24)
    assert isinstance(writer, GenerativeBriefWriter) and reason is None
    assert writer.device in ("cpu", "cuda") and writer.context_tokens == 4096
    facts = _facts()
    brief = write_brief(facts, writer, reason)
    assert brief.model == tiny_lm_dir.name and brief.prompt == build_prompt(facts)
    # random weights: word salad, kept only if it states no number outside the facts
    if brief.writer == "llm":
        assert ungrounded_numbers(brief.text, brief.facts) == []
    else:
        assert brief.text == template_brief(facts) and brief.rejected_reason
    # a prompt that does not fit the context is refused, not truncated
    writer.context_tokens = 50
    refused = write_brief(facts, writer)
    assert refused.writer == TEMPLATE_WRITER and "context" in (refused.rejected_reason or "")


def test_unloadable_or_unset_model_means_the_template_with_the_reason(tmp_path):
    writer, reason = load_brief_writer(str(tmp_path / "no-such-llm"))
    assert writer is None and "no-such-llm" in (reason or "")
    brief = write_brief(_facts(), writer, reason)
    assert brief.writer == TEMPLATE_WRITER and "no-such-llm" in (brief.rejected_reason or "")
    assert load_brief_writer("") == (None, "no brief model set (PORTFOLIO_PIPELINE_LLM_MODEL)")


def test_facts_come_from_the_warehouse_and_the_row_reads_back(tmp_warehouse):
    facts = _facts()
    with connection(tmp_warehouse) as con:
        warehouse.replace_table(con, tables.RECOMMENDATIONS, facts.recommendations)
        warehouse.replace_table(con, tables.RECOMMENDATION_BACKTEST_METRICS, facts.processes)
        warehouse.replace_table(con, tables.RISK_METRICS, facts.risk)
        warehouse.replace_table(con, tables.STRESS_TESTS, facts.stress)
        warehouse.replace_table(con, tables.RETURN_FORECASTS, facts.forecasts)
        assert read_latest_brief(con) is None
        read = read_brief_facts(con)
        assert read.run_id == "run-1" and read.as_of == AS_OF and read.news.is_empty()
        assert "news: none up to 2025-12-31" in facts_lines(read)
        brief = write_brief(read, None, "no model")
        warehouse.replace_rows(
            con, tables.MARKET_BRIEF, brief.to_frame(), where="run_id = ?",
            params=(brief.run_id,), ddl_columns=MARKET_BRIEF_DDL,
        )  # fmt: skip
        row = read_latest_brief(con)
    assert row is not None and row["brief"] == brief.text and row["writer"] == TEMPLATE_WRITER
    assert row["facts"] == "\n".join(facts_lines(read))
