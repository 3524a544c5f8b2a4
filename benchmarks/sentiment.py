"""Sentiment scoring throughput (headlines/second) and accuracy on the development set.

The development-set accuracy is in-sample (the word lists were written against it); the
held-out figures are in ``benchmarks.sentiment_quality``.

Scorers: the offline fallback (``headline-v3``) over all 7,465 sample articles, and a tiny UNTRAINED
BERT built locally (same code path as FinBERT: transformers pipeline, CPU) over 1,024
articles. The tiny model's speed is a lower bound on pipeline overhead, not FinBERT's speed
(FinBERT is ~110M parameters, this one ~50k); its accuracy is chance by construction.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from benchmarks._common import emit

REPO_ROOT = Path(__file__).resolve().parents[1]
NEWS_PATH = REPO_ROOT / "data" / "crypto_news.parquet"
LABELLED_PATH = REPO_ROOT / "portfolio_pipeline_tests" / "data" / "sentiment_labelled.csv"
TRANSFORMER_ARTICLES = 1024


def _throughput(scorer, texts: list[str]) -> float:
    scorer.score_texts(texts[:16])  # warm-up
    started = time.perf_counter()
    scorer.score_texts(texts)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from portfolio_pipeline.news.articles import article_text
    from portfolio_pipeline.news.evaluation import labelled_accuracy
    from portfolio_pipeline.news.lexicon_scorer import LexiconSentimentScorer
    from portfolio_pipeline.news.loading import load_sentiment_scorer
    from portfolio_pipeline.news.tiny_models import build_untrained_classifier

    news = pl.read_parquet(NEWS_PATH)
    texts = article_text(news).to_list()
    labelled = pl.read_csv(LABELLED_PATH)

    lexicon = LexiconSentimentScorer()
    emit("sentiment", "lexicon_headlines_per_second", round(_throughput(lexicon, texts)), "1/s",
         texts=len(texts), text="title + summary")  # fmt: skip
    result = labelled_accuracy(lexicon, labelled)
    emit("sentiment", "lexicon_labelled_accuracy", round(result.accuracy, 3), "fraction",
         n=result.n, majority_baseline=round(result.majority_baseline, 3))  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_untrained_classifier(Path(tmp) / "tiny-bert", news["title"].to_list())
        transformer = load_sentiment_scorer(str(model_dir), batch_size=32, device="cpu")
        import torch

        subset = texts[:TRANSFORMER_ARTICLES]
        emit("sentiment", "tiny_transformer_cpu_headlines_per_second",
             round(_throughput(transformer, subset)), "1/s", texts=len(subset), batch_size=32,
             device="cpu", torch_threads=torch.get_num_threads(),
             parameters=sum(p.numel() for p in transformer._pipeline.model.parameters()))  # fmt: skip
        result = labelled_accuracy(transformer, labelled)
        emit("sentiment", "tiny_untrained_transformer_labelled_accuracy",
             round(result.accuracy, 3), "fraction", n=result.n,
             majority_baseline=round(result.majority_baseline, 3))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
