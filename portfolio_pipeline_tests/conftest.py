from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cluster():
    """A separate local Ray head on 127.0.0.1 (``ray start --head --block``).

    Yields a namespace with ``address`` (host:port) and ``env``: the variables a client needs
    (``RAY_ADDRESS`` and the cluster's own token: Ray 2.60 turns token authentication on).

    The head runs in its own process group, started here and stopped here by that group's id
    (never ``ray stop``, which would end every Ray on the machine). Its workers import this
    checkout (PYTHONPATH), as a cluster's workers would import the installed package. Shared
    by every test that needs a real cluster (walk-forward folds, the DRL search).
    """
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="rayt")  # short: Ray's socket paths have a length limit
    import secrets
    from types import SimpleNamespace

    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env = {
        **os.environ,
        **auth,
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen(
        [
            ray_bin, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
            "--node-ip-address=127.0.0.1", "--include-dashboard=false",
            "--disable-usage-stats", f"--temp-dir={temp_dir}",
        ],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            status = subprocess.run(
                [ray_bin, "status", f"--address={address}"], env=env, capture_output=True
            )
            if status.returncode == 0:
                break
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head on {address} did not start")
            time.sleep(1.0)
        yield SimpleNamespace(address=address, env={**auth, "RAY_ADDRESS": address})
    finally:
        try:
            import ray

            if ray.is_initialized():
                ray.shutdown()
        finally:
            os.killpg(head.pid, signal.SIGTERM)
            try:
                head.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)
                head.wait()
            shutil.rmtree(temp_dir, ignore_errors=True)


# ------------------------------------------------------------------ alert channels
ALERT_ENV = (
    "PORTFOLIO_PIPELINE_ALERT_WEBHOOK_URL",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_CHAT_ID",
    "TELEGRAM_API_URL",
)


class WebhookServer:
    """An HTTP server on 127.0.0.1 that records every POST (path + JSON body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.status = 200
        self.reply: dict = {"ok": True}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append((self.path, body))
                payload = json.dumps(server.reply).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # keep pytest output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def texts(self) -> list[str]:
        return [body.get("text", "") for _, body in self.requests]


@pytest.fixture()
def webhook_server():
    server = WebhookServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        server.thread.join(timeout=5)


@pytest.fixture()
def no_alert_channels(monkeypatch):
    for name in ALERT_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def webhook_env(webhook_server, no_alert_channels, monkeypatch):
    """Alerts go to the local server's /hook (Slack-compatible)."""
    monkeypatch.setenv("PORTFOLIO_PIPELINE_ALERT_WEBHOOK_URL", f"{webhook_server.url}/hook")
    return webhook_server


@pytest.fixture()
def ray_cluster_client(ray_cluster):
    """This process pointed at :func:`ray_cluster` for one test: its variables set, and Ray's
    cached auth mode and token dropped before and after (Ray reads them once per process, so
    a tokenless local Ray earlier in the session would otherwise be refused with
    InvalidAuthToken, and a later local Ray would still present this cluster's token)."""
    from ray._private.authentication_test_utils import reset_auth_token_state

    patch = pytest.MonkeyPatch()
    for name, value in ray_cluster.env.items():
        patch.setenv(name, value)
    reset_auth_token_state()
    try:
        yield ray_cluster
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        patch.undo()
        reset_auth_token_state()
