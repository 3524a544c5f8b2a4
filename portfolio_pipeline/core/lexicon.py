"""Word lists of the lexicon sentiment scorer (``lexicon-v1``).

Loughran-McDonald-style finance polarity words (a hand-picked subset of their positive and
negative categories, in base form) plus crypto-market vocabulary (hacks, exploits, de-pegs,
liquidations, listings, adoption, ETF approvals ...). Weights: 2 = strong, unambiguous
market-moving words; 1 = ordinary polarity words; 0.5 = weak or frequently neutral words.

Entries are lower-case base forms; the scorer also matches regular inflections
(``-s``, ``-es``, ``-ed``, ``-d``, ``-ing``, doubled final consonant), so irregular forms are
listed explicitly. Multi-word phrases are matched before single words and take precedence
over the words they contain.

Written from general finance and crypto vocabulary, not fitted to a labelled set; changing
these lists changes the scorer's version (bump ``LEXICON_VERSION``).
"""

from __future__ import annotations

LEXICON_VERSION = "lexicon-v1"

POSITIVE_WORDS: dict[str, float] = {
    # strong
    "surge": 2.0, "soar": 2.0, "skyrocket": 2.0, "rocket": 1.5, "rally": 2.0, "boom": 1.5,
    "breakthrough": 1.5, "bullish": 2.0, "moon": 1.5, "outperform": 1.5, "leap": 1.5,
    "leapt": 1.5, "jump": 1.5, "spike": 1.0, "rebound": 1.5, "recover": 1.5, "recovery": 1.5,
    "bounce": 1.5, "approve": 1.5, "approval": 1.5, "greenlight": 1.5, "legalize": 1.5,
    "uptrend": 1.5, "breakout": 1.5,
    # ordinary
    "gain": 1.0, "climb": 1.0, "rise": 1.0, "rose": 1.0, "risen": 1.0, "boost": 1.0,
    "bull": 1.0, "adoption": 1.0, "adopt": 1.0, "growth": 1.0, "grow": 1.0, "grew": 1.0,
    "strong": 1.0, "strength": 1.0, "strengthen": 1.0, "upbeat": 1.0, "optimism": 1.0,
    "optimistic": 1.0, "confident": 1.0, "confidence": 1.0, "profit": 1.0, "profitable": 1.0,
    "win": 1.0, "won": 1.0, "success": 1.0, "successful": 1.0, "milestone": 1.0,
    "positive": 1.0, "improve": 1.0, "improvement": 1.0, "opportunity": 1.0,
    "favorable": 1.0, "favourable": 1.0, "benefit": 1.0, "upside": 1.0, "accumulate": 1.0,
    "accumulation": 1.0, "inflow": 1.0, "encouraging": 1.0, "encourage": 0.5,
    "pro-crypto": 1.0, "welcome": 1.0, "embrace": 1.0, "unicorn": 1.0, "record-breaking": 1.0,
    "progress": 1.0, "upgrade": 0.5, "expand": 0.5, "expansion": 0.5, "partnership": 0.5,
    "partner": 0.5, "integrate": 0.5, "integration": 0.5, "invest": 0.5, "investment": 0.5,
    "funding": 0.5, "raise": 0.5, "launch": 0.5, "innovation": 0.5, "innovative": 0.5,
    "higher": 0.5, "allow": 0.5, "support": 0.25, "backed": 0.25, "list": 0.5, "listing": 0.5,
    "access": 0.5, "bright": 1.0, "steady": 0.5, "secure": 0.5, "safe": 0.5, "stable": 0.25, "best": 0.5, "top": 0.25,
}  # fmt: skip

