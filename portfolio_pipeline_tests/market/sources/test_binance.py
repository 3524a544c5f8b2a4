"""Binance klines client and the shared HTTP retry helper, offline against recorded payloads.

HTTP is replaced by a fake ``requests.Session`` whose ``get`` serves recorded replies (or a
server simulated from the real shipped sample) and records every request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests

from portfolio_pipeline.market.sources.base import OHLCV_SCHEMA
from portfolio_pipeline.market.sources.binance import (
    DAY_MS,
    BinanceError,
    BinanceOhlcvSource,
    day_start_ms,
    parse_klines,
)
from portfolio_pipeline.market.sources.http import HttpError, get_json, retry_after_seconds

DAILY_FIXTURE = "binance_api_v3_klines_BTCUSDT_1d_2024-01-01_to_2024-01-10_reconstructed.json"
MINUTE_FIXTURE = "binance_api_v3_klines_1m_raw_sample.json"
AFTER_FIXTURE = datetime(2024, 2, 1, tzinfo=UTC)  # every fixture candle is closed by then


class FakeResponse:
    def __init__(
        self, status_code: int = 200, payload: Any = None, text: str | None = None, headers=None
    ):
        self.status_code = status_code
        self.text = text if text is not None else json.dumps(payload)
        self.headers = requests.structures.CaseInsensitiveDict(headers or {})

    def json(self) -> Any:
        return json.loads(self.text)  # raises ValueError (JSONDecodeError) on non-JSON


class FakeSession:
    """Serves ``replies`` in order (an Exception is raised), or calls ``handler(params)``."""

    def __init__(
        self,
        replies: list[FakeResponse | Exception] | None = None,
        handler: Callable[[dict], FakeResponse] | None = None,
    ):
        self.replies = list(replies or [])
        self.handler = handler
        self.calls: list[tuple[str, dict]] = []

    def get(self, url: str, params: dict | None = None, timeout: float | None = None):
        self.calls.append((url, dict(params or {})))
        if self.handler is not None:
            return self.handler(dict(params or {}))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


@pytest.fixture()
def daily_payload(fixtures_dir: Path) -> list:
    return json.loads((fixtures_dir / DAILY_FIXTURE).read_text())


@pytest.fixture()
def minute_payload(fixtures_dir: Path) -> list:
    return json.loads((fixtures_dir / MINUTE_FIXTURE).read_text())


def make_source(session: FakeSession, sleeps: list | None = None, **kwargs) -> BinanceOhlcvSource:
    kwargs.setdefault("now", AFTER_FIXTURE)
    sleep = sleeps.append if sleeps is not None else (lambda s: None)
    return BinanceOhlcvSource(session=session, sleep=sleep, **kwargs)


def kline_server(klines: list[list], *, max_limit: int = 1000) -> Callable[[dict], FakeResponse]:
    """A /api/v3/klines that pages ``klines`` like Binance: open in [startTime, endTime]."""

    def handle(params: dict) -> FakeResponse:
        limit = min(int(params["limit"]), max_limit)
        start, end = int(params["startTime"]), int(params["endTime"])
        rows = [k for k in klines if start <= k[0] <= end][:limit]
        return FakeResponse(200, rows)

    return handle


def klines_from_sample(sample: pl.DataFrame, symbol: str) -> list[list]:
    """The real daily rows of ``symbol`` written back in the API's 12-field layout."""
    rows = []
    for r in sample.filter(pl.col("symbol") == symbol).sort("date").iter_rows(named=True):
        open_ms = day_start_ms(r["date"])
        rows.append(
            [
                open_ms,
                repr(r["open"]),
                repr(r["high"]),
                repr(r["low"]),
                repr(r["close"]),
                repr(r["volume"]),
                open_ms + DAY_MS - 1,
                repr(r["quote_volume"] or 0.0),
                r["num_trades"] or 0,
                repr(r["taker_buy_base_volume"] or 0.0),
                repr(r["taker_buy_quote_volume"] or 0.0),
                "0",
            ]
        )
    return rows


# --- parsing -------------------------------------------------------------------------------


