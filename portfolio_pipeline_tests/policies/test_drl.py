from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from portfolio_pipeline.policies import drl
from portfolio_pipeline.policies.env_data import EnvData, build_env_data
from portfolio_pipeline.policies.evaluation import (
    evaluate_policy_window,
    policy_target_weights,
)
from portfolio_pipeline.policies.splits import Splits, decision_window

UNIVERSE = ("BTCUSDT", "ETHUSDT", "XMRUSDT")
SPLITS = Splits(
    train_start=date(2023, 3, 1),
    tune_start=date(2023, 8, 1),
    train_end=date(2023, 10, 1),
    val_end=date(2024, 1, 1),
    test_end=date(2024, 4, 1),
)
ENV_KWARGS = {"lookback": 5, "cost_rate": 0.001}
TINY_PPO = {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "net_arch": [16], "episode_length": 60}


@pytest.fixture(scope="module")
def env_data(sample_ohlcv: pl.DataFrame) -> EnvData:
    ohlcv = sample_ohlcv.filter(
        pl.col("symbol").is_in(UNIVERSE) & (pl.col("date") >= date(2022, 12, 1))
    )
    return build_env_data(ohlcv, None)


@pytest.fixture(scope="module")
def ppo_policy(env_data: EnvData) -> drl.TrainedPolicy:
    return drl.train_policy(
        "PPO", env_data, SPLITS.train, TINY_PPO, 128, seed=3, env_kwargs=ENV_KWARGS
    )


def test_splits_and_device(sample_ohlcv):
    splits = Splits.from_dates(sample_ohlcv["date"].unique().to_numpy())
    assert splits.train[1] == splits.validation[0] == date(2023, 1, 1)
    assert splits.validation[1] == splits.test[0] == date(2024, 1, 1)
    assert splits.test[1] == date(2026, 1, 1)
    # The DRL is fitted and tuned inside the training window, never on validation.
    assert splits.fit == (date(2017, 8, 17), date(2022, 1, 1))  # from the first day of data
    assert splits.tune == (date(2022, 1, 1), date(2023, 1, 1))
    assert replace(splits, tune_start=None).tune == splits.validation
    assert decision_window(splits.test) == (date(2023, 12, 31), date(2026, 1, 1))
    with pytest.raises(ValueError, match="splits must satisfy"):
        Splits(date(2018, 1, 1), date(2024, 6, 1), date(2024, 1, 1), date(2026, 1, 1))
    with pytest.raises(ValueError, match="train_start < tune_start < train_end"):
        Splits(
            date(2018, 1, 1), date(2023, 1, 1), date(2024, 1, 1), date(2026, 1, 1), date(2023, 6, 1)
        )
    import torch

    assert drl.select_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert drl.select_device("cpu") == "cpu"


def test_algorithm_kwargs_filters_and_rejects():
    kwargs = drl.algorithm_kwargs("SAC", {"clip_range": 0.1, "tau": 0.01, "net_arch": [8]}, 500, 4)
    assert kwargs["tau"] == 0.01 and "clip_range" not in kwargs  # a PPO-only key is dropped
    assert kwargs["policy_kwargs"] == {"net_arch": [8]}
    assert kwargs["buffer_size"] == 1_000 and kwargs["learning_starts"] == 50
    ddpg = drl.algorithm_kwargs("DDPG", {"action_noise_sigma": 0.3}, 500, 4)
    assert np.allclose(ddpg["action_noise"]._sigma, 0.3)
    with pytest.raises(ValueError, match=r"unknown hyperparameters \['learning_rat'\]"):
        drl.algorithm_kwargs("PPO", {"learning_rat": 1e-3}, 500, 4)
    with pytest.raises(ValueError, match="not one of PPO, A2C, SAC, DDPG"):
        drl.train_policy("DQN", None, SPLITS.train, {}, 10, 0)


def test_budget_is_what_is_trained(env_data: EnvData):
    """A tiny budget trains that many timesteps, one environment or a batch of them."""
    params = drl.fit_rollout_to_budget("PPO", {**TINY_PPO, "n_envs": 8, "n_steps": 64}, 96)
    assert params["n_steps"] == 12 and params["batch_size"] == 32  # 12 x 8 = 96 <= budget
    policy = drl.train_policy(
        "PPO", env_data, SPLITS.fit, params, 96, seed=0, env_kwargs=ENV_KWARGS
    )
    assert policy.total_timesteps == 96 and policy.model.num_timesteps == 96
    assert policy.model.get_env().num_envs == 8
    a2c = drl.fit_rollout_to_budget("A2C", {"n_steps": 5, "n_envs": 4, "net_arch": [8]}, 50)
    assert a2c["n_steps"] == 5  # 4 does not divide 50: whole rollouts of 20 round it up
    policy = drl.train_policy("A2C", env_data, SPLITS.fit, a2c, 50, seed=0, env_kwargs=ENV_KWARGS)
    assert policy.total_timesteps == 60
    assert drl.fit_rollout_to_budget("A2C", {"n_steps": 5, "n_envs": 4}, 64)["n_steps"] == 4
    assert drl.fit_rollout_to_budget("SAC", {"n_envs": 4}, 10) == {"n_envs": 4}
    with pytest.raises(ValueError, match="n_envs must be >= 1"):
        drl.train_policy("PPO", env_data, SPLITS.fit, {"n_envs": 0}, 8, seed=0)


