"""``portfolio-pipeline brief``: the latest brief, a given run's, JSON, and the errors."""

from __future__ import annotations

import json
from datetime import date

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.cli import main
from portfolio_pipeline.recommendations.brief import MARKET_BRIEF_DDL, Brief


def _store(path, run_id: str, text: str, writer: str = "template-v1") -> None:
    brief = Brief(run_id, date(2025, 12, 31), text, writer, "tiny", "rejected: x", "P", "F")
    with warehouse.connection(path) as con:
        warehouse.replace_rows(
            con, tables.MARKET_BRIEF, brief.to_frame(), where="run_id = ?", params=(run_id,),
            ddl_columns=MARKET_BRIEF_DDL,
        )  # fmt: skip


def test_brief_prints_the_latest_or_a_given_run(tmp_warehouse, monkeypatch, capsys):
    monkeypatch.setenv("PORTFOLIO_PIPELINE_WAREHOUSE", str(tmp_warehouse))
    assert main(["brief"]) == 1
    assert "no warehouse" in capsys.readouterr().err
    with warehouse.connection(tmp_warehouse) as con:
        con.execute("create table t (x int)")
    assert main(["brief"]) == 1
    assert "materialize market_brief" in capsys.readouterr().err
    _store(tmp_warehouse, "run-a", "First brief.")
    _store(tmp_warehouse, "run-b", "Second brief.")
    assert main(["brief"]) == 0
    out = capsys.readouterr().out
    assert "run run-b as of 2025-12-31, written by template-v1 (tiny)" in out
    assert "Second brief." in out and "template used: rejected: x" in out
    assert main(["brief", "--run-id", "run-a", "--format", "json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["brief"] == "First brief." and row["prompt"] == "P" and row["model"] == "tiny"
