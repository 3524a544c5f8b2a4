from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from portfolio_pipeline.portfolio.strategies import (
    CLASSIC_STRATEGY_NAMES,
    EstimationCache,
    ExternalWeights,
    ForecastMeanVariance,
    MarketPanel,
    MaxSharpe,
    build_strategies,
    compute_target_weights,
)

SYMBOLS = ["BTCUSDT", "ETHUSDT", "PAXGUSDT", "XMRUSDT", "SOLUSDT"]
AS_OF = date(2024, 2, 10)
KW = {"lookback_days": 120, "min_history": 60}


@pytest.fixture(scope="module")
def slice_ohlcv(sample_ohlcv: pl.DataFrame) -> pl.DataFrame:
    return sample_ohlcv.filter(
        pl.col("symbol").is_in(SYMBOLS)
        & pl.col("date").is_between(date(2023, 9, 1), date(2024, 4, 30))
    )


def test_classic_strategies_sum_to_one_and_use_no_data_after_d(slice_ohlcv: pl.DataFrame) -> None:
    strategies = build_strategies(CLASSIC_STRATEGY_NAMES, **KW)
    truncated = compute_target_weights(slice_ohlcv, strategies, AS_OF)
    # Poison the future: scramble every close after d. Decisions at d must not move.
    rng = np.random.default_rng(1)
    poisoned = slice_ohlcv.with_columns(
        pl.when(pl.col("date") > AS_OF)
        .then(pl.col("close") * pl.lit(rng.uniform(0.2, 5.0, slice_ohlcv.height)))
        .otherwise(pl.col("close"))
        .alias("close")
    )
    panel = MarketPanel.from_ohlcv(poisoned)
    cache = EstimationCache()
    for strategy in strategies:
        weights = truncated.filter(pl.col("strategy") == strategy.name)
        assert weights.get_column("weight").sum() == pytest.approx(1.0, abs=1e-9), strategy.name
        assert weights.get_column("weight").min() >= 0
        full = strategy.decide(panel, panel.row_of(AS_OF), cache).weights
        by_symbol = dict(weights.select("symbol", "weight").iter_rows())
        expected = [by_symbol[s] for s in [*panel.symbols, "USDT"]]
        np.testing.assert_allclose(full, expected, atol=1e-7, err_msg=strategy.name)


def test_eligibility_excludes_delisted_and_short_history(slice_ohlcv: pl.DataFrame) -> None:
    # XMR stops on 2024-02-20: not eligible on 2024-03-01. With min_history 200 nothing
    # listed after mid-2023 in this slice qualifies.
    weights = compute_target_weights(
        slice_ohlcv, build_strategies(["equal_weight"], **KW), date(2024, 3, 1)
    )
    held = set(weights.filter(pl.col("weight") > 0).get_column("symbol"))
    assert held == {"BTCUSDT", "ETHUSDT", "PAXGUSDT", "SOLUSDT"}
    cash = compute_target_weights(
        slice_ohlcv,
        build_strategies(["equal_weight"], lookback_days=200, min_history=200),
        date(2023, 12, 1),
    )
    assert cash.filter(pl.col("symbol") == "USDT").get_column("weight").item() == 1.0
    assert "all cash" in cash.get_column("reason")[0]
    with pytest.raises(ValueError, match="no OHLCV rows on or before"):
        compute_target_weights(
            slice_ohlcv, build_strategies(["equal_weight"], **KW), date(2020, 1, 1)
        )


def _falling_market(days: int = 120) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    rows = []
    for k, symbol in enumerate(["AUSDT", "BUSDT", "CUSDT"]):
        log_path = np.cumsum(-0.01 + 0.02 * rng.standard_normal(days)) + 3 + k
        for i, lp in enumerate(log_path):
            rows.append(
                {
                    "symbol": symbol,
                    "date": date(2024, 1, 1) + timedelta(days=i),
                    "close": float(np.exp(lp)),
                }
            )
    return pl.DataFrame(rows)


