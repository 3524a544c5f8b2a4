"""News sentiment: article scoring (transformer or lexicon), daily aggregation, digests.

Pure (no dagster); ``transformers``/``torch`` are imported only inside
:class:`TransformerSentimentScorer`. The table-producing steps are:

- :func:`score_news` -> ``features.news_sentiment`` (article x symbol, plus a ``MARKET`` row
  per article);
- :func:`daily_sentiment` -> ``features.daily_sentiment`` (symbol x every date);
- :func:`news_digest` -> per symbol and day, the most opinionated headlines.

Point in time: an article published during UTC day ``d`` is usable from date ``d`` on
(known by the close of ``d``), never earlier.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from portfolio_pipeline.news.lexicon import HEADLINE_V3, Lexicon

logger = logging.getLogger(__name__)

DEFAULT_SENTIMENT_MODEL = "ProsusAI/finbert"
SENTIMENT_MODEL_ENV = "PORTFOLIO_PIPELINE_SENTIMENT_MODEL"
MARKET_SYMBOL = "MARKET"
LEXICON_MODEL_NAME = "lexicon"  # pass as model name to skip the transformer on purpose

PROBABILITY_COLUMNS = ("p_positive", "p_neutral", "p_negative")
SCORE_COLUMNS = ("score", *PROBABILITY_COLUMNS)
NEWS_SENTIMENT_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "symbol": pl.String(),
    "published_at": pl.Datetime("us", "UTC"),
    "score": pl.Float64(),
    "p_positive": pl.Float64(),
    "p_neutral": pl.Float64(),
    "p_negative": pl.Float64(),
    "model": pl.String(),
}


class SentimentInputError(ValueError):
    """News input breaks a rule; the message names the rule and the article ids."""


class SentimentScorer(Protocol):
    """Anything that turns texts into sentiment probabilities.

    ``score_texts(texts)`` returns a frame of ``len(texts)`` rows, in order, with columns
    score (= p_positive - p_negative, in [-1, 1]), p_positive, p_neutral, p_negative
    (summing to 1). ``name`` is what the ``model`` column records.
    """

    name: str

    def score_texts(self, texts: Sequence[str]) -> pl.DataFrame: ...


def _scores_frame(p_positive: list[float], p_neutral: list[float], p_negative: list[float]):
    frame = pl.DataFrame(
        {"p_positive": p_positive, "p_neutral": p_neutral, "p_negative": p_negative},
        schema={c: pl.Float64 for c in PROBABILITY_COLUMNS},
    )
    return frame.select(
        (pl.col("p_positive") - pl.col("p_negative")).clip(-1.0, 1.0).alias("score"),
        *PROBABILITY_COLUMNS,
    )


# --------------------------------------------------------------------------- lexicon scorer

_TOKEN = re.compile(r"[a-z0-9$]+(?:[-'][a-z0-9]+)*")
# Words, or a clause boundary: , ; : | ! ? a sentence-ending full stop, a spaced dash.
_TOKEN_OR_BREAK = re.compile(
    r"[a-z0-9$]+(?:[-'][a-z0-9]+)*|[,;:|!?]|\.(?=\s|$)|\s[-\u2013\u2014]\s"
)
_AS_NOT_OPENING = frozenset({"well", "much", "many", "long", "soon", "low", "high", "far"})


def _phrase_token(index: int) -> str:
    return f"phrase{index}x"


def _pattern_token(index: int) -> str:
    return f"pattern{index}x"


class LexiconSentimentScorer:
    """Finance/crypto lexicon scorer with negation, giving pseudo-probabilities.

    Evidence: the summed weights of positive words ``E+`` and of negative words ``E-`` (word
    lists and rules in :mod:`portfolio_pipeline.news.lexicon`; regex patterns first, then
    phrases, then words; a negator up to ``negation_window`` tokens before a polar token moves
    its weight to the other side; with ``headline-v2``, evidence inside a subordinate clause
    ("despite ...", "as ...", "after ...") counts ``clause_discount`` times).
    Probabilities: a softmax over ``(steepness * E+, neutral_evidence, steepness * E-)`` in
    the order positive, neutral, negative, so a text with no polar word is neutral.
    These are monotone pseudo-probabilities, not fitted to labelled data.

    Parameters
    ----------
    lexicon : Lexicon
        :data:`~portfolio_pipeline.news.lexicon.HEADLINE_V3` (default, the fallback),
        :data:`~portfolio_pipeline.news.lexicon.HEADLINE_V2` or
        :data:`~portfolio_pipeline.news.lexicon.LEXICON_V1` (earlier versions, kept so their
        published figures can be reproduced).
    steepness : float
        How fast evidence turns into confidence.
    neutral_evidence : float, optional
        Evidence a text needs before a polar class beats neutral; default the lexicon's.
    fallback_reason : str, optional
        Why the transformer was not used (set by :func:`load_sentiment_scorer`).
    """

    def __init__(
        self,
        lexicon: Lexicon = HEADLINE_V3,
        steepness: float = 1.0,
        neutral_evidence: float | None = None,
        fallback_reason: str | None = None,
    ) -> None:
        self.lexicon = lexicon
        self.steepness = steepness
        self.neutral_evidence = (
            lexicon.neutral_evidence if neutral_evidence is None else neutral_evidence
        )
        self.fallback_reason = fallback_reason
        self.name = lexicon.version
        # Applied one after the other, in order: a later pattern sees the tokens of earlier ones.
        self._patterns = [
            (re.compile(r"(?<![a-z0-9$])(?:" + pattern + r")"), _pattern_token(i))
            for i, (pattern, _) in enumerate(lexicon.patterns)
        ]
        self._lookup_cache: dict[str, float] = {}
        # One alternation, longest phrase first, so overlapping phrases resolve to the longer.
        phrases = sorted(lexicon.phrases.items(), key=lambda kv: -len(kv[0]))
        self._phrase_tokens = {p: _phrase_token(i) for i, (p, _) in enumerate(phrases)}
        self._phrase_pattern = re.compile(
            r"(?<![a-z0-9])(" + "|".join(re.escape(p) for p, _ in phrases) + r")(?![a-z0-9])"
        )
        self._weights: dict[str, float] = dict(lexicon.positive)
        self._weights.update({w: -v for w, v in lexicon.negative.items()})
        self._weights.update({_phrase_token(i): v for i, (_, v) in enumerate(phrases)})
        self._weights.update({_pattern_token(i): v for i, (_, v) in enumerate(lexicon.patterns)})
        self._openers = {o for o in lexicon.clause_openers if " " not in o}
        self._two_word_openers = {tuple(o.split()) for o in lexicon.clause_openers if " " in o}

    def _lookup(self, token: str) -> float:
        """Weight of a token, matching regular inflections of the lexicon's base forms."""
        cached = self._lookup_cache.get(token)
        if cached is None:
            cached = self._lookup_cache[token] = self._lookup_uncached(token)
        return cached

    def _lookup_uncached(self, token: str) -> float:
        weights = self._weights
        if token in weights:
            return weights[token]
        candidates: list[str] = []
        if token.endswith("ies"):
            candidates.append(token[:-3] + "y")  # rallies -> rally
        if token.endswith("ied"):
            candidates.append(token[:-3] + "y")  # rallied -> rally
        if token.endswith("es"):
            candidates.append(token[:-2])
        if token.endswith("s"):
            candidates.append(token[:-1])
        if token.endswith("ed"):
            stem = token[:-2]
            candidates += [stem, token[:-1]]  # dropped -> dropp -> drop; surged -> surge
            if len(stem) > 2 and stem[-1] == stem[-2]:
                candidates.append(stem[:-1])
        if token.endswith("ing"):
            stem = token[:-3]
            candidates += [stem, stem + "e"]  # surging -> surge
            if len(stem) > 2 and stem[-1] == stem[-2]:
                candidates.append(stem[:-1])  # dropping -> drop
        if token.endswith("est"):
            candidates.append(token[:-3])  # strongest -> strong
        if token.endswith("ers"):
            candidates.append(token[:-3])  # hackers -> hack (after "hacker" failed)
        for candidate in candidates:
            if candidate in weights:
                return weights[candidate]
        return 0.0

    def _opens_clause(self, tokens: list[str], position: int) -> bool:
        token = tokens[position]
        if position == 0 and (token == "as" or not self.lexicon.opener_at_start):
            return False  # a headline's first word opens its main clause
        if position + 1 < len(tokens) and (token, tokens[position + 1]) in self._two_word_openers:
            return True
        if token not in self._openers:
            return False
        if token == "as":
            previous = tokens[position - 1]
            following = tokens[position + 1] if position + 1 < len(tokens) else ""
            if previous in self.lexicon.not_openers_before_as or following in _AS_NOT_OPENING:
                return False  # "such as", "as well as", "as much as"
        return True

    def evidence(self, text: str) -> tuple[float, float]:
        """(positive evidence, negative evidence) of one text, both >= 0."""
        lexicon = self.lexicon
        lowered = (text or "").lower().replace("\u2019", "'").replace("\u2018", "'")
        if lexicon.question_discount == 1.0:
            return self._segment_evidence(lowered)
        discount = lexicon.question_discount
        if lowered.lstrip(" '\"").startswith(lexicon.explainer_openers):
            positive, negative = self._segment_evidence(lowered)
            return positive * discount, negative * discount
        positive = negative = 0.0
        # A sentence ending in "?" asks rather than states: its evidence counts less.
        for sentence in re.split(r"(?<=\?)", lowered):
            pos, neg = self._segment_evidence(sentence)
            factor = discount if sentence.rstrip().endswith("?") else 1.0
            positive += pos * factor
            negative += neg * factor
        return positive, negative

    def _segment_evidence(self, lowered: str) -> tuple[float, float]:
        lexicon = self.lexicon
        for pattern, token in self._patterns:
            lowered = pattern.sub(f" {token} ", lowered)
        lowered = self._phrase_pattern.sub(lambda m: f" {self._phrase_tokens[m[1]]} ", lowered)
        if lexicon.clause_openers:
            pieces = _TOKEN_OR_BREAK.findall(lowered)
            tokens = [p for p in pieces if _TOKEN.fullmatch(p)]
            # breaks[i]: a clause boundary lies just before word i
            breaks, pending = [], False
            for piece in pieces:
                if _TOKEN.fullmatch(piece):
                    breaks.append(pending)
                    pending = False
                else:
                    pending = True
        else:
            tokens = _TOKEN.findall(lowered)
            breaks = [False] * len(tokens)
        positive = negative = 0.0
        last_negator = -(lexicon.negation_window + 1)
        factor = 1.0
        # Rule "both ways" 2: a first clause about Bitcoin / Ethereum / the market leads.
        later = 1.0
        if lexicon.lead_subjects:
            first_clause = " ".join(
                tokens[: next((i for i in range(1, len(tokens)) if breaks[i]), len(tokens))]
            )
            if any(re.search(rf"\b{re.escape(s)}\b", first_clause) for s in lexicon.lead_subjects):
                later = lexicon.later_clause_discount
        seen_break = False
        for position, token in enumerate(tokens):
            if breaks[position]:
                factor = 1.0
                seen_break = True
            if lexicon.clause_openers and self._opens_clause(tokens, position):
                factor = lexicon.clause_discount
            if token in lexicon.negators:
                last_negator = position
                continue
            weight = self._lookup(token)
            if weight == 0.0:
                continue
            if position - last_negator <= lexicon.negation_window:
                weight = -weight
            weight *= factor * (later if seen_break else 1.0)
            if weight > 0:
                positive += weight
            else:
                negative -= weight
        return positive, negative

    def score_texts(self, texts: Sequence[str]) -> pl.DataFrame:
        """Scores of ``texts``: a frame of len(texts) rows (score, p_positive, p_neutral, p_negative)."""
        p_pos: list[float] = []
        p_neu: list[float] = []
        p_neg: list[float] = []
        for text in texts:
            positive, negative = self.evidence(text)
            logits = (
                self.steepness * positive,
                self.neutral_evidence,
                self.steepness * negative,
            )
            top = max(logits)
            exps = [math.exp(v - top) for v in logits]
            total = sum(exps)
            p_pos.append(exps[0] / total)
            p_neu.append(exps[1] / total)
            p_neg.append(exps[2] / total)
        return _scores_frame(p_pos, p_neu, p_neg)


