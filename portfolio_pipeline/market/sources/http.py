"""One GET-JSON helper with retries, shared by the live API clients.

Retried: HTTP 429 (rate limited), 418 (Binance's IP ban after ignoring 429s), every 5xx,
connection errors and timeouts. The wait is the server's ``Retry-After`` header when it
sends one, else ``backoff_base * 2**attempt`` seconds (capped at ``max_backoff``). Any
other 4xx fails at once: repeating a bad request cannot fix it.

Secrets never leave this module: query parameters that look like credentials (``apikey``,
``token``, ...) are masked in every log line and error message, and errors from
``requests`` (whose text embeds the full URL) are re-raised with those values scrubbed.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import requests

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({418, 429})
SECRET_PARAMS = frozenset({"apikey", "api_key", "key", "token", "access_token", "signature"})
MASK = "***"
BODY_EXCERPT_CHARS = 300


class HttpError(RuntimeError):
    """A request failed for good; the message names the (masked) URL, status and body.

    Attributes
    ----------
    url : the request URL with secret parameters masked.
    status : the HTTP status, or None when no response came back (connection error).
    body : an excerpt of the response body ('' when none).
    payload : the response parsed as JSON when it was JSON, else None (lets callers read
        structured API errors such as Binance's ``{"code": -1121, "msg": ...}``).
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        status: int | None = None,
        body: str = "",
        payload: Any = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.body = body
        self.payload = payload


def masked_url(url: str, params: Mapping[str, Any] | None) -> str:
    """``url?params`` with the values of secret parameters replaced by ``***``."""
    if not params:
        return url
    shown = {k: (MASK if k.lower() in SECRET_PARAMS else v) for k, v in params.items()}
    return f"{url}?{urlencode(shown)}"


def _scrub(text: str, params: Mapping[str, Any] | None) -> str:
    """Remove secret parameter values from free text (e.g. a requests exception message)."""
    for key, value in (params or {}).items():
        if key.lower() in SECRET_PARAMS and value:
            text = text.replace(str(value), MASK)
    return text


def retry_after_seconds(header: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header: delta-seconds or an HTTP date; None when absent/bad."""
    if header is None or not header.strip():
        return None
    header = header.strip()
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _body_excerpt(response: requests.Response) -> str:
    try:
        text = response.text
    except Exception:  # undecodable body: the status alone must do
        return ""
    text = " ".join(text.split())
    return text[:BODY_EXCERPT_CHARS] + ("..." if len(text) > BODY_EXCERPT_CHARS else "")


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def get_json(
    session: requests.Session,
    url: str,
    params: Mapping[str, Any] | None = None,
    *,
    max_retries: int = 5,
    backoff_base: float = 1.0,
    max_backoff: float = 60.0,
    max_retry_after: float = 900.0,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = 30,
) -> Any:
    """GET ``url`` with ``params`` and return the decoded JSON body.

    Parameters
    ----------
    session : a ``requests.Session`` (or any object with the same ``get``).
    max_retries : retries after the first attempt (so at most ``1 + max_retries`` requests).
    backoff_base : first wait in seconds when the server gives no ``Retry-After``; doubles
        on each retry, capped at ``max_backoff``.
    max_retry_after : a ``Retry-After`` longer than this (Binance bans can last hours)
        fails at once instead of blocking the run.
    sleep : injected so that tests record waits instead of sleeping.

    Raises
    ------
    HttpError : on a non-retryable 4xx, an undecodable body, a too-long ``Retry-After``,
        or when the retries are exhausted.
    """
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    shown_url = masked_url(url, params)
    attempts = 1 + max_retries
    failure = _Failure("no attempt made")
    for attempt in range(attempts):
        outcome = _attempt(session, url, params, timeout, shown_url, max_retry_after)
        if not isinstance(outcome, _Failure):
            return outcome.payload
        failure = outcome
        if attempt + 1 < attempts:
            wait = failure.server_wait
            if wait is None:
                wait = min(max_backoff, backoff_base * (2**attempt))
            logger.warning(
                "GET %s: %s; retry %d/%d in %.1f s",
                shown_url,
                failure.problem,
                attempt + 1,
                max_retries,
                wait,
            )
            sleep(wait)
    raise HttpError(
        f"GET {shown_url} still failing after {attempts} attempts "
        f"({max_retries} retries); last error: {failure.problem}",
        url=shown_url,
        status=failure.status,
        body=failure.body,
        payload=failure.payload,
    )


@dataclass(frozen=True)
class _Success:
    payload: Any


@dataclass(frozen=True)
class _Failure:
    """A retryable failure: what went wrong and how long the server asks us to wait."""

    problem: str
    status: int | None = None
    body: str = ""
    payload: Any = None
    server_wait: float | None = None


def _attempt(
    session: requests.Session,
    url: str,
    params: Mapping[str, Any] | None,
    timeout: float,
    shown_url: str,
    max_retry_after: float,
) -> _Success | _Failure:
    """One GET: the JSON payload, a retryable failure, or an :class:`HttpError` raised for
    what retrying cannot fix (a refused request, a non-JSON body, a too-long Retry-After)."""
    try:
        response = session.get(url, params=dict(params or {}), timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as exc:
        return _Failure(f"{type(exc).__name__}: {_scrub(str(exc), params)}")
    status = response.status_code
    if 200 <= status < 300:
        payload = _json_or_none(response)
        if payload is None:
            raise HttpError(
                f"GET {shown_url} returned HTTP {status} with a body that is not JSON: "
                f"{_body_excerpt(response)!r}",
                url=shown_url,
                status=status,
                body=_body_excerpt(response),
            )
        return _Success(payload)
    body = _body_excerpt(response)
    payload = _json_or_none(response)
    if status not in RETRYABLE_STATUS and status < 500:
        raise HttpError(
            f"GET {shown_url} failed with HTTP {status} (not retried: the request "
            f"itself was refused): {body!r}",
            url=shown_url,
            status=status,
            body=body,
            payload=payload,
        )
    server_wait = retry_after_seconds(response.headers.get("Retry-After"))
    if server_wait is not None and server_wait > max_retry_after:
        raise HttpError(
            f"GET {shown_url} failed with HTTP {status} and the server asks to "
            f"wait {server_wait:.0f} s (Retry-After), more than the "
            f"{max_retry_after:.0f} s allowed: {body!r}",
            url=shown_url,
            status=status,
            body=body,
            payload=payload,
        )
    return _Failure(f"HTTP {status}: {body!r}", status, body, payload, server_wait)


def default_session(user_agent: str = "portfolio-pipeline") -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = user_agent
    return session
