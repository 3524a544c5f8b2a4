"""Portfolio accounting shared by the RL environment and the backtest engine.

One convention, used everywhere, so that a policy trained in the environment and the same
weights replayed in a backtest give identical numbers.

Conventions
-----------
- A weight vector has ``N + 1`` entries: the ``N`` risky assets in universe order, then cash
  (``USDT``) LAST. Weights are long-only and sum to 1.
- Weights are decided at the close of day ``d`` from information known by then, and earn the
  price relatives ``close[d+1] / close[d]`` (cash earns 0).
- Rebalancing from the *drifted* weights ``w_drift`` to the target ``w_target`` costs
  ``cost_rate * sum_i |w_target_i - w_drift_i|`` over the risky assets (cash moves are free),
  charged as a fraction of portfolio value at the moment of rebalancing. ``turnover`` is that
  same one-way sum (buys plus sells of risky assets, as a fraction of value).
- An asset whose price is missing (not listed yet, or delisted) cannot be held: its target
  weight is moved to cash. A holding whose next price is missing (delisted overnight) is
  valued at its last price (relative 1) and then goes to cash.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StepResult:
    """Outcome of holding ``target`` for one period after rebalancing from ``drifted``."""

    growth: float  # V[d+1] / V[d], net of costs
    log_return: float  # log(growth)
    turnover: float  # sum |target - drifted| over risky assets
    cost: float  # fraction of value paid in costs at d
    next_weights: np.ndarray  # drifted weights at the close of d+1 (N + 1, cash last)


def tradable_mask(prices_today: np.ndarray, prices_next: np.ndarray | None = None) -> np.ndarray:
    """Assets that can be bought at ``d``: priced today (and tomorrow, when known)."""
    mask = np.isfinite(prices_today) & (prices_today > 0)
    if prices_next is not None:
        mask &= np.isfinite(prices_next) & (prices_next > 0)
    return mask


def restrict_to_tradable(target: np.ndarray, tradable: np.ndarray) -> np.ndarray:
    """Move the weight of untradable risky assets to cash (last entry). Returns a copy."""
    out = np.array(target, dtype=np.float64, copy=True)
    blocked = ~tradable
    if blocked.any():
        out[-1] += out[:-1][blocked].sum()
        out[:-1][blocked] = 0.0
    return out


def price_relatives(prices_today: np.ndarray, prices_next: np.ndarray) -> np.ndarray:
    """``close[d+1] / close[d]`` per asset; 1 where either price is missing.

    A missing next price means the asset stopped trading: the position is carried at its
    last price (relative 1) and liquidated to cash by :func:`step`.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = prices_next / prices_today
    return np.where(np.isfinite(rel) & (rel > 0), rel, 1.0)


def rebalance_cost(
    drifted: np.ndarray, target: np.ndarray, cost_rate: float
) -> tuple[float, float]:
    """Return ``(turnover, cost)`` of moving from ``drifted`` to ``target`` (fractions of value)."""
    turnover = float(np.abs(target[:-1] - drifted[:-1]).sum())
    return turnover, cost_rate * turnover


def step(
    drifted: np.ndarray,
    target: np.ndarray,
    relatives: np.ndarray,
    cost_rate: float,
    delisted_next: np.ndarray | None = None,
) -> StepResult:
    """Rebalance at the close of ``d`` and hold until the close of ``d+1``.

    Parameters
    ----------
    drifted : (N+1,) weights held at the close of ``d`` before trading.
    target : (N+1,) weights after trading at ``d`` (sum to 1, cash last).
    relatives : (N,) price relatives ``close[d+1] / close[d]``.
    cost_rate : proportional cost per unit of traded value (10 bps = 0.001).
    delisted_next : (N,) bool, assets with no price at ``d+1``; their value goes to cash.
    """
    turnover, cost = rebalance_cost(drifted, target, cost_rate)
    gross_parts = target[:-1] * relatives
    gross = float(gross_parts.sum() + target[-1])
    growth = (1.0 - cost) * gross
    if gross > 0:
        next_w = np.empty_like(target, dtype=np.float64)
        next_w[:-1] = gross_parts / gross
        next_w[-1] = target[-1] / gross
    else:  # everything lost; keep a valid simplex point
        next_w = np.zeros_like(target, dtype=np.float64)
        next_w[-1] = 1.0
    if delisted_next is not None and delisted_next.any():
        next_w[-1] += next_w[:-1][delisted_next].sum()
        next_w[:-1][delisted_next] = 0.0
    return StepResult(
        growth=growth,
        log_return=float(np.log(growth)) if growth > 0 else float("-inf"),
        turnover=turnover,
        cost=cost,
        next_weights=next_w,
    )


