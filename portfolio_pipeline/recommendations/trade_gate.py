"""The confidence gate on a day's wanted moves (POptimizer's idea, statistics in :mod:`.gate`):
weight moves from a sold asset ``A`` to a bought asset ``B`` only when a lower confidence bound
of the expected advantage ``E[r_B - r_A]`` over the horizon beats the round-trip cost.

Buys are matched greedily (highest expected return first) with sells (lowest first); a sale
left without a buyer may go to cash when cash beats it with confidence. Every asset's notes
say what the gate did to its move and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from portfolio_pipeline.recommendations.gate import ForecastCalibration, z_value
from portfolio_pipeline.recommendations.moves import EPS, AssetMove

DEFAULT_GATE_CONFIDENCE = 0.75
DEFAULT_MAX_FORECAST_AGE_DAYS = 7


@dataclass(frozen=True)
class GateSettings:
    """What the confidence gate needs besides the forecasts.

    calibration : the forecasts' track record up to ``as_of`` (None: gate not applied).
    confidence : one-sided level of the lower bound on the expected advantage.
    max_forecast_age_days : a forecast issued longer ago than this is stale.
    """

    calibration: ForecastCalibration | None
    confidence: float = DEFAULT_GATE_CONFIDENCE
    max_forecast_age_days: int = DEFAULT_MAX_FORECAST_AGE_DAYS


def apply_gate(assets: list[AssetMove], cost_rate: float, gate: GateSettings) -> None:
    """Keep the weight moves whose expected advantage clears the round-trip cost with confidence."""
    wanted = {a.symbol: a.delta for a in assets[:-1]}
    wanted[assets[-1].symbol] = -sum(wanted.values())  # cash is last
    executed, best_bound, partners = match_moves(assets, wanted, cost_rate, gate)
    for a in assets[:-1]:
        note = _gate_note(a, executed[a.symbol], wanted[a.symbol], best_bound, partners, gate)
        if note:
            a.notes.append(note)
        a.delta = executed[a.symbol]


@dataclass
class _Matching:
    """The matcher's running state: executed moves, best bounds met and counterparts."""

    executed: dict[str, float]
    partners: dict[str, list[str]]
    remaining_sell: np.ndarray  # weight each sale still offers, in the sells' order
    sell_best: np.ndarray  # best margin each sale met against a buy
    best_bound: dict[str, float] = field(default_factory=dict)


def match_moves(
    assets: list[AssetMove], wanted: dict[str, float], cost_rate: float, gate: GateSettings
) -> tuple[dict[str, float], dict[str, float], dict[str, list[str]]]:
    """Pairs the most promising buys with the least promising sales while the calibrated
    advantage of the pair clears both legs' costs at the gate's confidence; a sale left
    without a buyer may go to cash when cash beats it with confidence.

    Each buy walks the sales in order (least promising first) until its wanted weight is
    filled, skipping sales already used up; every pair it walks past counts for the best
    bound of both legs. The margins of all pairs are computed at once (a 100-asset day has
    ~2,500 pairs and a replay thousands of days); the walk itself only visits the pairs that
    trade.

    Returns the executed weight change per symbol, the best bound each symbol met (after
    costs) and the counterparts each traded against.
    """
    calibration = gate.calibration
    assert calibration is not None
    z = z_value(gate.confidence)
    by_symbol = {a.symbol: a for a in assets}
    buys, sells = _ranked_candidates(by_symbol, wanted)
    state = _Matching(
        executed=dict.fromkeys(by_symbol, 0.0),
        partners={s: [] for s in by_symbol},
        remaining_sell=np.array([-wanted[a.symbol] for a in sells], dtype=np.float64),
        sell_best=np.full(len(sells), -math.inf),
    )
    if buys and sells:
        mean, se = calibration.pair_advantages(_medians(buys), _medians(sells))
        costs = _leg_costs(buys, cost_rate)[:, None] + _leg_costs(sells, cost_rate)[None, :]
        _pair_buys_with_sales(state, buys, sells, wanted, mean - z * se - costs)
    for sell_index, sell in enumerate(sells):
        if state.sell_best[sell_index] > -math.inf:
            state.best_bound[sell.symbol] = float(state.sell_best[sell_index])
    _sell_rest_to_cash(state, sells, calibration, z, cost_rate, assets[-1].symbol)
    return state.executed, state.best_bound, state.partners


