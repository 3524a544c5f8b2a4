import os

import pytest
import sqlalchemy as sa

from portfolio_pipeline import sqlite_tuning
from portfolio_pipeline.cli import runs as cli_runs


def _synchronous(path) -> int:
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        return conn.execute(sa.text("PRAGMA synchronous")).scalar()


def test_instance_sqlite_level_follows_the_setting(tmp_path, monkeypatch):
    sqlite_tuning.install()
    monkeypatch.delenv(sqlite_tuning.SYNCHRONOUS_ENV, raising=False)
    assert _synchronous(tmp_path / "a.db") == 1  # NORMAL
    monkeypatch.setenv(sqlite_tuning.SYNCHRONOUS_ENV, "off")
    assert _synchronous(tmp_path / "a.db") == 0
    monkeypatch.setenv(sqlite_tuning.SYNCHRONOUS_ENV, "sometimes")
    with pytest.raises(ValueError, match="PORTFOLIO_PIPELINE_SQLITE_SYNCHRONOUS"):
        sqlite_tuning.synchronous_level()


def test_cli_turns_fsyncs_off_only_for_a_bulk_backfill(monkeypatch):
    monkeypatch.delenv(sqlite_tuning.SYNCHRONOUS_ENV, raising=False)
    tags = {"dagster/asset_partition_range_start": "x"}
    seen = []
    for partition_tags, bounds in (
        (tags, ("2021-01-01", "2021-12-31")),  # a year of days: bulk
        (tags, ("2021-01-01", "2021-01-31")),  # a month: ordinary run
        ({}, ("2021-01-01", "2021-12-31")),  # the unpartitioned run after it
    ):
        with cli_runs.bulk_backfill(partition_tags, bounds):
            seen.append(os.environ.get(sqlite_tuning.SYNCHRONOUS_ENV))
    assert seen == ["OFF", None, None]
    assert sqlite_tuning.SYNCHRONOUS_ENV not in os.environ
    # an explicit setting always wins
    monkeypatch.setenv(sqlite_tuning.SYNCHRONOUS_ENV, "FULL")
    with cli_runs.bulk_backfill(tags, ("2021-01-01", "2021-12-31")):
        assert os.environ[sqlite_tuning.SYNCHRONOUS_ENV] == "FULL"