@dataclass(frozen=True)
class BatchStepResult:
    """:class:`StepResult` of K portfolios at once; every field has a leading K axis."""

    growth: np.ndarray  # (K,)
    log_return: np.ndarray  # (K,), -inf where everything was lost
    turnover: np.ndarray  # (K,)
    cost: np.ndarray  # (K,)
    next_weights: np.ndarray  # (K, N + 1), cash last


def restrict_to_tradable_batch(target: np.ndarray, tradable: np.ndarray) -> np.ndarray:
    """:func:`restrict_to_tradable` of K weight rows (K, N+1) with masks (K, N), in place."""
    risky = target[:, :-1]
    target[:, -1] += (risky * ~tradable).sum(axis=1)
    risky *= tradable  # zeros the blocked entries (cheaper than a boolean-mask assignment)
    return target


def step_batch(
    drifted: np.ndarray,
    target: np.ndarray,
    relatives: np.ndarray,
    cost_rate: float,
    delisted_next: np.ndarray | None = None,
) -> BatchStepResult:
    """:func:`step` for K portfolios in one set of numpy calls (the vectorized environment).

    Same rules, same order of operations, so each row agrees with :func:`step` on that row
    to rounding (the batched environment test checks 1e-12).

    Parameters
    ----------
    drifted, target : (K, N+1) weights, cash last.
    relatives : (K, N) price relatives of each portfolio's own date.
    cost_rate : proportional cost per unit of traded value.
    delisted_next : (K, N) bool, assets with no price at each portfolio's next date.
    """
    # Fast paths first: this runs once per vector step, and at K=64, N=10 numpy's per-call
    # overhead, not arithmetic, is the cost.
    traded = target[:, :-1] - drifted[:, :-1]
    np.abs(traded, out=traded)
    turnover = traded.sum(axis=1)
    cost = cost_rate * turnover
    gross_parts = target[:, :-1] * relatives
    gross = gross_parts.sum(axis=1)
    gross += target[:, -1]
    growth = (1.0 - cost) * gross
    next_w = np.empty_like(target, dtype=np.float64)
    alive = gross > 0
    if alive.all():
        np.divide(gross_parts, gross[:, None], out=next_w[:, :-1])
        np.divide(target[:, -1], gross, out=next_w[:, -1])
    else:  # everything lost in some rows; keep a valid simplex point there
        safe_gross = np.where(alive, gross, 1.0)
        np.divide(gross_parts, safe_gross[:, None], out=next_w[:, :-1])
        np.divide(target[:, -1], safe_gross, out=next_w[:, -1])
        next_w[~alive] = 0.0
        next_w[~alive, -1] = 1.0
    if delisted_next is not None and delisted_next.any():
        risky = next_w[:, :-1]
        next_w[:, -1] += (risky * delisted_next).sum(axis=1)
        risky *= ~delisted_next
    positive = growth > 0
    if positive.all():
        log_return = np.log(growth)
    else:
        log_return = np.full_like(growth, -np.inf)
        log_return[positive] = np.log(growth[positive])
    return BatchStepResult(
        growth=growth, log_return=log_return, turnover=turnover, cost=cost, next_weights=next_w
    )
