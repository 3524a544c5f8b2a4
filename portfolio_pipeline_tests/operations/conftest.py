"""Fixtures for the operations tests: a local webhook server and small warehouses."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

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