# ----------------------------------------------------------------------- transformer scorer

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
        labels = [config.id2label[i] for i in sorted(config.id2label)]
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
            outputs: list[list[dict[str, Any]]] = self._pipeline(
                [t if t else " " for t in texts],
                batch_size=self.batch_size,
                truncation=True,
                max_length=self.max_length,
                top_k=None,
            )
            for output in outputs:
                probabilities = dict.fromkeys(PROBABILITY_COLUMNS, 0.0)
                for item in output:
                    probabilities[_label_to_column(item["label"], self.label_map)] += float(
                        item["score"]
                    )
                for column, value in probabilities.items():
                    columns[column].append(value)
        return _scores_frame(columns["p_positive"], columns["p_neutral"], columns["p_negative"])


def _hub_unreachable_reason(model_name_or_path: str, timeout: float = 3.0) -> str | None:
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
    unreachable = _hub_unreachable_reason(model_name_or_path)
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


def build_untrained_classifier(
    directory: str | Path,
    corpus: Sequence[str],
    *,
    vocab_size: int = 600,
    seed: int = 0,
) -> Path:
    """Save a tiny, UNTRAINED BERT sentiment classifier + WordPiece tokenizer to ``directory``.

    For offline tests and benchmarks of the transformer path (no download): labels
    ``{0: positive, 1: negative, 2: neutral}`` like FinBERT, random weights, so its
    predictions are near chance. The tokenizer is trained on ``corpus``.

    Returns
    -------
    pathlib.Path
        ``directory``, loadable with :func:`load_sentiment_scorer`.
    """
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(
        list(corpus), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special)
    )
    from tokenizers.processors import TemplateProcessing

    tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[(t, tokenizer.token_to_id(t)) for t in ("[CLS]", "[SEP]")],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )
    fast.save_pretrained(directory)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=3,
        id2label={0: "positive", 1: "negative", 2: "neutral"},
        label2id={"positive": 0, "negative": 1, "neutral": 2},
    )
    BertForSequenceClassification(config).save_pretrained(directory)
    return directory


