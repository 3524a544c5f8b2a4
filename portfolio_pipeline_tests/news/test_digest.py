"""The daily news digest: the strongest headlines per symbol and day."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from portfolio_pipeline.news.digest import news_digest


def test_news_digest_top_headlines(news, lexicon_sentiment):
    digest = news_digest(news, lexicon_sentiment, top_n=3)
    assert digest.group_by("symbol", "date").len()["len"].max() <= 3
    assert digest["title"].null_count() == 0
    btc_day = digest.filter((pl.col("symbol") == "BTCUSDT") & (pl.col("date") == date(2022, 5, 10)))
    assert btc_day["rank"].to_list() == [1, 2, 3]
    magnitudes = btc_day["score"].abs().to_list()
    assert magnitudes == sorted(magnitudes, reverse=True)
    day_scores = lexicon_sentiment.filter(
        (pl.col("symbol") == "BTCUSDT") & (pl.col("published_at").dt.date() == date(2022, 5, 10))
    )["score"]
    assert magnitudes[0] == pytest.approx(day_scores.abs().max())
    with pytest.raises(ValueError, match="top_n"):
        news_digest(news, lexicon_sentiment, top_n=0)
