"""Start ``portfolio-pipeline serve`` as a real process on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from portfolio_pipeline_tests.operations.servers import free_port, process_group, wait_for


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    log: Path

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)


def _up(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=2).status_code in (200, 503)
    except requests.RequestException:
        return False


@contextlib.contextmanager
def running_server(warehouse: Path, log: Path, **env: str) -> Iterator[Server]:
    port = free_port()
    environ = {**os.environ, "PORTFOLIO_PIPELINE_WAREHOUSE": str(warehouse), **env}
    if "PORTFOLIO_PIPELINE_API_TOKEN" not in env:
        environ.pop("PORTFOLIO_PIPELINE_API_TOKEN", None)
    args = [sys.executable, "-m", "portfolio_pipeline", "serve", "--port", str(port)]
    with process_group(args, env=environ, log_path=log) as proc:
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {proc.returncode}: {log.read_text()[-2000:]}"
                )
            return _up(url)

        wait_for(ready, 60, f"portfolio-pipeline serve on port {port}")
        yield Server(url, port, log)
