"""Security: a read-only query command, secrets kept out of errors and logs, a local UI."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
import requests

from portfolio_pipeline import warehouse
from portfolio_pipeline.cli import main
from portfolio_pipeline.market.sources.alphavantage import AlphaVantageNewsSource
from portfolio_pipeline.operations import notifications as alerts

REPO = Path(__file__).resolve().parents[1]
FAKE_KEY = "FAKEKEY0123456789"
FAKE_WEBHOOK_TOKEN = "XyZFakeWebhookToken42"
FAKE_TELEGRAM_TOKEN = "123456:FakeTelegramToken"
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused


@pytest.fixture()
def seeded(tmp_warehouse, monkeypatch):
    monkeypatch.setenv("PORTFOLIO_PIPELINE_WAREHOUSE", str(tmp_warehouse))
    with warehouse.connection(tmp_warehouse) as con:
        warehouse.replace_table(con, "market.raw_ohlcv", pl.DataFrame({"symbol": ["BTCUSDT"]}))
    return tmp_warehouse


@pytest.mark.parametrize(
    ("sql", "target"),
    [
        ("COPY market.raw_ohlcv TO '{out}/t.csv'", "t.csv"),
        ("COPY (select 42) TO '{out}/q.parquet' (FORMAT parquet)", "q.parquet"),
        ("EXPORT DATABASE '{out}/export'", "export"),
        ("ATTACH '{out}/other.duckdb' AS other", "other.duckdb"),
        ("INSTALL httpfs", None),
        ("LOAD httpfs", None),
        ("LOAD '{out}/evil.duckdb_extension'", None),
        ("select * from read_csv('/etc/passwd')", None),  # file table functions
        ("select * from read_text('/etc/hostname')", None),
        ("select * from glob('/etc/*')", None),
        ("SET enable_external_access = true", None),  # cannot be switched back on
        ("CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'k', SECRET 's')", None),
        ("SET temp_directory = '{out}/spill'", "spill"),
        ("create table main.x as select 1", None),  # and no write to the warehouse itself
        ("delete from market.raw_ohlcv", None),
    ],
)
def test_query_refuses_every_way_out(seeded, tmp_path, capsys, sql, target):
    out = tmp_path / "out"
    out.mkdir()
    before = seeded.read_bytes()
    assert main(["query", sql.format(out=out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("portfolio-pipeline query: error: query ")
    if target:
        assert not (out / target).exists()
    assert seeded.read_bytes() == before
    assert main(["query", "select count(*) as n from market.raw_ohlcv"]) == 0  # still usable


def test_refusals_say_why(seeded, tmp_path, capsys):
    assert main(["query", f"COPY market.raw_ohlcv TO '{tmp_path}/t.csv'"]) == 1
    assert "query refused: `portfolio-pipeline query` is read-only" in capsys.readouterr().err


def test_api_key_stays_out_of_errors_logs_and_reprs(monkeypatch, caplog):
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", FAKE_KEY)
    source = AlphaVantageNewsSource(
        base_url=f"{CLOSED}/query", session=requests.Session(), max_retries=1, sleep=lambda s: None
    )
    caplog.set_level(logging.DEBUG)
    from datetime import date

    with pytest.raises(Exception) as failed:  # a real requests error embeds the whole URL
        source.fetch(date(2024, 1, 1), date(2024, 1, 2))
    text = f"{failed.value!r} {failed.value} {failed.value.__cause__} {caplog.text} {source!r}"
    assert "127.0.0.1" in text and "apikey=***" in text  # the error is there, masked
    assert FAKE_KEY not in text


def test_key_is_not_part_of_the_dagster_resource_config(monkeypatch):
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", FAKE_KEY)
    monkeypatch.setenv("PORTFOLIO_PIPELINE_NEWS_SOURCE", "alphavantage")
    from portfolio_pipeline.definitions import build_resources
    from portfolio_pipeline.settings import load_settings

    resources = build_resources(load_settings())
    shown = " ".join(  # the settings resource is a plain object: its repr is what shows
        f"{r!r} {r.model_dump() if hasattr(r, 'model_dump') else ''}" for r in resources.values()
    )
    assert "alphavantage" in shown and FAKE_KEY not in shown  # what the UI shows as config


def test_webhook_and_telegram_tokens_stay_out_of_alert_errors(monkeypatch, caplog):
    monkeypatch.setenv(alerts.WEBHOOK_URL_ENV, f"{CLOSED}/services/T000/B000/{FAKE_WEBHOOK_TOKEN}")
    monkeypatch.setenv(alerts.TELEGRAM_TOKEN_ENV, FAKE_TELEGRAM_TOKEN)
    monkeypatch.setenv(alerts.TELEGRAM_CHAT_ENV, "42")
    monkeypatch.setenv(alerts.TELEGRAM_API_ENV, CLOSED)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(alerts.AlertDeliveryError) as failed:
        alerts.send_alert("[portfolio-pipeline] test alert", timeout_s=2)
    text = f"{failed.value} {caplog.text}"
    assert "webhook: ConnectionError" in text and "telegram: ConnectionError" in text
    assert FAKE_WEBHOOK_TOKEN not in text and FAKE_TELEGRAM_TOKEN not in text
    assert "FakeTelegram" not in text and "/services/T000" not in text


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_ui_binds_to_localhost_unless_told_otherwise():
    def dev_command(*args: str) -> str:
        dry = subprocess.run(
            ["make", "-n", "dev", *args], cwd=REPO, capture_output=True, text=True, check=True
        )
        return next(line for line in dry.stdout.splitlines() if "dagster dev" in line)

    assert " -h 127.0.0.1 " in dev_command()
    assert " -h 0.0.0.0 " in dev_command("UI_HOST=0.0.0.0")
    from dagster_webserver.cli import dagster_webserver

    # `dagster dev` without -h passes no host, and the webserver's own default is local too.
    assert next(p.default for p in dagster_webserver.params if p.name == "host") == "127.0.0.1"
