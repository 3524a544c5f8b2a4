"""A rebalancing rule (:mod:`.rebalance_rules`) applied to the assets of
:func:`~.decision.recommend`, each move explained in money: the risk it removes, the expected
return it adds and its error, its cost, and why it stops where it stops."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from portfolio_pipeline.recommendations.gate import ForecastCalibration
from portfolio_pipeline.recommendations.moves import EPS, AssetMove
from portfolio_pipeline.recommendations.rebalance_rules import (
    BandEdge,
    DayProblem,
    RebalanceRule,
    RiskModel,
    RuleOutcome,
    band_half_width,
    day_problem,
    decide,
    shrunk_expected,
)

_AT_TARGET = 1e-6


@dataclass(frozen=True)
class RuleContext:
    """What a rule needs besides the assets: the rule, the risk model, the calibration (None
    without a usable forecast), the 30-day traded value per symbol and the cash symbol."""

    rule: RebalanceRule
    risk: RiskModel | None  # None: no risk model that day (``risk_failure`` says why)
    calibration: ForecastCalibration | None
    adv: dict[str, float] | None
    risk_failure: str = ""


def apply_rule(
    assets: list[AssetMove], ctx: RuleContext, cost_rate: float, total_value: float
) -> RuleOutcome:
    """Replace the desired moves by the rule's; a failed decision holds every position."""
    if ctx.risk is None:
        return _hold_all(assets, RuleOutcome(None, failure=ctx.risk_failure), ctx)
    problem = day_problem(assets, ctx.risk, ctx.calibration, cost_rate, ctx.adv, total_value)
    outcome = decide(problem, ctx.rule)
    risky = assets[:-1]
    if outcome.weights is None:
        return _hold_all(assets, outcome, ctx)
    for i, a in enumerate(risky):
        a.delta = float(outcome.weights[i] - a.current)
    _explain(risky, problem, outcome.weights, ctx, total_value)
    return outcome


def _hold_all(assets: list[AssetMove], outcome: RuleOutcome, ctx: RuleContext) -> RuleOutcome:
    for a in assets[:-1]:
        a.delta = 0.0
        a.notes.append(f"HOLD: {outcome.failure}; {ctx.rule.label} made no decision")
    return outcome


def _explain(
    risky: list[AssetMove],
    problem: DayProblem,
    weights: np.ndarray,
    ctx: RuleContext,
    total_value: float,
) -> None:
    """One note per asset, in cash units: risk removed, expected gain and error, cost, stop."""
    cash = risky[0].cash_symbol if risky else ""
    trades = weights - problem.current
    # Tracking variance after minus before = sum_i t_i (Sigma_H (d0 + d1))_i, d = w - w*: an
    # exact split of the change among the trades.
    deviation_sum = (problem.current - problem.target) + (weights - problem.target)
    variance_change = trades * (problem.horizon * problem.covariance @ deviation_sum)
    gamma = ctx.rule.risk_aversion
    confidence = getattr(ctx.rule, "confidence", None)
    gain = shrunk_expected(problem, confidence) if confidence is not None else None
    for i, a in enumerate(risky):
        if not a.tradable:
            continue
        t = float(trades[i])
        parts = [_stop_reason(a, i, problem, weights, ctx)]
        if abs(t) > EPS:
            risk_value = -gamma * float(variance_change[i]) * total_value
            cost = problem.cost_rate * abs(t) * total_value
            weight = getattr(ctx.rule, "cost_multiplier", 1.0)
            counted = f" (counted x{weight:g} in the decision)" if weight != 1.0 else ""
            parts.append(
                f"removes tracking risk worth {round(risk_value, 2) + 0.0:+,.2f} {cash} at risk aversion "
                f"{gamma:g}; costs {cost:,.2f} {cash}{counted}"
            )
            if gain is not None and math.isfinite(problem.expected_se[i]):
                parts.append(
                    f"expected gain {round(float(gain[i]) * t * total_value, 2) + 0.0:+,.2f} {cash} (calibrated "
                    f"{problem.expected[i]:+.2%} ± {problem.expected_se[i]:.2%} over "
                    f"{problem.horizon} bars)"
                )
        a.notes.append("; ".join(parts))


def _stop_reason(
    a: AssetMove, i: int, problem: DayProblem, weights: np.ndarray, ctx: RuleContext
) -> str:
    """Why the position ends where it ends."""
    target, current, new = problem.target[i], problem.current[i], weights[i]
    if isinstance(ctx.rule, BandEdge):
        width = float(
            band_half_width(problem.target[i : i + 1], problem.cost_rate, ctx.rule.risk_aversion)[0]
        )
        if abs(new - current) <= EPS:
            return f"inside the no-trade band (±{width:.2%} around the target)"
        return f"moved to the band's edge (target {target:.2%} ± {width:.2%})"
    if abs(new - target) <= _AT_TARGET:
        return "moves to the target" if abs(new - current) > EPS else "at target"
    if abs(new - current) <= EPS:
        return (
            f"no trade: moving toward the target {target:.2%} removes less risk than "
            "it costs (or forgoes more expected return)"
        )
    if new <= _AT_TARGET:
        return "stops at zero (long-only)"
    return (
        f"stops at {new:.2%} (target {target:.2%}): beyond, the risk still removed no longer "
        "pays the cost (or the expected return holds it back)"
    )


def ex_ante_risk(frame: pl.DataFrame, risk: RiskModel, cash_symbol: str) -> dict[str, float]:
    """Annualised ex-ante volatility and tracking error to the strategy's target of a run's
    portfolio before (``current_weight``) and after (``target_weight``) its trades."""
    risky = frame.filter(pl.col("symbol") != cash_symbol)
    symbols = risky["symbol"].to_list()
    covariance = risk.matrix(symbols) * risk.periods_per_year
    before = risky["current_weight"].to_numpy()
    after = risky["target_weight"].to_numpy()
    target = risky["strategy_weight"].to_numpy()

    def vol(w: np.ndarray) -> float:
        return math.sqrt(max(float(w @ covariance @ w), 0.0))

    return {
        "volatility_before": vol(before),
        "volatility_after": vol(after),
        "tracking_error_before": vol(before - target),
        "tracking_error_after": vol(after - target),
    }
