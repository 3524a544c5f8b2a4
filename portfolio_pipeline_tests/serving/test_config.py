"""Server settings: the exposure rule, the environment, a token that never prints."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from portfolio_pipeline.serving.config import (
    TOKEN_ENV,
    ServeConfig,
    ServeConfigError,
    is_loopback,
    load_serve_config,
)
from portfolio_pipeline.settings import load_settings


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.org"])
def test_a_reachable_host_without_a_token_refuses_to_start(host):
    with pytest.raises(ServeConfigError) as info:
        ServeConfig(Path("w.duckdb"), host=host).check_exposure()
    assert host in str(info.value) and TOKEN_ENV in str(info.value)
    ServeConfig(Path("w.duckdb"), host=host, token="t").check_exposure()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_token(host):
    assert is_loopback(host)
    ServeConfig(Path("w.duckdb"), host=host).check_exposure()


def test_environment_and_command_line(monkeypatch):
    env = {
        "PORTFOLIO_PIPELINE_SERVE_HOST": "0.0.0.0",
        "PORTFOLIO_PIPELINE_SERVE_PORT": "9001",
        TOKEN_ENV: " tok ",
        "PORTFOLIO_PIPELINE_MAX_DATA_AGE_HOURS": "12",
    }
    config = load_serve_config(load_settings(), env)
    assert (config.host, config.port, config.token) == ("0.0.0.0", 9001, "tok")
    assert config.max_data_age == timedelta(hours=12)
    assert load_serve_config(load_settings(), env, host="127.0.0.1", port=9).port == 9
    defaults = load_serve_config(load_settings(), {})
    assert (defaults.host, defaults.port, defaults.token) == ("127.0.0.1", 8000, None)


@pytest.mark.parametrize(
    "name,value",
    [("PORTFOLIO_PIPELINE_SERVE_PORT", "http"), ("PORTFOLIO_PIPELINE_SERVE_PORT", "70000"),
     ("PORTFOLIO_PIPELINE_MAX_DATA_AGE_HOURS", "-1"), ("PORTFOLIO_PIPELINE_MAX_DATA_AGE_HOURS", "x")],
)  # fmt: skip
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ServeConfigError, match=name):
        load_serve_config(load_settings(), {name: value})


def test_the_token_never_prints():
    config = ServeConfig(Path("w.duckdb"), token="very-secret")
    assert "very-secret" not in repr(config) and "very-secret" not in str(config)


def test_live_sources():
    assert ServeConfig(Path("w"), ohlcv_source="binance").ohlcv_live
    assert not ServeConfig(Path("w"), ohlcv_source="sample").ohlcv_live
    assert ServeConfig(Path("w"), news_source="alphavantage").news_live