def test_backtest_replays_what_the_policy_evaluation_scored(env_data: EnvData, sample_ohlcv):
    """The DRL strategy in the backtest trades daily, as the policy acts, and books the same
    net returns as the policy's evaluation over the same days (weekly run or not)."""
    from portfolio_pipeline.portfolio.backtest import run_backtest
    from portfolio_pipeline.portfolio.strategies import build_strategies

    params = {**TINY_PPO, "n_envs": 4, "n_steps": 16}
    policy = drl.train_policy(
        "PPO", env_data, SPLITS.fit, params, 64, seed=1, env_kwargs=ENV_KWARGS
    )
    test_start, test_end = SPLITS.test
    evaluation = evaluate_policy_window(
        policy, env_data, decision_window(SPLITS.test), cost_rate=0.001
    )
    weights = policy_target_weights(policy, env_data, decision_window((SPLITS.val_end, None)))
    (strategy,) = build_strategies(
        (), external_weights={"drl_ppo": weights}, external_rebalance="daily"
    )
    ohlcv = sample_ohlcv.filter(pl.col("symbol").is_in(UNIVERSE))
    result = run_backtest(
        ohlcv, strategy, test_start, test_end - timedelta(days=1), "weekly", cost_bps=10.0
    )
    assert result.metrics["rebalance"] == "daily"
    assert result.equity["date"].to_list() == evaluation.dates
    np.testing.assert_allclose(
        result.equity["daily_return"].to_numpy(), evaluation.net_returns, rtol=0, atol=1e-12
    )
    assert result.metrics["sharpe"] == pytest.approx(evaluation.sharpe, rel=1e-9)
    assert result.equity["turnover"].to_numpy()[1:].sum() > 0  # it does trade after day one


@pytest.mark.slow
def test_train_evaluate_save_load(ppo_policy: drl.TrainedPolicy, env_data: EnvData, tmp_path):
    assert ppo_policy.device in ("cpu", "cuda") and ppo_policy.algorithm == "PPO"
    assert ppo_policy.train_window == SPLITS.train
    result = evaluate_policy_window(ppo_policy, env_data, SPLITS.validation)
    first, stop = env_data.window_indices(*SPLITS.validation)
    assert len(result.net_returns) == stop - first - 1
    assert np.isfinite(result.sharpe)
    assert result.total_return == pytest.approx(np.prod(1 + result.net_returns) - 1)
    np.testing.assert_allclose(result.weights.sum(axis=1), 1.0)
    assert (result.weights >= 0).all()

    with pytest.raises(ValueError, match=r"shape \(124,\) but this env data gives \(724,\)"):
        evaluate_policy_window(ppo_policy.model, env_data, SPLITS.validation)  # lookback 30

    path = ppo_policy.save(tmp_path / "policy")
    reloaded = drl.TrainedPolicy.load(path, device="cpu")
    assert reloaded.env_kwargs == ppo_policy.env_kwargs
    again = evaluate_policy_window(reloaded, env_data, SPLITS.validation)
    np.testing.assert_array_equal(again.net_returns, result.net_returns)


@pytest.mark.slow
def test_training_is_reproducible_per_seed(ppo_policy: drl.TrainedPolicy, env_data: EnvData):
    same = drl.train_policy(
        "PPO", env_data, SPLITS.train, TINY_PPO, 128, seed=3, env_kwargs=ENV_KWARGS
    )
    other = drl.train_policy(
        "PPO", env_data, SPLITS.train, TINY_PPO, 128, seed=4, env_kwargs=ENV_KWARGS
    )
    first = evaluate_policy_window(ppo_policy, env_data, SPLITS.validation).weights
    np.testing.assert_array_equal(
        evaluate_policy_window(same, env_data, SPLITS.validation).weights, first
    )
    assert not np.array_equal(
        evaluate_policy_window(other, env_data, SPLITS.validation).weights, first
    )


@pytest.mark.slow
def test_policy_target_weights_for_backtest(ppo_policy: drl.TrainedPolicy, env_data: EnvData):
    frame = policy_target_weights(ppo_policy, env_data, SPLITS.test)
    assert frame.columns == ["as_of", "symbol", "weight"]
    assert set(frame["symbol"]) == {*UNIVERSE, "USDT"}
    sums = frame.group_by("as_of").agg(pl.col("weight").sum())
    np.testing.assert_allclose(sums["weight"].to_numpy(), 1.0)
    # Every date of the window, the last included (today's decision).
    assert frame["as_of"].min() == date(2024, 1, 1) and frame["as_of"].max() == date(2024, 3, 31)
    assert frame["as_of"].n_unique() == 91
    delisted = frame.filter((pl.col("symbol") == "XMRUSDT") & (pl.col("as_of") > date(2024, 2, 20)))
    assert (delisted["weight"] == 0.0).all()
    # Same decisions as the evaluation replay.
    evaluation = evaluate_policy_window(ppo_policy, env_data, SPLITS.test)
    replay = frame.filter(pl.col("as_of") < date(2024, 3, 31))
    np.testing.assert_allclose(
        replay["weight"].to_numpy(), evaluation.weights_frame["weight"].to_numpy()
    )


@pytest.mark.slow
@pytest.mark.parametrize("n_envs", [1, 4])
@pytest.mark.parametrize("algorithm", ["A2C", "SAC", "DDPG"])
def test_other_algorithms_train_and_evaluate(algorithm: str, n_envs: int, env_data: EnvData):
    params = {"net_arch": [16], "episode_length": 30, "n_envs": n_envs}
    params |= {"n_steps": 5} if algorithm == "A2C" else {"batch_size": 16}
    policy = drl.train_policy(
        algorithm, env_data, SPLITS.train, params, 80, seed=0, env_kwargs=ENV_KWARGS
    )
    # Off-policy collection is vectorized too: 4 transitions per step, 80 = 20 steps.
    assert policy.total_timesteps == 80 and policy.model.get_env().num_envs == n_envs
    result = evaluate_policy_window(policy, env_data, SPLITS.validation)
    assert np.isfinite(result.sharpe) and len(result.net_returns) == 91