# ------------------------------------------------------------------------------ news tables


def _validate_news(news: pl.DataFrame, required: Sequence[str]) -> None:
    missing = [c for c in required if c not in news.columns]
    if missing:
        raise SentimentInputError(f"news frame lacks required columns {missing}")
    dtype = news.schema["published_at"]
    if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
        raise SentimentInputError(
            f"news column 'published_at' must be a time-zone-aware Datetime (UTC), got {dtype}: "
            "a naive timestamp cannot be placed on a UTC day"
        )
    null_ids = news.filter(pl.col("id").is_null()).height
    if null_ids:
        raise SentimentInputError(f"{null_ids} news rows have a null id")
    no_time = news.filter(pl.col("published_at").is_null())["id"]
    if no_time.len():
        raise SentimentInputError(
            f"news rows without published_at cannot be placed in time: ids {no_time.head(5).to_list()}"
        )
    duplicated = news.group_by("id").len().filter(pl.col("len") > 1)["id"]
    if duplicated.len():
        raise SentimentInputError(f"duplicate news ids: {duplicated.head(5).to_list()}")


def article_text(news: pl.DataFrame) -> pl.Series:
    """``title + ". " + summary`` per article (either part may be null or empty)."""
    title = pl.col("title").fill_null("").str.strip_chars()
    summary = (
        pl.col("summary").fill_null("").str.strip_chars()
        if "summary" in news.columns
        else pl.lit("")
    )
    return news.select(
        pl.when((title != "") & (summary != ""))
        .then(pl.concat_str(title.str.strip_chars_end(". "), pl.lit(". "), summary))
        .otherwise(pl.concat_str(title, summary))
        .alias("text")
    ).to_series()


