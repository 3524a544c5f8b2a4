"""operations.notifications: webhook/Telegram delivery, risk-limit breaches and the freshness rule."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import polars as pl
import pytest

from portfolio_pipeline.operations import notifications as alerts
from portfolio_pipeline_tests.helpers import risk_rows


# --------------------------------------------------------------------------- delivery
def test_webhook_gets_slack_compatible_json(webhook_server):
    channels = alerts.AlertChannels(webhook_url=f"{webhook_server.url}/hook")
    assert alerts.send_alert("BTC is on fire", channels) == ["webhook"]
    assert webhook_server.requests == [("/hook", {"text": "BTC is on fire"})]


def test_telegram_send_message(webhook_server, no_alert_channels, monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("TELEGRAM_CHAT_ID", "-10042")
    monkeypatch.setenv("TELEGRAM_API_URL", webhook_server.url)
    assert alerts.send_alert("x" * 5000) == ["telegram"]
    path, body = webhook_server.requests[0]
    assert path == "/bot123:abc/sendMessage"
    assert body["chat_id"] == "-10042" and len(body["text"]) == alerts.TELEGRAM_MAX_CHARS
    webhook_server.reply = {"ok": False, "description": "chat not found"}
    with pytest.raises(alerts.AlertDeliveryError, match="chat not found"):
        alerts.send_alert("again")


def test_a_failing_channel_raises_after_trying_every_channel(webhook_server):
    webhook_server.status = 500
    webhook_server.reply = {"error": "boom"}
    channels = alerts.AlertChannels(
        webhook_url=f"{webhook_server.url}/hook",
        telegram_token="1:t",
        telegram_chat_id="7",
        telegram_api_url=webhook_server.url,
    )
    with pytest.raises(alerts.AlertDeliveryError, match=r"webhook: HTTP 500.*telegram: HTTP 500"):
        alerts.send_alert("down", channels)
    assert len(webhook_server.requests) == 2


def test_unreachable_webhook_is_a_clear_error():
    channels = alerts.AlertChannels(webhook_url="http://127.0.0.1:9/nothing-listens-here")
    with pytest.raises(alerts.AlertDeliveryError, match="webhook: ConnectionError"):
        alerts.send_alert("x", channels, timeout_s=2)


def test_without_channels_the_alert_is_logged(no_alert_channels, caplog):
    with caplog.at_level(logging.WARNING, logger="portfolio_pipeline.operations.notifications"):
        assert alerts.send_alert("nobody listens") == []
    assert "nobody listens" in caplog.text and "PORTFOLIO_PIPELINE_ALERT_WEBHOOK_URL" in caplog.text


def test_telegram_needs_token_and_chat():
    with pytest.raises(ValueError, match="TELEGRAM_CHAT_ID"):
        alerts.AlertChannels.from_env({"TELEGRAM_BOT_TOKEN": "1:t"})


# --------------------------------------------------------------------------- risk limits
def test_breaches_use_the_latest_rows_and_magnitudes():
    history = pl.concat(
        [
            risk_rows(date(2024, 1, 1), {("current", "var_hist_95"): 0.20}),
            risk_rows(
                date(2024, 1, 2),
                {
                    ("current", "var_hist_95"): 0.05,
                    ("current", "max_drawdown"): -0.62,  # negative-return convention
                    ("current", "var_hist_99"): 0.30,  # no limit on it
                    ("target", "var_hist_95"): 0.50,  # not monitored by default
                    ("current", "cvar_95"): float("nan"),
                },
            ),
        ]
    )
    breaches = alerts.risk_limit_breaches(history, alerts.RiskLimits())
    assert [(b.portfolio, b.metric, b.value) for b in breaches] == [
        ("current", "max_drawdown", -0.62)
    ]
    wider = alerts.RiskLimits.from_env(
        {
            "PORTFOLIO_PIPELINE_VAR95_LIMIT": "0.04",
            "PORTFOLIO_PIPELINE_RISK_PORTFOLIOS": "*",
        }
    )
    names = {(b.portfolio, b.metric) for b in alerts.risk_limit_breaches(history, wider)}
    assert names == {
        ("current", "var_hist_95"),
        ("current", "max_drawdown"),
        ("target", "var_hist_95"),
    }
    renamed = alerts.RiskLimits.from_env({"PORTFOLIO_PIPELINE_VAR95_METRIC": "var_hist_99"})
    assert {b.metric for b in alerts.risk_limit_breaches(history, renamed)} == {
        "var_hist_99",
        "max_drawdown",
    }
    with pytest.raises(ValueError, match="PORTFOLIO_PIPELINE_DRAWDOWN_LIMIT"):
        alerts.RiskLimits.from_env({"PORTFOLIO_PIPELINE_DRAWDOWN_LIMIT": "half"})


def test_latest_run_wins_when_history_keeps_several_runs():
    day = date(2024, 1, 2)
    rows = pl.concat(
        [
            risk_rows(day, {("current", "var_hist_95"): 0.2}, datetime(2024, 1, 2, 1, tzinfo=UTC)),
            risk_rows(day, {("current", "var_hist_95"): 0.01}, datetime(2024, 1, 2, 2, tzinfo=UTC)),
        ]
    )
    assert alerts.risk_limit_breaches(rows, alerts.RiskLimits()) == []


# --------------------------------------------------------------------------- freshness
NOW = datetime(2024, 1, 7, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("newest", "live", "stale"),
    [
        (date(2024, 1, 5), True, False),  # complete 2024-01-06 00:00: 36.0 h old, at the limit
        (date(2024, 1, 4), True, True),  # 60 h old
        (date(2024, 1, 4), False, False),  # a snapshot is exempt
        (None, True, True),  # a live source with nothing stored
        (datetime(2024, 1, 6, 0, 30, tzinfo=UTC), True, False),  # an article 35.5 h old
        (datetime(2024, 1, 5, 23, 30, tzinfo=UTC), True, True),  # an article 36.5 h old
    ],
)
def test_freshness_rule(newest, live, stale):
    verdict = alerts.assess_freshness("raw_ohlcv", newest, source="x", live=live, now=NOW)
    assert verdict.stale is stale
    if not live:
        assert "exempt" in verdict.describe()
    if isinstance(newest, datetime):
        assert verdict.age == NOW - newest
