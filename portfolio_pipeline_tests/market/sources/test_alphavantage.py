"""Alpha Vantage NEWS_SENTIMENT client, offline against two real recorded replies."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests

from portfolio_pipeline.market.sources.alphavantage import (
    API_KEY_ENV,
    TICKER_SENTIMENT_SCHEMA,
    AlphaVantageError,
    AlphaVantageNewsSource,
    TickerMapping,
    crypto_tickers_for,
    parse_news_items,
    parse_ticker_sentiment,
    symbol_for_ticker,
)
from portfolio_pipeline.market.sources.base import NEWS_SCHEMA, news_id
from portfolio_pipeline.market.sources.http import HttpError

TICKERS_FIXTURE = "alphavantage_news_sentiment_tickers_COIN_CRYPTO-BTC_FOREX-USD_2024.json"
BLOCKCHAIN_FIXTURE = "alphavantage_news_sentiment_blockchain_2023-10-04.json"
KEY = "TESTKEY123"
EMPTY_REPLY = {
    "items": "0",
    "sentiment_score_definition": "x <= -0.35: Bearish; ...",
    "relevance_score_definition": "0 < x <= 1, ...",
    "feed": [],
}


class FakeResponse:
    def __init__(self, status_code: int = 200, payload: Any = None, text: str | None = None):
        self.status_code = status_code
        self.text = text if text is not None else json.dumps(payload)
        self.headers = requests.structures.CaseInsensitiveDict()

    def json(self) -> Any:
        return json.loads(self.text)


class FakeSession:
    """Answers every GET with ``handler(params)`` and records the params."""

    def __init__(self, handler: Callable[[dict], FakeResponse]):
        self.handler = handler
        self.calls: list[dict] = []

    def get(self, url: str, params: dict | None = None, timeout: float | None = None):
        self.calls.append({"url": url, **(params or {})})
        return self.handler(dict(params or {}))


def replying(payload: Any) -> FakeSession:
    return FakeSession(lambda params: FakeResponse(200, payload))


@pytest.fixture()
def tickers_reply(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / TICKERS_FIXTURE).read_text())


@pytest.fixture()
def blockchain_reply(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / BLOCKCHAIN_FIXTURE).read_text())


def make_source(session: FakeSession, **kwargs) -> AlphaVantageNewsSource:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("sleep", lambda s: None)
    return AlphaVantageNewsSource(session=session, **kwargs)


def published(item: dict) -> datetime:
    return datetime.strptime(item["time_published"], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)


# --- parsing of the real replies -----------------------------------------------------------


def test_fetch_parses_real_reply_into_news_schema(tickers_reply):
    session = replying(tickers_reply)
    news = make_source(session, tickers=("CRYPTO:BTC",)).fetch(date(2024, 3, 20), date(2024, 5, 6))
    assert news.schema == pl.Schema(NEWS_SCHEMA)
    assert news.height == 21 == int(tickers_reply["items"])
    assert news["id"].is_unique().all()
    assert news["published_at"].is_sorted()
    assert set(news["provider"].to_list()) == {"alphavantage"}

    item = tickers_reply["feed"][0]  # "20240506T203214", overall 0.153173
    row = news.filter(pl.col("url") == item["url"]).row(0, named=True)
    assert row["published_at"] == datetime(2024, 5, 6, 20, 32, 14, tzinfo=UTC)
    assert row["id"] == news_id(item["url"], item["title"], row["published_at"])
    assert row["title"] == item["title"] and row["summary"] == item["summary"]
    assert row["source"] == "Benzinga" and row["subject"] == "Markets"
    assert row["provider_sentiment"] == pytest.approx(0.153173)
    # MSTR, COIN, FOREX:USD dropped; CRYPTO:BTC and CRYPTO:ETH mapped to pairs.
    assert row["symbols"] == ["BTCUSDT", "ETHUSDT"]


def test_request_parameters(tickers_reply):
    session = replying(tickers_reply)
    make_source(session, tickers=("CRYPTO:BTC",), topics=("blockchain",), limit=50).fetch(
        date(2024, 3, 20), date(2024, 5, 6)
    )
    assert session.calls == [
        {
            "url": "https://www.alphavantage.co/query",
            "function": "NEWS_SENTIMENT",
            "tickers": "CRYPTO:BTC",
            "topics": "blockchain",
            "time_from": "20240320T0000",
            "time_to": "20240506T2359",
            "sort": "LATEST",
            "limit": 50,
            "apikey": KEY,
        }
    ]


def test_times_are_utc_and_day_filter_uses_utc(blockchain_reply):
    # The server may return articles outside the window: only UTC 2023-10-04 is kept.
    moved = json.loads(json.dumps(blockchain_reply))
    moved["feed"][0]["time_published"] = "20231005T000000"  # just after the day
    moved["feed"][1]["time_published"] = "20231003T235959"  # just before
    news = make_source(replying(moved), tickers=("CRYPTO:BTC",)).fetch(
        date(2023, 10, 4), date(2023, 10, 4)
    )
    assert news.height == 48
    assert news.schema["published_at"] == pl.Datetime("us", "UTC")
    assert news["published_at"].dt.date().unique().to_list() == [date(2023, 10, 4)]
    expected = sorted(published(i) for i in blockchain_reply["feed"][2:])
    assert news["published_at"].to_list() == expected


def test_ticker_sentiment_scores_are_floats(tickers_reply):
    items = tickers_reply["feed"]
    scores = parse_ticker_sentiment(items)
    assert scores.schema == pl.Schema(TICKER_SENTIMENT_SCHEMA)
    assert scores.height == sum(len(i["ticker_sentiment"]) for i in items)
    first = items[0]
    article = news_id(first["url"], first["title"], published(first))
    rows = {r["ticker"]: r for r in scores.filter(pl.col("id") == article).iter_rows(named=True)}
    assert rows["CRYPTO:BTC"]["ticker_sentiment_score"] == 0.080537
    assert rows["CRYPTO:BTC"]["relevance_score"] == 0.688096
    assert rows["CRYPTO:BTC"]["symbol"] == "BTCUSDT"
    assert rows["FOREX:USD"]["ticker_sentiment_score"] == -0.208695
    assert rows["FOREX:USD"]["symbol"] is None and rows["COIN"]["symbol"] is None
    assert rows["CRYPTO:ETH"]["ticker_sentiment_label"] == "Somewhat-Bullish"


def test_fetch_with_ticker_sentiment_shares_one_request(blockchain_reply):
    session = replying(blockchain_reply)
    news, scores = make_source(session, tickers=("CRYPTO:BTC",)).fetch_with_ticker_sentiment(
        date(2023, 10, 4), date(2023, 10, 4)
    )
    assert len(session.calls) == 1
    assert set(scores["id"].to_list()) <= set(news["id"].to_list())
    btc_articles = scores.filter(pl.col("symbol") == "BTCUSDT")["id"].n_unique()
    assert btc_articles == 22 == news.filter(pl.col("symbols").list.contains("BTCUSDT")).height


# --- ticker mapping ------------------------------------------------------------------------


def test_ticker_mapping_rules():
    assert symbol_for_ticker("CRYPTO:BTC") == "BTCUSDT"
    assert symbol_for_ticker("CRYPTO:eth") == "ETHUSDT"
    assert symbol_for_ticker("FOREX:USD") is None
    assert symbol_for_ticker("COIN") is None
    assert symbol_for_ticker("CRYPTO:USDT") is None  # the cash currency is not a pair
    assert symbol_for_ticker("CRYPTO:BTC", {"CRYPTO:BTC": "XBTUSDT"}) == "XBTUSDT"
    assert symbol_for_ticker("COIN", {"COIN": "COIN"}) == "COIN"
    assert symbol_for_ticker("CRYPTO:FTT", universe={"BTCUSDT"}) is None
    assert crypto_tickers_for(["BTCUSDT", "ETHUSDT", "AAPL", "BTCUSDT"]) == (
        "CRYPTO:BTC",
        "CRYPTO:ETH",
    )


def test_universe_and_overrides_shape_symbols(blockchain_reply):
    items = blockchain_reply["feed"]
    free = parse_news_items(items)["symbols"].explode().drop_nulls().unique().to_list()
    assert {"BTCUSDT", "ETHUSDT", "FTTUSDT", "MANAUSDT"} <= set(free)
    assert "USDTUSDT" not in free and not any(s.startswith("FOREX") for s in free)

    universe = {"BTCUSDT", "ETHUSDT", "XRPUSDT"}
    kept = parse_news_items(items, TickerMapping(universe=frozenset(universe)))
    assert set(kept["symbols"].explode().drop_nulls().to_list()) <= universe
    assert kept.height == 50  # articles stay; only their symbol lists shrink

    renamed = parse_news_items(items, TickerMapping(overrides={"CRYPTO:BTC": "XBTUSDT"}))
    flat = set(renamed["symbols"].explode().drop_nulls().to_list())
    assert "XBTUSDT" in flat and "BTCUSDT" not in flat


def test_na_category_becomes_null_subject(tickers_reply):
    news = parse_news_items(tickers_reply["feed"])
    raw = {i["url"]: i["category_within_source"] for i in tickers_reply["feed"]}
    assert "n/a" in raw.values()
    for row in news.iter_rows(named=True):
        expected = None if raw[row["url"]] == "n/a" else raw[row["url"]]
        assert row["subject"] == expected


# --- queries, de-duplication, paging --------------------------------------------------------


def test_one_query_per_ticker_and_articles_kept_once(tickers_reply, blockchain_reply):
    # The API ANDs a ticker list, so BTC and ETH are asked separately; the same articles
    # come back for both and must appear once.
    replies = {"CRYPTO:BTC": tickers_reply, "CRYPTO:ETH": tickers_reply}
    session = FakeSession(lambda p: FakeResponse(200, replies[p["tickers"]]))
    news = make_source(session, tickers=("CRYPTO:BTC", "CRYPTO:ETH")).fetch(
        date(2024, 1, 1), date(2024, 12, 31)
    )
    assert [c["tickers"] for c in session.calls] == ["CRYPTO:BTC", "CRYPTO:ETH"]
    assert news.height == 21 and news["id"].is_unique().all()


def test_topics_only_query(blockchain_reply):
    session = replying(blockchain_reply)
    news = make_source(session, tickers=(), topics=("blockchain",)).fetch(
        date(2023, 10, 4), date(2023, 10, 4)
    )
    assert len(session.calls) == 1
    assert "tickers" not in session.calls[0] and session.calls[0]["topics"] == "blockchain"
    assert news.height == 50


def paging_server(feed: list[dict], inclusive_time_to: bool) -> Callable[[dict], FakeResponse]:
    """NEWS_SENTIMENT over ``feed``: newest first, ``limit`` items, time_to at minute grain."""
    newest_first = sorted(feed, key=published, reverse=True)

    def handle(params: dict) -> FakeResponse:
        time_to = datetime.strptime(params["time_to"], "%Y%m%dT%H%M").replace(tzinfo=UTC)
        cutoff = time_to + timedelta(minutes=1) if inclusive_time_to else time_to
        time_from = datetime.strptime(params["time_from"], "%Y%m%dT%H%M").replace(tzinfo=UTC)
        page = [i for i in newest_first if time_from <= published(i) < cutoff]
        page = page[: int(params["limit"])]
        return FakeResponse(200, {"items": str(len(page)), "feed": page})

    return handle


@pytest.mark.parametrize("inclusive_time_to", [True, False])
def test_full_pages_are_continued_back_in_time(blockchain_reply, inclusive_time_to):
    feed = blockchain_reply["feed"]
    session = FakeSession(paging_server(feed, inclusive_time_to))
    news = make_source(session, tickers=("CRYPTO:BTC",), limit=20).fetch(
        date(2023, 10, 4), date(2023, 10, 4)
    )
    assert news.height == 50 and news["id"].is_unique().all()
    assert set(news["url"].to_list()) == {i["url"] for i in feed}
    time_tos = [c["time_to"] for c in session.calls]
    assert time_tos[0] == "20231004T2359"
    assert time_tos == sorted(time_tos, reverse=True) and len(set(time_tos)) == len(time_tos)
    assert 3 <= len(session.calls) <= 4


def test_paging_that_cannot_advance_raises(blockchain_reply):
    same_minute = json.loads(json.dumps(blockchain_reply))
    for item in same_minute["feed"]:
        item["time_published"] = "20231004T235900"
    session = replying(same_minute)
    with pytest.raises(AlphaVantageError, match="more than 50 articles within one minute"):
        make_source(session, limit=50).fetch(date(2023, 10, 4), date(2023, 10, 4))


def test_paging_gives_up_after_max_pages(blockchain_reply):
    session = FakeSession(paging_server(blockchain_reply["feed"], inclusive_time_to=True))
    with pytest.raises(AlphaVantageError, match=r"still full after 2 pages of 10"):
        make_source(session, limit=10, max_pages=2).fetch(date(2023, 10, 4), date(2023, 10, 4))


# --- errors and quiet days -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (
            {"Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute"},
            r"'Note'.*rate limit.*5 calls per minute",
        ),
        (
            {"Information": "Our standard API rate limit is 25 requests per day."},
            r"'Information'.*25 requests per day",
        ),
        (
            {"Error Message": "Invalid API call. Please retry or visit the documentation."},
            r"'Error Message'.*Invalid API call",
        ),
        ({"items": "3"}, r"reply has no 'feed'"),
        ({"feed": "nothing"}, r"'feed' must be a list"),
    ],
)  # fmt: skip
def test_error_replies_raise_instead_of_empty_data(reply, match):
    session = replying(reply)
    with pytest.raises(AlphaVantageError, match=match) as info:
        make_source(session, tickers=("CRYPTO:BTC",)).fetch(date(2024, 1, 1), date(2024, 1, 2))
    assert "tickers=CRYPTO:BTC" in str(info.value) and KEY not in str(info.value)
    assert len(session.calls) == 1


def test_empty_feed_is_a_quiet_day_not_an_error():
    news = make_source(replying(EMPTY_REPLY)).fetch(date(2024, 1, 1), date(2024, 1, 1))
    assert news.is_empty() and news.schema == pl.Schema(NEWS_SCHEMA)
    assert parse_ticker_sentiment([]).schema == pl.Schema(TICKER_SENTIMENT_SCHEMA)


def test_malformed_article_fields_name_the_article(blockchain_reply):
    item = json.loads(json.dumps(blockchain_reply["feed"][0]))
    item["time_published"] = "2023-10-04 13:32"
    with pytest.raises(AlphaVantageError, match=r"bitfinexs-winning-formula.*time_published"):
        parse_news_items([item])
    item = json.loads(json.dumps(blockchain_reply["feed"][0]))
    item["ticker_sentiment"][0]["ticker_sentiment_score"] = "bullish"
    with pytest.raises(AlphaVantageError, match=r"ticker_sentiment_score 'bullish'"):
        parse_ticker_sentiment([item])


def test_missing_key_raises_with_the_env_var_name(monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(AlphaVantageError, match=f"set the environment variable {API_KEY_ENV}"):
        AlphaVantageNewsSource(session=replying(EMPTY_REPLY))
    with pytest.raises(AlphaVantageError, match=API_KEY_ENV):
        AlphaVantageNewsSource(api_key="  ", session=replying(EMPTY_REPLY))


def test_key_from_environment_is_sent_but_never_shown(monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "ENVKEY987")
    session = FakeSession(lambda p: FakeResponse(503, text="unavailable"))
    source = AlphaVantageNewsSource(session=session, sleep=lambda s: None, max_retries=1)
    assert "ENVKEY987" not in repr(source)
    with pytest.raises(HttpError, match="after 2 attempts") as info:
        source.fetch(date(2024, 1, 1), date(2024, 1, 1))
    assert session.calls[0]["apikey"] == "ENVKEY987"
    assert "ENVKEY987" not in str(info.value) and "apikey=%2A%2A%2A" in str(info.value)


def test_default_tickers_each_cost_one_request():
    session = replying(EMPTY_REPLY)
    source = make_source(session)
    source.fetch(date(2024, 1, 1), date(2024, 1, 1))
    assert [c["tickers"] for c in session.calls] == list(source.tickers)
    assert all(t.startswith("CRYPTO:") for t in source.tickers)


def test_constructor_rules():
    with pytest.raises(ValueError, match=r"limit must be in 1..1000"):
        make_source(replying(EMPTY_REPLY), limit=0)
    with pytest.raises(TypeError, match="not one string"):
        make_source(replying(EMPTY_REPLY), tickers="CRYPTO:BTC")
    with pytest.raises(ValueError, match="after end"):
        make_source(replying(EMPTY_REPLY)).fetch(date(2024, 1, 2), date(2024, 1, 1))
