"""A Hugging Face text-classification model (FinBERT by default) as a sentiment scorer.

Pure (no dagster); ``transformers``/``torch`` are imported only when a scorer is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import polars as pl

from portfolio_pipeline.news.scoring import PROBABILITY_COLUMNS, scores_frame

DEFAULT_SENTIMENT_MODEL = "ProsusAI/finbert"

_LABEL_ALIASES = {
    "positive": "p_positive",
    "pos": "p_positive",
    "bullish": "p_positive",
    "negative": "p_negative",
    "neg": "p_negative",
    "bearish": "p_negative",
    "neutral": "p_neutral",
    "neu": "p_neutral",
}


def _label_to_column(label: str, label_map: dict[str, str] | None) -> str:
    if label_map and label in label_map:
        return _LABEL_ALIASES[label_map[label].lower()]
    key = label.strip().lower()
    if key in _LABEL_ALIASES:
        return _LABEL_ALIASES[key]
    raise ValueError(
        f"cannot map model label {label!r} to positive/neutral/negative; pass "
        "label_map={'LABEL_0': 'negative', ...} (generic LABEL_k names carry no meaning)"
    )


class TransformerSentimentScorer:
    """A Hugging Face sequence-classification model (default FinBERT) as a sentiment scorer.

    Loads ``pipeline("text-classification", top_k=None)`` eagerly, so a missing model fails
    at construction. Labels come from the model's ``config.id2label`` (FinBERT:
    positive/negative/neutral); generic ``LABEL_k`` names need ``label_map``. A
    two-label model (positive/negative) gets p_neutral = 0.

    Parameters
    ----------
    model_name_or_path : str
        Hub name (``ProsusAI/finbert``) or a local directory with model + tokenizer.
    batch_size : int
        Texts per forward pass.
    device : str or int, optional
        ``"cuda"``, ``"cpu"``, a CUDA index; default: CUDA when available, else CPU.
    max_length : int, optional
        Tokens kept per text (truncation). Default: the smallest of the tokenizer's
        ``model_max_length``, the model's ``max_position_embeddings`` and 512.
    label_map : dict, optional
        Model label -> positive/neutral/negative, for models with generic labels.
    """

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_SENTIMENT_MODEL,
        batch_size: int = 32,
        device: str | int | None = None,
        max_length: int | None = None,
        label_map: dict[str, str] | None = None,
    ) -> None:
        import torch
        from transformers import pipeline

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model_name_or_path = str(model_name_or_path)
        self.batch_size = batch_size
        self.device = device
        self.label_map = label_map
        self.fallback_reason: str | None = None
        self._pipeline = pipeline(
            "text-classification",
            model=self.model_name_or_path,
            tokenizer=self.model_name_or_path,
            device=device,
            top_k=None,
        )
        config = self._pipeline.model.config
        # a loaded config's id2label has int keys (transformers converts them on load)
        id2label = cast("dict[int, str]", config.id2label)
        labels = [id2label[i] for i in sorted(id2label)]
        mapped = {_label_to_column(label, label_map) for label in labels}
        if not {"p_positive", "p_negative"} <= mapped:
            raise ValueError(
                f"model {self.model_name_or_path} labels {labels} lack a positive and a "
                "negative class"
            )
        limits = [512, getattr(config, "max_position_embeddings", None)]
        tokenizer_limit = getattr(self._pipeline.tokenizer, "model_max_length", None)
        if tokenizer_limit and tokenizer_limit < 1_000_000:  # huge = "not set"
            limits.append(tokenizer_limit)
        self.max_length = max_length or min(v for v in limits if v)
        self.name = (
            Path(self.model_name_or_path).name
            if Path(self.model_name_or_path).is_dir()
            else self.model_name_or_path
        )

    def score_texts(self, texts: Sequence[str]) -> pl.DataFrame:
        """Scores of ``texts``: a frame of len(texts) rows (score, p_positive, p_neutral, p_negative)."""
        columns: dict[str, list[float]] = {c: [] for c in PROBABILITY_COLUMNS}
        if len(texts):
            # top_k=None: one list of {label, score} per text (the stub types a single list)
            outputs = cast(
                "list[list[dict[str, Any]]]",
                self._pipeline(
                    [t if t else " " for t in texts],
                    batch_size=self.batch_size,
                    truncation=True,
                    max_length=self.max_length,
                    top_k=None,
                ),
            )
            for output in outputs:
                probabilities = dict.fromkeys(PROBABILITY_COLUMNS, 0.0)
                for item in output:
                    probabilities[_label_to_column(item["label"], self.label_map)] += float(
                        item["score"]
                    )
                for column, value in probabilities.items():
                    columns[column].append(value)
        return scores_frame(columns["p_positive"], columns["p_neutral"], columns["p_negative"])
