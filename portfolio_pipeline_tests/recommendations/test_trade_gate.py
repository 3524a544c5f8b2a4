from __future__ import annotations

import math
from datetime import date

import numpy as np

from portfolio_pipeline.recommendations.gate import ForecastCalibration


def _scalar_match_moves(assets, wanted, cost_rate, gate):
    """The pair-by-pair walk the vectorised matcher replaced (issue 15), as the reference."""
    from portfolio_pipeline.recommendations.gate import z_value

    calibration, z, eps = gate.calibration, z_value(gate.confidence), 1e-12

    def leg_cost(a):
        return 0.0 if a.is_cash else cost_rate

    def median(a):
        return None if a.is_cash else a.mid

    by_symbol = {a.symbol: a for a in assets}
    candidates = [by_symbol[s] for s in wanted if by_symbol[s].tradable]
    buys = sorted(
        (a for a in candidates if wanted[a.symbol] > eps and a.expected is not None),
        key=lambda a: -(a.expected or 0.0),
    )
    sells = sorted(
        (a for a in candidates if wanted[a.symbol] < -eps and a.expected is not None),
        key=lambda a: a.expected or 0.0,
    )
    remaining = {a.symbol: -wanted[a.symbol] for a in sells}
    executed = dict.fromkeys(by_symbol, 0.0)
    best: dict[str, float] = {}
    partners: dict[str, list[str]] = {s: [] for s in by_symbol}
    for buy in buys:
        need = wanted[buy.symbol]
        for sell in sells:
            if need <= eps:
                break
            if remaining[sell.symbol] <= eps:
                continue
            mean, se = calibration.expected_advantage(median(buy), median(sell))
            margin = mean - z * se - (leg_cost(buy) + leg_cost(sell))
            for a in (buy, sell):
                best[a.symbol] = max(best.get(a.symbol, -math.inf), margin)
            if margin <= 0:
                continue
            amount = min(need, remaining[sell.symbol])
            need -= amount
            remaining[sell.symbol] -= amount
            executed[buy.symbol] += amount
            executed[sell.symbol] -= amount
            partners[buy.symbol].append(sell.symbol)
            partners[sell.symbol].append(buy.symbol)
    for sell in sells:
        left = remaining[sell.symbol]
        if sell.is_cash or left <= eps:
            continue
        mean, se = calibration.expected_advantage(None, median(sell))
        margin = mean - z * se - leg_cost(sell)
        best[sell.symbol] = max(best.get(sell.symbol, -math.inf), margin)
        if margin > 0:
            executed[sell.symbol] -= left
            partners[sell.symbol].append(assets[-1].symbol)
    return executed, best, partners


def test_vectorised_gate_matching_equals_the_pair_by_pair_walk() -> None:
    trading_days = sum(_matching_agrees(seed) for seed in range(60))
    assert trading_days >= 20  # the comparison covers days with trades, not only refusals


def _matching_agrees(seed: int) -> bool:
    """Random day: the matcher equals the reference exactly; True when something traded."""
    from portfolio_pipeline.recommendations.moves import AssetMove
    from portfolio_pipeline.recommendations.trade_gate import GateSettings, match_moves

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    assets = []
    for i in range(n):
        mid = float(rng.normal(0, 0.03))
        assets.append(
            AssetMove(
                symbol=f"S{i:02d}",
                price=1.0,
                current=0.0,
                raw_target=0.0,
                tradable=bool(rng.random() > 0.1),
                why_untradable="",
                mid=None if rng.random() < 0.05 else mid,
                expected=None if rng.random() < 0.1 else float(rng.normal(0, 0.02)),
            )
        )
    assets.append(AssetMove("USDT", 1.0, 0.0, 0.0, True, "", expected=0.0, cash_symbol="USDT"))
    for a in assets[:-1]:
        a.cash_symbol = "USDT"
    deltas = rng.normal(0, 0.02, n) * (rng.random(n) > 0.2)
    wanted = {a.symbol: float(d) for a, d in zip(assets[:-1], deltas, strict=True)}
    wanted["USDT"] = -sum(wanted.values())
    calibration = ForecastCalibration(
        intercept=float(rng.normal(0, 0.002)),
        slope=float(rng.uniform(-0.5, 1.5)),
        covariance=np.array([[1e-6, 2e-7], [2e-7, float(rng.uniform(1e-4, 1e-1))]]),
        horizon=8,
        n_rows=1000,
        n_dates=500,
        first_issue=date(2024, 1, 1),
        last_issue=date(2025, 12, 20),
    )
    gate = GateSettings(calibration, confidence=float(rng.choice([0.5, 0.6, 0.75, 0.9])))
    cost = float(rng.choice([0.0, 0.0005, 0.001, 0.0025]))
    expected = _scalar_match_moves(assets, wanted, cost, gate)
    executed, best, partners = match_moves(assets, wanted, cost, gate)
    assert executed == expected[0]  # exact: the same floating-point operations
    assert best == expected[1]
    assert partners == expected[2]
    return any(expected[2].values())