def test_parse_verbatim_minute_payload_keeps_every_field(minute_payload):
    klines = parse_klines(minute_payload, "ADAUSDT")
    assert klines.height == 10
    first = klines.row(0, named=True)
    assert first == {
        "open_time": 1731748020000,
        "open": 0.7227,
        "high": 0.7256,
        "low": 0.7227,
        "close": 0.7244,
        "volume": 574761.5,
        "close_time": 1731748079999,
        "quote_volume": 416461.9994,
        "num_trades": 1760,
        "taker_buy_base_volume": 343792.9,
        "taker_buy_quote_volume": 249110.96803,
    }
    assert klines["open_time"].diff().drop_nulls().to_list() == [60_000] * 9


def test_daily_fetch_matches_known_values_and_schema(daily_payload):
    session = FakeSession(handler=kline_server(daily_payload))
    frame = make_source(session).fetch(["BTCUSDT"], date(2024, 1, 1), date(2024, 1, 10))
    assert frame.schema == pl.Schema(OHLCV_SCHEMA)
    assert frame["date"].to_list() == [date(2024, 1, 1) + timedelta(days=i) for i in range(10)]
    jan1 = frame.row(0, named=True)
    assert jan1["close"] == 44179.55
    assert (jan1["open"], jan1["high"], jan1["low"]) == (42283.58, 44184.10, 42180.77)
    assert jan1["num_trades"] == 1114623
    assert jan1["symbol"] == "BTCUSDT" and jan1["source"] == "binance_spot"
    params = session.calls[0][1]
    assert session.calls[0][0] == "https://api.binance.com/api/v3/klines"
    assert params == {
        "symbol": "BTCUSDT",
        "interval": "1d",
        "startTime": 1704067200000,  # 2024-01-01T00:00Z
        "endTime": 1704931199999,  # 2024-01-10T23:59:59.999Z
        "limit": 1000,
    }


def test_daily_fetch_agrees_with_shipped_sample(sample_ohlcv, daily_payload):
    session = FakeSession(handler=kline_server(daily_payload))
    fetched = make_source(session).fetch(["BTCUSDT"], date(2024, 1, 1), date(2024, 1, 10))
    shipped = sample_ohlcv.filter(
        (pl.col("symbol") == "BTCUSDT")
        & pl.col("date").is_between(date(2024, 1, 1), date(2024, 1, 10))
    ).select(fetched.columns)
    assert fetched.equals(shipped.cast(OHLCV_SCHEMA))


def test_rows_after_the_requested_days_are_dropped(daily_payload):
    # A server that ignores endTime must not leak later days into the frame.
    session = FakeSession(replies=[FakeResponse(200, daily_payload)])
    frame = make_source(session).fetch(["BTCUSDT"], date(2024, 1, 1), date(2024, 1, 3))
    assert frame["date"].to_list() == [date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3)]


# --- open candle ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "last_day"),
    [
        (datetime(2024, 1, 10, 12, 0, tzinfo=UTC), date(2024, 1, 9)),  # Jan 10 still trading
        (datetime(2024, 1, 10, 23, 59, 59, 999000, tzinfo=UTC), date(2024, 1, 9)),  # == close
        (datetime(2024, 1, 11, 0, 0, tzinfo=UTC), date(2024, 1, 10)),  # Jan 10 closed
    ],
)
def test_still_open_last_candle_is_dropped(daily_payload, now, last_day):
    session = FakeSession(handler=kline_server(daily_payload))
    frame = make_source(session, now=lambda: now).fetch(
        ["BTCUSDT"], date(2024, 1, 1), date(2024, 1, 10)
    )
    assert frame["date"].max() == last_day
    assert frame.height == (last_day - date(2024, 1, 1)).days + 1


def test_naive_now_is_refused(daily_payload):
    session = FakeSession(handler=kline_server(daily_payload))
    with pytest.raises(ValueError, match="timezone-aware"):
        make_source(session, now=datetime(2024, 1, 11)).fetch(
            ["BTCUSDT"], date(2024, 1, 1), date(2024, 1, 2)
        )


# --- pagination ----------------------------------------------------------------------------


