"""Binance spot daily candles from the public REST API (``GET /api/v3/klines``, no key).

A kline is a JSON array of 12 positional fields::

    [open_time_ms, "open", "high", "low", "close", "volume", close_time_ms,
     "quote_volume", num_trades, "taker_buy_base_volume", "taker_buy_quote_volume", "ignore"]

One request returns at most ``limit`` (<= 1000) candles whose open time lies in
``[startTime, endTime]``; longer ranges are paged by moving ``startTime`` to the last open
time plus one interval. The newest candle of a live reply is usually still open (its close
time is in the future): it is dropped, because its "close" is only the latest trade and
would leak a value that is not final by the close of its day.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import requests

from portfolio_pipeline.market.sources.base import (
    OHLCV_SCHEMA,
    OhlcvSource,
    SourceError,
    conform,
    empty_ohlcv,
)
from portfolio_pipeline.market.sources.http import HttpError, default_session, get_json

KLINES_PATH = "/api/v3/klines"
KLINE_FIELD_COUNT = 12
MAX_LIMIT = 1000
DAY_MS = 86_400_000
SOURCE_NAME = "binance_spot"

# Fixed-length intervals only ("1M" has no fixed length, so it cannot be paged by arithmetic).
INTERVAL_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": 7 * DAY_MS,
}

# Columns of a parsed kline page, in payload order (the 12th field, "ignore", is dropped).
KLINE_SCHEMA: dict[str, pl.DataType] = {
    "open_time": pl.Int64(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "close_time": pl.Int64(),
    "quote_volume": pl.Float64(),
    "num_trades": pl.Int64(),
    "taker_buy_base_volume": pl.Float64(),
    "taker_buy_quote_volume": pl.Float64(),
}


class BinanceError(SourceError):
    """Binance refused a request or replied with something that is not a kline list."""


def day_start_ms(day: date) -> int:
    """Epoch milliseconds of ``day`` 00:00 UTC."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _ms_to_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def _as_int(value: Any, field: str, symbol: str, row: int) -> int:
    # bool is an int subclass in Python; a JSON true/false here means a broken payload.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BinanceError(
            f"klines for {symbol}: row {row} field {field!r} must be an integer, got {value!r}"
        )
    try:
        return int(value)
    except ValueError:
        raise BinanceError(
            f"klines for {symbol}: row {row} field {field!r} is not an integer: {value!r}"
        ) from None


def _as_float(value: Any, field: str, symbol: str, row: int) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BinanceError(
            f"klines for {symbol}: row {row} field {field!r} must be a decimal string, "
            f"got {value!r}"
        )
    try:
        return float(value)
    except ValueError:
        raise BinanceError(
            f"klines for {symbol}: row {row} field {field!r} is not a number: {value!r}"
        ) from None


def parse_klines(payload: Any, symbol: str) -> pl.DataFrame:
    """Parse one ``/api/v3/klines`` reply into a frame in :data:`KLINE_SCHEMA`.

    Parameters
    ----------
    payload : the decoded JSON reply, expected to be a list of 12-field lists.
    symbol : the requested symbol, named in every error.

    Returns
    -------
    polars.DataFrame, one row per kline (n_rows = len(payload)), payload order kept.

    Raises
    ------
    BinanceError : on a Binance error object (``{"code": ..., "msg": ...}``), on a reply
        that is not a list of 12-field lists, or on a field that does not parse.
    """
    if isinstance(payload, dict) and "code" in payload:
        raise BinanceError(
            f"Binance refused klines for symbol {symbol}: code {payload.get('code')}: "
            f"{payload.get('msg')}"
        )
    if not isinstance(payload, list):
        raise BinanceError(
            f"klines for {symbol}: expected a JSON list of klines, got {type(payload).__name__}: "
            f"{str(payload)[:200]!r}"
        )
    names = list(KLINE_SCHEMA)
    columns: dict[str, list] = {name: [] for name in names}
    for row_number, row in enumerate(payload):
        if not isinstance(row, list | tuple) or len(row) != KLINE_FIELD_COUNT:
            raise BinanceError(
                f"klines for {symbol}: row {row_number} must be a list of "
                f"{KLINE_FIELD_COUNT} fields, got {str(row)[:200]!r}"
            )
        for name, value in zip(names, row, strict=False):  # the 12th field is ignored
            if KLINE_SCHEMA[name] == pl.Int64():
                columns[name].append(_as_int(value, name, symbol, row_number))
            else:
                columns[name].append(_as_float(value, name, symbol, row_number))
    return pl.DataFrame(columns, schema=KLINE_SCHEMA)