def score_news(news: pl.DataFrame, scorer: SentimentScorer) -> pl.DataFrame:
    """Score every article once and fan it out to its symbols (table ``features.news_sentiment``).

    Parameters
    ----------
    news : polars.DataFrame
        Raw news, shape (n_articles, ...): id (unique), published_at (Datetime, tz-aware),
        title, summary, symbols (List[String], may be null/empty).
    scorer : SentimentScorer
        From :func:`load_sentiment_scorer`.

    Returns
    -------
    polars.DataFrame
        One row per (article, tagged symbol) AND one row per article with symbol
        ``"MARKET"`` (the market-wide reading: every article counts for the market, tagged or
        not). Shape (n_articles + n_tagged_pairs, 8): id, symbol, published_at (UTC), score
        (p_positive - p_negative, in [-1, 1]), p_positive, p_neutral, p_negative, model
        (``scorer.name``). The score is the article's (text-level, not per entity), so all
        rows of an article share it. Sorted by (published_at, id, symbol).
    """
    _validate_news(news, ("id", "published_at", "title"))
    if news.height == 0:
        return pl.DataFrame(schema=NEWS_SENTIMENT_SCHEMA)
    scores = scorer.score_texts(article_text(news).to_list())
    if scores.height != news.height:
        raise RuntimeError(
            f"scorer {scorer.name} returned {scores.height} rows for {news.height} texts"
        )
    symbols = (
        pl.col("symbols").fill_null(pl.lit([], dtype=pl.List(pl.String)))
        if "symbols" in news.columns
        else pl.lit([], dtype=pl.List(pl.String))
    )
    articles = pl.concat(
        [
            news.select(
                pl.col("id").cast(pl.String),
                pl.col("published_at").dt.convert_time_zone("UTC").dt.cast_time_unit("us"),
                symbols.list.unique().list.concat(pl.lit([MARKET_SYMBOL])).alias("symbol"),
            ),
            scores,
        ],
        how="horizontal",
    )
    return (
        articles.explode("symbol")
        .filter(pl.col("symbol").is_not_null() & (pl.col("symbol") != ""))
        .unique(["id", "symbol"], keep="first", maintain_order=True)
        .with_columns(pl.lit(scorer.name).alias("model"))
        .select(list(NEWS_SENTIMENT_SCHEMA))
        .cast(NEWS_SENTIMENT_SCHEMA)
        .sort("published_at", "id", "symbol")
    )


