"""News with provider sentiment from Alpha Vantage ``function=NEWS_SENTIMENT`` (API key).

Reply layout::

    {"items": "50", "sentiment_score_definition": ..., "relevance_score_definition": ...,
     "feed": [{"title", "url", "time_published": "20231004T133219", "summary", "source",
               "category_within_source", "overall_sentiment_score": 0.16,
               "ticker_sentiment": [{"ticker": "CRYPTO:BTC", "relevance_score": "0.10",
                                     "ticker_sentiment_score": "0.13", ...}], ...}]}

Rules of the API this client is built around:

- ``tickers=A,B`` returns articles that mention A AND B, so each configured ticker is its
  own query; articles found by several queries are kept once (same id).
- One reply holds at most ``limit`` (<= 1000) articles, newest first (``sort=LATEST``);
  a full reply is continued by moving ``time_to`` back to the oldest article's minute.
- ``time_published`` carries no zone: it is read as UTC (as are ``time_from/time_to``).
- A rate-limit or error reply is a top-level ``{"Note"|"Information"|"Error Message": ...}``
  with no ``feed``: it raises :class:`AlphaVantageError` instead of looking like a quiet day.
  A reply with an empty ``feed`` IS a quiet day and gives an empty frame.
- The free tier allows about 25 requests a day: every ticker costs one request per fetch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import requests

from portfolio_pipeline.market.sources.base import (
    NEWS_SCHEMA,
    NewsSource,
    SourceError,
    conform,
    empty_news,
    news_id,
)
from portfolio_pipeline.market.sources.http import default_session, get_json

ALPHAVANTAGE_URL = "https://www.alphavantage.co/query"
API_KEY_ENV = "ALPHAVANTAGE_API_KEY"
PROVIDER = "alphavantage"
MAX_LIMIT = 1000
CRYPTO_PREFIX = "CRYPTO:"
DEFAULT_QUOTE = "USDT"
# The largest pairs of the default universe; each one is a request per fetch (free tier: 25/day).
DEFAULT_TICKERS: tuple[str, ...] = (
    "CRYPTO:BTC",
    "CRYPTO:ETH",
    "CRYPTO:SOL",
    "CRYPTO:XRP",
    "CRYPTO:BNB",
)
ERROR_KEYS = ("Error Message", "Note", "Information")
TIME_PUBLISHED_FORMATS = ("%Y%m%dT%H%M%S", "%Y%m%dT%H%M")
QUERY_TIME_FORMAT = "%Y%m%dT%H%M"

TICKER_SENTIMENT_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Utf8(),
    "published_at": pl.Datetime("us", "UTC"),
    "ticker": pl.Utf8(),
    "symbol": pl.Utf8(),
    "relevance_score": pl.Float64(),
    "ticker_sentiment_score": pl.Float64(),
    "ticker_sentiment_label": pl.Utf8(),
}


class AlphaVantageError(SourceError):
    """Alpha Vantage answered with an error, a rate-limit notice or a malformed reply."""


def crypto_tickers_for(symbols: Iterable[str], quote: str = DEFAULT_QUOTE) -> tuple[str, ...]:
    """Alpha Vantage tickers of a ``...USDT`` universe: ``BTCUSDT -> CRYPTO:BTC``.

    Symbols that do not end in ``quote`` (equities, other quotes) are skipped: pass their
    tickers explicitly.
    """
    tickers = [
        CRYPTO_PREFIX + s[: -len(quote)]
        for s in symbols
        if s.endswith(quote) and len(s) > len(quote)
    ]
    return tuple(dict.fromkeys(tickers))


def symbol_for_ticker(
    ticker: str,
    ticker_map: Mapping[str, str] | None = None,
    quote: str = DEFAULT_QUOTE,
    universe: Collection[str] | None = None,
) -> str | None:
    """Pipeline symbol of an Alpha Vantage ticker, or None when it maps to no symbol.

    ``ticker_map`` wins; otherwise ``CRYPTO:X -> X + quote`` (``CRYPTO:BTC -> BTCUSDT``),
    except the quote currency itself (``CRYPTO:USDT`` is cash, not a pair). Everything else
    (``FOREX:USD``, equity tickers such as ``COIN``) maps to None, and so does a symbol
    outside ``universe`` when one is given.
    """
    symbol: str | None = None
    if ticker_map and ticker in ticker_map:
        symbol = ticker_map[ticker]
    elif ticker.startswith(CRYPTO_PREFIX):
        base = ticker[len(CRYPTO_PREFIX) :].upper()
        if base and base != quote:
            symbol = base + quote
    if symbol is not None and universe is not None and symbol not in universe:
        return None
    return symbol


@dataclass(frozen=True)
class TickerMapping:
    """How Alpha Vantage tickers become pipeline symbols (see :func:`symbol_for_ticker`)."""

    overrides: Mapping[str, str] = field(default_factory=dict)
    quote: str = DEFAULT_QUOTE
    universe: frozenset[str] | None = None

    def symbol(self, ticker: str) -> str | None:
        return symbol_for_ticker(ticker, self.overrides, self.quote, self.universe)


def parse_time_published(value: Any, where: str) -> datetime:
    """``YYYYMMDDTHHMMSS`` (no zone) read as UTC; ``where`` names the article in errors."""
    if isinstance(value, str):
        for fmt in TIME_PUBLISHED_FORMATS:
            try:
                return datetime.strptime(value, fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
    raise AlphaVantageError(
        f"Alpha Vantage article {where}: time_published {value!r} is not YYYYMMDDTHHMMSS"
    )


def _score(value: Any, field: str, where: str) -> float | None:
    """Scores come as strings ("0.133084") or numbers; missing/empty -> None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise AlphaVantageError(f"Alpha Vantage article {where}: {field} {value!r} is not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AlphaVantageError(
            f"Alpha Vantage article {where}: {field} {value!r} is not a number"
        ) from None


