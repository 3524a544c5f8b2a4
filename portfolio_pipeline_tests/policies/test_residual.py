"""Residual policies: a zero tilt is the base strategy, the base is causal, seeds ensemble."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from portfolio_pipeline.policies import drl
from portfolio_pipeline.policies.env import PortfolioEnv
from portfolio_pipeline.policies.env_data import EnvData, EnvDataError, build_env_data
from portfolio_pipeline.policies.evaluation import (
    evaluate_base_strategy,
    evaluate_policy_window,
    policy_target_weights,
)
from portfolio_pipeline.policies.residual import (
    base_strategy,
    base_weights,
    choose_base_strategy,
    ensemble_weights,
    with_base_weights,
)
from portfolio_pipeline.policies.splits import Splits, decision_window
from portfolio_pipeline.portfolio.backtest import run_backtest
from portfolio_pipeline.portfolio.strategies import MarketPanel, build_strategies

UNIVERSE = ("BTCUSDT", "ETHUSDT", "XMRUSDT", "LTCUSDT")
BASE_START = date(2023, 1, 4)  # a Wednesday: the first decision is off the weekly cycle
SPLITS = Splits(
    train_start=BASE_START,
    tune_start=date(2023, 8, 1),
    train_end=date(2023, 10, 1),
    val_end=date(2024, 1, 1),
    test_end=date(2024, 4, 1),
)
ENV_KWARGS = {"lookback": 5, "cost_rate": 0.001, "residual": True, "residual_scale": 0.1}


@pytest.fixture(scope="module")
def ohlcv(sample_ohlcv: pl.DataFrame) -> pl.DataFrame:
    return sample_ohlcv.filter(
        pl.col("symbol").is_in(UNIVERSE) & (pl.col("date") >= date(2022, 1, 1))
    )


@pytest.fixture(scope="module")
def env_data(ohlcv: pl.DataFrame) -> EnvData:
    return with_base_weights(build_env_data(ohlcv, None), ohlcv, "min_variance", BASE_START)


def test_zero_action_is_the_base_strategys_backtest(ohlcv: pl.DataFrame, env_data: EnvData):
    """Held through the env with zero actions, the base weights book the backtest's daily
    returns net of 10 bps (weekly rebalancing, drift in between, XMR delisted on the way)."""
    end = date(2024, 3, 31)
    (strategy,) = build_strategies(("min_variance",))
    backtest = run_backtest(ohlcv, strategy, BASE_START, end, "weekly", cost_bps=10.0)
    evaluation = evaluate_base_strategy(
        env_data, decision_window((BASE_START, end + timedelta(days=1))), env_kwargs=ENV_KWARGS
    )
    assert evaluation.dates == backtest.equity["date"].to_list()
    np.testing.assert_allclose(
        evaluation.net_returns, backtest.equity["daily_return"].to_numpy(), rtol=0, atol=1e-10
    )
    assert backtest.equity["turnover"].to_numpy()[1:].sum() > 0  # it rebalances after day one


def test_base_weights_at_d_use_rows_up_to_d_only(ohlcv: pl.DataFrame, env_data: EnvData):
    """Poison every price after d: the base weights and the observation at d do not move."""
    cut = date(2023, 6, 14)
    rng = np.random.default_rng(0)
    later = pl.col("date") > cut
    poisoned = ohlcv.with_columns(
        pl.when(later)
        .then(pl.col("close") * pl.Series(rng.uniform(0.2, 5.0, ohlcv.height)))
        .otherwise(pl.col("close"))
        .alias("close")
    )
    other = with_base_weights(build_env_data(poisoned, None), poisoned, "min_variance", BASE_START)
    row = env_data.index_of(cut, 0)
    np.testing.assert_array_equal(other.base_weights[: row + 1], env_data.base_weights[: row + 1])
    assert not np.allclose(other.base_weights[row + 1 :], env_data.base_weights[row + 1 :])
    window = (cut, date(2023, 7, 1))
    settings = {k: v for k, v in ENV_KWARGS.items() if k != "cost_rate"}
    observed, _ = PortfolioEnv(env_data, window, **settings).reset(seed=0)
    observed_poisoned, _ = PortfolioEnv(other, window, **settings).reset(seed=0)
    np.testing.assert_array_equal(observed, observed_poisoned)


def test_base_weights_enter_the_observation(env_data: EnvData):
    env = PortfolioEnv(env_data, (date(2023, 6, 1), date(2023, 7, 1)), lookback=5, residual=True)
    plain = PortfolioEnv(env_data, (date(2023, 6, 1), date(2023, 7, 1)), lookback=5)
    observation, _ = env.reset(seed=0)
    assert env.observation_layout.per_asset_blocks == (
        *plain.observation_layout.per_asset_blocks,
        1,
    )
    row = env.current_index
    np.testing.assert_array_equal(
        observation[-env_data.n_assets :], env_data.base_weights[row, :-1].astype(np.float32)
    )
    assert env.observation_space.shape[0] == plain.observation_space.shape[0] + env_data.n_assets
    # A tilt moves the target away from the base; the long-only map keeps it a portfolio.
    tilt = np.zeros(env_data.n_assets + 1, np.float32)
    tilt[0] = 1.0
    target = env.target_weights(tilt)
    assert target[0] > env_data.base_weights[row, 0] and target.sum() == pytest.approx(1.0)
    with pytest.raises(EnvDataError, match="base_weights"):
        PortfolioEnv(build_env_data(env_data_frame(env_data), None), residual=True)


def env_data_frame(env_data: EnvData) -> pl.DataFrame:
    """A tiny OHLCV frame over the env data's first 30 dates (no base weights)."""
    rows = [
        {"symbol": s, "date": env_data.date_at(t), "close": float(env_data.prices[t, i])}
        for t in range(30)
        for i, s in enumerate(env_data.symbols)
        if np.isfinite(env_data.prices[t, i])
    ]
    return pl.DataFrame(rows)