def usable_date(published_at: pl.Expr) -> pl.Expr:
    """The first date an article may be used: the UTC calendar day it was published."""
    return published_at.dt.convert_time_zone("UTC").dt.date()


@dataclass(frozen=True)
class NewsTiming:
    """When an article becomes usable: on a 24/7 market the UTC day it was published
    (``close`` None, crypto); on an exchange the session it can first act on.

    close : the market's close in ``timezone`` (e.g. 16:00 America/New_York). An article
        published before the close of session ``d`` counts on ``d`` (known by its close); one
        published at or after the close, or on a day without a session (weekend, holiday),
        counts from the NEXT session.
    sessions : the exchange's session dates (the dates of the OHLCV data). An article after
        the last known session has no usable date yet and is left out.
    """

    close: time | None = None
    timezone: str = "UTC"
    sessions: tuple[date, ...] = ()

    @classmethod
    def from_settings(cls, settings: Any, sessions: Sequence[date] = ()) -> NewsTiming:
        """``PORTFOLIO_PIPELINE_MARKET_CLOSE`` (``HH:MM``, blank = crypto) and
        ``PORTFOLIO_PIPELINE_MARKET_TIMEZONE``."""
        text = getattr(settings, "market_close", None)
        if not text:
            return cls()
        try:
            close = time.fromisoformat(text)
        except ValueError:
            raise SentimentInputError(
                f"PORTFOLIO_PIPELINE_MARKET_CLOSE={text!r} is not a time (HH:MM)"
            ) from None
        return cls(close, getattr(settings, "market_timezone", "UTC"), tuple(sorted(sessions)))

    def with_usable_date(self, frame: pl.DataFrame, column: str = "date") -> pl.DataFrame:
        """``frame`` (with ``published_at``) plus ``column``: the first date it may be used."""
        if self.close is None:
            return frame.with_columns(usable_date(pl.col("published_at")).alias(column))
        if not self.sessions:
            raise SentimentInputError("news timing on an exchange needs its session dates")
        local = pl.col("published_at").dt.convert_time_zone(self.timezone)
        candidate = local.dt.date() + pl.when(local.dt.time() >= self.close).then(
            pl.duration(days=1)
        ).otherwise(pl.duration(days=0))
        sessions = pl.DataFrame({"_session": list(self.sessions)}, schema={"_session": pl.Date})
        return (
            frame.with_columns(candidate.alias("_candidate"), pl.int_range(pl.len()).alias("_i"))
            .sort("_candidate")
            .join_asof(sessions, left_on="_candidate", right_on="_session", strategy="forward")
            .sort("_i")
            .rename({"_session": column})
            .drop("_candidate", "_i")
        )


