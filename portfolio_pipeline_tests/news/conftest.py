"""Fixtures of the news tests: the sample with ids, its lexicon scores, a tiny local model."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from portfolio_pipeline.news.articles import score_news
from portfolio_pipeline.news.lexicon_scorer import LexiconSentimentScorer
from portfolio_pipeline.news.tiny_models import build_untrained_classifier

LABELLED_PATH = Path(__file__).resolve().parents[1] / "data" / "sentiment_labelled.csv"


@pytest.fixture(scope="module")
def news(sample_news: pl.DataFrame) -> pl.DataFrame:
    """The sample with the id the raw news table carries (here: the row number)."""
    return sample_news.with_row_index("id").with_columns(pl.col("id").cast(pl.String))


@pytest.fixture(scope="module")
def lexicon_sentiment(news: pl.DataFrame) -> pl.DataFrame:
    return score_news(news, LexiconSentimentScorer())


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, sample_news: pl.DataFrame) -> Path:
    corpus = sample_news["title"].head(1000).to_list()
    return build_untrained_classifier(tmp_path_factory.mktemp("tiny-bert"), corpus)


@pytest.fixture(scope="module")
def labelled() -> pl.DataFrame:
    return pl.read_csv(LABELLED_PATH)