def test_solver_failure_falls_back_with_reason() -> None:
    ohlcv = _falling_market()
    panel = MarketPanel.from_ohlcv(ohlcv)
    estimate = EstimationCache().estimate(panel, panel.row_of(date(2024, 4, 29)), 100, 60)
    assert (estimate.mu < 0).all()  # every asset under-performs cash: no tangency portfolio
    decision = (
        MaxSharpe(lookback_days=100, min_history=60)
        .fit()
        .decide(panel, panel.row_of(date(2024, 4, 29)))
    )
    assert "max_sharpe failed" in decision.reason and "inverse volatility" in decision.reason
    assert decision.weights.sum() == pytest.approx(1.0)
    inv = 1 / estimate.volatility
    np.testing.assert_allclose(decision.weights[:-1], inv / inv.sum(), rtol=1e-12)


def _naive_forecasts(day: date, q50: dict[str, float], width: dict[str, float]) -> pl.DataFrame:
    """A naive stand-in for CatBoost output (NOT model results): hand-set quantiles."""
    return pl.DataFrame(
        {
            "as_of": [day] * len(q50),
            "symbol": list(q50),
            "horizon_days": [7] * len(q50),
            "q10": [q50[s] - width[s] / 2 for s in q50],
            "q50": list(q50.values()),
            "q90": [q50[s] + width[s] / 2 for s in q50],
        }
    )


def test_forecast_mean_variance_uses_interval_width(slice_ohlcv: pl.DataFrame) -> None:
    panel = MarketPanel.from_ohlcv(slice_ohlcv.filter(pl.col("date") <= AS_OF))
    row = panel.row_of(AS_OF)
    index = {s: i for i, s in enumerate(panel.symbols)}
    q50 = {"BTCUSDT": 0.05, "ETHUSDT": 0.05, "PAXGUSDT": -0.02}
    narrow = _naive_forecasts(AS_OF, q50, {"BTCUSDT": 0.02, "ETHUSDT": 0.02, "PAXGUSDT": 0.02})
    wide_eth = _naive_forecasts(AS_OF, q50, {"BTCUSDT": 0.02, "ETHUSDT": 0.08, "PAXGUSDT": 0.02})
    w_narrow = ForecastMeanVariance(**KW).fit(narrow).decide(panel, row).weights
    w_wide = ForecastMeanVariance(**KW).fit(wide_eth).decide(panel, row).weights
    assert w_narrow.sum() == pytest.approx(1.0) and w_wide.sum() == pytest.approx(1.0)
    assert w_narrow[index["PAXGUSDT"]] == 0  # negative penalised mean: not bought
    assert w_narrow[index["SOLUSDT"]] == 0  # no forecast: no weight
    assert w_wide[index["ETHUSDT"]] < w_narrow[index["ETHUSDT"]]  # uncertainty costs weight
    bearish = _naive_forecasts(AS_OF, {"BTCUSDT": -0.05}, {"BTCUSDT": 0.02})
    assert ForecastMeanVariance(**KW).fit(bearish).decide(panel, row).weights[-1] == pytest.approx(
        1.0
    )
    stale = ForecastMeanVariance(**KW).fit(
        _naive_forecasts(AS_OF - timedelta(days=30), q50, {s: 0.02 for s in q50})
    )
    assert "fell back to inverse volatility" in stale.decide(panel, row).reason


def test_external_weights_hook(slice_ohlcv: pl.DataFrame) -> None:
    policy = pl.DataFrame(
        {
            "as_of": [date(2024, 2, 1)] * 3,
            "symbol": ["BTCUSDT", "XMRUSDT", "USDT"],
            "weight": [0.6, 0.3, 0.1],
        }
    )
    panel = MarketPanel.from_ohlcv(slice_ohlcv)
    strategy = ExternalWeights(name="drl_ppo").fit(policy)
    before = strategy.decide(panel, panel.row_of(date(2024, 1, 15)))
    assert before.weights[-1] == 1.0 and "no external weights" in before.reason
    after_delisting = strategy.decide(panel, panel.row_of(date(2024, 3, 1)))
    assert after_delisting.weights[panel.symbols.index("BTCUSDT")] == pytest.approx(0.6)
    assert after_delisting.weights[-1] == pytest.approx(0.4)
    assert "XMRUSDT" in after_delisting.reason
    bad = policy.with_columns(pl.col("weight") * 2)
    with pytest.raises(ValueError, match="2024-02-01 must be >= 0 and sum to 1"):
        ExternalWeights().fit(bad)


