"""The PostgreSQL test skips on a laptop without the server, and fails in CI instead."""

from __future__ import annotations

import pytest

from portfolio_pipeline_tests.operations import servers


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_missing_postgres_fails_in_ci_and_skips_elsewhere(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(servers, "postgres_binary", lambda name: None)
    with pytest.raises(outcome, match="initdb, pg_ctl"), servers.ephemeral_postgres():
        pass
