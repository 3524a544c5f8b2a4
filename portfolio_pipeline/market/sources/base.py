"""The one interface every data source implements, and the frames they return.

Sources are interchangeable: the shipped sample (default, offline), Binance's public REST
API, Alpha Vantage's NEWS_SENTIMENT API, or a folder of the user's own CSV/Parquet files.
Each returns a polars frame in the schema below, restricted to the requested UTC days.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import date, datetime

import polars as pl

OHLCV_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.Utf8(),
    "date": pl.Date(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "quote_volume": pl.Float64(),
    "num_trades": pl.Int64(),
    "taker_buy_base_volume": pl.Float64(),
    "taker_buy_quote_volume": pl.Float64(),
    "source": pl.Utf8(),
}
OHLCV_REQUIRED = ("symbol", "date", "open", "high", "low", "close", "volume")

NEWS_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Utf8(),
    "published_at": pl.Datetime("us", "UTC"),
    "title": pl.Utf8(),
    "summary": pl.Utf8(),
    "source": pl.Utf8(),
    "url": pl.Utf8(),
    "symbols": pl.List(pl.Utf8()),
    "subject": pl.Utf8(),
    "provider": pl.Utf8(),
    "provider_sentiment": pl.Float64(),
}
NEWS_REQUIRED = ("published_at", "title")


class SourceError(ValueError):
    """Input from a source broke a rule; the message names the rule, where and when."""


def empty_ohlcv() -> pl.DataFrame:
    return pl.DataFrame(schema=OHLCV_SCHEMA)


def empty_news() -> pl.DataFrame:
    return pl.DataFrame(schema=NEWS_SCHEMA)


def news_id(url: str | None, title: str | None, published_at: datetime | None) -> str:
    """Stable article id: a hash of the URL, or of title + time when there is no URL."""
    key = url if url else f"{title or ''}|{published_at.isoformat() if published_at else ''}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def with_news_ids(frame: pl.DataFrame) -> pl.DataFrame:
    """Fill the ``id`` column from url / title / published_at (vectorised)."""
    key = (
        pl.when(pl.col("url").is_not_null() & (pl.col("url") != ""))
        .then(pl.col("url"))
        .otherwise(
            pl.col("title").fill_null("")
            + pl.lit("|")
            + pl.col("published_at").dt.strftime("%Y-%m-%dT%H:%M:%S%:z").fill_null("")
        )
    )
    return frame.with_columns(
        key.map_elements(
            lambda s: hashlib.sha1(s.encode("utf-8")).hexdigest()[:16], return_dtype=pl.Utf8
        ).alias("id")
    )


def conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Add missing optional columns as nulls and order/cast columns to ``schema``."""
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in schema.items() if c not in frame.columns]
    if missing:
        frame = frame.with_columns(missing)
    return frame.select([pl.col(c).cast(t) for c, t in schema.items()])


class OhlcvSource(ABC):
    """Daily OHLCV candles per symbol and UTC day."""

    name: str = "abstract"

    @abstractmethod
    def fetch(self, symbols: Sequence[str], start: date, end: date) -> pl.DataFrame:
        """Rows with ``start <= date <= end`` for ``symbols``, in :data:`OHLCV_SCHEMA`.

        A day with no candle (not listed yet, delisted, market closed) simply has no row.
        """


class NewsSource(ABC):
    """News articles published during a range of UTC days."""

    name: str = "abstract"

    @abstractmethod
    def fetch(self, start: date, end: date) -> pl.DataFrame:
        """Articles with ``start <= published_at (UTC day) <= end``, in :data:`NEWS_SCHEMA`.

        A day with no news is not an error: the frame is then empty.
        """
