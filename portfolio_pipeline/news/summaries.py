"""Daily news summaries per symbol: a seq2seq model (DistilBART-style) or an extractive fallback.

Pure (no dagster); ``torch``/``transformers`` are imported only when a model summarizer is
built. transformers 5 removed the ``summarization`` pipeline, so the model path does what it
did: tokenize in batches truncated to the model's input length, ``generate`` on cuda when
there is one, decode.

Table ``features.news_summaries``: one row per (symbol, usable day, model). Each day is
summarised once per model: :func:`summarise_days` skips the days whose articles (their ids
and text, hashed) were already summarised by that model.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from portfolio_pipeline.news.loading import hub_unreachable_reason
from portfolio_pipeline.news.timing import NewsTiming

logger = logging.getLogger(__name__)

SUMMARY_MODEL_ENV = "PORTFOLIO_PIPELINE_SUMMARY_MODEL"
EXTRACTIVE_MODEL_NAME = "extractive"  # pass as model name to skip the model on purpose
EXTRACTIVE_VERSION = "extractive-v1"
EXTRACTIVE_HEADLINES = 3

NEWS_SUMMARIES_SCHEMA = pl.Schema(
    {
        "symbol": pl.String(),
        "date": pl.Date(),
        "n_articles": pl.Int32(),
        "input_hash": pl.String(),
        "summary": pl.String(),
        "model": pl.String(),
    }
)


class Summarizer(Protocol):
    """Anything that turns day documents into summaries: ``summarise(documents)`` returns
    one summary per document, in order; ``name`` is what the ``model`` column records."""

    name: str

    def summarise(self, documents: Sequence[list[str]]) -> list[str]: ...


class ExtractiveSummarizer:
    """The day's strongest headlines, in order, as the summary (no model, microseconds).

    A document is the day's article texts ordered by |sentiment score| (strongest first, as
    the digest ranks them); the summary is the titles of the first ``headlines`` distinct
    articles, joined as sentences. ``fallback_reason`` says why no model ran.
    """

    def __init__(
        self, headlines: int = EXTRACTIVE_HEADLINES, fallback_reason: str | None = None
    ) -> None:
        self.headlines = headlines
        self.fallback_reason = fallback_reason
        self.name = EXTRACTIVE_VERSION

    def summarise(self, documents: Sequence[list[str]]) -> list[str]:
        return [self._summarise_one(texts) for texts in documents]

    def _summarise_one(self, texts: list[str]) -> str:
        chosen: list[str] = []
        for text in texts:
            sentence = _first_sentence(text)
            if sentence and sentence.lower() not in {c.lower() for c in chosen}:
                chosen.append(sentence)
            if len(chosen) == self.headlines:
                break
        return " ".join(s if s.endswith((".", "!", "?")) else s + "." for s in chosen)


def _first_sentence(text: str) -> str:
    """The title: the first line of an article's text (see :func:`day_documents`)."""
    return (text or "").split("\n", 1)[0].strip()


def _title_and_summary(news: pl.DataFrame) -> pl.Expr:
    """``title`` and ``summary`` on two lines (either may be null or empty)."""
    title = pl.col("title").fill_null("").str.strip_chars()
    summary = (
        pl.col("summary").fill_null("").str.strip_chars()
        if "summary" in news.columns
        else pl.lit("")
    )
    return (
        pl.when(summary != "")
        .then(pl.concat_str(title, pl.lit("\n"), summary))
        .otherwise(title)
        .alias("text")
    )


