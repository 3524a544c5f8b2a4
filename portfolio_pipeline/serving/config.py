"""Settings of the API server, read from the environment (pure, no dagster).

=====================================  ======================================================
``PORTFOLIO_PIPELINE_SERVE_HOST``      interface to listen on (default ``127.0.0.1``)
``PORTFOLIO_PIPELINE_SERVE_PORT``      port (default ``8000``)
``PORTFOLIO_PIPELINE_API_TOKEN``       when set, every endpoint but ``/health`` requires
                                       ``Authorization: Bearer <token>``
``PORTFOLIO_PIPELINE_MAX_DATA_AGE_HOURS`` freshness limit of a live source's data (default 36,
                                       the limit of the freshness check and sensor)
=====================================  ======================================================
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from portfolio_pipeline.operations.notifications import DEFAULT_MAX_AGE
from portfolio_pipeline.settings import Settings

HOST_ENV = "PORTFOLIO_PIPELINE_SERVE_HOST"
PORT_ENV = "PORTFOLIO_PIPELINE_SERVE_PORT"
TOKEN_ENV = "PORTFOLIO_PIPELINE_API_TOKEN"
MAX_AGE_ENV = "PORTFOLIO_PIPELINE_MAX_DATA_AGE_HOURS"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# The sources whose data can be stale: the others (sample, files) are snapshots.
LIVE_OHLCV_SOURCES = frozenset({"binance"})
LIVE_NEWS_SOURCES = frozenset({"alphavantage"})


class ServeConfigError(ValueError):
    """The server must not start with this configuration; the message says why."""


@dataclass(frozen=True)
class ServeConfig:
    """Everything the app needs; ``token`` is never printed (``repr`` hides it)."""

    warehouse_path: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = field(default=None, repr=False)
    max_data_age: timedelta = DEFAULT_MAX_AGE
    ohlcv_source: str = "sample"
    news_source: str = "sample"
    symbols: tuple[str, ...] = ()
    cash_symbol: str = "USDT"

    @property
    def ohlcv_live(self) -> bool:
        return self.ohlcv_source in LIVE_OHLCV_SOURCES

    @property
    def news_live(self) -> bool:
        return self.news_source in LIVE_NEWS_SOURCES

    def check_exposure(self) -> None:
        """Refuse a non-loopback interface without a token: the API would be open to anyone
        who can reach the machine."""
        if self.token or is_loopback(self.host):
            return
        raise ServeConfigError(
            f"refusing to serve on {self.host}: it is not a loopback address and "
            f"{TOKEN_ENV} is not set, so anyone who can reach this machine could read the "
            f"portfolio. Set {TOKEN_ENV} (clients then send 'Authorization: Bearer <token>') "
            f"or serve on 127.0.0.1."
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost: assume it is reachable


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ServeConfigError(f"{PORT_ENV}={text!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ServeConfigError(f"{PORT_ENV}={text!r} must be between 1 and 65535")
    return port


def _max_age(text: str) -> timedelta:
    if not text:
        return DEFAULT_MAX_AGE
    try:
        hours = float(text)
    except ValueError:
        raise ServeConfigError(f"{MAX_AGE_ENV}={text!r} is not a number of hours") from None
    if not hours > 0:
        raise ServeConfigError(f"{MAX_AGE_ENV}={text!r} must be positive")
    return timedelta(hours=hours)


def load_serve_config(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
) -> ServeConfig:
    """The server's settings: ``host``/``port`` (command-line) beat the environment."""
    env = os.environ if environ is None else environ
    return ServeConfig(
        warehouse_path=settings.warehouse_path,
        host=host or env.get(HOST_ENV, "").strip() or DEFAULT_HOST,
        port=port or _port(env.get(PORT_ENV, "").strip() or str(DEFAULT_PORT)),
        token=env.get(TOKEN_ENV, "").strip() or None,
        max_data_age=_max_age(env.get(MAX_AGE_ENV, "").strip()),
        ohlcv_source=settings.ohlcv_source,
        news_source=settings.news_source,
        symbols=settings.symbols,
        cash_symbol=settings.cash_symbol,
    )
