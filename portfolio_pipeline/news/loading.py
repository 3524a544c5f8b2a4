"""Which sentiment scorer runs: the transformer when it loads, else the lexicon, loudly.

Pure (no dagster). A hub model that is neither cached nor reachable is detected in seconds
(instead of transformers' ~30 s of retries) and falls back with the reason recorded.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from portfolio_pipeline.news.lexicon import HEADLINE_V3
from portfolio_pipeline.news.lexicon_scorer import LexiconSentimentScorer
from portfolio_pipeline.news.transformer_scorer import (
    DEFAULT_SENTIMENT_MODEL,
    TransformerSentimentScorer,
)

logger = logging.getLogger(__name__)

SENTIMENT_MODEL_ENV = "PORTFOLIO_PIPELINE_SENTIMENT_MODEL"
LEXICON_MODEL_NAME = "lexicon"  # pass as model name to skip the transformer on purpose


def hub_unreachable_reason(model_name_or_path: str, timeout: float = 3.0) -> str | None:
    """Why a hub model cannot load right now, decided in seconds instead of the ~30 s of
    retries transformers spends offline; None when it may load (local path, cached, online).
    """
    if Path(model_name_or_path).exists():
        return None
    if os.environ.get("HF_HUB_OFFLINE", "").strip() not in ("", "0"):
        return None  # transformers looks in the cache only, and fails fast
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(model_name_or_path, "config.json"), str):
            return None
    except Exception:  # an unusual cache layout: let transformers decide
        return None
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as exc:
        return f"not cached and {host} unreachable ({exc.__class__.__name__}: {exc})"
    return None


def load_sentiment_scorer(
    model_name_or_path: str | None = None,
    *,
    batch_size: int = 32,
    device: str | int | None = None,
    max_length: int | None = None,
    label_map: dict[str, str] | None = None,
) -> TransformerSentimentScorer | LexiconSentimentScorer:
    """The transformer scorer, or the lexicon scorer (with a logged warning) if it cannot load.

    Parameters
    ----------
    model_name_or_path : str, optional
        Hub name or local path; default ``$PORTFOLIO_PIPELINE_SENTIMENT_MODEL`` or
        ``ProsusAI/finbert``. ``"lexicon"`` selects the lexicon scorer without a warning.

    Returns
    -------
    TransformerSentimentScorer or LexiconSentimentScorer
        On fallback, ``scorer.name == "headline-v3"`` and ``scorer.fallback_reason`` says why
        (offline without cached weights, a bad path, missing packages ...).
    """
    if model_name_or_path is None:
        model_name_or_path = os.environ.get(SENTIMENT_MODEL_ENV, "").strip() or (
            DEFAULT_SENTIMENT_MODEL
        )
    if model_name_or_path == LEXICON_MODEL_NAME:
        return LexiconSentimentScorer()
    fallback_version = HEADLINE_V3.version
    unreachable = hub_unreachable_reason(model_name_or_path)
    if unreachable:
        logger.warning(
            "sentiment model %r unavailable (%s); falling back to the %s lexicon scorer",
            model_name_or_path,
            unreachable,
            fallback_version,
        )
        return LexiconSentimentScorer(fallback_reason=unreachable)
    try:
        return TransformerSentimentScorer(
            model_name_or_path,
            batch_size=batch_size,
            device=device,
            max_length=max_length,
            label_map=label_map,
        )
    except Exception as exc:  # any load failure means: fall back, loudly
        reason = (
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        )
        logger.warning(
            "sentiment model %r unavailable (%s); falling back to the %s lexicon scorer",
            model_name_or_path,
            reason,
            fallback_version,
        )
        return LexiconSentimentScorer(fallback_reason=reason)
