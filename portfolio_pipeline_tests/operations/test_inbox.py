"""operations.inbox: which dropped files are ready to ingest."""

from __future__ import annotations

from portfolio_pipeline.operations import inbox


def test_pending_files_skips_unsettled_hidden_and_other_files(tmp_path):
    (tmp_path / "a.csv").write_text("x\n")
    (tmp_path / ".hidden.csv").write_text("x\n")
    (tmp_path / "notes.txt").write_text("x\n")
    (tmp_path / "b.parquet.part").write_text("x\n")
    (tmp_path / "processed").mkdir()
    now = (tmp_path / "a.csv").stat().st_mtime
    assert inbox.pending_files(tmp_path, settle_seconds=5, now=now + 1) == []
    assert inbox.pending_files(tmp_path, settle_seconds=5, now=now + 6) == [tmp_path / "a.csv"]
