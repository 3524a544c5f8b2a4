"""Bad environment values fail with a message naming the variable and the value."""

import pytest

from portfolio_pipeline.settings import load_settings


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORTFOLIO_PIPELINE_OHLCV_SOURCE", "yahoo", "is not one of sample, binance, files"),
        ("PORTFOLIO_PIPELINE_NEWS_SOURCE", "twitter", "is not one of sample, alphavantage"),
        ("PORTFOLIO_PIPELINE_PROFILE", "huge", "is not one of quick, full"),
        ("PORTFOLIO_PIPELINE_PERIODS_PER_YEAR", "365.25", "is not a whole number"),
        ("PORTFOLIO_PIPELINE_PERIODS_PER_YEAR", "0", "must be > 0"),
        ("PORTFOLIO_PIPELINE_START", "2017-13-01", "is not a YYYY-MM-DD day"),
    ],
)
def test_bad_environment_values_name_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name}='{value}' {message}"):
        load_settings()


def test_defaults_load(monkeypatch):
    for name in ("PORTFOLIO_PIPELINE_PERIODS_PER_YEAR", "PORTFOLIO_PIPELINE_START"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    # blank = inferred from the data calendar (market.calendar)
    assert settings.periods_per_year is None and settings.start_date.isoformat() == "2017-08-17"
