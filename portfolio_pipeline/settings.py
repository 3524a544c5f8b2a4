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
``PORTFOLIO_PIPELINE_PERIODS_PER_YEAR`` bars per year; blank (default) = inferred from the data's
                                   calendar (365 for 7-day markets, 252 for business days)
``PORTFOLIO_PIPELINE_STRESS_SCENARIOS`` ``name:YYYY-MM-DD..YYYY-MM-DD,…`` (default: crypto crises
                                   on a 7-day calendar, 2008 / 2020-03 / 2022 for equities)
``PORTFOLIO_PIPELINE_HOLDINGS``    holdings CSV (default ``data/holdings.csv``)
``PORTFOLIO_PIPELINE_CASH``        cash / quote currency (default ``USDT``; ``USD``, ``EUR`` …)
``PORTFOLIO_PIPELINE_BENCHMARK``   market series symbol (default: BTCUSDT when in the universe,
                                   else the symbol with the largest traded value)
``PORTFOLIO_PIPELINE_TEST_YEARS``  length of the test window (default 2, ending on the latest
                                   complete day)
``PORTFOLIO_PIPELINE_VALIDATION_YEARS`` length of the validation window before it (default 1)
``PORTFOLIO_PIPELINE_TRAIN_START`` … ``_TRAIN_END``, ``_VALIDATION_START``, ``_VALIDATION_END``,
                                   ``_TEST_START``, ``_TEST_END``: fix any window bound (ISO date)
``PORTFOLIO_PIPELINE_MARKET_CLOSE`` close time of the market, ``HH:MM`` (blank = crypto: the
                                   UTC day; e.g. ``16:00`` for US equities)
``PORTFOLIO_PIPELINE_MARKET_TIMEZONE`` IANA time zone of that close (default ``UTC``;
                                   e.g. ``America/New_York``)
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

# The default cash of every core function that takes ``cash_symbol``: PORTFOLIO_PIPELINE_CASH
# when set (read once at import, so code that is not handed the setting still agrees with
# it), else USDT. The Dagster layer passes ``Settings.cash_symbol`` explicitly.
CASH_SYMBOL = os.environ.get("PORTFOLIO_PIPELINE_CASH", "").strip().upper() or "USDT"
DEFAULT_START = date(2017, 8, 17)
WINDOW_BOUNDS: tuple[str, ...] = (
    "train_start",
    "train_end",
    "validation_start",
    "validation_end",
    "test_start",
    "test_end",
)


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


def _optional_int(name: str) -> int | None:
    """A positive whole number from the environment, or None when unset (blank)."""
    if not _env(name, ""):
        return None
    return _positive_int_env(name, 1)


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
    # None = infer from the data's calendar (market.calendar.infer_calendar).
    periods_per_year: int | None
    profile: str
    cash_symbol: str = CASH_SYMBOL
    # None = BTCUSDT when in the universe, else the largest traded value (market.context).
    benchmark_symbol: str | None = None
    test_years: int = 2
    validation_years: int = 1
    # Window bounds set by the user (ISO strings), by name in WINDOW_BOUNDS.
    window_overrides: dict = field(default_factory=dict)
    market_close: str | None = None
    market_timezone: str = "UTC"
    # PORTFOLIO_PIPELINE_STRESS_SCENARIOS ("name:2020-02-19..2020-03-23,..."); None = the
    # market's defaults (portfolio.risk.scenarios_for).
    stress_scenarios: str | None = None
    # PORTFOLIO_PIPELINE_HOLDINGS; None = data/holdings.csv.
    holdings_file: Path | None = None
    # PORTFOLIO_PIPELINE_SENTIMENT_MODEL: hub name, local path or "lexicon"; None = FinBERT.
    sentiment_model: str | None = None
    # PORTFOLIO_PIPELINE_SUMMARY_MODEL: seq2seq summarizer (hub name or local path); None =
    # extractive summaries.
    summary_model: str | None = None
    # PORTFOLIO_PIPELINE_LLM_MODEL: text-generation model for the market brief (hub name or
    # local path); None = the deterministic template.
    llm_model: str | None = None
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
        return self.holdings_file or self.data_dir / "holdings.csv"

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
    if profile not in ("quick", "full", "cpu_1m"):
        raise ValueError(
            f"PORTFOLIO_PIPELINE_PROFILE={profile!r} is not one of quick, full, cpu_1m"
        )
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
        periods_per_year=_optional_int("PORTFOLIO_PIPELINE_PERIODS_PER_YEAR"),
        profile=profile,
        cash_symbol=_env("PORTFOLIO_PIPELINE_CASH", CASH_SYMBOL).upper(),
        benchmark_symbol=_env("PORTFOLIO_PIPELINE_BENCHMARK", "").upper() or None,
        test_years=_optional_int("PORTFOLIO_PIPELINE_TEST_YEARS") or 2,
        validation_years=_optional_int("PORTFOLIO_PIPELINE_VALIDATION_YEARS") or 1,
        window_overrides={
            name: value
            for name in WINDOW_BOUNDS
            if (value := _env(f"PORTFOLIO_PIPELINE_{name.upper()}", ""))
        },
        market_close=_env("PORTFOLIO_PIPELINE_MARKET_CLOSE", "") or None,
        market_timezone=_env("PORTFOLIO_PIPELINE_MARKET_TIMEZONE", "UTC"),
        stress_scenarios=_env("PORTFOLIO_PIPELINE_STRESS_SCENARIOS", "") or None,
        holdings_file=Path(value) if (value := _env("PORTFOLIO_PIPELINE_HOLDINGS", "")) else None,
        sentiment_model=_env("PORTFOLIO_PIPELINE_SENTIMENT_MODEL", "").strip() or None,
        summary_model=_env("PORTFOLIO_PIPELINE_SUMMARY_MODEL", "").strip() or None,
        llm_model=_env("PORTFOLIO_PIPELINE_LLM_MODEL", "").strip() or None,
    )
