"""Sentiment quality: accuracy, macro-F1, confusion matrix and majority baseline, per scorer.

Sets (``portfolio_pipeline_tests/data/``): the 60-headline development set
(``sentiment_labelled.csv``; the scorers were written while looking at it, so its figures
are in-sample) and two held-out sets, seeded random draws labelled by
``sentiment/LABELLING_RULE.md`` before the scorers measured on them were run:
``sentiment/heldout_1.csv`` (200; clean for ``lexicon-v1``, ``headline-v2`` and
``tfidf-lr-weak``; NOT clean for ``headline-v3``, whose fixes came partly from reading v2's
errors on it) and ``sentiment/heldout_2.csv`` (120; drawn and labelled after ``headline-v3``
was frozen: clean for every scorer). Held-out figures are also given for the
``clear == yes`` subsets, and with a 95% bootstrap interval of the accuracy.

Scorers, all offline, titles only:

- ``majority``: the most frequent label of the set, for every headline;
- ``lexicon-v1``: the first word list, unchanged;
- ``headline-v2``: v1 plus move patterns, symmetric decision, main-clause rule;
- ``headline-v3``: v2 with the fixes of the rule-written tests (the fallback);
- ``tfidf-lr-weak``: a logistic regression on word 1-2-gram TF-IDF, trained on the
  development labels plus ``headline-v2``'s labels of the unlabelled sample headlines (weak
  supervision; development and held-out headlines are kept out of the weak set). On the
  development set it is scored by 5-fold cross-validation (its own labels are in training).

The fallback is the scorer with the best held-out macro-F1 (decided before the held-out
labels existed). Each figure is one JSON line; ``--table`` also prints the confusion
matrices to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

from benchmarks._common import emit

REPO_ROOT = Path(__file__).resolve().parents[1]
NEWS_PATH = REPO_ROOT / "data" / "crypto_news.parquet"
DATA_DIR = REPO_ROOT / "portfolio_pipeline_tests" / "data"
DEV_PATH = DATA_DIR / "sentiment_labelled.csv"
HELDOUT_PATHS = {
    "heldout_1": DATA_DIR / "sentiment" / "heldout_1.csv",
    "heldout_2": DATA_DIR / "sentiment" / "heldout_2.csv",
}
CV_FOLDS = 5
BOOTSTRAP_SAMPLES = 2000


def _weak_pool(news: pl.DataFrame, exclude: list[str]) -> list[str]:
    from portfolio_pipeline.news.evaluation import normalise_title

    excluded = {normalise_title(t) for t in exclude}
    titles = news.select(pl.col("title").drop_nulls().unique(maintain_order=True))["title"]
    return [t for t in titles.to_list() if normalise_title(t) not in excluded]


def _tfidf_lr():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LogisticRegression(C=4.0, max_iter=2000),
    )


def _classifier_predictions(
    pool: list[str], weak: list[str], dev: pl.DataFrame, heldouts: dict[str, pl.DataFrame]
) -> dict[str, list[str]]:
    """Development predictions by k-fold CV; held-out ones by the model fit on all of dev."""
    dev_titles, dev_labels = dev["title"].to_list(), dev["label"].to_list()
    dev_predictions = [""] * len(dev_titles)
    for fold in range(CV_FOLDS):
        train = [i for i in range(len(dev_titles)) if i % CV_FOLDS != fold]
        model = _tfidf_lr().fit(
            pool + [dev_titles[i] for i in train], weak + [dev_labels[i] for i in train]
        )
        test = [i for i in range(len(dev_titles)) if i % CV_FOLDS == fold]
        for i, label in zip(test, model.predict([dev_titles[i] for i in test]), strict=True):
            dev_predictions[i] = str(label)
    model = _tfidf_lr().fit(pool + dev_titles, weak + dev_labels)
    out = {"development": dev_predictions}
    for name, frame in heldouts.items():
        out[name] = [str(p) for p in model.predict(frame["title"].to_list())]
    return out


def _accuracy_interval(truth: list[str], predicted: list[str], seed: int = 0) -> list[float]:
    """95% percentile bootstrap interval of the accuracy (headlines resampled)."""
    import numpy as np

    correct = np.array([t == p for t, p in zip(truth, predicted, strict=True)], dtype=float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(correct), (BOOTSTRAP_SAMPLES, len(correct)))
    low, high = np.percentile(correct[draws].mean(axis=1), [2.5, 97.5])
    return [round(float(low), 3), round(float(high), 3)]


def main(argv: list[str] | None = None) -> None:
    from portfolio_pipeline.news.evaluation import (
        evaluate_predictions,
        predicted_labels,
        read_labelled,
    )
    from portfolio_pipeline.news.lexicon import HEADLINE_V2, HEADLINE_V3, LEXICON_V1
    from portfolio_pipeline.news.lexicon_scorer import LexiconSentimentScorer

    table = "--table" in (argv if argv is not None else sys.argv[1:])
    dev = read_labelled(DEV_PATH)
    heldouts = {name: read_labelled(path) for name, path in HELDOUT_PATHS.items()}
    sets = {"development": dev, **heldouts}
    news = pl.read_parquet(NEWS_PATH)

    predictions: dict[str, dict[str, list[str]]] = {name: {} for name in sets}
    for name, frame in sets.items():
        for lexicon in (LEXICON_V1, HEADLINE_V2, HEADLINE_V3):
            scores = LexiconSentimentScorer(lexicon).score_texts(frame["title"].to_list())
            predictions[name][lexicon.version] = predicted_labels(scores).to_list()

    labelled_titles = [t for frame in sets.values() for t in frame["title"].to_list()]
    pool = _weak_pool(news, labelled_titles)
    weak = predicted_labels(LexiconSentimentScorer(HEADLINE_V2).score_texts(pool)).to_list()
    for name, predicted in _classifier_predictions(pool, weak, dev, heldouts).items():
        predictions[name]["tfidf-lr-weak"] = predicted

    subsets: list[tuple[str, pl.DataFrame, dict[str, list[str]]]] = []
    for name, frame in sets.items():
        subsets.append((name, frame, predictions[name]))
        if name != "development" and "clear" in frame.columns:
            keep = (frame["clear"] == "yes").to_list()
            subsets.append(
                (
                    f"{name}_clear",
                    frame.filter(pl.Series(keep)),
                    {
                        k: [p for p, kept in zip(v, keep, strict=True) if kept]
                        for k, v in predictions[name].items()
                    },
                )
            )
    for set_name, frame, by_scorer in subsets:
        truth = frame["label"].to_list()
        for scorer_name, predicted in by_scorer.items():
            report = evaluate_predictions(truth, predicted)
            extra = {
                "set": set_name,
                "scorer": scorer_name,
                "n": report.n,
                "labels": list(report.labels),
                "confusion": [list(r) for r in report.confusion],
                "majority_baseline": round(report.majority_baseline, 3),
                "majority_macro_f1": round(report.majority_macro_f1, 3),
                "accuracy_ci95": _accuracy_interval(truth, predicted),
            }
            emit("sentiment_quality", f"{set_name}_{scorer_name}_accuracy",
                 round(report.accuracy, 3), "fraction", **extra)  # fmt: skip
            emit("sentiment_quality", f"{set_name}_{scorer_name}_macro_f1",
                 round(report.macro_f1, 3), "fraction", set=set_name, scorer=scorer_name,
                 n=report.n)  # fmt: skip
            if table:
                print(
                    f"\n{set_name} / {scorer_name}: accuracy {report.accuracy:.3f} "
                    f"{extra['accuracy_ci95']}, macro-F1 {report.macro_f1:.3f} (n={report.n}; "
                    f"majority '{report.majority_label}' {report.majority_baseline:.3f}, "
                    f"macro-F1 {report.majority_macro_f1:.3f})\n{report.confusion_text()}",
                    file=sys.stderr,
                )


if __name__ == "__main__":
    sys.exit(main())