def daily_sentiment(
    news_sentiment: pl.DataFrame,
    symbols: Sequence[str],
    start: date,
    end: date,
    half_life_days: float = 3.0,
    timing: NewsTiming | None = None,
) -> pl.DataFrame:
    """Daily, point-in-time sentiment per symbol (table ``features.daily_sentiment``).

    Parameters
    ----------
    news_sentiment : polars.DataFrame
        Output of :func:`score_news` (id, symbol, published_at, score, ...). Articles
        before ``start`` feed the decayed average; articles after ``end`` are ignored; rows
        for symbols outside ``symbols`` (and not MARKET) are ignored.
    symbols : sequence of str
        Universe; ``"MARKET"`` is always added.
    start, end : datetime.date
        Inclusive date range of the output.
    half_life_days : float
        Half-life of ``sentiment_ewm`` in days.
    timing : NewsTiming, optional
        When an article becomes usable (default: the UTC day it was published, crypto; on
        an exchange, the session it can first act on).

    Returns
    -------
    polars.DataFrame
        One row per (symbol, date) for EVERY symbol (plus MARKET) and EVERY date in
        [start, end]; shape ((len(symbols) + 1) * n_days, 7), sorted by (symbol, date):

        - ``date``: the first day the news is usable = UTC date of ``published_at`` (or the
          first session that can act on it, with an exchange ``timing``).
        - ``sentiment``: mean score of the symbol's articles usable that day; null if none.
        - ``news_count``: number of those articles (0 on days without news).
        - ``sentiment_ewm``: e_d = lambda * e_{d-1} + (1 - lambda) * sentiment_d, with
          sentiment_d := 0 on days without news and lambda = 0.5 ** (1 / half_life_days);
          starts at 0, so it decays toward 0 when news stops and equals s after a long run
          of days whose mean is s. In [-1, 1].
        - ``market_sentiment``, ``market_sentiment_ewm``: the MARKET row's values that day.

        Every value for date d uses only articles published on or before UTC day d.
    """
    if end < start:
        raise ValueError(f"daily_sentiment: end {end} is before start {start}")
    if half_life_days <= 0:
        raise ValueError(f"half_life_days must be positive, got {half_life_days}")
    required = ("symbol", "published_at", "score")
    missing = [c for c in required if c not in news_sentiment.columns]
    if missing:
        raise SentimentInputError(f"news_sentiment lacks required columns {missing}")
    universe = list(dict.fromkeys([*symbols, MARKET_SYMBOL]))
    daily = _usable_daily_means(news_sentiment, universe, end, timing or NewsTiming())
    frame = _decayed_daily_grid(daily, universe, start, end, decay=0.5 ** (1.0 / half_life_days))
    market = frame.filter(pl.col("symbol") == MARKET_SYMBOL).select(
        "date",
        pl.col("sentiment").alias("market_sentiment"),
        pl.col("sentiment_ewm").alias("market_sentiment_ewm"),
    )
    return (
        frame.join(market, on="date", how="left")
        .select(
            "symbol",
            "date",
            "sentiment",
            "news_count",
            "sentiment_ewm",
            "market_sentiment",
            "market_sentiment_ewm",
        )
        .sort("symbol", "date")
    )