def test_pagination_over_years_of_real_candles(sample_ohlcv):
    klines = klines_from_sample(sample_ohlcv, "ETHUSDT")
    session = FakeSession(handler=kline_server(klines))
    start, end = date(2017, 8, 17), date(2025, 12, 31)
    frame = make_source(session, now=datetime(2026, 1, 2, tzinfo=UTC)).fetch(
        ["ETHUSDT"], start, end
    )

    starts = [params["startTime"] for _, params in session.calls]
    listing = day_start_ms(date(2017, 8, 17))
    assert starts == [
        listing,
        listing + 1000 * DAY_MS,
        listing + 2000 * DAY_MS,
        listing + 3000 * DAY_MS,
    ]
    assert all(
        params["endTime"] == day_start_ms(date(2026, 1, 1)) - 1 for _, params in session.calls
    )
    shipped = sample_ohlcv.filter(pl.col("symbol") == "ETHUSDT")
    assert frame.height == shipped.height == len(klines)
    assert frame["date"].is_unique().all()
    assert frame["date"].diff().drop_nulls().dt.total_days().unique().to_list() == [1]
    assert frame["close"].to_list() == shipped["close"].to_list()


@pytest.mark.parametrize(
    ("days", "limit", "expected_requests"), [(28, 7, 4), (30, 7, 5), (6, 7, 1)]
)
def test_pagination_page_boundaries(sample_ohlcv, days, limit, expected_requests):
    # 28 days with limit 7: four full pages and the cursor passes the end (no 5th request).
    start = date(2024, 1, 1)
    end = start + timedelta(days=days - 1)
    klines = klines_from_sample(sample_ohlcv, "BTCUSDT")
    session = FakeSession(handler=kline_server(klines))
    frame = make_source(session, limit=limit).fetch(["BTCUSDT"], start, end)
    starts = [params["startTime"] for _, params in session.calls]
    assert len(starts) == expected_requests
    assert starts == [day_start_ms(start) + i * limit * DAY_MS for i in range(expected_requests)]
    assert frame["date"].to_list() == [start + timedelta(days=i) for i in range(days)]


def test_pagination_at_minute_interval_uses_interval_step(minute_payload):
    session = FakeSession(handler=kline_server(minute_payload))
    source = make_source(session, limit=3)
    first, last = minute_payload[0][0], minute_payload[-1][0]
    klines = source.fetch_klines("ADAUSDT", first, last, interval="1m")
    starts = [params["startTime"] for _, params in session.calls]
    assert starts == [first, first + 180_000, first + 360_000, first + 540_000]
    assert klines["open_time"].to_list() == [row[0] for row in minute_payload]


def test_several_symbols_and_unlisted_days(sample_ohlcv):
    # AVAX lists on 2020-09-22: days before it simply have no rows.
    klines = {s: klines_from_sample(sample_ohlcv, s) for s in ("BTCUSDT", "AVAXUSDT")}
    session = FakeSession(handler=lambda p: kline_server(klines[p["symbol"]])(p))
    frame = make_source(session).fetch(
        ["BTCUSDT", "AVAXUSDT", "BTCUSDT"], date(2020, 9, 20), date(2020, 9, 24)
    )
    counts = dict(frame.group_by("symbol").len().iter_rows())
    assert counts == {"BTCUSDT": 5, "AVAXUSDT": 3}
    assert frame.filter(pl.col("symbol") == "AVAXUSDT")["date"].min() == date(2020, 9, 22)
    assert len(session.calls) == 2  # the duplicate symbol is fetched once


def test_server_going_backwards_is_refused(daily_payload):
    # A reply that starts before the requested startTime would create duplicates.
    session = FakeSession(handler=lambda p: FakeResponse(200, daily_payload))
    source = make_source(session, limit=10)
    with pytest.raises(BinanceError, match="BTCUSDT.*not strictly increasing"):
        source.fetch(["BTCUSDT"], date(2024, 1, 1), date(2024, 1, 31))


