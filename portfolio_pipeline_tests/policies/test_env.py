from __future__ import annotations

import math
import pickle
from datetime import date, timedelta

import numpy as np
import pytest

from portfolio_pipeline.policies.env import PortfolioEnv, actions_to_weights
from portfolio_pipeline.policies.env_data import (
    EnvData,
    EnvDataError,
)


def hand_built_data(prices: list[list[float]], n_features: int = 2) -> EnvData:
    """EnvData over explicit prices (rows = dates from 2024-01-01), zero features."""
    price_array = np.array(prices, dtype=np.float64)
    n_dates, n_assets = price_array.shape
    return EnvData(
        dates=np.arange(n_dates).astype("timedelta64[D]") + np.datetime64("2024-01-01"),
        symbols=tuple(f"A{i}USDT" for i in range(n_assets)),
        prices=price_array,
        features=np.zeros((n_dates, n_assets, n_features), np.float32),
        feature_names=tuple(f"f{i}" for i in range(n_features)),
    )


def test_env_passes_gymnasium_and_sb3_checkers(small_data: EnvData):
    from gymnasium.utils.env_checker import check_env as gymnasium_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = PortfolioEnv(
        small_data, ("2024-01-01", "2024-04-01"), lookback=10, include_covariance=True
    )
    expected = 10 * 3 * (small_data.features.shape[2] + 1) + 4 + 3 * 3 + 3 * 2 + 6
    assert env.observation_space.shape == (expected,)
    gymnasium_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)