def check_reply(payload: Any, query: str) -> list[dict]:
    """The ``feed`` of a reply, or :class:`AlphaVantageError` for error/limit/malformed replies."""
    if not isinstance(payload, dict):
        raise AlphaVantageError(
            f"Alpha Vantage NEWS_SENTIMENT ({query}): expected a JSON object, got "
            f"{type(payload).__name__}: {str(payload)[:200]!r}"
        )
    if "feed" not in payload:
        for key in ERROR_KEYS:
            if key in payload:
                hint = " (rate limit: wait, or use a premium key)" if key != "Error Message" else ""
                raise AlphaVantageError(
                    f"Alpha Vantage NEWS_SENTIMENT ({query}) replied {key!r}{hint}: {payload[key]}"
                )
        raise AlphaVantageError(
            f"Alpha Vantage NEWS_SENTIMENT ({query}): reply has no 'feed' (keys: {sorted(payload)})"
        )
    feed = payload["feed"]
    if not isinstance(feed, list) or not all(isinstance(item, dict) for item in feed):
        raise AlphaVantageError(
            f"Alpha Vantage NEWS_SENTIMENT ({query}): 'feed' must be a list of articles"
        )
    return feed


def _text_or_none(value: Any) -> str | None:
    # Alpha Vantage writes "n/a" for an unknown category_within_source.
    if not isinstance(value, str) or not value.strip() or value.strip().lower() == "n/a":
        return None
    return value


def _where(item: Mapping[str, Any]) -> str:
    return repr(item.get("url") or item.get("title") or "<no url, no title>")


def parse_news_items(
    items: Sequence[Mapping[str, Any]], mapping: TickerMapping | None = None
) -> pl.DataFrame:
    """Articles of one or more ``feed`` lists as a frame in :data:`~.base.NEWS_SCHEMA`.

    Returns
    -------
    polars.DataFrame, one row per distinct article id (first kept), sorted by
    (published_at, id). ``symbols`` lists the mapped crypto tickers (sorted, unique);
    ``subject`` is ``category_within_source``; ``provider_sentiment`` is
    ``overall_sentiment_score``.
    """
    mapping = mapping or TickerMapping()
    rows: dict[str, dict[str, Any]] = {}
    for item in items:
        where = _where(item)
        title = item.get("title")
        if not isinstance(title, str) or not title.strip():
            raise AlphaVantageError(f"Alpha Vantage article {where}: title is missing")
        published_at = parse_time_published(item.get("time_published"), where)
        url = item.get("url") or None
        article_id = news_id(url, title, published_at)
        if article_id in rows:
            continue
        symbols = {
            symbol
            for entry in item.get("ticker_sentiment") or []
            if isinstance(entry, dict) and (symbol := mapping.symbol(str(entry.get("ticker", ""))))
        }
        rows[article_id] = {
            "id": article_id,
            "published_at": published_at,
            "title": title,
            "summary": _text_or_none(item.get("summary")),
            "source": _text_or_none(item.get("source")),
            "url": url,
            "symbols": sorted(symbols),
            "subject": _text_or_none(item.get("category_within_source")),
            "provider": PROVIDER,
            "provider_sentiment": _score(
                item.get("overall_sentiment_score"), "overall_sentiment_score", where
            ),
        }
    if not rows:
        return empty_news()
    frame = pl.DataFrame(list(rows.values()), schema=NEWS_SCHEMA)
    return conform(frame, NEWS_SCHEMA).sort("published_at", "id")


