from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import polars as pl
import pytest

from portfolio_pipeline.policies.env import PortfolioEnv
from portfolio_pipeline.policies.env_data import EnvData, build_env_data
from portfolio_pipeline.policies.vec_env import BatchedPortfolioEnv

UNIVERSE = ("BTCUSDT", "ETHUSDT", "XMRUSDT")
# XMR stops trading after 2024-02-20, inside the window: delisting and untradable assets
# are exercised in every episode that crosses that date.
WINDOW = (date(2023, 12, 1), date(2024, 4, 1))
SETTINGS = {
    "lookback": 7,
    "cost_rate": 0.002,
    "include_covariance": True,
    "drawdown_penalty": 0.3,
    "volatility_penalty": 0.5,
    "random_start": True,
    "episode_length": 17,
}


@pytest.fixture(scope="module")
def env_data(sample_ohlcv: pl.DataFrame) -> EnvData:
    ohlcv = sample_ohlcv.filter(
        pl.col("symbol").is_in(UNIVERSE) & (pl.col("date") >= date(2023, 6, 1))
    )
    rows = ohlcv.select("symbol", pl.col("date").alias("as_of"))
    forecasts = rows.with_columns(
        pl.lit(8).alias("horizon_days"),
        (pl.col("as_of").dt.day() * -0.01).alias("q10"),
        (pl.col("as_of").dt.day() * 0.001).alias("q50"),
        (pl.col("as_of").dt.ordinal_day() * 0.001).alias("q90"),
    )
    sentiment = ohlcv.filter(pl.col("date").dt.day() % 4 == 0).select(
        "symbol", "date", (pl.col("date").dt.day() / 31.0 - 0.5).alias("sentiment")
    )
    return build_env_data(ohlcv, None, forecasts=forecasts, sentiment=sentiment)


# The residual variant tilts an arbitrary (causal or not, it does not matter here) base.
VARIANTS = {
    "log_growth": {},
    "residual_differential_sharpe": {
        "residual": True,
        "residual_scale": 0.3,
        "reward": "differential_sharpe",
        "sharpe_decay": 0.05,
    },
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_batched_env_equals_separate_envs(env_data: EnvData, variant: str):
    n_envs, seed, n_steps = 5, 11, 120
    settings = {**SETTINGS, **VARIANTS[variant]}
    if settings.get("residual"):
        base = np.random.default_rng(1).dirichlet(np.ones(4), size=len(env_data.dates))
        env_data = replace(env_data, base_weights=base, base_strategy="random")
    batched = BatchedPortfolioEnv(env_data, n_envs, WINDOW, **settings)
    singles = [PortfolioEnv(env_data, WINDOW, **settings) for _ in range(n_envs)]
    batched.seed(seed)
    observations = batched.reset()
    expected = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(singles)])
    np.testing.assert_array_equal(observations, expected)
    # window (7 dates x 3 assets x 7 features + listed), weights, forecasts, sentiment, cov
    assert observations.dtype == np.float32
    base_block = 3 if settings.get("residual") else 0
    assert observations.shape == (n_envs, 7 * 3 * 8 + 4 + 9 + 3 + base_block + 6)

    rng = np.random.default_rng(0)
    n_done, restricted = 0, 0
    for _ in range(n_steps):
        actions = rng.uniform(-1, 1, size=(n_envs, 4)).astype(np.float32)
        actions[0] = [-1, -1, -1, -1]  # no positive entry: all cash
        restricted += int((~batched.template._tradable[batched.current_index]).any())
        observations, rewards, dones, infos = batched.step(actions)
        for i, env in enumerate(singles):
            obs, reward, terminated, truncated, info = env.step(actions[i])
            assert dones[i] == (terminated or truncated)
            assert rewards[i] == pytest.approx(reward, abs=1e-12, rel=0)
            if dones[i]:
                n_done += 1
                np.testing.assert_allclose(
                    infos[i]["terminal_observation"], obs, rtol=0, atol=1e-12
                )
                assert infos[i]["TimeLimit.truncated"] == (truncated and not terminated)
                obs, _ = env.reset()
            np.testing.assert_allclose(observations[i], obs, rtol=0, atol=1e-12)
            np.testing.assert_allclose(batched.weights[i], env.weights, rtol=0, atol=1e-12)
            assert batched.portfolio_value[i] == pytest.approx(env.portfolio_value, rel=1e-12)
            assert batched.current_index[i] == env.current_index
    # The run crossed episode ends (auto-reset) and dates with an untradable asset.
    assert n_done >= 5 * n_envs and restricted > 0
    # Random starts differ across environments (the seeds do their job).
    assert len({int(t) for t in batched.current_index}) > 1


def test_batched_env_is_deterministic_per_seed_and_validates(env_data: EnvData):
    first = BatchedPortfolioEnv(env_data, 4, WINDOW, **SETTINGS)
    again = BatchedPortfolioEnv(env_data, 4, WINDOW, **SETTINGS)
    first.seed(3)
    again.seed(3)
    np.testing.assert_array_equal(first.reset(), again.reset())
    other = BatchedPortfolioEnv(env_data, 4, WINDOW, **SETTINGS)
    other.seed(4)
    other.reset()
    assert not np.array_equal(first.current_index, other.current_index)
    assert first.get_attr("lookback") == [7] * 4
    assert first.env_is_wrapped(object) == [False] * 4
    with pytest.raises(ValueError, match="n_envs must be >= 1"):
        BatchedPortfolioEnv(env_data, 0, WINDOW)
    with pytest.raises(AttributeError, match="shares one configuration"):
        first.set_attr("cost_rate", 0.0)


def test_ppo_trains_on_the_batched_env(env_data: EnvData):
    from stable_baselines3 import PPO

    env = BatchedPortfolioEnv(env_data, 8, WINDOW, **SETTINGS)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=8,
        batch_size=32,
        n_epochs=1,
        policy_kwargs={"net_arch": [8]},
        seed=0,
        device="cpu",
    )
    model.learn(total_timesteps=128)
    # One rollout = n_steps per environment x 8 environments.
    assert model.num_timesteps == 128
