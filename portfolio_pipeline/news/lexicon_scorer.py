"""The offline headline scorer: a finance/crypto lexicon with negation and clause rules.

Pure (no dagster, no model download): the fallback when no transformer can be loaded, and
the scorer chosen on purpose with the model name ``lexicon``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import polars as pl

from portfolio_pipeline.news.lexicon import HEADLINE_V3, Lexicon
from portfolio_pipeline.news.scoring import scores_frame

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
        Why the transformer was not used (set by
        :func:`~portfolio_pipeline.news.loading.load_sentiment_scorer`).
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
        return scores_frame(p_pos, p_neu, p_neg)