# --- payload validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"code": -1121, "msg": "Invalid symbol."}, r"NOPEUSDT.*-1121.*Invalid symbol"),
        ({"unexpected": 1}, r"NOPEUSDT: expected a JSON list"),
        ([[1704067200000, "1", "2"]], r"NOPEUSDT: row 0 must be a list of 12 fields"),
        ([[1704067200000, "1", "2", "0.5", "1.5", "x", 1704153599999, "1", 3, "1", "1", "0"]],
         r"NOPEUSDT: row 0 field 'volume' is not a number"),
        ([[1704067200000, "1", "2", "0.5", "1.5", "9", 1704153599999, "1", None, "1", "1", "0"]],
         r"NOPEUSDT: row 0 field 'num_trades' must be an integer"),
    ],
)  # fmt: skip
def test_bad_payloads_raise_naming_the_symbol(payload, match):
    session = FakeSession(replies=[FakeResponse(200, payload)])
    with pytest.raises(BinanceError, match=match):
        make_source(session).fetch(["NOPEUSDT"], date(2024, 1, 1), date(2024, 1, 2))


def test_binance_error_reply_with_http_400_is_not_retried():
    session = FakeSession(replies=[FakeResponse(400, {"code": -1121, "msg": "Invalid symbol."})])
    sleeps: list[float] = []
    with pytest.raises(BinanceError, match=r"NOPEUSDT.*HTTP 400.*-1121.*Invalid symbol") as info:
        make_source(session, sleeps).fetch(["NOPEUSDT"], date(2024, 1, 1), date(2024, 1, 2))
    assert len(session.calls) == 1 and sleeps == []
    assert isinstance(info.value, ValueError)  # a SourceError


def test_misaligned_daily_candle_is_refused(daily_payload):
    shifted = [
        [row[0] + 3_600_000, *row[1:6], row[6] + 3_600_000, *row[7:]] for row in daily_payload
    ]
    session = FakeSession(replies=[FakeResponse(200, shifted)])
    with pytest.raises(BinanceError, match="BTCUSDT.*not at 00:00 UTC"):
        make_source(session).fetch(["BTCUSDT"], date(2024, 1, 1), date(2024, 1, 10))


def test_constructor_rules():
    with pytest.raises(ValueError, match="only '1d'"):
        BinanceOhlcvSource(interval="1h", session=FakeSession())
    with pytest.raises(ValueError, match=r"limit must be in 1..1000"):
        BinanceOhlcvSource(limit=1001, session=FakeSession())
    with pytest.raises(ValueError, match="after end"):
        make_source(FakeSession()).fetch(["BTCUSDT"], date(2024, 1, 2), date(2024, 1, 1))


def test_empty_reply_gives_empty_frame_with_schema():
    session = FakeSession(replies=[FakeResponse(200, [])])
    frame = make_source(session).fetch(["BTCUSDT"], date(2030, 1, 1), date(2030, 1, 2))
    assert frame.is_empty() and frame.schema == pl.Schema(OHLCV_SCHEMA)


# --- retries (through the source, and get_json directly) -----------------------------------


def test_429_retry_after_is_honoured(daily_payload):
    session = FakeSession(
        replies=[
            FakeResponse(
                429, {"code": -1003, "msg": "Too many requests"}, headers={"Retry-After": "7"}
            ),
            FakeResponse(200, daily_payload),
        ]
    )
    sleeps: list[float] = []
    frame = make_source(session, sleeps).fetch(["BTCUSDT"], date(2024, 1, 1), date(2024, 1, 10))
    assert sleeps == [7.0]
    assert frame.height == 10
    assert session.calls[0] == session.calls[1]  # the same request, repeated


def test_418_ban_is_retried_after_its_retry_after(daily_payload):
    session = FakeSession(
        replies=[
            FakeResponse(418, {"code": -1003, "msg": "IP banned"}, headers={"retry-after": "120"}),
            FakeResponse(200, daily_payload),
        ]
    )
    sleeps: list[float] = []
    frame = make_source(session, sleeps).fetch(["BTCUSDT"], date(2024, 1, 1), date(2024, 1, 10))
    assert sleeps == [120.0] and frame.height == 10


def test_500_then_success_uses_exponential_backoff(daily_payload):
    session = FakeSession(
        replies=[
            FakeResponse(500, text="<html>Internal error</html>"),
            FakeResponse(502, text="bad gateway"),
            requests.ConnectionError("connection reset"),
            FakeResponse(200, daily_payload),
        ]
    )
    sleeps: list[float] = []
    source = make_source(session, sleeps, backoff_base=0.5)
    frame = source.fetch(["BTCUSDT"], date(2024, 1, 1), date(2024, 1, 10))
    assert sleeps == [0.5, 1.0, 2.0]
    assert frame["close"][0] == 44179.55