def _usable_daily_means(
    news_sentiment: pl.DataFrame, universe: list[str], end: date, timing: NewsTiming
) -> pl.DataFrame:
    """(symbol, date, sentiment, news_count) on the days the articles became usable."""
    return (
        timing.with_usable_date(news_sentiment.filter(pl.col("symbol").is_in(universe)))
        .lazy()
        .filter(pl.col("date") <= end)
        .group_by("symbol", "date")
        .agg(
            # Summed in value order: the same articles give the same bits whatever order the
            # warehouse returned them in (downstream fold-cache keys hash these values).
            # (a running sum over the sorted scores: polars may drop a sort before mean())
            (pl.col("score").sort().cum_sum().last() / pl.len()).alias("sentiment"),
            pl.len().cast(pl.Int32).alias("news_count"),
        )
        .collect()
    )


def _decayed_daily_grid(
    daily: pl.DataFrame, universe: list[str], start: date, end: date, decay: float
) -> pl.DataFrame:
    """Every (symbol, day) in [start, end] with the day's news and the decayed average."""
    first_news = daily["date"].min()
    # The recursion starts one day before the earliest day it needs, at 0, so that the first
    # news day contributes (1 - lambda) * s like any other (polars' adjust=False EWM would
    # start at s instead).
    grid_start = min(start, first_news) if isinstance(first_news, date) else start
    grid_start -= timedelta(days=1)
    dates = pl.date_range(grid_start, end, interval="1d", eager=True).alias("date")
    grid = pl.DataFrame({"symbol": universe}).join(dates.to_frame(), how="cross")
    return (
        grid.join(daily, on=["symbol", "date"], how="left")
        .with_columns(pl.col("news_count").fill_null(0))
        .sort("symbol", "date")
        .with_columns(
            pl.when(pl.col("date") == grid_start)
            .then(0.0)
            .otherwise(pl.col("sentiment").fill_null(0.0))
            .ewm_mean(alpha=1.0 - decay, adjust=False)
            .over("symbol")
            .alias("sentiment_ewm")
        )
        .filter(pl.col("date").is_between(start, end))
    )


def news_digest(
    news: pl.DataFrame,
    news_sentiment: pl.DataFrame,
    top_n: int = 3,
    timing: NewsTiming | None = None,
) -> pl.DataFrame:
    """The ``top_n`` most opinionated headlines per symbol and usable day.

    Parameters
    ----------
    news : polars.DataFrame
        Raw news (id, title, url, source ...).
    news_sentiment : polars.DataFrame
        Output of :func:`score_news`.
    top_n : int
        Headlines kept per (symbol, date), by |score| descending (ties: latest first).

    Returns
    -------
    polars.DataFrame
        Columns symbol, date (UTC day published = first usable day), rank (1 = strongest),
        id, published_at, title, score, url, source; sorted by (symbol, date, rank). MARKET
        digests cover all articles.
    """
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    text_columns = [c for c in ("title", "url", "source") if c in news.columns]
    articles = news.select(
        pl.col("id").cast(pl.String),
        *text_columns,
        *[
            pl.lit(None, dtype=pl.String).alias(c)
            for c in ("title", "url", "source")
            if c not in news.columns
        ],
    )
    scored = news_sentiment.select("id", "symbol", "published_at", "score")
    return (
        (timing or NewsTiming())
        .with_usable_date(scored.join(articles, on="id", how="left"))
        .filter(pl.col("date").is_not_null())
        .sort(
            [pl.col("score").abs(), "published_at", "id"],
            descending=[True, True, False],
        )
        .with_columns(
            pl.int_range(1, pl.len() + 1).over("symbol", "date").cast(pl.Int32).alias("rank")
        )
        .filter(pl.col("rank") <= top_n)
        .select("symbol", "date", "rank", "id", "published_at", "title", "score", "url", "source")
        .sort("symbol", "date", "rank")
    )


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
    accuracy = float((predicted == truth).mean())
    majority = float(truth.value_counts()["count"].max()) / labelled.height
    return LabelledAccuracy(accuracy=accuracy, majority_baseline=majority, n=labelled.height)
