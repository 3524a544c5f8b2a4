"""Daily news summaries and the market brief: the fallback path's wall time, and the model
path's throughput on tiny UNTRAINED models built locally.

Fallback (the target: <= 30 s): score the sample's 7,465 articles with the lexicon, build the
day documents of every (symbol, day) with news, summarise them extractively, attach them to
the digest, then read the latest recommendation run's facts and write its template brief
(from the warehouse at ``PORTFOLIO_PIPELINE_WAREHOUSE`` when it holds a run; skipped with a
note otherwise).

Model path: a tiny BART (~0.1M parameters) over 64 day documents and a tiny GPT-2 writing one
brief, CPU unless cuda is there. Their speed is a lower bound on the code path's overhead,
not DistilBART's or Llama-3-8B's speed.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import polars as pl

from benchmarks._common import emit, peak_rss_mb

REPO_ROOT = Path(__file__).resolve().parents[1]
NEWS_PATH = REPO_ROOT / "data" / "crypto_news.parquet"
MODEL_DOCUMENTS = 64


def _fallback(news: pl.DataFrame) -> pl.DataFrame:
    from portfolio_pipeline.news.articles import score_news
    from portfolio_pipeline.news.digest import news_digest
    from portfolio_pipeline.news.lexicon_scorer import LexiconSentimentScorer
    from portfolio_pipeline.news.summaries import (
        attach_summaries,
        day_documents,
        load_summarizer,
        summarise_days,
    )

    started = time.perf_counter()
    scores = score_news(news, LexiconSentimentScorer())
    scored = time.perf_counter()
    documents = day_documents(news, scores)
    summaries = summarise_days(documents, load_summarizer(""))
    digest = attach_summaries(news_digest(news, scores), summaries)
    done = time.perf_counter()
    emit("brief", "lexicon_scoring_seconds", round(scored - started, 2), "s", articles=news.height)
    emit("brief", "extractive_summaries_seconds", round(done - scored, 2), "s",
         symbol_days=summaries.height, digest_rows=digest.height)  # fmt: skip
    _template_brief(started)
    return documents


def _template_brief(started: float) -> None:
    from portfolio_pipeline.recommendations.brief import write_brief
    from portfolio_pipeline.recommendations.brief_facts import read_brief_facts
    from portfolio_pipeline.settings import load_settings
    from portfolio_pipeline.warehouse import connect

    settings = load_settings()
    if not settings.warehouse_path.exists():
        emit("brief", "fallback_total_seconds", round(time.perf_counter() - started, 2), "s",
             note=f"no warehouse at {settings.warehouse_path}: brief not timed")  # fmt: skip
        return
    brief_started = time.perf_counter()
    with connect(settings.warehouse_path, read_only=True) as con:
        brief = write_brief(read_brief_facts(con, cash_symbol=settings.cash_symbol), None, "bench")
    done = time.perf_counter()
    emit("brief", "template_brief_seconds", round(done - brief_started, 3), "s",
         characters=len(brief.text), run_id=brief.run_id)  # fmt: skip
    emit("brief", "fallback_total_seconds", round(done - started, 2), "s", target="<= 30")


def _model_path(documents: pl.DataFrame, news: pl.DataFrame) -> None:
    from portfolio_pipeline.news.summaries import load_summarizer, summarise_days
    from portfolio_pipeline.news.tiny_models import (
        build_untrained_causal_lm,
        build_untrained_summarizer,
    )
    from portfolio_pipeline.recommendations.brief_writer import load_brief_writer

    corpus = news["title"].head(1000).to_list()
    subset = documents.sort("n_articles", descending=True).head(MODEL_DOCUMENTS)
    with tempfile.TemporaryDirectory() as tmp:
        summarizer = load_summarizer(str(build_untrained_summarizer(Path(tmp) / "s", corpus)))
        summarise_days(subset.head(4), summarizer)  # warm-up
        started = time.perf_counter()
        summarise_days(subset, summarizer)
        seconds = time.perf_counter() - started
        emit("brief", "tiny_seq2seq_documents_per_second", round(subset.height / seconds, 1),
             "1/s", documents=subset.height, device=getattr(summarizer, "device", "n/a"),
             batch_size=getattr(summarizer, "batch_size", 0))  # fmt: skip
        writer, _ = load_brief_writer(
            str(build_untrained_causal_lm(Path(tmp) / "g", corpus)), max_new_tokens=200
        )
        assert writer is not None
        prompt = "FACTS:\n" + "\n".join(corpus[:60]) + "\n\nBRIEF:\n"
        writer.generate(prompt[:200])  # warm-up
        started = time.perf_counter()
        writer.generate(prompt)
        seconds = time.perf_counter() - started
        emit("brief", "tiny_causal_lm_new_tokens_per_second", round(200 / seconds, 1), "1/s",
             device=writer.device, max_new_tokens=200)  # fmt: skip


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    news = (
        pl.read_parquet(NEWS_PATH).with_row_index("id").with_columns(pl.col("id").cast(pl.String))
    )
    documents = _fallback(news)
    _model_path(documents, news)
    emit("brief", "peak_rss", round(peak_rss_mb()), "MiB")


if __name__ == "__main__":
    main()
