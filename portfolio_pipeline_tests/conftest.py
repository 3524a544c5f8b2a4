from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
FIXTURES_DIR = DATA_DIR / "fixtures"


@pytest.fixture(scope="session")
def sample_ohlcv() -> pl.DataFrame:
    """The whole shipped OHLCV sample (50,732 rows, 21 symbols)."""
    return pl.read_parquet(DATA_DIR / "crypto_ohlcv_daily.parquet")


@pytest.fixture(scope="session")
def sample_news() -> pl.DataFrame:
    """The whole shipped news sample (7,465 headlines)."""
    return pl.read_parquet(DATA_DIR / "crypto_news.parquet")


@pytest.fixture()
def tmp_warehouse(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture()
def fixtures_dir() -> Path:
    return FIXTURES_DIR
