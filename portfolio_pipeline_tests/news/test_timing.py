"""When an article becomes usable: the UTC day, or the first session that can act on it."""

from __future__ import annotations

from datetime import date, datetime, time

import polars as pl

from portfolio_pipeline.news.daily import daily_sentiment
from portfolio_pipeline.news.timing import NewsTiming


def test_equity_news_counts_from_the_first_session_that_can_act_on_it():
    # NYSE sessions around Presidents' Day 2022 (Monday 2022-02-21 closed).
    sessions = (date(2022, 2, 17), date(2022, 2, 18), date(2022, 2, 22), date(2022, 2, 23))
    timing = NewsTiming(time(16, 0), "America/New_York", sessions)
    local = [
        datetime(2022, 2, 17, 9, 0),  # Thursday morning: that session
        datetime(2022, 2, 18, 15, 59),  # Friday before the close: Friday
        datetime(2022, 2, 18, 16, 0),  # Friday at the close: next session, Tuesday
        datetime(2022, 2, 19, 12, 0),  # Saturday: Tuesday
        datetime(2022, 2, 21, 10, 0),  # the holiday: Tuesday
        datetime(2022, 2, 23, 17, 0),  # after the last known session: not usable yet
    ]
    frame = pl.DataFrame({"published_at": local}).with_columns(
        pl.col("published_at").dt.replace_time_zone("America/New_York")
    )
    out = timing.with_usable_date(frame)
    assert out["date"].to_list() == [
        date(2022, 2, 17), date(2022, 2, 18), date(2022, 2, 22), date(2022, 2, 22),
        date(2022, 2, 22), None,
    ]  # fmt: skip
    # crypto keeps the UTC day: Friday 16:00 New York is 21:00 UTC the same day
    assert NewsTiming().with_usable_date(frame)["date"][2] == date(2022, 2, 18)
    # and the daily table counts them on those sessions
    scored = frame.with_columns(
        pl.lit("AAPL").alias("symbol"), pl.lit(0.5).alias("score"), pl.lit("x").alias("id")
    )
    daily = daily_sentiment(
        scored, ["AAPL"], date(2022, 2, 17), date(2022, 2, 23), 3.0, timing=timing
    ).filter(pl.col("symbol") == "AAPL")
    counts = dict(zip(daily["date"].to_list(), daily["news_count"].to_list(), strict=True))
    assert counts[date(2022, 2, 22)] == 3 and counts[date(2022, 2, 19)] == 0
    assert sum(counts.values()) == 5
