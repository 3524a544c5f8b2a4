"""A real Prometheus scrapes the app and finds the series; the shipped config and rules pass
``promtool``. Skipped only when Prometheus is absent outside CI (``CI=true``: it must run)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import requests
import yaml

from portfolio_pipeline_tests.operations.servers import (
    REPO_ROOT,
    free_port,
    process_group,
    skip_or_fail,
    wait_for,
)
from portfolio_pipeline_tests.serving.server import running_server

pytestmark = pytest.mark.slow
OPS = REPO_ROOT / "ops" / "prometheus"


def binary(name: str) -> str:
    found = shutil.which(name)
    if not found:
        skip_or_fail(f"{name} not found: apt-get install prometheus")
    return str(found)


def test_shipped_config_and_rules_pass_promtool():
    promtool = binary("promtool")
    for args in (["check", "config", str(OPS / "prometheus.yml")],
                 ["check", "rules", str(OPS / "alerts.yml")]):  # fmt: skip
        result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def _query(url: str, expr: str) -> list[dict]:
    reply = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert reply["status"] == "success", reply
    return reply["data"]["result"]


def _config(tmp_path, app_port: int):
    """The shipped config, pointed at the test's app and scraping every second."""
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(OPS / "alerts.yml")]
    config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{app_port}"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_prometheus_scrapes_the_series(tiny_path, tmp_path):
    prometheus = binary("prometheus")
    with running_server(tiny_path, tmp_path / "serve.log") as app:
        port = free_port()
        args = [prometheus, f"--config.file={_config(tmp_path, app.port)}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
        with process_group(args, env={}, log_path=tmp_path / "prometheus.log", cwd=tmp_path):
            url = f"http://127.0.0.1:{port}"
            trades = wait_for(
                lambda: _safe_query(url, "portfolio_pipeline_recommended_trades"), 60,
                "Prometheus to scrape portfolio_pipeline_recommended_trades",
            )  # fmt: skip
            var = _query(
                url, 'portfolio_pipeline_var_ratio{portfolio="current",metric="var_hist_95"}'
            )
            requests_total = _query(url, "sum(portfolio_pipeline_api_requests_total)")
            rules = requests.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
            alert = wait_for(
                lambda: _alert(url, "PortfolioRiskLimitBreached"), 30, "the breach alert"
            )
    assert trades[0]["metric"]["strategy"] == "hrp" and float(trades[0]["value"][1]) == 2
    assert float(var[0]["value"][1]) == 0.09
    assert float(requests_total[0]["value"][1]) >= 1  # Prometheus's own scrapes of /metrics
    assert {r["name"] for g in rules for r in g["rules"]} == {
        "PortfolioDataStale", "PortfolioWarehouseUnreadable", "PortfolioNightlyRunFailed",
        "PortfolioRiskLimitBreached",
    }  # fmt: skip
    assert alert["state"] in ("pending", "firing")


def _safe_query(url: str, expr: str) -> list[dict] | None:
    try:
        return _query(url, expr) or None
    except (requests.RequestException, ValueError):
        return None


def _alert(url: str, name: str) -> dict | None:
    try:
        alerts = requests.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    except (requests.RequestException, ValueError):
        return None
    return next((a for a in alerts if a["labels"]["alertname"] == name), None)