def test_unknown_strategy_name() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'magic'"):
        build_strategies(["magic"])


def test_estimator_contract_parameters_in_init_data_in_fit(slice_ohlcv: pl.DataFrame) -> None:
    """__init__ stores parameters only; fit takes the data and returns self; the decision memo
    lives in the fitted object, so refitting on new data can never serve a stale decision."""
    panel = MarketPanel.from_ohlcv(slice_ohlcv.filter(pl.col("date") <= AS_OF))
    row = panel.row_of(AS_OF)
    strategy = ForecastMeanVariance(risk_aversion=-1.0, **KW)  # invalid, but only stored
    assert strategy.risk_aversion == -1.0 and not hasattr(strategy, "forecasts_")
    bullish = _naive_forecasts(AS_OF, {"BTCUSDT": 0.05}, {"BTCUSDT": 0.02})
    with pytest.raises(ValueError, match="risk_aversion must be > 0"):
        strategy.fit(bullish)
    strategy.risk_aversion = 2.0
    with pytest.raises(ValueError, match="not fitted"):
        strategy.decide(panel, row)
    assert strategy.fit(bullish) is strategy and strategy.horizon_days_ == 7
    invested = strategy.decide(panel, row)
    assert invested.weights[-1] < 1.0 and set(strategy.decisions_) == {row}
    # The same object refitted on other data (a frame that may even reuse the freed frame's
    # memory) answers from the new data: fit starts a new memo.
    bearish = _naive_forecasts(AS_OF, {"BTCUSDT": -0.05}, {"BTCUSDT": 0.02})
    assert strategy.fit(bearish).decide(panel, row).weights[-1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="takes no data"):
        MaxSharpe(**KW).fit(bullish)
    with pytest.raises(ValueError, match="needs a frame"):
        ExternalWeights().fit(None)


def test_memo_and_estimates_follow_one_panel(slice_ohlcv: pl.DataFrame) -> None:
    early = MarketPanel.from_ohlcv(slice_ohlcv.filter(pl.col("date") <= AS_OF))
    late = MarketPanel.from_ohlcv(slice_ohlcv)
    (strategy,) = build_strategies(["inverse_volatility"], **KW)
    cache = EstimationCache()
    first = strategy.decide(early, early.row_of(AS_OF), cache)
    assert cache.panel is early and strategy.panel_ is early
    with pytest.raises(ValueError, match="serves another MarketPanel"):
        strategy.decide(late, late.row_of(AS_OF), cache)
    # another panel: a fresh memo (the row numbers differ in meaning), same answer for AS_OF
    again = strategy.decide(late, late.row_of(AS_OF), EstimationCache())
    assert strategy.panel_ is late and list(strategy.decisions_) == [late.row_of(AS_OF)]
    np.testing.assert_array_equal(first.weights, again.weights)


def test_fast_paths_equal_skfolio_to_the_last_bit(sample_ohlcv: pl.DataFrame) -> None:
    """The HRP variance shortcut and the one-check Ledoit-Wolf give skfolio's own numbers."""
    from skfolio.moments import LedoitWolf
    from skfolio.optimization import HierarchicalRiskParity as SkfolioHRP

    from portfolio_pipeline.portfolio.strategies import HierarchicalRiskParity, estimate_moments
    from portfolio_pipeline.portfolio.strategies.optimizer import _precomputed_prior

    panel = MarketPanel.from_ohlcv(sample_ohlcv.filter(pl.col("date") <= date(2024, 6, 30)))
    hrp = HierarchicalRiskParity().fit()
    for day in (date(2022, 5, 12), date(2023, 3, 10), date(2024, 6, 30)):
        est = estimate_moments(panel, panel.row_of(day), 365, 180)
        assert est.assets.size >= 10
        np.testing.assert_array_equal(
            est.covariance, LedoitWolf().fit(est.window_returns).covariance_
        )
        reference = SkfolioHRP(prior_estimator=_precomputed_prior(est.mu, est.covariance))
        np.testing.assert_array_equal(
            hrp._optimise(est), reference.fit(est.window_returns).weights_
        )
