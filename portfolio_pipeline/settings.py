"""Project-wide settings, read from the environment with offline-friendly defaults.

Pure: no dagster import. Every path and knob a user may want to change is here, so the
Dagster layer, the CLI and notebooks agree on where things live.

Environment variables (all optional):

=================================  ==========================================================
``PORTFOLIO_PIPELINE_HOME``        project root holding ``data/`` (default: the repo root)
``PORTFOLIO_PIPELINE_WAREHOUSE``   DuckDB file (default ``$HOME/data/warehouse.duckdb``)
``PORTFOLIO_PIPELINE_OHLCV_SOURCE`` ``sample`` (default) | ``binance`` | ``files``
``PORTFOLIO_PIPELINE_NEWS_SOURCE``  ``sample`` (default) | ``alphavantage`` | ``files``
``PORTFOLIO_PIPELINE_FILES_DIR``    folder for the ``files`` source (default ``data/files``)
``PORTFOLIO_PIPELINE_SYMBOLS``      comma-separated universe (default: every sample symbol)
``PORTFOLIO_PIPELINE_START``        first partition day (default 2017-08-17)
``PORTFOLIO_PIPELINE_PERIODS_PER_YEAR`` 365 for crypto (default), 252 for equities
``PORTFOLIO_PIPELINE_PROFILE``      ``quick`` (default) | ``full`` tuning budgets
=================================  ==========================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent

SAMPLE_SYMBOLS: tuple[str, ...] = (
    "ADAUSDT", "ATOMUSDT", "AVAXUSDT", "BCHUSDT", "BNBUSDT", "BTCUSDT", "DOGEUSDT",
    "DOTUSDT", "ETCUSDT", "ETHUSDT", "LINKUSDT", "LTCUSDT", "MATICUSDT", "PAXGUSDT",
    "SHIBUSDT", "SOLUSDT", "TRXUSDT", "UNIUSDT", "XLMUSDT", "XMRUSDT", "XRPUSDT",
)  # fmt: skip

CASH_SYMBOL = "USDT"
DEFAULT_START = date(2017, 8, 17)


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _positive_int_env(name: str, default: int) -> int:
    text = _env(name, str(default))
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a whole number") from None
    if value <= 0:
        raise ValueError(f"{name}={text!r} must be > 0")
    return value


def _date_env(name: str, default: date) -> date:
    text = _env(name, default.isoformat())
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a YYYY-MM-DD day") from None


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse_path: Path
    ohlcv_source: str
    news_source: str
    files_dir: Path
    symbols: tuple[str, ...]
    start_date: date
    periods_per_year: int
    profile: str
    cash_symbol: str = CASH_SYMBOL
    extra: dict = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def sample_ohlcv_path(self) -> Path:
        return self.data_dir / "crypto_ohlcv_daily.parquet"

    @property
    def sample_news_path(self) -> Path:
        return self.data_dir / "crypto_news.parquet"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def holdings_path(self) -> Path:
        return self.data_dir / "holdings.csv"

    @property
    def inbox_dir(self) -> Path:
        return self.data_dir / "inbox"


def load_settings() -> Settings:
    """Read the settings from the environment (cheap; call it where needed)."""
    home = Path(_env("PORTFOLIO_PIPELINE_HOME", str(REPO_ROOT))).resolve()
    symbols_env = _env("PORTFOLIO_PIPELINE_SYMBOLS", "")
    symbols = (
        tuple(s.strip().upper() for s in symbols_env.split(",") if s.strip())
        if symbols_env
        else SAMPLE_SYMBOLS
    )
    ohlcv_source = _env("PORTFOLIO_PIPELINE_OHLCV_SOURCE", "sample").lower()
    news_source = _env("PORTFOLIO_PIPELINE_NEWS_SOURCE", "sample").lower()
    for name, value, allowed in (
        ("PORTFOLIO_PIPELINE_OHLCV_SOURCE", ohlcv_source, ("sample", "binance", "files")),
        ("PORTFOLIO_PIPELINE_NEWS_SOURCE", news_source, ("sample", "alphavantage", "files")),
    ):
        if value not in allowed:
            raise ValueError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    profile = _env("PORTFOLIO_PIPELINE_PROFILE", "quick").lower()
    if profile not in ("quick", "full"):
        raise ValueError(f"PORTFOLIO_PIPELINE_PROFILE={profile!r} is not one of quick, full")
    return Settings(
        home=home,
        warehouse_path=Path(
            _env("PORTFOLIO_PIPELINE_WAREHOUSE", str(home / "data" / "warehouse.duckdb"))
        ),
        ohlcv_source=ohlcv_source,
        news_source=news_source,
        files_dir=Path(_env("PORTFOLIO_PIPELINE_FILES_DIR", str(home / "data" / "files"))),
        symbols=symbols,
        start_date=_date_env("PORTFOLIO_PIPELINE_START", DEFAULT_START),
        periods_per_year=_positive_int_env("PORTFOLIO_PIPELINE_PERIODS_PER_YEAR", 365),
        profile=profile,
    )