def parse_ticker_sentiment(
    items: Sequence[Mapping[str, Any]], mapping: TickerMapping | None = None
) -> pl.DataFrame:
    """Alpha Vantage's own per-ticker scores: one row per (article, ticker).

    Returns
    -------
    polars.DataFrame in :data:`TICKER_SENTIMENT_SCHEMA`; ``symbol`` is null for tickers
    outside the crypto universe (``FOREX:USD``, ``COIN``), kept so callers can see them.
    """
    mapping = mapping or TickerMapping()
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items:
        where = _where(item)
        published_at = parse_time_published(item.get("time_published"), where)
        article_id = news_id(item.get("url") or None, item.get("title"), published_at)
        for entry in item.get("ticker_sentiment") or []:
            if not isinstance(entry, dict):
                raise AlphaVantageError(
                    f"Alpha Vantage article {where}: ticker_sentiment entry {entry!r} is not an object"
                )
            ticker = str(entry.get("ticker", ""))
            if not ticker or (article_id, ticker) in rows:
                continue
            rows[(article_id, ticker)] = {
                "id": article_id,
                "published_at": published_at,
                "ticker": ticker,
                "symbol": mapping.symbol(ticker),
                "relevance_score": _score(entry.get("relevance_score"), "relevance_score", where),
                "ticker_sentiment_score": _score(
                    entry.get("ticker_sentiment_score"), "ticker_sentiment_score", where
                ),
                "ticker_sentiment_label": entry.get("ticker_sentiment_label") or None,
            }
    return pl.DataFrame(list(rows.values()), schema=TICKER_SENTIMENT_SCHEMA).sort(
        "published_at", "id", "ticker"
    )


