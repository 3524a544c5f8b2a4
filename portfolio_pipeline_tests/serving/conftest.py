"""Fixtures of the serving tests: the tiny warehouse, its config and a test client."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from portfolio_pipeline.operations.notifications import RiskLimits
from portfolio_pipeline.serving.app import create_app
from portfolio_pipeline.serving.config import ServeConfig
from portfolio_pipeline_tests.serving import tiny_warehouse


@pytest.fixture()
def tiny_path(tmp_path: Path) -> Path:
    return tiny_warehouse.build(tmp_path / "warehouse.duckdb")


@pytest.fixture()
def config(tiny_path: Path) -> ServeConfig:
    return ServeConfig(warehouse_path=tiny_path, symbols=tiny_warehouse.SYMBOLS)


@pytest.fixture()
def client(config: ServeConfig):
    with TestClient(create_app(config, limits=RiskLimits())) as test_client:
        yield test_client