def run_random_episode(env: PortfolioEnv, seed: int, n_steps: int = 40) -> list[tuple]:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    trace = [(obs.copy(), None)]
    for _ in range(n_steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        trace.append((obs.copy(), reward, info["date"]))
        if terminated or truncated:
            break
    return trace


def assert_same_trace(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for step_a, step_b in zip(a, b, strict=True):
        np.testing.assert_array_equal(step_a[0], step_b[0])
        assert step_a[1:] == step_b[1:]


def test_same_seed_same_trajectory(small_data: EnvData):
    env = PortfolioEnv(
        small_data, ("2023-09-01", "2024-06-01"), lookback=5, random_start=True, episode_length=30
    )
    first = run_random_episode(env, seed=7)
    second = run_random_episode(env, seed=7)
    other = run_random_episode(env, seed=8)
    assert_same_trace(first, second)
    assert first[1][2] != other[1][2]  # a different seed starts elsewhere
    assert len(first) == 31  # reset + episode_length steps


@pytest.mark.slow
def test_pickle_round_trip_and_subprocess_vec_env(small_data: EnvData):
    from stable_baselines3.common.vec_env import SubprocVecEnv

    env = PortfolioEnv(small_data, ("2024-01-01", "2024-03-01"), lookback=5)
    clone = pickle.loads(pickle.dumps(env))
    assert_same_trace(run_random_episode(env, 1), run_random_episode(clone, 1))

    vec = SubprocVecEnv(
        [lambda: PortfolioEnv(small_data, ("2024-01-01", "2024-03-01"), lookback=5)] * 2
    )
    try:
        observations = vec.reset()
        assert observations.shape == (2, *env.observation_space.shape)
        _, rewards, _, infos = vec.step(np.ones((2, 4), np.float32))
        assert rewards.shape == (2,) and all("portfolio_value" in i for i in infos)
    finally:
        vec.close()


def test_exact_costs_and_drift_on_two_assets():
    prices = [[100.0, 50.0], [110.0, 45.0], [99.0, 54.0], [99.0, 54.0]]
    env = PortfolioEnv(hand_built_data(prices), cost_rate=0.002, lookback=2)
    env.reset(seed=0)
    action = np.array([0.5, 0.3, 0.2], np.float32)  # positive and summing to 1: taken as is

    _, reward, _, truncated, info = env.step(action)
    # From 100% cash: buy 0.5 + 0.3 of risky assets; cost 0.2% of that.
    cost_1 = 0.002 * 0.8
    gross_1 = 0.5 * 1.1 + 0.3 * 0.9 + 0.2
    assert info["turnover"] == pytest.approx(0.8, abs=1e-7)
    assert info["cost"] == pytest.approx(cost_1, abs=1e-9)
    assert reward == pytest.approx(math.log((1 - cost_1) * gross_1), abs=1e-7)
    drift = np.array([0.55, 0.27, 0.2]) / gross_1
    np.testing.assert_allclose(info["drifted_weights"], drift, atol=1e-7)
    np.testing.assert_allclose(env.weights, drift, atol=1e-7)
    assert info["date"] == date(2024, 1, 2) and info["decision_date"] == date(2024, 1, 1)
    assert not truncated

    _, reward, _, truncated, info = env.step(action)
    # Rebalance the drifted weights back to (0.5, 0.3, 0.2): sell A0, buy A1.
    turnover_2 = abs(0.5 - drift[0]) + abs(0.3 - drift[1])
    cost_2 = 0.002 * turnover_2
    gross_2 = 0.5 * (99.0 / 110.0) + 0.3 * (54.0 / 45.0) + 0.2
    assert info["turnover"] == pytest.approx(turnover_2, abs=1e-7)
    assert reward == pytest.approx(math.log((1 - cost_2) * gross_2), abs=1e-7)
    assert env.portfolio_value == pytest.approx(
        (1 - cost_1) * gross_1 * (1 - cost_2) * gross_2, abs=1e-7
    )
    assert not truncated  # the 4-date window allows exactly 3 steps; the third ends it
    _, _, _, truncated, _ = env.step(action)
    assert truncated


def test_listing_and_delisting():
    nan = float("nan")
    prices = [[100.0, nan], [100.0, 20.0], [120.0, 25.0], [nan, 30.0], [nan, 30.0]]
    env = PortfolioEnv(hand_built_data(prices), cost_rate=0.001, lookback=3)
    obs, _ = env.reset(seed=0)
    listed_channel = obs[: 3 * 2 * 3].reshape(3, 2, 3)[:, :, -1]
    np.testing.assert_array_equal(listed_channel[-1], [1.0, 0.0])  # A1 not listed yet

    # Day 0: all-in on A1, which has no price yet -> it stays in cash, nothing traded.
    _, reward, _, _, info = env.step(np.array([-1.0, 1.0, -1.0], np.float32))
    np.testing.assert_array_equal(info["weights"], [0.0, 0.0, 1.0])
    assert reward == 0.0 and info["cost"] == 0.0

    # Day 1: all-in on A0 (cost 0.1%), A0 gains 20% into day 2.
    _, reward, _, _, _ = env.step(np.array([1.0, -1.0, -1.0], np.float32))
    assert reward == pytest.approx(math.log(0.999 * 1.2))

    # Day 2: keep A0; it has no price on day 3 (delisted): valued at its last price, to cash.
    _, reward, _, _, info = env.step(np.array([1.0, -1.0, -1.0], np.float32))
    assert reward == pytest.approx(0.0, abs=1e-12) and info["turnover"] == pytest.approx(0.0)
    np.testing.assert_array_equal(info["drifted_weights"], [0.0, 0.0, 1.0])
    assert env.portfolio_value == pytest.approx(0.999 * 1.2)

    # Day 3: A0 cannot be bought any more.
    _, _, _, truncated, info = env.step(np.array([1.0, 0.0, 0.0], np.float32))
    np.testing.assert_array_equal(info["weights"], [0.0, 0.0, 1.0])
    assert truncated


def test_full_cash_and_concentrated_portfolios_are_reachable():
    np.testing.assert_array_equal(actions_to_weights(np.array([-1.0, -0.2, -0.5])), [0, 0, 1])
    np.testing.assert_array_equal(actions_to_weights(np.array([-1.0, -0.2, 0.3])), [0, 0, 1])
    np.testing.assert_array_equal(actions_to_weights(np.array([-1.0, 0.7, -0.5])), [0, 1, 0])
    np.testing.assert_allclose(actions_to_weights(np.array([0.2, 0.6, 0.0])), [0.25, 0.75, 0])

    prices = [[100.0, 50.0], [50.0, 25.0], [50.0, 25.0]]
    env = PortfolioEnv(hand_built_data(prices), cost_rate=0.001, lookback=1)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.array([-1.0, -1.0, -1.0], np.float32))
    assert reward == 0.0  # 100% cash is untouched by a 50% crash
    np.testing.assert_array_equal(info["weights"], [0.0, 0.0, 1.0])


def test_reward_penalties_and_window_validation():
    prices = [[100.0], [50.0], [100.0]]
    data = hand_built_data(prices)
    env = PortfolioEnv(data, cost_rate=0.0, drawdown_penalty=2.0, volatility_penalty=3.0)
    env.reset(seed=0)
    _, reward, _, _, _ = env.step(np.array([1.0, -1.0], np.float32))
    log_return = math.log(0.5)
    assert reward == pytest.approx(log_return - 3.0 * log_return**2 - 2.0 * 0.5)
    with pytest.raises(EnvDataError, match="at least 2 are needed"):
        PortfolioEnv(data, (date(2024, 1, 3), date(2024, 1, 1) + timedelta(days=10)))


def test_observation_holds_only_the_past(small_data: EnvData):
    """The observation at t equals the features of t-lookback+1..t, never t+1."""
    lookback = 4
    env = PortfolioEnv(small_data, ("2024-01-10", "2024-02-10"), lookback=lookback)
    obs, info = env.reset(seed=0)
    t = env.current_index
    channels = small_data.features.shape[2] + 1
    window = obs[: lookback * 3 * channels].reshape(lookback, 3, channels)
    np.testing.assert_array_equal(window[:, :, :-1], small_data.features[t - lookback + 1 : t + 1])
    assert info["date"] == date(2024, 1, 10)
    np.testing.assert_array_equal(
        obs[lookback * 3 * channels : lookback * 3 * channels + 4], [0, 0, 0, 1]
    )


def test_differential_sharpe_reward_follows_moody_and_saffell():
    """Hand-computed differential Sharpe ratios of a two-asset path held 100% in asset 0."""
    prices = [[100.0, 50.0], [102.0, 50.0], [99.0, 51.0], [101.0, 52.0], [101.0, 52.0]]
    data = hand_built_data(prices)
    decay = 0.1
    env = PortfolioEnv(
        data, lookback=1, cost_rate=0.0, reward="differential_sharpe", sharpe_decay=decay
    )
    env.reset(seed=0)
    first, second = 0.0, 0.02**2
    action = np.array([1.0, -1.0, -1.0], np.float32)
    for t in range(4):
        _, reward, _, _, info = env.step(action)
        r = prices[t + 1][0] / prices[t][0] - 1.0
        assert info["net_return"] == pytest.approx(r, abs=1e-15)
        expected = (second * (r - first) - 0.5 * first * (r * r - second)) / (
            second - first * first
        ) ** 1.5
        assert reward == pytest.approx(expected, rel=1e-12)
        first, second = first + decay * (r - first), second + decay * (r * r - second)
    assert first > 0 and reward < 0  # a flat day lowers the Sharpe ratio of a positive mean
