"""Daily summaries: extractive fallback, a tiny seq2seq model through the real code path,
incremental reuse per model, and the digest's summary columns."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import pytest

from portfolio_pipeline.news.digest import news_digest
from portfolio_pipeline.news.summaries import (
    EXTRACTIVE_VERSION,
    ExtractiveSummarizer,
    Seq2SeqSummarizer,
    attach_summaries,
    day_documents,
    load_summarizer,
    summarise_days,
)
from portfolio_pipeline.news.tiny_models import build_untrained_summarizer


@pytest.fixture(scope="module")
def documents(news, lexicon_sentiment) -> pl.DataFrame:
    return day_documents(news, lexicon_sentiment)


@pytest.fixture(scope="module")
def tiny_summarizer_dir(tmp_path_factory, sample_news: pl.DataFrame) -> Path:
    corpus = sample_news["title"].head(1000).to_list()
    return build_untrained_summarizer(tmp_path_factory.mktemp("tiny-bart"), corpus)


def test_extractive_summary_leads_with_the_digest_headlines(news, lexicon_sentiment, documents):
    summaries = summarise_days(documents, ExtractiveSummarizer())
    digest = news_digest(news, lexicon_sentiment, top_n=3)
    assert summaries.height == digest.select("symbol", "date").unique().height
    assert summaries["model"].unique().to_list() == [EXTRACTIVE_VERSION]
    assert summaries["n_articles"].sum() == lexicon_sentiment.height
    day = summaries.filter(
        (pl.col("symbol") == "BTCUSDT") & (pl.col("date") == pl.date(2022, 5, 10))
    ).row(0, named=True)
    titles = digest.filter(
        (pl.col("symbol") == "BTCUSDT") & (pl.col("date") == pl.date(2022, 5, 10))
    )["title"].to_list()
    assert day["summary"].startswith(titles[0].strip())
    assert titles[1].strip() in day["summary"]
    # every summary is short: at most three headlines
    assert summaries["summary"].str.len_chars().max() < 800


def test_each_day_is_summarised_once_per_model(documents):
    first = summarise_days(documents, ExtractiveSummarizer())
    assert summarise_days(documents, ExtractiveSummarizer(), done=first).height == 0
    # another model summarises every day again; a changed day is summarised again
    other = ExtractiveSummarizer(headlines=1)
    other.name = "extractive-one"
    assert summarise_days(documents, other, done=first).height == documents.height
    changed = documents.with_columns(
        pl.when(pl.int_range(pl.len()) == 5)
        .then(pl.lit("changed"))
        .otherwise(pl.col("input_hash"))
        .alias("input_hash")
    )
    again = summarise_days(changed, ExtractiveSummarizer(), done=first)
    assert again.select("symbol", "date").rows() == [documents.select("symbol", "date").row(5)]


def test_day_documents_hash_follows_the_articles(news, lexicon_sentiment, documents):
    busy_day = lexicon_sentiment.filter(
        (pl.col("symbol") == "MARKET") & (pl.col("published_at").dt.date() == pl.date(2022, 5, 10))
    )
    dropped = busy_day["id"][0]
    fewer = day_documents(news, lexicon_sentiment.filter(pl.col("id") != dropped))
    joined = documents.join(fewer, on=["symbol", "date"], suffix="_fewer")
    changed = joined.filter(pl.col("input_hash") != pl.col("input_hash_fewer"))
    assert changed.height >= 1
    assert (changed["n_articles"] == changed["n_articles_fewer"] + 1).all()


def test_tiny_seq2seq_model_through_the_real_loading_path(tiny_summarizer_dir, documents, caplog):
    with caplog.at_level(logging.WARNING):
        summarizer = load_summarizer(str(tiny_summarizer_dir), batch_size=4)
    assert isinstance(summarizer, Seq2SeqSummarizer)
    assert not caplog.records and summarizer.fallback_reason is None
    assert summarizer.device in ("cpu", "cuda") and summarizer.max_input_tokens == 128
    subset = documents.head(6)
    summaries = summarise_days(subset, summarizer)
    assert summaries.height == 6 and summaries["model"].unique().to_list() == [summarizer.name]
    assert summaries["summary"].str.len_chars().min() > 0
    # a document far over the input length is truncated rather than crashing the model
    assert len(summarizer.summarise([["bitcoin " * 3000], [""]])) == 2


def test_missing_or_unset_model_falls_back_to_extractive_with_the_reason(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="portfolio_pipeline.news.summaries"):
        missing = load_summarizer(str(tmp_path / "no-such-summarizer"))
    assert isinstance(missing, ExtractiveSummarizer) and missing.name == EXTRACTIVE_VERSION
    assert missing.fallback_reason and "no-such-summarizer" in caplog.text
    unset = load_summarizer("")
    assert isinstance(unset, ExtractiveSummarizer)
    assert "PORTFOLIO_PIPELINE_SUMMARY_MODEL" in (unset.fallback_reason or "")


def test_digest_gains_the_summary_and_its_model(news, lexicon_sentiment, documents):
    digest = news_digest(news, lexicon_sentiment, top_n=3)
    summaries = summarise_days(documents, ExtractiveSummarizer())
    shown = attach_summaries(digest, summaries)
    assert shown.height == digest.height
    assert shown.columns == [*digest.columns, "summary", "summary_model"]
    assert shown["summary"].null_count() == 0
    assert shown["summary_model"].unique().to_list() == [EXTRACTIVE_VERSION]
    none = attach_summaries(digest, summaries.head(0))
    assert none["summary"].null_count() == digest.height
