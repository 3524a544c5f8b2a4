"""The transformer scorer, offline, on a tiny untrained model built locally."""

from __future__ import annotations

import json
import logging
import shutil

import polars as pl
import pytest

from portfolio_pipeline.news.articles import score_news
from portfolio_pipeline.news.evaluation import labelled_accuracy
from portfolio_pipeline.news.lexicon_scorer import LexiconSentimentScorer
from portfolio_pipeline.news.loading import load_sentiment_scorer
from portfolio_pipeline.news.transformer_scorer import TransformerSentimentScorer


def test_transformer_path_offline_with_local_tiny_model(tiny_model_dir, news, caplog):
    with caplog.at_level(logging.WARNING):
        scorer = load_sentiment_scorer(str(tiny_model_dir), batch_size=8)
    assert isinstance(scorer, TransformerSentimentScorer)
    assert not caplog.records and scorer.fallback_reason is None
    assert scorer.device in ("cpu", "cuda") and scorer.max_length == 128

    subset = news.head(40)
    table = score_news(subset, scorer)
    assert set(table["model"].unique()) == {scorer.name}
    probabilities = table.select(pl.sum_horizontal("p_positive", "p_neutral", "p_negative"))
    assert probabilities.to_series().to_numpy() == pytest.approx(1.0, abs=1e-6)
    assert table["score"].is_between(-1.0, 1.0).all()

    # The probabilities are the model's own, mapped by label name (not by position).
    text = "Bitcoin rallies. Markets cheer."
    raw = scorer._pipeline([text], top_k=None, truncation=True)[0]
    by_label = {item["label"]: item["score"] for item in raw}
    ours = scorer.score_texts([text]).row(0, named=True)
    assert ours["p_positive"] == pytest.approx(by_label["positive"])
    assert ours["p_negative"] == pytest.approx(by_label["negative"])
    assert ours["p_neutral"] == pytest.approx(by_label["neutral"])
    assert ours["score"] == pytest.approx(by_label["positive"] - by_label["negative"])

    # Long texts are truncated rather than crashing the position embeddings.
    long_text = " ".join(["bitcoin"] * 2000)
    assert scorer.score_texts([long_text, ""]).height == 2


def test_generic_labels_need_a_label_map(tiny_model_dir, tmp_path, caplog):
    generic = tmp_path / "generic"
    shutil.copytree(tiny_model_dir, generic)
    config_path = generic / "config.json"
    config = json.loads(config_path.read_text())
    config["id2label"] = {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}
    config["label2id"] = {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2}
    config_path.write_text(json.dumps(config))

    with caplog.at_level(logging.WARNING):
        fallback = load_sentiment_scorer(str(generic))
    assert isinstance(fallback, LexiconSentimentScorer)
    assert "LABEL_0" in fallback.fallback_reason

    mapped = load_sentiment_scorer(
        str(generic), label_map={"LABEL_0": "negative", "LABEL_1": "neutral", "LABEL_2": "positive"}
    )
    assert isinstance(mapped, TransformerSentimentScorer)
    assert mapped.score_texts(["ETH up"]).height == 1


def test_tiny_untrained_transformer_accuracy_is_recorded(tiny_model_dir, labelled):
    scorer = load_sentiment_scorer(str(tiny_model_dir))
    result = labelled_accuracy(scorer, labelled)
    # Random weights: near chance. Printed for the report, not asserted as a quality bar.
    print(f"tiny untrained transformer accuracy {result.accuracy:.3f} (n={result.n})")
    assert 0.0 <= result.accuracy <= 1.0 and result.n == 60