def test_retries_exhausted_raise_a_clear_error():
    session = FakeSession(replies=[FakeResponse(503, text="Service Unavailable")] * 4)
    sleeps: list[float] = []
    source = make_source(session, sleeps, max_retries=3)
    with pytest.raises(
        HttpError, match=r"BTCUSDT.*after 4 attempts.*HTTP 503.*Service Unavailable"
    ) as info:
        source.fetch(["BTCUSDT"], date(2024, 1, 1), date(2024, 1, 10))
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(session.calls) == 4
    assert info.value.status == 503
    assert "api.binance.com/api/v3/klines?symbol=BTCUSDT" in str(info.value)


def test_400_without_binance_payload_fails_at_once():
    session = FakeSession(replies=[FakeResponse(400, text="Bad Request: malformed")])
    sleeps: list[float] = []
    with pytest.raises(HttpError, match=r"BTCUSDT.*HTTP 400 \(not retried.*malformed"):
        make_source(session, sleeps).fetch(["BTCUSDT"], date(2024, 1, 1), date(2024, 1, 2))
    assert len(session.calls) == 1 and sleeps == []


def test_backoff_is_capped_and_long_retry_after_fails_fast():
    session = FakeSession(replies=[FakeResponse(500, text="x")] * 4 + [FakeResponse(200, [])])
    sleeps: list[float] = []
    assert (
        get_json(session, "https://h/x", {}, backoff_base=3, max_backoff=10, sleep=sleeps.append)
        == []
    )
    assert sleeps == [3, 6, 10, 10]

    banned = FakeSession(
        replies=[FakeResponse(418, text="banned", headers={"Retry-After": "7200"})]
    )
    with pytest.raises(HttpError, match="wait 7200 s"):
        get_json(banned, "https://h/x", {}, sleep=sleeps.append)


def test_retry_after_parsing():
    now = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("30") == 30.0
    assert retry_after_seconds("Mon, 01 Jan 2024 12:00:45 GMT", now=now) == 45.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_secrets_never_appear_in_errors_or_logs(caplog):
    secret = "S3CR3TKEY"
    params = {"function": "NEWS_SENTIMENT", "apikey": secret}
    flaky = FakeSession(
        replies=[
            requests.ConnectionError(f"Max retries exceeded with url: /query?apikey={secret}"),
            FakeResponse(401, text="unauthorised"),
        ]
    )
    with caplog.at_level(logging.WARNING), pytest.raises(HttpError) as info:
        get_json(flaky, "https://www.alphavantage.co/query", params, sleep=lambda s: None)
    assert "apikey=%2A%2A%2A" in str(info.value)  # masked, url-encoded
    assert secret not in str(info.value) and secret not in caplog.text
    assert "Max retries exceeded" in caplog.text  # the cause is still reported, scrubbed

    down = FakeSession(replies=[requests.ConnectionError(f"refused: apikey={secret}")] * 2)
    with pytest.raises(HttpError) as info:
        get_json(down, "https://h/q", params, max_retries=1, sleep=lambda s: None)
    assert secret not in str(info.value) and info.value.__cause__ is None
    assert "ConnectionError" in str(info.value) and info.value.status is None


def test_non_json_success_body_is_an_error():
    session = FakeSession(replies=[FakeResponse(200, text="<html>maintenance</html>")])
    with pytest.raises(HttpError, match="not JSON.*maintenance"):
        get_json(session, "https://h/x", {})


def test_delisted_symbol_full_pages_then_empty_page(sample_ohlcv):
    # MATICUSDT stops on 2024-09-10: 28 days from 2024-08-14 fill four pages of 7 exactly;
    # the fifth request comes back empty and ends the loop without an error.
    klines = klines_from_sample(sample_ohlcv, "MATICUSDT")
    session = FakeSession(handler=kline_server(klines))
    frame = make_source(session, limit=7, now=datetime(2025, 1, 1, tzinfo=UTC)).fetch(
        ["MATICUSDT"], date(2024, 8, 14), date(2024, 9, 30)
    )
    assert len(session.calls) == 5
    assert frame.height == 28 and frame["date"].max() == date(2024, 9, 10)