def test_base_strategy_is_chosen_on_validation_only(ohlcv: pl.DataFrame):
    panel = MarketPanel.from_ohlcv(ohlcv)
    chosen = choose_base_strategy(panel, (date(2023, 1, 1), date(2023, 6, 30)), date(2023, 7, 1))
    assert chosen in {s.name for s in build_strategies()}
    with pytest.raises(ValueError, match="leak the test"):
        choose_base_strategy(panel, (date(2023, 1, 1), date(2023, 6, 30)), date(2023, 6, 1))
    with pytest.raises(ValueError, match="is not one of"):
        base_strategy("drl_a2c")
    env_data = build_env_data(ohlcv, None)
    weights = base_weights(panel, base_strategy("equal_weight"), env_data, date(2023, 1, 2))
    assert weights.shape == (len(env_data.dates), env_data.n_assets + 1)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    before = env_data.index_of(date(2023, 1, 1), 0) - 1
    assert (weights[:before, -1] == 1.0).all()  # all cash before the first decision
    from_the_start = base_weights(panel, base_strategy("equal_weight"), env_data, date(2000, 1, 1))
    # A start at (or before) the panel's first date decides first at row 0.
    np.testing.assert_allclose(from_the_start.sum(axis=1), 1.0)
    assert from_the_start[-1, :-1].sum() > 0


def test_ensemble_weights_are_the_seeds_mean():
    as_of = [date(2024, 1, 1)] * 3 + [date(2024, 1, 2)] * 3
    symbols = ["BTCUSDT", "ETHUSDT", "USDT"] * 2
    frames = [
        pl.DataFrame({"as_of": as_of, "symbol": symbols, "weight": w})
        for w in ([0.5, 0.5, 0.0, 0.2, 0.3, 0.5], [0.1, 0.6, 0.3, 0.0, 0.0, 1.0])
    ]
    ensemble = ensemble_weights(frames)
    assert ensemble.select("as_of", "symbol").equals(frames[0].select("as_of", "symbol"))
    np.testing.assert_allclose(ensemble["weight"], [0.3, 0.55, 0.15, 0.1, 0.15, 0.75])
    with pytest.raises(ValueError, match="other"):
        ensemble_weights([frames[0], frames[1].reverse()])