def _ranked_candidates(
    by_symbol: dict[str, AssetMove], wanted: dict[str, float]
) -> tuple[list[AssetMove], list[AssetMove]]:
    """Tradable buys by expected return, highest first, and sells, lowest first."""
    candidates = [by_symbol[s] for s in wanted if by_symbol[s].tradable]
    buys = sorted(
        (a for a in candidates if wanted[a.symbol] > EPS and a.expected is not None),
        key=lambda a: -(a.expected or 0.0),
    )
    sells = sorted(
        (a for a in candidates if wanted[a.symbol] < -EPS and a.expected is not None),
        key=lambda a: a.expected or 0.0,
    )
    return buys, sells


def _pair_buys_with_sales(
    state: _Matching,
    buys: list[AssetMove],
    sells: list[AssetMove],
    wanted: dict[str, float],
    margins: np.ndarray,
) -> None:
    """Each buy takes the open sales whose pair margin is positive, in order, until filled."""
    for i, buy in enumerate(buys):
        need = wanted[buy.symbol]
        open_sells = np.flatnonzero(state.remaining_sell > EPS)
        walked = open_sells.size
        for position in np.flatnonzero(margins[i, open_sells] > 0):
            sell_index = int(open_sells[position])
            sell = sells[sell_index]
            amount = min(need, float(state.remaining_sell[sell_index]))
            need -= amount
            state.remaining_sell[sell_index] -= amount
            state.executed[buy.symbol] += amount
            state.executed[sell.symbol] -= amount
            state.partners[buy.symbol].append(sell.symbol)
            state.partners[sell.symbol].append(buy.symbol)
            if need <= EPS:
                walked = int(position) + 1
                break
        if walked:
            passed = open_sells[:walked]
            state.best_bound[buy.symbol] = float(np.max(margins[i, passed]))
            state.sell_best[passed] = np.maximum(state.sell_best[passed], margins[i, passed])


def _sell_rest_to_cash(
    state: _Matching,
    sells: list[AssetMove],
    calibration: ForecastCalibration,
    z: float,
    cost_rate: float,
    cash_symbol: str,
) -> None:
    """A sale left without a buyer goes to cash when cash beats it with confidence."""
    for sell_index, sell in enumerate(sells):
        left = float(state.remaining_sell[sell_index])
        if sell.is_cash or left <= EPS:
            continue
        mean, se = calibration.expected_advantage(None, _median(sell))
        margin = mean - z * se - cost_rate
        state.best_bound[sell.symbol] = max(state.best_bound.get(sell.symbol, -math.inf), margin)
        if margin > 0:
            state.executed[sell.symbol] -= left
            state.partners[sell.symbol].append(cash_symbol)


def _median(a: AssetMove) -> float | None:
    """The asset's forecast median, None for cash (a certain return of 0)."""
    return None if a.is_cash else a.mid


def _medians(assets: list[AssetMove]) -> np.ndarray:
    return np.array(
        [math.nan if (m := _median(a)) is None else m for a in assets], dtype=np.float64
    )


def _leg_costs(assets: list[AssetMove], cost_rate: float) -> np.ndarray:
    """The cost of one leg: nothing for cash."""
    return np.array([0.0 if a.is_cash else cost_rate for a in assets], dtype=np.float64)


def _gate_note(
    a: AssetMove,
    gated: float,
    want: float,
    best_bound: dict[str, float],
    partners: dict[str, list[str]],
    gate: GateSettings,
) -> str | None:
    """Why the gate changed (or passed) an asset's wanted move; None when it had no say."""
    if abs(gated - want) > EPS:
        if a.expected is None:
            return f"gate refused: {a.forecast_issue or 'no usable forecast'}"
        margin = best_bound.get(a.symbol)
        detail = f"best bound {margin:+.2%} after costs" if margin is not None else "no counterpart"
        verdict = (
            f"gate refused the wanted {want:+.4f}"
            if abs(gated) <= EPS
            else f"gate passed {gated:+.4f} of the wanted {want:+.4f}"
        )
        return (
            f"{verdict} (expected advantage not above costs at "
            f"{gate.confidence:.0%} confidence; {detail})"
        )
    if partners[a.symbol]:
        side = "bought against" if gated > 0 else "sold for"
        return (
            f"gate passed: {side} {', '.join(partners[a.symbol])}, expected advantage above "
            f"costs at {gate.confidence:.0%} confidence"
        )
    return None
