"""Which scorer loads: the lexicon fallback, loudly, when the model cannot."""

from __future__ import annotations

import logging

from portfolio_pipeline.news.articles import score_news
from portfolio_pipeline.news.lexicon_scorer import LexiconSentimentScorer
from portfolio_pipeline.news.loading import load_sentiment_scorer


def test_missing_model_falls_back_to_lexicon_with_logged_warning(tmp_path, news, caplog):
    missing = tmp_path / "no-such-model"
    with caplog.at_level(logging.WARNING, logger="portfolio_pipeline.news.loading"):
        scorer = load_sentiment_scorer(str(missing))
    assert isinstance(scorer, LexiconSentimentScorer)
    assert scorer.name == "headline-v3"
    assert scorer.fallback_reason
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no-such-model" in warnings[0].getMessage()
    assert "lexicon" in warnings[0].getMessage()
    table = score_news(news.head(20), scorer)
    assert table["model"].unique().to_list() == ["headline-v3"]


def test_model_name_comes_from_environment(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PORTFOLIO_PIPELINE_SENTIMENT_MODEL", str(tmp_path / "env-model"))
    with caplog.at_level(logging.WARNING):
        scorer = load_sentiment_scorer()
    assert isinstance(scorer, LexiconSentimentScorer)
    assert "env-model" in caplog.text
    caplog.clear()
    monkeypatch.setenv("PORTFOLIO_PIPELINE_SENTIMENT_MODEL", "lexicon")
    with caplog.at_level(logging.WARNING):
        chosen = load_sentiment_scorer()
    assert isinstance(chosen, LexiconSentimentScorer) and chosen.fallback_reason is None
    assert not caplog.records


def test_unreachable_hub_falls_back_without_waiting(monkeypatch, tmp_path, caplog):
    import socket
    import time

    from portfolio_pipeline.news import loading

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # nothing cached

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    started = time.perf_counter()
    scorer = loading.load_sentiment_scorer("some-org/some-finbert")
    assert time.perf_counter() - started < 5
    assert scorer.name == "headline-v3"
    assert "unreachable" in scorer.fallback_reason