NEGATIVE_WORDS: dict[str, float] = {
    # strong
    "crash": 2.0, "plunge": 2.0, "plummet": 2.0, "collapse": 2.0, "tumble": 2.0,
    "slump": 2.0, "hack": 2.0, "hacker": 2.0, "exploit": 2.0, "exploiter": 2.0, "stolen": 2.0,
    "steal": 2.0, "stole": 2.0, "theft": 2.0, "scam": 2.0, "scammer": 2.0, "fraud": 2.0,
    "fraudulent": 2.0, "fraudster": 2.0, "phishing": 2.0, "malware": 2.0, "ponzi": 2.0,
    "bankrupt": 2.0, "bankruptcy": 2.0, "insolvent": 2.0, "insolvency": 2.0,
    "liquidation": 1.5, "liquidate": 1.5, "capitulation": 1.5, "bearish": 2.0,
    "bloodbath": 2.0, "carnage": 2.0, "debacle": 2.0, "depeg": 2.0, "contagion": 2.0,
    "crisis": 1.5, "ban": 1.5, "crackdown": 1.5, "lawsuit": 1.5, "sue": 1.5, "breach": 1.5,
    "attack": 1.5, "attacker": 1.5, "laundering": 1.5, "manipulation": 1.5, "default": 1.5,
    "selloff": 1.5, "sell-off": 1.5, "worst": 1.5, "turmoil": 1.5, "panic": 1.5,
    "layoff": 1.5, "downturn": 1.5, "recession": 1.5, "illegal": 1.5, "illicit": 1.5,
    # ordinary
    "loss": 1.0, "lose": 1.0, "lost": 1.0, "fall": 1.0, "fell": 1.0, "fallen": 1.0,
    "drop": 1.0, "sink": 1.0, "sank": 1.0, "slide": 1.0, "slid": 1.0, "decline": 1.0,
    "bear": 1.0, "dump": 1.0, "warn": 1.0, "warning": 1.0, "risk": 1.0, "risky": 1.0,
    "concern": 1.0, "fear": 1.0, "worry": 1.0, "uncertainty": 1.0, "halt": 1.0,
    "freeze": 1.0, "froze": 1.0, "frozen": 1.0, "suspend": 1.0, "delist": 1.0,
    "reject": 1.0, "rejection": 1.0, "deny": 1.0, "denial": 1.0, "outflow": 1.0,
    "weak": 1.0, "weakness": 1.0, "negative": 1.0, "fail": 1.0, "failure": 1.0,
    "bubble": 1.0, "unsustainable": 1.0, "doom": 1.0, "fud": 1.0, "vulnerability": 1.0,
    "vulnerable": 1.0, "bug": 1.0, "flaw": 1.0, "stall": 1.0, "postpone": 1.0,
    "delay": 1.0, "struggle": 1.0, "ridicule": 1.0, "blame": 1.0, "criticism": 1.0,
    "criticize": 1.0, "slam": 1.0, "beware": 1.0, "fake": 1.0, "evade": 1.0,
    "evasion": 1.0, "sanction": 1.0, "probe": 1.0, "investigation": 1.0, "subpoena": 1.0,
    "penalty": 1.0, "fined": 1.0, "threat": 1.0, "threaten": 1.0, "kill": 1.0,
    "dead": 1.0, "death": 1.0, "victim": 1.0, "lure": 1.0, "wipe": 1.0, "oversold": 0.5,
    "plague": 1.0, "trouble": 1.0, "problem": 1.0, "shortfall": 1.0, "damage": 1.0,
    "down": 0.5, "lower": 0.5, "dip": 0.5, "volatile": 0.5, "volatility": 0.25,
    "inflation": 0.5, "regulator": 0.25, "cut": 0.5, "bottom": 0.25, "fiasco": 2.0,
    "drain": 1.5, "indict": 1.5, "indictment": 1.5, "moratorium": 1.0, "ditch": 0.5,
}  # fmt: skip

# Phrases override the words inside them (e.g. "all-time high" is positive although it
# contains nothing polar, "raises concerns" is negative although "raise" is mildly positive).
PHRASES: dict[str, float] = {
    "all-time high": 2.0, "all time high": 2.0, "all-time highs": 2.0, "record high": 2.0,
    "new high": 1.5, "new highs": 1.5, "new ath": 2.0, "hits ath": 2.0, "bull run": 1.5,
    "bull market": 1.5, "golden cross": 1.5, "short squeeze": 1.0, "legal tender": 1.5,
    "green light": 1.5, "mass adoption": 1.5, "buy the dip": 1.0, "etf approval": 2.0,
    "crypto winter": -2.0, "bear market": -1.5, "death cross": -1.5, "rug pull": -2.0,
    "loses peg": -2.0, "lost peg": -2.0, "lose peg": -2.0, "lost its peg": -2.0,
    "below ath": -1.0, "from ath": -0.5, "lay off": -1.5, "laid off": -1.5,
    "raises concerns": -1.5, "raise concerns": -1.5, "sell off": -1.5, "pump and dump": -2.0,
    "price manipulation": -2.0, "under investigation": -1.5, "no longer": -0.5,
    "steps down": -1.0, "step down": -1.0, "shut down": -1.5, "shuts down": -1.5,
    "record outflows": -2.0, "largest outflows": -2.0, "largest inflows": 2.0,
    "record inflows": 2.0, "not a security": 1.5, "wipes out": -2.0, "wiped out": -2.0,
}  # fmt: skip

NEGATORS: frozenset[str] = frozenset(
    {
        "not", "no", "never", "without", "nor", "neither", "cannot", "hardly", "barely",
        "isn't", "aren't", "wasn't", "weren't", "don't", "doesn't", "didn't", "won't",
        "wouldn't", "can't", "couldn't", "hasn't", "haven't", "hadn't", "shouldn't",
        "avoids", "avoid", "avoided", "averts", "avert", "averted", "denies", "deny", "denied", "eases", "ease", "ends",
    }
)  # fmt: skip

# How many tokens before a polar word a negator still flips it ("no risks of bankruptcy").
NEGATION_WINDOW = 3
