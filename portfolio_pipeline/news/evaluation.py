"""Honest evaluation of headline sentiment scorers: a seeded held-out draw and the metrics.

Pure (no dagster). The protocol (``portfolio_pipeline_tests/data/sentiment/``): a labelling
rule written first, a held-out set drawn from the news sample by :func:`draw_heldout`
(never picked by hand), labels committed before any scorer sees them, and every scorer
reported with :func:`evaluate_predictions` next to the majority-class baseline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import polars as pl

from portfolio_pipeline.news.scoring import SentimentScorer

LABELS: tuple[str, ...] = ("positive", "neutral", "negative")


class LabelledSetError(ValueError):
    """A labelled set breaks a rule; the message names the rule, the file and the rows."""


def normalise_title(title: str) -> str:
    """The key that decides whether two headlines are the same headline."""
    return " ".join((title or "").lower().replace("\u2019", "'").split())


def draw_heldout(
    news: pl.DataFrame, exclude_titles: Sequence[str], n: int, seed: int
) -> pl.DataFrame:
    """Draw ``n`` distinct headlines at random, reproducibly, none of them in ``exclude_titles``.

    The order is the SHA-256 of ``f"{seed}|{normalised title}"``: unlike a NumPy generator
    stream, it cannot change with a library version, and a headline's rank does not depend
    on which other rows are in the sample.

    Parameters
    ----------
    news : polars.DataFrame
        The news sample: published_at, title, source (other columns ignored).
    exclude_titles : sequence of str
        Headlines that must not be drawn (the development set).
    n : int
        Headlines to draw.
    seed : int
        Seed of the draw.

    Returns
    -------
    polars.DataFrame
        Shape (n, 4): draw_rank (1 = drawn first), published_at, source, title, in draw order.
        Duplicate titles count once (the earliest published copy).
    """
    excluded = {normalise_title(t) for t in exclude_titles}
    candidates = (
        news.select("published_at", "source", "title")
        .filter(pl.col("title").is_not_null() & (pl.col("title").str.strip_chars() != ""))
        .with_columns(
            pl.col("title").map_elements(normalise_title, return_dtype=pl.String).alias("_key")
        )
        .filter(~pl.col("_key").is_in(list(excluded)))
        .sort("published_at")
        .unique("_key", keep="first", maintain_order=True)
    )
    if candidates.height < n:
        raise LabelledSetError(
            f"draw_heldout: only {candidates.height} eligible headlines, {n} requested"
        )
    order = candidates["_key"].map_elements(
        lambda key: hashlib.sha256(f"{seed}|{key}".encode()).hexdigest(), return_dtype=pl.String
    )
    return (
        candidates.with_columns(order.alias("_order"))
        .sort("_order")
        .head(n)
        .with_row_index("draw_rank", offset=1)
        .select(pl.col("draw_rank").cast(pl.Int32), "published_at", "source", "title")
    )


@dataclass(frozen=True)
class ClassificationReport:
    """Three-class scores of predicted labels against true labels.

    ``confusion[i][j]`` counts headlines whose true label is ``labels[i]`` and predicted
    label ``labels[j]``.
    """

    n: int
    accuracy: float
    macro_f1: float
    f1: dict[str, float]
    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    majority_label: str
    majority_baseline: float
    majority_macro_f1: float

    def confusion_text(self) -> str:
        """The confusion matrix as a small table (rows = truth, columns = predicted)."""
        width = max(len(label) for label in self.labels) + 2
        header = "truth \\ pred".ljust(width + 4) + "".join(lab.rjust(width) for lab in self.labels)
        rows = [
            label.ljust(width + 4) + "".join(str(v).rjust(width) for v in counts)
            for label, counts in zip(self.labels, self.confusion, strict=True)
        ]
        return "\n".join([header, *rows])


def _f1_scores(truth: list[str], predicted: list[str], labels: Sequence[str]) -> dict[str, float]:
    scores = {}
    for label in labels:
        tp = sum(t == label and p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(t != label and p == label for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label and p != label for t, p in zip(truth, predicted, strict=True))
        scores[label] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return scores


def evaluate_predictions(
    truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str] = LABELS
) -> ClassificationReport:
    """Accuracy, macro-F1, per-class F1 and confusion matrix, with the majority baseline.

    The majority baseline predicts the most frequent true label for every headline (ties:
    the first in ``labels``); its macro-F1 is reported too, since accuracy alone flatters a
    scorer on an unbalanced set.
    """
    truth = [str(t).lower() for t in truth]
    predicted = [str(p).lower() for p in predicted]
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predictions")
    if not truth:
        raise ValueError("cannot evaluate an empty set")
    unknown = sorted(set(truth) - set(labels))
    if unknown:
        raise LabelledSetError(f"labels {unknown} are not among {list(labels)}")
    f1 = _f1_scores(truth, predicted, labels)
    counts = {label: truth.count(label) for label in labels}
    majority = max(labels, key=lambda label: counts[label])
    majority_f1 = _f1_scores(truth, [majority] * len(truth), labels)
    confusion = tuple(
        tuple(
            sum(t == row and p == col for t, p in zip(truth, predicted, strict=True))
            for col in labels
        )
        for row in labels
    )
    return ClassificationReport(
        n=len(truth),
        accuracy=sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth),
        macro_f1=sum(f1.values()) / len(labels),
        f1=f1,
        labels=tuple(labels),
        confusion=confusion,
        majority_label=majority,
        majority_baseline=counts[majority] / len(truth),
        majority_macro_f1=sum(majority_f1.values()) / len(labels),
    )


def read_labelled(path, text_column: str = "title") -> pl.DataFrame:
    """A labelled CSV (``title``, ``label`` ...), checked: labels known, titles present."""
    frame = pl.read_csv(path)
    for column in (text_column, "label"):
        if column not in frame.columns:
            raise LabelledSetError(f"{path}: lacks column {column!r}")
    bad = frame.filter(~pl.col("label").str.to_lowercase().is_in(list(LABELS)))
    if bad.height:
        raise LabelledSetError(
            f"{path}: rule 'label in {list(LABELS)}' fails for {bad.height} row(s), e.g. "
            f"{bad.head(3)[text_column].to_list()}"
        )
    empty = frame.filter(pl.col(text_column).fill_null("").str.strip_chars() == "")
    if empty.height:
        raise LabelledSetError(f"{path}: {empty.height} row(s) have an empty {text_column}")
    return frame.with_columns(pl.col("label").str.to_lowercase())


@dataclass(frozen=True)
class LabelledAccuracy:
    """Accuracy of a scorer on a labelled set, with the majority-class baseline."""

    accuracy: float
    majority_baseline: float
    n: int


def predicted_labels(scores: pl.DataFrame) -> pl.Series:
    """Arg-max class (positive/neutral/negative) of a scores frame."""
    return scores.select(
        pl.when(
            (pl.col("p_positive") >= pl.col("p_neutral"))
            & (pl.col("p_positive") > pl.col("p_negative"))
        )
        .then(pl.lit("positive"))
        .when(pl.col("p_negative") > pl.col("p_neutral"))
        .then(pl.lit("negative"))
        .otherwise(pl.lit("neutral"))
        .alias("predicted")
    ).to_series()


def labelled_accuracy(scorer: SentimentScorer, labelled: pl.DataFrame) -> LabelledAccuracy:
    """Accuracy of ``scorer`` on a frame with columns text (or title) and label."""
    text_column = "text" if "text" in labelled.columns else "title"
    predicted = predicted_labels(scorer.score_texts(labelled[text_column].to_list()))
    truth = labelled["label"].str.to_lowercase()
    # a boolean Series' mean is a float and a count's max an int; polars types both loosely
    accuracy = float(cast(float, (predicted == truth).mean()))
    majority = float(cast(int, truth.value_counts()["count"].max())) / labelled.height
    return LabelledAccuracy(accuracy=accuracy, majority_baseline=majority, n=labelled.height)
