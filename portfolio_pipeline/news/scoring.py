"""The sentiment scorer contract: what every scorer returns, and the frame it returns it in.

Pure (no dagster). Implemented by :class:`~portfolio_pipeline.news.lexicon_scorer.LexiconSentimentScorer`
and :class:`~portfolio_pipeline.news.transformer_scorer.TransformerSentimentScorer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import polars as pl

PROBABILITY_COLUMNS = ("p_positive", "p_neutral", "p_negative")
SCORE_COLUMNS = ("score", *PROBABILITY_COLUMNS)


class SentimentScorer(Protocol):
    """Anything that turns texts into sentiment probabilities.

    ``score_texts(texts)`` returns a frame of ``len(texts)`` rows, in order, with columns
    score (= p_positive - p_negative, in [-1, 1]), p_positive, p_neutral, p_negative
    (summing to 1). ``name`` is what the ``model`` column records.
    """

    name: str

    def score_texts(self, texts: Sequence[str]) -> pl.DataFrame: ...


def scores_frame(p_positive: list[float], p_neutral: list[float], p_negative: list[float]):
    frame = pl.DataFrame(
        {"p_positive": p_positive, "p_neutral": p_neutral, "p_negative": p_negative},
        schema={c: pl.Float64 for c in PROBABILITY_COLUMNS},
    )
    return frame.select(
        (pl.col("p_positive") - pl.col("p_negative")).clip(-1.0, 1.0).alias("score"),
        *PROBABILITY_COLUMNS,
    )
