"""The offline lexicon scorer: polarity, negation, phrases, and its labelled accuracy."""

from __future__ import annotations

import polars as pl
import pytest

from portfolio_pipeline.news.evaluation import labelled_accuracy, predicted_labels
from portfolio_pipeline.news.lexicon_scorer import LexiconSentimentScorer


def test_lexicon_polarity_negation_and_phrases():
    scorer = LexiconSentimentScorer()
    texts = [
        "Bitcoin surges to a new all-time high as ETF approval nears",
        "Exchange hacked, $100M stolen in exploit",
        "Ethereum developers publish the agenda of the next call",
        "Coinbase faces no risks of bankruptcy, says CEO",
        "Crypto winter deepens as lenders freeze withdrawals",
        "Bitcoin price does not crash despite Fed decision",
    ]
    scores = scorer.score_texts(texts)
    labels = predicted_labels(scores).to_list()
    assert labels[:3] == ["positive", "negative", "neutral"]
    assert labels[3] == "positive"  # negated negatives
    assert labels[4] == "negative"
    assert scores["score"][5] > 0 > scorer.score_texts(["Bitcoin price crashes"])["score"][0]
    assert scores.select(
        pl.sum_horizontal("p_positive", "p_neutral", "p_negative")
    ).to_series().to_numpy() == pytest.approx(1.0)
    assert scores["score"].is_between(-1, 1).all()


def test_lexicon_beats_majority_baseline_on_hand_labelled_headlines(labelled):
    assert labelled.height == 60
    assert labelled["label"].value_counts()["count"].to_list() == [20, 20, 20]
    result = labelled_accuracy(LexiconSentimentScorer(), labelled)
    print(f"lexicon accuracy {result.accuracy:.3f} vs majority {result.majority_baseline:.3f}")
    assert result.accuracy > result.majority_baseline
