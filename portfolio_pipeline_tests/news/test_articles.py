"""Scored articles fanned out to their symbols (features.news_sentiment)."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from portfolio_pipeline.news.articles import MARKET_SYMBOL, SentimentInputError, score_news
from portfolio_pipeline.news.lexicon_scorer import LexiconSentimentScorer


def test_every_article_and_every_tagged_pair_has_a_row(news, lexicon_sentiment):
    assert set(lexicon_sentiment.columns) >= {
        "id", "symbol", "published_at", "score", "p_positive", "p_neutral", "p_negative", "model"
    }  # fmt: skip
    market = lexicon_sentiment.filter(pl.col("symbol") == MARKET_SYMBOL)
    assert sorted(market["id"].to_list()) == sorted(news["id"].to_list())
    tagged = (
        news.select("id", pl.col("symbols").alias("symbol")).explode("symbol").drop_nulls().unique()
    )
    per_symbol = lexicon_sentiment.filter(pl.col("symbol") != MARKET_SYMBOL).select("id", "symbol")
    assert_frame_equal(per_symbol.sort("id", "symbol"), tagged.sort("id", "symbol"))
    assert lexicon_sentiment.select(pl.struct("id", "symbol").is_unique().all()).item()
    assert lexicon_sentiment["score"].is_between(-1.0, 1.0).all()
    # The published time travels unchanged.
    joined = lexicon_sentiment.join(news.select("id", "published_at"), on="id", suffix="_raw")
    assert (joined["published_at"] == joined["published_at_raw"]).all()


def test_score_news_rejects_bad_input(news):
    scorer = LexiconSentimentScorer()
    with pytest.raises(SentimentInputError, match=r"lacks required columns \['id'\]"):
        score_news(news.drop("id"), scorer)
    with pytest.raises(SentimentInputError, match="duplicate news ids"):
        score_news(pl.concat([news.head(3), news.head(1)]), scorer)
    with pytest.raises(SentimentInputError, match="time-zone-aware"):
        score_news(
            news.head(3).with_columns(pl.col("published_at").dt.replace_time_zone(None)), scorer
        )
    empty = score_news(news.head(0), scorer)
    assert empty.height == 0 and "score" in empty.columns
