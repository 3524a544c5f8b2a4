"""Word lists and rules of the lexicon sentiment scorers.

- ``lexicon-v1`` (:data:`LEXICON_V1`, the lists right below, unchanged so that its published
  figures stay reproducible);
- ``headline-v2`` (:data:`HEADLINE_V2`): v1 plus headline semantics, measured on held-out
  set 1;
- ``headline-v3`` (:data:`HEADLINE_V3`, the offline fallback): v2 plus the fixes of the
  rule-written tests, measured on held-out set 2.

Licence: every list here is written by hand for this project. The Loughran-McDonald
dictionary is NOT shipped: its authors license it free for academic research only and ask
for a commercial licence otherwise, which an open pipeline cannot assume.

v1: common finance polarity words of the kind the Loughran-McDonald categories hold (written
by hand, not copied), plus crypto-market vocabulary (hacks, exploits, de-pegs,
liquidations, listings, adoption, ETF approvals ...). Weights: 2 = strong, unambiguous
market-moving words; 1 = ordinary polarity words; 0.5 = weak or frequently neutral words.

Entries are lower-case base forms; the scorer also matches regular inflections
(``-s``, ``-es``, ``-ed``, ``-d``, ``-ing``, doubled final consonant), so irregular forms are
listed explicitly. Multi-word phrases are matched before single words and take precedence
over the words they contain.

Written from general finance and crypto vocabulary, not fitted to a labelled set; changing
these lists changes the scorer's version (a new :class:`Lexicon` with a new ``version``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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


# =============================================================================== headline-v2
#
# Written from LABELLING_RULE.md (portfolio_pipeline_tests/data/sentiment/) and checked on the
# development set and on unlabelled sample headlines, with the held-out draw filtered out by
# code before anyone read it. What v2 changes, and why:
# 1. Moves: headlines describe price moves with a plain verb and a direction word ("Bitcoin
#    and Ethereum Move Higher", "trend lower", "up 12%", "breaks below $30K", "hits a 6-month
#    low"); v1 saw only "higher" (0.5) and called them neutral. Regex patterns catch them.
# 2. Symmetry: v1's decision rule broke a tie between one ordinary word (1.0) and neutrality
#    towards positive but away from negative ("Bitcoin falls below $27K" was neutral). v2's
#    neutral evidence is 0.7, so one ordinary word (1.0), or a weak word in a main clause
#    and another in a subordinate one (0.75), decides either way; one weak word (0.5) does not.
# 3. Main clause first: evidence inside a subordinate "despite / amid / as / after /
#    following / while ..." clause counts half (rule: the main clause decides).
# 4. Vocabulary of the rule's cases that v1 lacked: slips, dives, sheds, retreats; heists,
#    outages; arrests, charges, seizures; accepts, offers, buys, tops, reclaims.
# 5. Phrases that only repeated their own words ("largest outflows") are gone.

HEADLINE_V2_VERSION = "headline-v2"

_V2_POSITIVE_ADD: dict[str, float] = {
    "accept": 1.0, "acceptance": 1.0, "tops": 1.0, "topped": 1.0, "reclaim": 1.0,
    "surpass": 1.0, "outpace": 1.0, "upswing": 1.5, "uptick": 1.0, "pump": 1.0,
    "recoup": 1.0, "highs": 1.0, "buy": 0.5, "bought": 0.5, "purchase": 0.5, "offer": 1.0,
    "advance": 0.5, "green": 0.5, "bulls": 1.0, "rebound": 1.5, "revive": 1.0,
    "revival": 1.0, "resilient": 1.0, "resilience": 1.0, "thrive": 1.0, "skyrocketing": 2.0,
    "gainer": 1.0, "winner": 1.0, "record-high": 2.0, "bullrun": 1.5, "favor": 0.5,
    "valuation": 0.5,
}  # fmt: skip

_V2_NEGATIVE_ADD: dict[str, float] = {
    "dip": 1.0, "slip": 1.0, "dive": 1.5, "nosedive": 2.0, "shed": 1.0, "retreat": 1.0,
    "retrace": 1.0, "pullback": 1.0, "correction": 1.0, "bleed": 1.5, "tank": 1.5,
    "erase": 1.0, "lows": 1.0, "fade": 0.5, "wobble": 0.5, "unfavorable": 1.0,
    "unfavourable": 1.0, "backlash": 1.0, "setback": 1.5, "suffer": 1.0, "cripple": 1.5,
    "outage": 1.5, "doubt": 1.0, "skeptic": 1.0, "skeptical": 1.0, "sceptical": 1.0,
    "heist": 2.0, "rugpull": 2.0, "compromise": 1.5, "ransomware": 2.0, "loot": 1.5,
    "arrest": 1.5, "seize": 1.0, "seizure": 1.0, "raid": 1.5, "convict": 1.5, "guilty": 1.5,
    "jail": 1.5, "prison": 1.5, "accuse": 1.5, "allegation": 1.0, "allege": 1.0,
    "scandal": 1.5, "controversy": 1.0, "bears": 1.0, "sell": 0.5, "sold": 0.5,
    "downside": 1.0, "lawsuit": 1.5, "charges": 1.0, "indicted": 1.5, "underwater": 1.5,
    "capitulate": 1.5, "liquidated": 1.5, "wipeout": 2.0, "meltdown": 2.0, "dump": 1.0,
    "unrest": 1.0, "critic": 1.0, "warns": 1.0,
}  # fmt: skip

_V2_PHRASES: dict[str, float] = {
    "all-time high": 2.0, "all time high": 2.0, "all-time highs": 2.0, "record high": 2.0,
    "new ath": 2.0, "hits ath": 2.0, "bull run": 1.5, "bull market": 1.5,
    "golden cross": 1.5, "short squeeze": 1.0, "legal tender": 1.5, "green light": 1.5,
    "mass adoption": 1.5, "buy the dip": 1.0, "etf approval": 2.0, "goes live": 0.5,
    "crypto winter": -2.0, "bear market": -1.5, "death cross": -1.5, "rug pull": -2.0,
    "loses peg": -2.0, "lost peg": -2.0, "lose peg": -2.0, "lost its peg": -2.0,
    "below ath": -1.0, "from ath": -0.5, "lay off": -1.5, "laid off": -1.5,
    "raises concerns": -1.5, "raise concerns": -1.5, "sell off": -1.5, "pump and dump": -2.0,
    "price manipulation": -2.0, "under investigation": -1.5, "no longer": -0.5,
    "shut down": -1.5, "shuts down": -1.5, "not a security": 1.5, "wipes out": -2.0,
    "wiped out": -2.0, "charged with": -1.5, "in the green": 1.0, "in the red": -1.0,
    "sea of red": -1.5, "bloodbath": -2.0, "funding round": 1.0, "no future": -1.5,
    "impermanent loss": 0.0, "stop loss": 0.0, "stop-loss": 0.0, "bear trap": 1.0,
    "bull trap": -1.0, "fear and greed": 0.0, "new low": -1.5, "new lows": -1.5,
    "new high": 1.5, "new highs": 1.5, "trim gains": -1.0, "trims gains": -1.0,
    "pare gains": -1.0, "pares gains": -1.0, "extend losses": -1.5, "extends losses": -1.5,
    "increased losses": -1.5, "increase losses": -1.5, "rally stalls": -1.0,
    "extend gains": 1.5, "extends gains": 1.5,
}  # fmt: skip

_MOVE_VERBS = (
    r"(?:move|moves|moved|moving|trend|trends|trended|trending|trade|trades|traded|trading|"
    r"head|heads|headed|heading|edge|edges|edged|edging|push|pushes|pushed|pushing|"
    r"turn|turns|turned|tick|ticks|ticked|inch|inches|inched|go|goes|went|going|"
    r"close|closes|closed|closing|open|opens|opened|creep|creeps|crept|swing|swings|swung|"
    r"march|marches|marched|grind|grinds|shoot|shoots|shot|send|sends|sent|"
    r"end|ends|ended|finish|finishes|finished|drift|drifts|drifted)"
)
# "up"/"down" follow fewer verbs: "turns down an offer", "breaks down the data" are no moves.
_UPDOWN_VERBS = (
    r"(?:move|moves|moved|moving|trend|trends|trended|trending|head|heads|headed|heading|"
    r"edge|edges|edged|edging|tick|ticks|ticked|inch|inches|inched|go|goes|went|going|"
    r"creep|creeps|crept|swing|swings|swung|shoot|shoots|shot|close|closes|closed|"
    r"end|ends|ended|finish|finishes|finished|trade|trades|traded|trading)"
)
_PERIOD = r"(?:\s+(?:the\s+)?(?:day|week|weekend|month|quarter|year|session))?"
_AMOUNT = r"(?:over\s+|nearly\s+|almost\s+|more\s+than\s+|about\s+|another\s+)?\$?\d[\d.,]*\s*(?:%|percent|x\b|k\b|m\b|b\b|bn\b|million|billion)"
_LEVEL = r"\$\d[\d.,]*\s*(?:k|m|b|bn|million|billion)?\b"
_EXTREME = (
    r"(?:an?\s+)?(?:new\s+|fresh\s+|record\s+|yearly\s+|annual\s+|all-time\s+|"
    r"multi-(?:week|month|year)\s+|\d+-(?:day|week|month|year)\s+|\d+\s+(?:day|week|month|year)\s+)+"
)

# (regex on the lower-cased headline, weight). Matched before phrases and words; a match
# becomes one token, so its words do not count again and a negator can still flip it.
_V2_PATTERNS: tuple[tuple[str, float], ...] = (
    (_MOVE_VERBS + _PERIOD + r"\s+(?:sharply\s+|slightly\s+|much\s+)?(?:higher|upward|upwards|north)\b", 1.5),
    (_MOVE_VERBS + _PERIOD + r"\s+(?:sharply\s+|slightly\s+|much\s+)?(?:lower|downward|downwards|south)\b", -1.5),
    (_UPDOWN_VERBS + _PERIOD + r"\s+(?:sharply\s+|slightly\s+)?up\b", 1.5),
    (_UPDOWN_VERBS + _PERIOD + r"\s+(?:sharply\s+|slightly\s+)?down\b", -1.5),
    (r"\bup\s+" + _AMOUNT, 1.5),
    (r"\bdown\s+" + _AMOUNT, -1.5),
    (r"\b(?:tops|topped|reclaims?|reclaimed|flips?|flipped|clears?|cleared|surpass(?:es|ed)?|"
     r"pass(?:es|ed)?|past|breaks?\s+above|broke\s+above|above|over)\s+" + _LEVEL, 1.0),
    (r"\b(?:breaks?\s+below|broke\s+below|below|under|loses|lost|beneath)\s+" + _LEVEL, -1.0),
    (r"\b(?:raises?|raised|raising|secures?|secured|lands?|landed|bags?|bagged|nets?|netted)"
     r"\s+(?:over\s+|nearly\s+|about\s+)?\$\d", 1.0),
    (r"\b(?:hits?|reach(?:es|ed)?|pass(?:es|ed)?|surpass(?:es|ed)?|tops|crosses|crossed)\s+"
     r"\d[\d.,]*\s*(?:k|m|million|b|billion)?\s+(?:users|holders|addresses|wallets|"
     r"transactions|customers|downloads|members|accounts|merchants|nodes|validators)\b", 1.5),
    (r"\bhigh(?:est)?\s+since\b", 1.5),
    (r"\blow(?:est)?\s+since\b", -1.5),
    (r"\b(?:hits?|hitting|reach(?:es|ed)?|touch(?:es|ed)?|at|to|near|nears|sets?|marks?)\s+"
     + _EXTREME + r"highs?\b", 2.0),
    (r"\b(?:hits?|hitting|reach(?:es|ed)?|touch(?:es|ed)?|at|to|near|nears|sets?|marks?)\s+"
     + _EXTREME + r"lows?\b", -2.0),
)  # fmt: skip

# A polar word inside one of these clauses counts ``CLAUSE_DISCOUNT`` times its weight, up to
# the next comma / colon / semicolon / dash / pipe: the rule lets the main clause decide.
_V2_CLAUSE_OPENERS: tuple[str, ...] = (
    "despite", "amid", "amidst", "as", "after", "following", "while", "although", "though",
    "even as", "ahead of", "before",
)  # fmt: skip
_V2_NOT_OPENERS_BEFORE_AS: tuple[str, ...] = ("such", "as", "so", "known", "same", "well")


@dataclass(frozen=True)
class Lexicon:
    """Everything a lexicon scorer needs: words, phrases, patterns, negation, clause rules.

    Attributes
    ----------
    version : str
        What the ``model`` column records.
    positive, negative : dict[str, float]
        Base forms and their weights (> 0); inflections are matched by the scorer.
    phrases : dict[str, float]
        Multi-word expressions with signed weights; matched before words.
    patterns : tuple of (regex, weight)
        Signed regex rules, matched before phrases (``headline-v2`` only).
    negators : frozenset of str
        Words that flip the sign of polar words up to ``negation_window`` tokens later.
    clause_openers : tuple of str
        Words opening a subordinate clause whose evidence counts ``clause_discount`` times.
    neutral_evidence : float
        The neutral logit: evidence a text needs before a polar class wins.
    explainer_openers : tuple of str
        Headline openings of explainers and guides; their evidence counts
        ``question_discount`` times.
    question_discount : float
        Factor on the evidence of a sentence ending in "?" and of an explainer.
    opener_at_start : bool
        Whether a clause opener as the headline's first word ("Despite the hack, ...") opens
        a subordinate clause ("as" never does there).
    lead_subjects : tuple of str
        When the headline's first clause names one of these (Bitcoin, Ethereum, the market),
        the evidence of its later clauses counts ``later_clause_discount`` times.
    later_clause_discount : float
        See ``lead_subjects``.
    """

    version: str
    positive: dict[str, float]
    negative: dict[str, float]
    phrases: dict[str, float]
    negators: frozenset[str]
    negation_window: int = NEGATION_WINDOW
    patterns: tuple[tuple[str, float], ...] = ()
    clause_openers: tuple[str, ...] = ()
    not_openers_before_as: tuple[str, ...] = field(default=())
    clause_discount: float = 1.0
    neutral_evidence: float = 1.0
    explainer_openers: tuple[str, ...] = ()
    question_discount: float = 1.0
    opener_at_start: bool = False
    lead_subjects: tuple[str, ...] = ()
    later_clause_discount: float = 1.0


LEXICON_V1 = Lexicon(
    version=LEXICON_VERSION,
    positive=POSITIVE_WORDS,
    negative=NEGATIVE_WORDS,
    phrases=PHRASES,
    negators=NEGATORS,
)

HEADLINE_V2 = Lexicon(
    version=HEADLINE_V2_VERSION,
    positive={**POSITIVE_WORDS, **_V2_POSITIVE_ADD},
    negative={**NEGATIVE_WORDS, **_V2_NEGATIVE_ADD},
    phrases=_V2_PHRASES,
    # "ends" flipped "Bitcoin ends the week higher" in v1; a move pattern now takes those,
    # and "ends" stays a negator only for things like "crypto winter ends".
    negators=NEGATORS,
    patterns=_V2_PATTERNS,
    clause_openers=_V2_CLAUSE_OPENERS,
    not_openers_before_as=_V2_NOT_OPENERS_BEFORE_AS,
    clause_discount=0.5,
    neutral_evidence=0.7,
    # Rule, neutral 1 and 4: explainers and open questions take no side, so their polar
    # words count half ("What is impermanent loss", "Must lock-ups change to see adoption?");
    # a strong fact inside them ("Why Bitcoin crashed") still decides.
    explainer_openers=(
        "what is",
        "what are",
        "how to",
        "how does",
        "how do",
        "how can",
        "guide",
        "explained",
        "explainer",
        "here's how",
        "here is how",
    ),
    question_discount=0.5,
)


# =============================================================================== headline-v3
#
# headline-v2 was frozen and measured on held-out set 1 first. v3 then fixed what the
# rule-written cases (portfolio_pipeline_tests/core/test_headline_semantics.py) and a read
# of v2's held-out-1 errors showed; so v3's held-out-1 figure is NOT clean, and v3 is
# measured on held-out set 2, drawn and labelled after v3 was frozen.
# 1. A clause opener as the first word ("Despite the bear market, X rallies") now opens a
#    subordinate clause (v2 skipped position 0 for every opener, meant only for "as").
# 2. Subordinate clauses count 0.4 instead of 0.5, so one polar word in the main clause
#    beats one of the same strength in a "despite / as" clause ("BTC rises despite a hack").
# 3. Rule "both ways" 2: when the first clause names Bitcoin, Ethereum or the market, later
#    clauses ("..., DOGE jumps") count half.
# 4. Recovered or returned stolen funds are positive (rule, positive 6); "lays off" and
#    "laying off" are layoffs.

HEADLINE_V3_VERSION = "headline-v3"

_V3_PATTERNS: tuple[tuple[str, float], ...] = (
    *_V2_PATTERNS,
    (r"\b(?:returns?|returned|returning|recovers?|recovered|recovering|refunds?|refunded|"
     r"reimburses?|reimbursed|repays?|repaid)\s+(?:[a-z0-9$.,'-]+\s+){0,3}?"
     r"(?:stolen|hacked|lost|frozen|exploited)\s+(?:funds|crypto|coins|tokens|nfts|assets|"
     r"money|bitcoin|ether|eth|btc)\b", 3.0),
)  # fmt: skip

HEADLINE_V3 = replace(
    HEADLINE_V2,
    version=HEADLINE_V3_VERSION,
    phrases={**_V2_PHRASES, "lays off": -1.5, "laying off": -1.5},
    patterns=_V3_PATTERNS,
    clause_discount=0.4,
    opener_at_start=True,
    lead_subjects=("bitcoin", "btc", "ethereum", "ether", "eth", "crypto market",
                   "crypto markets", "cryptocurrency market", "the market"),
    later_clause_discount=0.5,
)  # fmt: skip