@pytest.mark.slow
def test_residual_policy_replays_exactly_in_the_backtest(ohlcv: pl.DataFrame, env_data: EnvData):
    """A residual policy's target weights, replayed by the backtest (daily), book the same
    net returns as the policy's evaluation over the test window."""
    params = {"n_steps": 16, "batch_size": 32, "n_epochs": 1, "net_arch": [16], "n_envs": 4}
    policy = drl.train_policy(
        "PPO", env_data, SPLITS.fit, params, 64, seed=1, env_kwargs=ENV_KWARGS
    )
    assert policy.env_kwargs["residual"] is True
    test_start, test_end = SPLITS.test
    evaluation = evaluate_policy_window(policy, env_data, decision_window(SPLITS.test))
    weights = policy_target_weights(policy, env_data, decision_window((SPLITS.val_end, None)))
    (strategy,) = build_strategies(
        (), external_weights={"drl_residual_ppo": weights}, external_rebalance="daily"
    )
    result = run_backtest(
        ohlcv, strategy, test_start, test_end - timedelta(days=1), "weekly", cost_bps=10.0
    )
    assert result.equity["date"].to_list() == evaluation.dates
    np.testing.assert_allclose(
        result.equity["daily_return"].to_numpy(), evaluation.net_returns, rtol=0, atol=1e-12
    )


@pytest.mark.slow
def test_five_seeds_give_five_registry_rows_and_an_ensemble(env_data: EnvData, tmp_path):
    from portfolio_pipeline.policies.retraining import train_best_with_seeds

    config = {
        "algorithm": "A2C",
        "params": {"n_steps": 5, "net_arch": [8], "n_envs": 4, "episode_length": 30},
        "env_kwargs": ENV_KWARGS,
        "total_timesteps": 80,
    }
    results = train_best_with_seeds(
        config, env_data, seeds=range(5), splits=SPLITS, artifact_dir=tmp_path, seed_backend="ray"
    )
    registry = results.registry
    assert registry.height == 5 and registry["seed"].to_list() == [0, 1, 2, 3, 4]
    # Seeds trained as parallel Ray tasks are the seeds trained one after another here.
    in_process = train_best_with_seeds(
        config, env_data, seeds=range(5), splits=SPLITS, artifact_dir=tmp_path / "seq",
        seed_backend="sequential",
    )  # fmt: skip
    for column in ("tune_sharpe", "val_sharpe", "test_sharpe", "ensemble_test_sharpe"):
        assert in_process.registry[column].to_list() == registry[column].to_list(), column
    assert (
        registry["deployed"].all() and registry["base_strategy"].to_list() == ["min_variance"] * 5
    )
    comparison = results.comparison
    assert set(comparison["name"]) >= {"ensemble", "base_min_variance", "equal_weight"}
    seeds_test = [
        evaluate_policy_window(p, env_data, decision_window(SPLITS.test)).weights
        for p in results.policies
    ]
    ensemble_test = comparison.filter((pl.col("name") == "ensemble") & (pl.col("window") == "test"))
    assert ensemble_test["sharpe"][0] == pytest.approx(registry["ensemble_test_sharpe"][0])
    assert len(seeds_test) == 5
    # The deployed weights: each saved seed replays its own episode; the ensemble holds the
    # mean of their target weights, date by date.
    from portfolio_pipeline.policies.deployment import ensemble_target_weights

    deployed = {"policy_id": "a2c-ens5", "residual": True}
    weights = ensemble_target_weights(registry, deployed, "drl_residual_a2c", env_data, SPLITS)
    window = decision_window((SPLITS.train_end, None))
    members = [policy_target_weights(p, env_data, window)["weight"] for p in results.policies]
    np.testing.assert_allclose(weights["weight"], np.mean(members, axis=0), rtol=0, atol=1e-15)
    assert set(weights["strategy"]) == {"drl_residual_a2c"}


def test_the_base_follows_the_backtests_rebalancing(ohlcv: pl.DataFrame):
    from portfolio_pipeline.market.windows import windows_from_dates
    from portfolio_pipeline.policies.residual import with_validation_base

    data = build_env_data(ohlcv, None)
    windows = windows_from_dates(ohlcv["date"].unique().to_list())
    weekly, monthly = (
        with_validation_base(data, ohlcv, windows, BASE_START, name="min_variance", rebalance=f)
        for f in ("weekly", "monthly")
    )
    start = data.index_of(BASE_START, 0)

    def changes(d):  # the days the base re-decides (beyond drift)
        return np.flatnonzero(np.abs(np.diff(d.base_weights[start:], axis=0)).sum(axis=1) > 0.02)

    assert len(changes(monthly)) < len(changes(weekly))
    assert monthly.base_strategy == weekly.base_strategy == "min_variance"