class Seq2SeqSummarizer:
    """A Hugging Face seq2seq summarization model (e.g. ``sshleifer/distilbart-cnn-12-6``).

    Loaded eagerly, so a missing model fails at construction. Each document's articles are
    joined into one input, truncated to ``max_input_tokens``; summaries are generated in
    batches of ``batch_size`` with the model's own generation settings (DistilBART: beam
    search, 56..142 tokens) unless ``max_new_tokens`` caps them.

    Parameters
    ----------
    model_name_or_path : str
        Hub name or a local directory with model + tokenizer.
    batch_size : int
        Documents per ``generate`` call.
    device : str, optional
        ``"cuda"`` or ``"cpu"``; default: CUDA when available.
    max_input_tokens : int, optional
        Default: the smallest of the tokenizer's ``model_max_length``, the model's
        ``max_position_embeddings`` and 1024.
    max_new_tokens : int, optional
        Cap on summary length; default the model's generation config.
    """

    def __init__(
        self,
        model_name_or_path: str,
        batch_size: int = 8,
        device: str | None = None,
        max_input_tokens: int | None = None,
        max_new_tokens: int | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.model_name_or_path = str(model_name_or_path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.fallback_reason: str | None = None
        self._tokenizer: Any = AutoTokenizer.from_pretrained(self.model_name_or_path)
        self._model: Any = AutoModelForSeq2SeqLM.from_pretrained(self.model_name_or_path)
        self._model.to(self.device).eval()
        self.max_input_tokens = max_input_tokens or _input_limit(self._tokenizer, self._model)
        path = Path(self.model_name_or_path)
        self.name = path.name if path.is_dir() else self.model_name_or_path

    def summarise(self, documents: Sequence[list[str]]) -> list[str]:
        inputs = ["\n".join(texts) or " " for texts in documents]
        summaries: list[str] = []
        for start in range(0, len(inputs), self.batch_size):
            summaries += self._generate(inputs[start : start + self.batch_size])
        return summaries

    def _generate(self, batch: list[str]) -> list[str]:
        import torch

        encoded = self._tokenizer(
            batch,
            truncation=True,
            max_length=self.max_input_tokens,
            padding=True,
            return_tensors="pt",
        ).to(self.device)
        encoded.pop("token_type_ids", None)  # BART-style encoders take none
        kwargs = {"max_new_tokens": self.max_new_tokens} if self.max_new_tokens else {}
        with torch.inference_mode():
            output = self._model.generate(**encoded, **kwargs)
        decoded = self._tokenizer.batch_decode(output, skip_special_tokens=True)
        return [" ".join(text.split()) for text in decoded]


def _input_limit(tokenizer: Any, model: Any) -> int:
    limits = [1024, getattr(model.config, "max_position_embeddings", None)]
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if tokenizer_limit and tokenizer_limit < 1_000_000:  # huge = "not set"
        limits.append(tokenizer_limit)
    return min(v for v in limits if v)


def load_summarizer(
    model_name_or_path: str | None = None, *, batch_size: int = 8, device: str | None = None
) -> Seq2SeqSummarizer | ExtractiveSummarizer:
    """The model summarizer, or the extractive one with the reason when no model is named or
    it cannot load (a logged warning in the second case).

    ``model_name_or_path``: default ``$PORTFOLIO_PIPELINE_SUMMARY_MODEL``; blank or
    ``"extractive"`` selects the extractive summarizer, and its ``fallback_reason`` says so.
    """
    if model_name_or_path is None:
        model_name_or_path = os.environ.get(SUMMARY_MODEL_ENV, "").strip()
    if model_name_or_path in ("", EXTRACTIVE_MODEL_NAME):
        return ExtractiveSummarizer(fallback_reason=f"no summary model set ({SUMMARY_MODEL_ENV})")
    reason = hub_unreachable_reason(model_name_or_path)
    if reason is None:
        try:
            return Seq2SeqSummarizer(model_name_or_path, batch_size=batch_size, device=device)
        except Exception as exc:  # any load failure means: fall back, loudly
            reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
    logger.warning(
        "summary model %r unavailable (%s); falling back to %s summaries",
        model_name_or_path,
        reason,
        EXTRACTIVE_VERSION,
    )
    return ExtractiveSummarizer(fallback_reason=reason)


def day_documents(
    news: pl.DataFrame, news_sentiment: pl.DataFrame, timing: NewsTiming | None = None
) -> pl.DataFrame:
    """The articles of each symbol and usable day, strongest first, as one document.

    Returns
    -------
    polars.DataFrame
        symbol, date (the usable day, as in the digest), n_articles, input_hash (SHA-256 of
        the ordered ids and texts: a changed day is summarised again), texts (List[String]:
        each article's title and summary on two lines, by |score| descending, then latest
        first); sorted by (symbol, date).
    """
    articles = news.select(pl.col("id").cast(pl.String), _title_and_summary(news))
    scored = news_sentiment.select("id", "symbol", "published_at", "score")
    days = (
        (timing or NewsTiming())
        .with_usable_date(scored.join(articles, on="id", how="left"))
        .filter(pl.col("date").is_not_null())
        .sort([pl.col("score").abs(), "published_at", "id"], descending=[True, True, False])
        .group_by("symbol", "date", maintain_order=True)
        .agg(pl.len().cast(pl.Int32).alias("n_articles"), pl.col("id"), pl.col("text"))
        .sort("symbol", "date")
    )
    hashes = [
        hashlib.sha256("\x1f".join([*ids, *texts]).encode()).hexdigest()[:16]
        for ids, texts in zip(days["id"].to_list(), days["text"].to_list(), strict=True)
    ]
    return days.with_columns(
        pl.Series("input_hash", hashes, dtype=pl.String),
        pl.col("text").list.eval(pl.element().fill_null("")).alias("texts"),
    ).select("symbol", "date", "n_articles", "input_hash", "texts")


def summarise_days(
    documents: pl.DataFrame, summarizer: Summarizer, done: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Summaries of the ``documents`` (from :func:`day_documents`) not in ``done`` yet.

    ``done``: earlier rows of ``features.news_summaries``; a day already summarised by this
    model from the same articles (same ``input_hash``) is not summarised again.

    Returns
    -------
    polars.DataFrame
        The new rows, columns of :data:`NEWS_SUMMARIES_SCHEMA`, sorted by (symbol, date).
    """
    todo = documents
    if done is not None and done.height:
        known = done.filter(pl.col("model") == summarizer.name).select(
            "symbol", "date", "input_hash"
        )
        todo = documents.join(known, on=["symbol", "date", "input_hash"], how="anti")
    summaries = summarizer.summarise(todo["texts"].to_list()) if todo.height else []
    if len(summaries) != todo.height:
        raise RuntimeError(
            f"summarizer {summarizer.name} returned {len(summaries)} summaries for {todo.height} days"
        )
    return (
        todo.drop("texts")
        .with_columns(
            pl.Series("summary", summaries, dtype=pl.String),
            pl.lit(summarizer.name, dtype=pl.String).alias("model"),
        )
        .select(list(NEWS_SUMMARIES_SCHEMA))
        .cast(NEWS_SUMMARIES_SCHEMA)
        .sort("symbol", "date")
    )


def attach_summaries(digest: pl.DataFrame, summaries: pl.DataFrame) -> pl.DataFrame:
    """The digest with each (symbol, day)'s ``summary`` and ``summary_model`` (null where the
    day has no summary); ``summaries`` holds one row per (symbol, date), the current model's."""
    current = summaries.select(
        "symbol", "date", "summary", pl.col("model").alias("summary_model")
    ).unique(["symbol", "date"], keep="last", maintain_order=True)
    return digest.join(current, on=["symbol", "date"], how="left").sort("symbol", "date", "rank")
