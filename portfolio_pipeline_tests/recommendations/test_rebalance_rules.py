"""The portfolio-level rules on hand-built cases (issue 22)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pytest

from portfolio_pipeline.recommendations import rebalance_rules
from portfolio_pipeline.recommendations.decision import recommend
from portfolio_pipeline.recommendations.rebalance_rules import (
    BandEdge,
    CostAware,
    DayProblem,
    RiskModel,
    band_half_width,
    decide,
)
from portfolio_pipeline.recommendations.rule_decision import RuleContext

SIGMA = 0.04  # daily volatility of the hand-built assets
HORIZON = 8


def _problem(current, target, *, cost=0.0, expected=None, se=None, cov=None) -> DayProblem:
    current, target = np.asarray(current, float), np.asarray(target, float)
    n = current.size
    return DayProblem(
        current=current,
        target=target,
        tradable=np.ones(n, dtype=bool),
        covariance=cov if cov is not None else np.eye(n) * SIGMA**2,
        expected=np.zeros(n) if expected is None else np.asarray(expected, float),
        expected_se=np.full(n, math.inf) if se is None else np.asarray(se, float),
        cost_rate=cost,
        impact=np.zeros(n),
        horizon=HORIZON,
        periods_per_year=365.0,
    )


def test_no_skill_and_no_costs_moves_to_the_target() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0, 0.03, (300, 6))
    target = np.array([0.3, 0.2, 0.1, 0.1, 0.05, 0.05])
    outcome = decide(
        _problem([0.05, 0.0, 0.4, 0.2, 0.1, 0.15], target, cov=np.cov(returns.T)), CostAware()
    )
    assert outcome.weights is not None
    np.testing.assert_allclose(outcome.weights, target, atol=1e-6)
    assert outcome.tracking_error_after < 1e-4 < outcome.tracking_error_before


def test_with_costs_it_stops_at_the_band_edge() -> None:
    # One risky asset: the marginal risk removed, 2 gamma H sigma^2 (x* - x), equals the cost c
    # at x = x* - c / (2 gamma H sigma^2): the buy stops there, not at the target.
    rule, cost = CostAware(risk_aversion=2.0), 0.001
    outcome = decide(_problem([0.2], [0.5], cost=cost), rule)
    edge = 0.5 - cost / (2 * rule.risk_aversion * HORIZON * SIGMA**2)
    assert outcome.weights is not None
    assert outcome.weights[0] == pytest.approx(edge, abs=1e-5)
    assert 0.2 < edge < 0.5
    # already inside that edge: no trade at all
    inside = decide(_problem([edge + 0.01], [0.5], cost=cost), rule)
    assert inside.weights is not None and inside.weights[0] == pytest.approx(edge + 0.01)


def test_a_trade_that_lowers_risk_passes_without_any_expected_return() -> None:
    # BTC-like position far above its target, no forecast at all: the risk it removes pays for
    # the cost, so most of the way is traded.
    outcome = decide(_problem([0.355, 0.088], [0.055, 0.527], cost=0.001), CostAware())
    assert outcome.weights is not None
    assert outcome.weights[0] < 0.1 and outcome.weights[1] > 0.45
    assert outcome.tracking_error_after < outcome.tracking_error_before / 3


def test_a_pure_noise_forecast_adds_no_trade() -> None:
    # At target; a forecast of +1% whose error is 2% carries nothing at 90% confidence ...
    noisy = decide(
        _problem([0.3, 0.3], [0.3, 0.3], cost=0.001, expected=[0.01, 0.0], se=[0.02, 1]),
        CostAware(),
    )
    assert noisy.weights is not None
    np.testing.assert_allclose(noisy.weights, [0.3, 0.3], atol=1e-7)
    # ... while the same forecast known precisely does move the portfolio (the test can fail)
    sure = decide(
        _problem([0.3, 0.3], [0.3, 0.3], cost=0.001, expected=[0.01, 0.0], se=[1e-4, 1]),
        CostAware(),
    )
    assert sure.weights is not None and sure.weights[0] > 0.31


def test_the_direct_qp_equals_the_cvxpy_formulation() -> None:
    rng = np.random.default_rng(7)
    cov = np.cov(rng.normal(0, 0.02, (200, 12)).T)
    problem = _problem(
        rng.dirichlet(np.ones(12)) * 0.9,
        rng.dirichlet(np.ones(12)) * 0.95,
        cost=0.001,
        expected=rng.normal(0, 0.01, 12),
        se=np.abs(rng.normal(0, 0.005, 12)),
        cov=cov,
    )
    rule = CostAware(risk_aversion=2.0, cost_multiplier=1.0, confidence=0.9)
    direct = rebalance_rules._solve_qp(problem, rule)
    compiled = rebalance_rules._solve_cvxpy(problem, rule, impact=False)
    assert direct is not None and compiled is not None
    np.testing.assert_allclose(direct, compiled, atol=1e-7)
    assert np.abs(direct - problem.current).max() > 1e-3  # the case trades


def test_the_impact_term_trades_less() -> None:
    base = _problem([0.1, 0.1], [0.45, 0.45], cost=0.001)
    costly = DayProblem(**{**base.__dict__, "impact": np.full(2, 0.05)})
    plain = decide(base, CostAware())
    with_impact = decide(costly, CostAware(impact=True))
    assert plain.weights is not None and with_impact.weights is not None
    assert np.all(with_impact.weights < plain.weights - 1e-3)


def test_band_edge_trades_to_the_edge_and_holds_inside() -> None:
    rule = BandEdge(risk_aversion=1.0)
    target = np.array([0.5, 0.3])
    width = band_half_width(target, 0.001, rule.risk_aversion)
    assert np.all(width > 0)
    outside = decide(_problem([0.1, 0.3 + width[1] / 2], target, cost=0.001), rule)
    assert outside.weights is not None
    assert outside.weights[0] == pytest.approx(0.5 - width[0])  # the edge, not the target
    assert outside.weights[1] == pytest.approx(0.3 + width[1] / 2)  # inside: untouched


HOLDINGS = pl.DataFrame({"symbol": ["AUSDT", "USDT"], "quantity": [10.0, 1000.0]})
PRICES = pl.DataFrame(
    {"symbol": ["AUSDT", "BUSDT"], "price": [100.0, 20.0], "trading": [True, True]}
)
TARGET = pl.DataFrame({"symbol": ["AUSDT", "BUSDT", "USDT"], "weight": [0.1, 0.6, 0.3]})
RISK = RiskModel(("AUSDT", "BUSDT"), np.diag([SIGMA**2, SIGMA**2]), HORIZON)


def _recommend(rule) -> pl.DataFrame:
    return recommend(
        HOLDINGS,
        PRICES,
        TARGET,
        None,
        cost_bps=10,
        min_notional=0,
        turnover_cap=None,
        liquidity=None,
        as_of=date(2025, 12, 31),
        strategy="hrp",
        run_id="r",
        generated_at=datetime(2026, 1, 1, tzinfo=UTC),
        rule=RuleContext(rule, RISK, None, None),
    )


def test_every_traded_row_explains_itself_in_money() -> None:
    frame = _recommend(CostAware())
    rows = {r["symbol"]: r for r in frame.iter_rows(named=True)}
    assert rows["BUSDT"]["action"] == "BUY" and rows["AUSDT"]["action"] == "SELL"
    for symbol in ("AUSDT", "BUSDT"):
        reason = rows[symbol]["reason"]
        assert "removes tracking risk worth" in reason and "costs" in reason and "USDT" in reason
    assert abs(frame["target_weight"].sum() - 1.0) < 1e-9


def test_a_solver_failure_is_a_hold_with_its_reason(monkeypatch) -> None:
    def broken(problem, rule):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(rebalance_rules, "_solve", broken)
    frame = _recommend(CostAware())
    assert set(frame["action"]) == {"HOLD"}
    risky = frame.filter(pl.col("symbol") != "USDT")
    assert all("optimiser failed" in r and "solver exploded" in r for r in risky["reason"])
    # the weights stay where they are: never a silent target
    assert risky["target_weight"].to_list() == pytest.approx(risky["current_weight"].to_list())


def test_an_infeasible_day_is_a_hold_too(monkeypatch) -> None:
    monkeypatch.setattr(rebalance_rules, "_solve", lambda problem, rule: None)
    frame = _recommend(CostAware())
    assert set(frame["action"]) == {"HOLD"}
    assert "no solution" in frame.filter(pl.col("symbol") == "BUSDT")["reason"][0]


def test_a_day_without_a_risk_model_is_a_hold_naming_why() -> None:
    frame = recommend(
        HOLDINGS, PRICES, TARGET, None, cost_bps=10, min_notional=0, turnover_cap=None,
        liquidity=None, as_of=date(2025, 12, 31), strategy="drl", run_id="r",
        generated_at=datetime(2026, 1, 1, tzinfo=UTC),
        rule=RuleContext(CostAware(), None, None, None, risk_failure="no risk model for drl"),
    )  # fmt: skip
    assert set(frame["action"]) == {"HOLD"}
    assert "no risk model for drl" in frame.filter(pl.col("symbol") == "BUSDT")["reason"][0]


def test_a_failed_estimate_becomes_a_reason_and_external_weights_use_the_default_window(
    sample_ohlcv,
) -> None:
    from portfolio_pipeline.portfolio.strategies import (
        DEFAULT_LOOKBACK_DAYS,
        EstimationCache,
        ExternalWeights,
        MarketPanel,
    )
    from portfolio_pipeline.recommendations.processes import SimulationSettings
    from portfolio_pipeline.recommendations.replay_inputs import risk_inputs

    ohlcv = sample_ohlcv.filter(
        pl.col("symbol").is_in(["BTCUSDT", "ETHUSDT", "XRPUSDT"])
        & pl.col("date").is_between(date(2022, 1, 1), date(2023, 6, 30))
    )
    panel = MarketPanel.from_ohlcv(ohlcv)
    settings = SimulationSettings()
    row = len(panel.dates) - 1
    risk, failure = risk_inputs(panel, row, ExternalWeights("drl"), EstimationCache(), settings)
    assert failure == "" and risk is not None and len(risk.symbols) == 3
    # the window the classic strategies use, not external weights' two placeholder rows
    cache = EstimationCache()
    risk_inputs(panel, row, ExternalWeights("drl"), cache, settings)
    assert any(DEFAULT_LOOKBACK_DAYS in key for key in cache.estimates)
    # constant prices have zero variance: the estimate fails, and says so instead of crashing
    flat = ohlcv.with_columns(pl.lit(1.0).alias("close"))
    flat_panel = MarketPanel.from_ohlcv(flat)
    risk, failure = risk_inputs(
        flat_panel, row, ExternalWeights("drl"), EstimationCache(), settings
    )
    assert risk is None and failure.startswith("no risk model for drl on 2023-06-30")