class BinanceOhlcvSource(OhlcvSource):
    """Daily candles of Binance spot pairs (``BTCUSDT`` ...) from the public REST API.

    Parameters
    ----------
    base_url : API root; ``https://api.binance.com`` or a mirror such as
        ``https://data-api.binance.vision`` (market data only, same paths).
    interval : must be ``"1d"``: the OHLCV frame has one row per (symbol, UTC day).
    limit : candles per request, 1..1000 (1000 is cheapest in requests and weight).
    session : a ``requests.Session`` (injected in tests); a fresh one by default.
    sleep : the wait used between retries (injected in tests).
    now : the current time, a ``datetime`` or a callable returning one (UTC); candles whose
        close time is not yet past are still open and are dropped.
    max_retries, backoff_base : passed to :func:`~.http.get_json`.
    """

    name = "binance"

    def __init__(
        self,
        base_url: str = "https://api.binance.com",
        interval: str = "1d",
        limit: int = MAX_LIMIT,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: datetime | Callable[[], datetime] | None = None,
        max_retries: int = 5,
        backoff_base: float = 1.0,
    ) -> None:
        if interval != "1d":
            raise ValueError(
                f"BinanceOhlcvSource interval={interval!r}: only '1d' fits the daily OHLCV "
                "frame (one row per symbol and UTC day); use fetch_klines for other intervals"
            )
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"Binance klines limit must be in 1..{MAX_LIMIT}, got {limit}")
        self.base_url = base_url.rstrip("/")
        self.interval = interval
        self.limit = limit
        self.session = session if session is not None else default_session()
        self.sleep = sleep
        self._now = now
        self.max_retries = max_retries
        self.backoff_base = backoff_base

    def now_ms(self) -> int:
        now = self._now() if callable(self._now) else self._now
        if now is None:
            now = datetime.now(UTC)
        if now.tzinfo is None:
            raise ValueError(f"now must be timezone-aware (UTC), got naive {now!r}")
        return int(now.timestamp() * 1000)

    def _get_page(self, symbol: str, interval: str, start_ms: int, end_ms: int) -> Any:
        params = {
            "symbol": symbol,
            "interval": interval,
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": self.limit,
        }
        try:
            return get_json(
                self.session,
                self.base_url + KLINES_PATH,
                params,
                max_retries=self.max_retries,
                backoff_base=self.backoff_base,
                sleep=self.sleep,
            )
        except HttpError as exc:
            window = f"{_ms_to_iso(start_ms)}..{_ms_to_iso(end_ms)}"
            if isinstance(exc.payload, dict) and "code" in exc.payload:
                raise BinanceError(
                    f"Binance refused klines for symbol {symbol} ({window}): HTTP {exc.status}, "
                    f"code {exc.payload.get('code')}: {exc.payload.get('msg')}"
                ) from exc
            raise HttpError(
                f"Binance klines for symbol {symbol} ({window}) failed: {exc}",
                url=exc.url,
                status=exc.status,
                body=exc.body,
                payload=exc.payload,
            ) from exc

    def fetch_klines(
        self, symbol: str, start_ms: int, end_ms: int, interval: str | None = None
    ) -> pl.DataFrame:
        """Every kline of ``symbol`` opening in ``[start_ms, end_ms]``, paged as needed.

        Returns
        -------
        polars.DataFrame in :data:`KLINE_SCHEMA`, sorted by ``open_time``, no duplicates.
        Open candles are NOT dropped here (see :meth:`fetch`).
        """
        interval = interval or self.interval
        if interval not in INTERVAL_MS:
            raise ValueError(
                f"unsupported kline interval {interval!r}: use one of {list(INTERVAL_MS)}"
            )
        step = INTERVAL_MS[interval]
        pages: list[pl.DataFrame] = []
        cursor = start_ms
        while cursor <= end_ms:
            page = parse_klines(self._get_page(symbol, interval, cursor, end_ms), symbol)
            if page.is_empty():
                break
            opens = page["open_time"]
            if opens[0] < cursor or not opens.is_sorted() or opens.n_unique() != len(opens):
                raise BinanceError(
                    f"klines for {symbol}: page requested from {_ms_to_iso(cursor)} is not "
                    f"strictly increasing from that time (first open {_ms_to_iso(opens[0])})"
                )
            pages.append(page)
            if page.height < self.limit:
                break  # a short page means the range is exhausted
            cursor = int(opens[-1]) + step
        if not pages:
            return pl.DataFrame(schema=KLINE_SCHEMA)
        klines = pl.concat(pages).filter(pl.col("open_time") <= end_ms)
        return klines

    def fetch(self, symbols: Sequence[str], start: date, end: date) -> pl.DataFrame:
        """Closed daily candles with ``start <= date <= end`` for each symbol.

        Returns
        -------
        polars.DataFrame in :data:`~.base.OHLCV_SCHEMA`, sorted by (symbol, date); a symbol
        with no candle in the range (not listed yet, delisted) simply has no rows.
        """
        if start > end:
            raise ValueError(f"Binance fetch: start {start} is after end {end}")
        start_ms = day_start_ms(start)
        end_ms = day_start_ms(end + timedelta(days=1)) - 1
        now_ms = self.now_ms()
        frames = []
        for symbol in dict.fromkeys(symbols):  # de-duplicated, order kept
            klines = self.fetch_klines(symbol, start_ms, end_ms)
            misaligned = klines.filter(pl.col("open_time") % DAY_MS != 0)
            if not misaligned.is_empty():
                raise BinanceError(
                    f"klines for {symbol}: daily candle opening at "
                    f"{_ms_to_iso(misaligned['open_time'][0])} is not at 00:00 UTC"
                )
            closed = klines.filter(pl.col("close_time") < now_ms)
            frames.append(
                closed.with_columns(
                    pl.lit(symbol).alias("symbol"),
                    pl.from_epoch("open_time", time_unit="ms").dt.date().alias("date"),
                    pl.lit(SOURCE_NAME).alias("source"),
                ).filter(pl.col("date").is_between(start, end))
            )
        if not frames:
            return empty_ohlcv()
        return conform(pl.concat(frames), OHLCV_SCHEMA).sort("symbol", "date")
