"""Headline semantics of the offline fallback scorer, case by case from LABELLING_RULE.md.

Every headline here was written for this test from a case of
``portfolio_pipeline_tests/data/sentiment/LABELLING_RULE.md`` (invented coins and numbers
where it helps); none is copied from the development or the held-out set.
"""

from __future__ import annotations

import pytest

from portfolio_pipeline.news.evaluation import predicted_labels
from portfolio_pipeline.news.lexicon_scorer import LexiconSentimentScorer
from portfolio_pipeline.news.loading import load_sentiment_scorer

# (headline, label, the case of the rule it illustrates)
# fmt: off
CASES: list[tuple[str, str, str]] = [
    # Positive 1: price moves up, in plain verbs and direction words.
    ("Bitcoin and Ethereum Move Higher", "positive", "positive 1, move + direction"),
    ("Altcoins trend higher as the weekend begins", "positive", "positive 1, move + direction"),
    ("Solana edges up after a quiet session", "positive", "positive 1, move + up"),
    ("ADA up 14% in 24 hours", "positive", "positive 1, up + amount"),
    ("Polkadot reclaims $20 as buyers return", "positive", "positive 1, reclaims a level"),
    ("Litecoin hits a 3-month high", "positive", "positive 1, hits a high"),
    ("BTC rebounds after a 10% drop", "positive", "positive 1, a move up wins over the drop"),
    ("Crypto market in the green as BTC tops $45K", "positive", "positive 1, in the green"),
    # Positive 2-6.
    ("Bitcoin funds record $300M of weekly inflows", "positive", "positive 2, inflows"),
    ("Wallet startup raises $25M in Series A funding", "positive", "positive 2, funding round"),
    ("Regional bank starts offering Bitcoin custody to clients", "positive", "positive 3, adoption"),
    ("Coffee chain now accepts Dogecoin payments", "positive", "positive 3, accepts crypto"),
    ("Regulator approves the first spot Ether ETF", "positive", "positive 4, approval"),
    ("Court rules the token is not a security", "positive", "positive 4, not a security"),
    ("Analyst says a rally to $60K is likely this quarter", "positive", "positive 5, forecast"),
    ("Bridge hacker returns stolen funds to users", "positive", "positive 6, funds returned"),
    # Negative 1: price moves down.
    ("Altcoins Dip", "negative", "negative 1, dip"),
    ("Bitcoin crashed to $35K", "negative", "negative 1, crash to a level"),
    ("Ethereum and Solana move lower, BNB flat", "negative", "negative 1, move + direction"),
    ("XRP down 9% on the week", "negative", "negative 1, down + amount"),
    ("Bitcoin breaks below $30K support", "negative", "negative 1, breaks below a level"),
    ("BTC price slips under $40K", "negative", "negative 1, slips under a level"),
    ("Cardano sinks to a 6-month low", "negative", "negative 1, hits a low"),
    ("ETH drops after a 10% rally", "negative", "negative 1, a move down wins over the gain"),
    ("Crypto market in the red as liquidations top $500M", "negative", "negative 1, in the red"),
    # Negative 2-5.
    ("Ether funds see record outflows", "negative", "negative 2, outflows"),
    ("Exchange lays off 20% of its staff", "negative", "negative 2, layoffs"),
    ("DeFi protocol hacked for $100M", "negative", "negative 3, hack"),
    ("Lending platform freezes withdrawals", "negative", "negative 3, frozen withdrawals"),
    ("Stablecoin loses its peg", "negative", "negative 3, de-peg"),
    ("Police arrest suspects in a $20M crypto scam", "negative", "negative 3, arrest about a crime"),
    ("Country bans crypto mining", "negative", "negative 4, ban"),
    ("SEC sues exchange over unregistered securities", "negative", "negative 4, lawsuit"),
    ("Regulator rejects spot Bitcoin ETF application", "negative", "negative 4, rejection"),
    ("Analyst warns Bitcoin risks a drop to $20K", "negative", "negative 5, bearish forecast"),
    # Neutral.
    ("What is a crypto wallet and how does it work?", "neutral", "neutral 1, explainer"),
    ("Price analysis 5/2: BTC, ETH, BNB, SOL, ADA", "neutral", "neutral 1, roundup"),
    ("Top 5 cryptocurrencies to watch this week", "neutral", "neutral 1, list"),
    ("Ethereum developers set the date of the next upgrade", "neutral", "neutral 2, routine"),
    ("Finance ministry publishes a consultation on crypto rules", "neutral", "neutral 2, plan"),
    ("Bitcoin consolidates near $40K", "neutral", "neutral 3, holds / consolidates"),
    ("What's next for Bitcoin?", "neutral", "neutral 4, open question"),
    # Both ways: the main clause decides.
    ("BTC rises despite a hack", "positive", "both ways 1, main clause"),
    ("Despite the hack, the token rallies 20%", "positive", "both ways 1, leading clause"),
    ("Ether falls as the dollar gains", "negative", "both ways 1, 'as' clause"),
    ("Bitcoin and Ethereum slide, DOGE jumps", "negative", "both ways 2, BTC and ETH first"),
]
# fmt: on


@pytest.fixture(scope="module")
def scorer() -> LexiconSentimentScorer:
    return load_sentiment_scorer("lexicon")


@pytest.mark.parametrize(("headline", "label", "case"), CASES, ids=[c[2] for c in CASES])
def test_headline_follows_the_rule(scorer, headline, label, case):
    predicted = predicted_labels(scorer.score_texts([headline]))[0]
    assert predicted == label, f"{headline!r}: {case} says {label}, scorer says {predicted}"


def test_moves_are_never_neutral(scorer):
    """The issue's four examples: move headlines must take a side."""
    moves = ["Bitcoin and Ethereum Move Higher", "Altcoins Dip", "hacked for $100M",
             "crashed to $35K"]  # fmt: skip
    labels = predicted_labels(scorer.score_texts(moves)).to_list()
    assert "neutral" not in labels, dict(zip(moves, labels, strict=True))


def test_negation_flips_a_move(scorer):
    scores = scorer.score_texts(["Bitcoin does not crash", "Bitcoin crashes"])["score"]
    assert scores[0] > 0 > scores[1]
