"""Alerts: what deserves one (risk limits, stale data) and how it is delivered (webhooks).

Pure (no dagster). The Dagster sensors in ``portfolio_pipeline.operations`` decide *when* to
call these functions; this module decides *what* a breach is and posts the message.

Delivery channels, configured by environment variable (any combination; none is fine):

=====================================  =======================================================
``PORTFOLIO_PIPELINE_ALERT_WEBHOOK_URL`` Slack-compatible incoming webhook: ``POST {"text": ...}``
                                        (Slack, Mattermost, Rocket.Chat, Discord's ``/slack``
                                        endpoint, Microsoft Teams workflows accepting ``text``)
``TELEGRAM_BOT_TOKEN`` +                Telegram bot: ``POST /bot<token>/sendMessage``
``TELEGRAM_CHAT_ID``                    ``{"chat_id": ..., "text": ...}``
``TELEGRAM_API_URL``                    Telegram API base (default ``https://api.telegram.org``)
=====================================  =======================================================

Without any channel an alert is only logged (``logging`` warning), so alerts are never lost
silently and a laptop setup needs no configuration.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlsplit

import polars as pl

log = logging.getLogger(__name__)

WEBHOOK_URL_ENV = "PORTFOLIO_PIPELINE_ALERT_WEBHOOK_URL"
TELEGRAM_TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
TELEGRAM_CHAT_ENV = "TELEGRAM_CHAT_ID"
TELEGRAM_API_ENV = "TELEGRAM_API_URL"
DEFAULT_TELEGRAM_API = "https://api.telegram.org"
TELEGRAM_MAX_CHARS = 4096  # sendMessage rejects longer texts


class AlertDeliveryError(RuntimeError):
    """A configured channel did not accept the alert; the message names channel and reason."""


@dataclass(frozen=True)
class AlertChannels:
    """Where alerts go. Empty (no webhook, no Telegram) means: log only."""

    webhook_url: str | None = None
    telegram_token: str | None = None
    telegram_chat_id: str | None = None
    telegram_api_url: str = DEFAULT_TELEGRAM_API

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertChannels:
        env = os.environ if environ is None else environ
        token = env.get(TELEGRAM_TOKEN_ENV, "").strip() or None
        chat = env.get(TELEGRAM_CHAT_ENV, "").strip() or None
        if bool(token) != bool(chat):
            missing = TELEGRAM_CHAT_ENV if token else TELEGRAM_TOKEN_ENV
            raise ValueError(
                f"Telegram alerts need both {TELEGRAM_TOKEN_ENV} and {TELEGRAM_CHAT_ENV}: {missing} is not set"
            )
        return cls(
            webhook_url=env.get(WEBHOOK_URL_ENV, "").strip() or None,
            telegram_token=token,
            telegram_chat_id=chat,
            telegram_api_url=(env.get(TELEGRAM_API_ENV, "").strip() or DEFAULT_TELEGRAM_API).rstrip(
                "/"
            ),
        )

    @property
    def names(self) -> list[str]:
        return [
            n for n, on in (("webhook", self.webhook_url), ("telegram", self.telegram_token)) if on
        ]


def send_alert(
    text: str, channels: AlertChannels | None = None, *, timeout_s: float = 10.0
) -> list[str]:
    """Post ``text`` to every configured channel; returns the channels that accepted it.

    Every configured channel is tried even when an earlier one fails; then, if any failed,
    :class:`AlertDeliveryError` lists each failure (a sensor tick then fails visibly and the
    alert is retried on the next tick instead of being dropped). With no channel configured
    the alert is logged as a warning and ``[]`` is returned.
    """
    import requests

    channels = channels if channels is not None else AlertChannels.from_env()
    if not channels.names:
        log.warning(
            "alert (no channel configured: set %s or %s + %s): %s",
            WEBHOOK_URL_ENV,
            TELEGRAM_TOKEN_ENV,
            TELEGRAM_CHAT_ENV,
            text,
        )
        return []
    delivered: list[str] = []
    failures: list[str] = []
    posts: list[tuple[str, str, dict]] = []
    if channels.webhook_url:
        posts.append(("webhook", channels.webhook_url, {"text": text}))
    if channels.telegram_token:
        url = f"{channels.telegram_api_url}/bot{channels.telegram_token}/sendMessage"
        body = {
            "chat_id": channels.telegram_chat_id,
            "text": text[:TELEGRAM_MAX_CHARS],
            "disable_web_page_preview": True,
        }
        posts.append(("telegram", url, body))
    for name, url, body in posts:
        try:
            reply = requests.post(url, json=body, timeout=timeout_s)
        except requests.RequestException as exc:
            failures.append(_scrub_secrets(f"{name}: {type(exc).__name__}: {exc}", channels))
            continue
        if reply.status_code >= 300:
            failures.append(f"{name}: HTTP {reply.status_code}: {reply.text[:200]}")
            continue
        if name == "telegram":
            try:
                ok = bool(reply.json().get("ok"))
            except ValueError:
                ok = False
            if not ok:
                failures.append(f"telegram: reply is not ok: {reply.text[:200]}")
                continue
        delivered.append(name)
    if failures:
        raise AlertDeliveryError(
            f"alert not delivered to {len(failures)} channel(s): " + "; ".join(failures)
        )
    return delivered


def _scrub_secrets(text: str, channels: AlertChannels) -> str:
    """Remove the Telegram token and the webhook URL's path (a Slack webhook's path *is* its
    secret) from an error text: ``requests`` errors embed the URL they failed on."""
    if channels.telegram_token:
        text = text.replace(channels.telegram_token, "<token>")
    if channels.webhook_url:
        parts = urlsplit(channels.webhook_url)
        for secret in (channels.webhook_url, parts.path, parts.query):
            if secret and secret != "/":
                text = text.replace(secret, "/<secret>")
    return text


# --------------------------------------------------------------------------- messages
def format_run_failure(
    job: str,
    run_id: str,
    reason: str,
    ui_url: str | None = None,
    *,
    partition: str | None = None,
    max_reason_chars: int = 1500,
) -> str:
    """One alert text for a failed run: what ran, run id, the failure messages, a link."""
    reason = reason.strip() or "no failure message (see the run logs)"
    if len(reason) > max_reason_chars:
        reason = reason[:max_reason_chars] + " …"
    where = f", partition {partition}" if partition else ""
    link = f"\n{ui_url.rstrip('/')}/runs/{run_id}" if ui_url else ""
    return f"[portfolio-pipeline] run FAILED: {job}{where}, run {run_id}\n{reason}{link}"


# --------------------------------------------------------------------------- risk limits
VAR95_LIMIT_ENV = "PORTFOLIO_PIPELINE_VAR95_LIMIT"
DRAWDOWN_LIMIT_ENV = "PORTFOLIO_PIPELINE_DRAWDOWN_LIMIT"
VAR95_METRIC_ENV = "PORTFOLIO_PIPELINE_VAR95_METRIC"
DRAWDOWN_METRIC_ENV = "PORTFOLIO_PIPELINE_DRAWDOWN_METRIC"
RISK_PORTFOLIOS_ENV = "PORTFOLIO_PIPELINE_RISK_PORTFOLIOS"


@dataclass(frozen=True)
class RiskLimits:
    """Upper limits on risk metrics (positive loss fractions, as in ``portfolio.risk_metrics``).

    ``limits`` maps a metric name to its limit; ``portfolios`` restricts the check to these
    values of the ``portfolio`` column (empty: every portfolio).
    """

    limits: Mapping[str, float] = field(
        default_factory=lambda: {"var_hist_95": 0.08, "max_drawdown": 0.5}
    )
    portfolios: tuple[str, ...] = ("current",)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RiskLimits:
        env = os.environ if environ is None else environ

        def number(name: str, default: str) -> float:
            text = env.get(name, "").strip() or default
            try:
                value = float(text)
            except ValueError as exc:
                raise ValueError(f"{name}={text!r} is not a number") from exc
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}={text!r} must be a positive fraction (0.08 = 8%)")
            return value

        var_metric = env.get(VAR95_METRIC_ENV, "").strip() or "var_hist_95"
        dd_metric = env.get(DRAWDOWN_METRIC_ENV, "").strip() or "max_drawdown"
        portfolios = tuple(
            p.strip()
            for p in (env.get(RISK_PORTFOLIOS_ENV, "") or "current").split(",")
            if p.strip()
        )
        return cls(
            limits={
                var_metric: number(VAR95_LIMIT_ENV, "0.08"),
                dd_metric: number(DRAWDOWN_LIMIT_ENV, "0.5"),
            },
            portfolios=tuple(p for p in portfolios if p != "*"),
        )


@dataclass(frozen=True)
class Breach:
    as_of: date
    portfolio: str
    metric: str
    value: float
    limit: float

    def describe(self) -> str:
        return f"{self.portfolio} {self.metric} = {self.value:.4f} > limit {self.limit:.4f} (as of {self.as_of})"


def latest_risk_rows(risk_metrics: pl.DataFrame) -> pl.DataFrame:
    """The rows of the most recent ``as_of`` (and most recent run, when the table keeps a
    history of runs with ``generated_at``)."""
    missing = [
        c for c in ("as_of", "portfolio", "metric", "value") if c not in risk_metrics.columns
    ]
    if missing:
        raise ValueError(f"portfolio.risk_metrics lacks column(s) {', '.join(missing)}")
    if risk_metrics.is_empty():
        return risk_metrics
    latest = risk_metrics.filter(pl.col("as_of") == pl.col("as_of").max())
    if "generated_at" in latest.columns:
        latest = latest.filter(pl.col("generated_at") == pl.col("generated_at").max())
    return latest


def risk_limit_breaches(risk_metrics: pl.DataFrame, limits: RiskLimits) -> list[Breach]:
    """Metrics of the latest ``as_of`` whose magnitude exceeds their limit.

    The magnitude (``abs``) is compared so that a metric stored as a negative return (a
    drawdown of -0.6) is judged like its positive loss form (0.6). NaN values are ignored
    (not enough history to measure), never reported as breaches.
    """
    rows = latest_risk_rows(risk_metrics)
    if limits.portfolios:
        rows = rows.filter(pl.col("portfolio").is_in(list(limits.portfolios)))
    rows = rows.filter(pl.col("metric").is_in(list(limits.limits)))
    breaches = []
    for row in rows.sort("portfolio", "metric").iter_rows(named=True):
        value = row["value"]
        if value is None or not math.isfinite(value):
            continue
        limit = limits.limits[row["metric"]]
        if abs(value) > limit:
            breaches.append(
                Breach(row["as_of"], row["portfolio"], row["metric"], float(value), limit)
            )
    return breaches


def format_breaches(breaches: Sequence[Breach]) -> str:
    lines = "\n".join(f"- {b.describe()}" for b in breaches)
    return f"[portfolio-pipeline] risk limit breached ({len(breaches)}):\n{lines}"


def breach_signature(breaches: Sequence[Breach]) -> str:
    """A stable text identifying a set of breaches (a sensor cursor: same set, no new alert)."""
    return "|".join(f"{b.as_of}:{b.portfolio}:{b.metric}:{b.value:.6g}" for b in breaches)


# --------------------------------------------------------------------------- freshness
DEFAULT_MAX_AGE = timedelta(hours=36)


@dataclass(frozen=True)
class Freshness:
    """How old the newest stored data is, and whether that is too old for its source."""

    dataset: str
    source: str
    live: bool
    newest: datetime | None  # when the newest data became complete (UTC)
    now: datetime
    max_age: timedelta

    @property
    def age(self) -> timedelta | None:
        return None if self.newest is None else self.now - self.newest

    @property
    def stale(self) -> bool:
        """Only live sources can be stale: the sample and files sources are snapshots."""
        age = self.age
        return self.live and (age is None or age > self.max_age)

    def describe(self) -> str:
        age = self.age
        if self.newest is None or age is None:
            state = "no data stored yet"
        else:
            hours = age.total_seconds() / 3600
            state = f"newest data complete at {self.newest:%Y-%m-%d %H:%M} UTC, {hours:.1f} h old"
        if not self.live:
            return f"{self.dataset}: {state}; source '{self.source}' is a snapshot, exempt from the {self._limit()} freshness limit"
        verdict = "STALE" if self.stale else "fresh"
        return f"{self.dataset} from live source '{self.source}': {state} ({verdict}, limit {self._limit()})"

    def _limit(self) -> str:
        return f"{self.max_age.total_seconds() / 3600:g} h"


def candle_complete_at(day: date) -> datetime:
    """A daily candle for UTC day ``d`` is complete at the close, 00:00 UTC of ``d + 1``."""
    return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=UTC)


def assess_freshness(
    dataset: str,
    newest: date | datetime | None,
    *,
    source: str,
    live: bool,
    now: datetime | None = None,
    max_age: timedelta = DEFAULT_MAX_AGE,
) -> Freshness:
    """Freshness of ``dataset`` whose newest row is ``newest``: a ``date`` is a daily candle
    (complete at the next midnight UTC), a ``datetime`` is an event time (news)."""
    now = now or datetime.now(UTC)
    if isinstance(newest, datetime):
        complete = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
    elif isinstance(newest, date):
        complete = candle_complete_at(newest)
    else:
        complete = None
    return Freshness(dataset, source, live, complete, now, max_age)
