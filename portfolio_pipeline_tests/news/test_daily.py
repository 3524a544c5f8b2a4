"""Daily point-in-time sentiment: the grid, counts, decay, and bit-identical sums."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from portfolio_pipeline.news.articles import MARKET_SYMBOL
from portfolio_pipeline.news.daily import daily_sentiment
from portfolio_pipeline.settings import SAMPLE_SYMBOLS


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _sentiment_rows(rows: list[tuple[str, str, datetime, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "id": pl.String,
            "symbol": pl.String,
            "published_at": pl.Datetime("us", "UTC"),
            "score": pl.Float64,
        },
        orient="row",
    )


def test_daily_sentiment_grid_counts_and_ewm_decay():
    half_life = 2.0
    decay = 0.5 ** (1 / half_life)
    rows = _sentiment_rows(
        [
            ("a", "BTCUSDT", _utc(2022, 1, 3, 0, 0), 0.8),
            ("a", MARKET_SYMBOL, _utc(2022, 1, 3, 0, 0), 0.8),
            ("b", "BTCUSDT", _utc(2022, 1, 3, 23, 59), -0.2),
            ("b", MARKET_SYMBOL, _utc(2022, 1, 3, 23, 59), -0.2),
            ("c", MARKET_SYMBOL, _utc(2022, 1, 6, 12, 0), -0.5),
            ("z", "NOTINUNIVERSE", _utc(2022, 1, 4, 12, 0), 1.0),
        ]
    )
    out = daily_sentiment(
        rows, ["BTCUSDT", "ETHUSDT"], date(2022, 1, 1), date(2022, 1, 10), half_life
    )
    assert out.height == 3 * 10
    assert set(out["symbol"].unique()) == {"BTCUSDT", "ETHUSDT", MARKET_SYMBOL}
    btc = out.filter(pl.col("symbol") == "BTCUSDT").sort("date")
    assert btc["news_count"].to_list() == [0, 0, 2, 0, 0, 0, 0, 0, 0, 0]
    assert btc["sentiment"].to_list()[:3] == [None, None, pytest.approx(0.3)]
    assert btc["sentiment"].null_count() == 9
    expected_ewm = [0.0, 0.0] + [(1 - decay) * 0.3 * decay**k for k in range(8)]
    assert btc["sentiment_ewm"].to_list() == pytest.approx(expected_ewm)
    eth = out.filter(pl.col("symbol") == "ETHUSDT")
    assert eth["news_count"].sum() == 0 and eth["sentiment_ewm"].to_list() == [0.0] * 10
    market = out.filter(pl.col("symbol") == MARKET_SYMBOL).sort("date")
    assert market["news_count"].to_list() == [0, 0, 2, 0, 0, 1, 0, 0, 0, 0]
    market_day_6 = (1 - decay) * 0.3 * decay**3 + (1 - decay) * -0.5
    assert market["sentiment_ewm"][5] == pytest.approx(market_day_6)
    # market columns are the MARKET row of the same date, on every symbol's row
    assert eth["market_sentiment_ewm"].to_list() == pytest.approx(market["sentiment_ewm"].to_list())
    assert eth["market_sentiment"][5] == pytest.approx(-0.5)


def test_daily_sentiment_converges_and_uses_news_before_start():
    # 50 daily articles of 0.6 from 2022-01-01 to 2022-02-19, then silence.
    rows = _sentiment_rows(
        [(f"n{k}", "ETHUSDT", _utc(2022, 1, 1, 9, 0) + timedelta(days=k), 0.6) for k in range(50)]
    )
    out = daily_sentiment(rows, ["ETHUSDT"], date(2022, 2, 20), date(2022, 3, 1), 3.0)
    eth = out.filter(pl.col("symbol") == "ETHUSDT").sort("date")
    decay = 0.5 ** (1 / 3.0)
    assert eth["date"].to_list()[0] == date(2022, 2, 20)  # no row before start
    assert eth["news_count"].sum() == 0
    # Earlier news is remembered (it was known), then decays toward 0 without news.
    steady = 0.6 * (1 - decay**50)
    expected = [steady * decay ** (k + 1) for k in range(10)]
    assert eth["sentiment_ewm"].to_list() == pytest.approx(expected)


def test_daily_sentiment_point_in_time(lexicon_sentiment):
    start, end = date(2021, 10, 1), date(2022, 7, 31)
    full = daily_sentiment(lexicon_sentiment, SAMPLE_SYMBOLS, start, end)
    n_days = (end - start).days + 1
    assert full.height == (len(SAMPLE_SYMBOLS) + 1) * n_days
    assert full.select(pl.struct("symbol", "date").is_unique().all()).item()
    assert full["news_count"].sum() == lexicon_sentiment.height
    assert (full.filter(pl.col("news_count") == 0)["sentiment"].is_null()).all()
    assert full["sentiment"].drop_nulls().is_between(-1, 1).all()
    assert full["sentiment_ewm"].is_between(-1, 1).all()

    # No row carries an article before the UTC day it was published.
    first_use = full.filter(pl.col("news_count") > 0).group_by("symbol").agg(pl.col("date").min())
    first_published = lexicon_sentiment.group_by("symbol").agg(
        pl.col("published_at").min().dt.date().alias("published")
    )
    check = first_use.join(first_published, on="symbol")
    assert (check["date"] == check["published"]).all()
    assert full.filter(pl.col("date") < date(2021, 10, 12))["sentiment_ewm"].to_list() == [0.0] * (
        (len(SAMPLE_SYMBOLS) + 1) * 11
    )

    # Only news published by the end of UTC day d may change rows dated <= d.
    for cutoff in (date(2021, 12, 31), date(2022, 5, 10)):
        known = lexicon_sentiment.filter(pl.col("published_at").dt.date() <= cutoff)
        partial = daily_sentiment(known, SAMPLE_SYMBOLS, start, end)
        before = pl.col("date") <= cutoff
        assert_frame_equal(partial.filter(before), full.filter(before))


def test_published_time_zone_is_converted_to_utc_day():
    late_new_york = pl.DataFrame(
        {
            "id": ["ny"],
            "symbol": ["BTCUSDT"],
            "published_at": [datetime(2022, 1, 1, 23, 30)],
            "score": [0.5],
        }
    ).with_columns(pl.col("published_at").dt.replace_time_zone("America/New_York"))
    out = daily_sentiment(late_new_york, ["BTCUSDT"], date(2022, 1, 1), date(2022, 1, 3))
    btc = out.filter(pl.col("symbol") == "BTCUSDT").sort("date")
    assert btc["news_count"].to_list() == [0, 1, 0]  # 04:30 UTC on 2022-01-02


def test_daily_sentiment_is_bit_identical_whatever_the_input_order(lexicon_sentiment):
    """The warehouse returns rows in no set order; the fold cache hashes these values, so the
    same articles must give the same bits (a plain mean sums in input order)."""
    start, end = date(2021, 10, 1), date(2022, 7, 31)
    runs = [
        daily_sentiment(
            lexicon_sentiment.sample(fraction=1.0, shuffle=True, seed=seed),
            SAMPLE_SYMBOLS,
            start,
            end,
        )
        for seed in range(4)
    ]
    for run in runs[1:]:
        assert run.equals(runs[0])