class AlphaVantageNewsSource(NewsSource):
    """Crypto news with Alpha Vantage's sentiment scores.

    Parameters
    ----------
    api_key : the key; None reads ``ALPHAVANTAGE_API_KEY``. Missing -> AlphaVantageError.
    tickers : one query per ticker (the API ANDs a list); ``()`` with ``topics`` queries by
        topic only (e.g. ``("blockchain",)``: every crypto article in one request).
    topics : optional topic filter added to every query (also ANDed by the API).
    ticker_map : explicit ``ticker -> symbol`` entries, checked before the default rule
        ``CRYPTO:X -> X + quote``.
    universe : when given, ``symbols`` keeps only these (e.g. the pipeline's universe).
    limit : articles per request, 1..1000.
    max_pages : continuation requests per query before giving up with an error.
    session, sleep, max_retries, backoff_base : HTTP plumbing (injected in tests).
    """

    name = "alphavantage"

    def __init__(
        self,
        api_key: str | None = None,
        tickers: Sequence[str] = DEFAULT_TICKERS,
        topics: Sequence[str] | None = None,
        ticker_map: Mapping[str, str] | None = None,
        quote: str = DEFAULT_QUOTE,
        universe: Collection[str] | None = None,
        limit: int = MAX_LIMIT,
        max_pages: int = 20,
        base_url: str = ALPHAVANTAGE_URL,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_retries: int = 5,
        backoff_base: float = 1.0,
    ) -> None:
        key = (api_key if api_key is not None else os.environ.get(API_KEY_ENV, "")).strip()
        if not key:
            raise AlphaVantageError(
                f"Alpha Vantage needs an API key: set the environment variable {API_KEY_ENV} "
                "(free key at https://www.alphavantage.co/support/#api-key), or use the "
                "'sample' news source"
            )
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"Alpha Vantage limit must be in 1..{MAX_LIMIT}, got {limit}")
        if isinstance(tickers, str) or isinstance(topics, str):
            raise TypeError("tickers and topics are sequences of strings, not one string")
        self._api_key = key  # never logged: http.get_json masks the apikey parameter
        self.tickers = tuple(tickers)
        self.topics = tuple(topics or ())
        self.mapping = TickerMapping(
            overrides=dict(ticker_map or {}),
            quote=quote,
            universe=frozenset(universe) if universe is not None else None,
        )
        self.limit = limit
        self.max_pages = max_pages
        self.base_url = base_url
        self.session = session if session is not None else default_session()
        self.sleep = sleep
        self.max_retries = max_retries
        self.backoff_base = backoff_base

    def __repr__(self) -> str:  # no key in reprs, logs or Dagster metadata
        return f"AlphaVantageNewsSource(tickers={self.tickers}, topics={self.topics})"

    def queries(self) -> list[dict[str, str]]:
        """The filter parameters of each request family (one per ticker, or topics only)."""
        topic_filter = {"topics": ",".join(self.topics)} if self.topics else {}
        if self.tickers:
            return [{"tickers": ticker, **topic_filter} for ticker in self.tickers]
        return [topic_filter]

    def _fetch_query(self, query: dict[str, str], start: date, end: date) -> list[dict]:
        time_from = datetime(start.year, start.month, start.day, tzinfo=UTC)
        time_to = datetime(end.year, end.month, end.day, 23, 59, tzinfo=UTC)
        described = ", ".join(f"{k}={v}" for k, v in query.items()) or "no filter"
        described += f", {start}..{end}"
        items: list[dict] = []
        for _ in range(self.max_pages):
            params = {
                "function": "NEWS_SENTIMENT",
                **query,
                "time_from": time_from.strftime(QUERY_TIME_FORMAT),
                "time_to": time_to.strftime(QUERY_TIME_FORMAT),
                "sort": "LATEST",
                "limit": self.limit,
                "apikey": self._api_key,
            }
            payload = get_json(
                self.session,
                self.base_url,
                params,
                max_retries=self.max_retries,
                backoff_base=self.backoff_base,
                sleep=self.sleep,
            )
            feed = check_reply(payload, described)
            items.extend(feed)
            if len(feed) < self.limit:
                return items
            oldest = min(parse_time_published(i.get("time_published"), _where(i)) for i in feed)
            # Continue up to the oldest article's minute, inclusive whether the API's time_to
            # is inclusive or not; articles seen twice are dropped by id later.
            next_time_to = oldest.replace(second=0) + timedelta(minutes=1)
            if next_time_to >= time_to:
                raise AlphaVantageError(
                    f"Alpha Vantage NEWS_SENTIMENT ({described}): more than {self.limit} "
                    f"articles within one minute near {oldest.isoformat()}: cannot page further"
                )
            time_to = next_time_to
        raise AlphaVantageError(
            f"Alpha Vantage NEWS_SENTIMENT ({described}): still full after {self.max_pages} "
            f"pages of {self.limit}: fetch a shorter range"
        )

    def fetch_articles(self, start: date, end: date) -> list[dict]:
        """Raw ``feed`` items of every query for the UTC days ``start..end`` (may repeat)."""
        if start > end:
            raise ValueError(f"Alpha Vantage fetch: start {start} is after end {end}")
        items: list[dict] = []
        for query in self.queries():
            items.extend(self._fetch_query(query, start, end))
        return items

    def fetch(self, start: date, end: date) -> pl.DataFrame:
        """Articles published on UTC days ``start..end`` in :data:`~.base.NEWS_SCHEMA`."""
        news = parse_news_items(self.fetch_articles(start, end), self.mapping)
        return news.filter(pl.col("published_at").dt.date().is_between(start, end))

    def fetch_with_ticker_sentiment(
        self, start: date, end: date
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The news frame and the per-(article, ticker) scores from the same requests."""
        items = self.fetch_articles(start, end)
        news = parse_news_items(items, self.mapping).filter(
            pl.col("published_at").dt.date().is_between(start, end)
        )
        scores = parse_ticker_sentiment(items, self.mapping).filter(
            pl.col("published_at").dt.date().is_between(start, end)
        )
        return news, scores
