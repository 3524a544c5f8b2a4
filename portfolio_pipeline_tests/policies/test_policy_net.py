"""The shared per-asset encoder: exact layout, equivariance, size independent of N."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import polars as pl
import pytest

torch = pytest.importorskip("torch")

from portfolio_pipeline.policies import drl  # noqa: E402
from portfolio_pipeline.policies.env import PortfolioEnv  # noqa: E402
from portfolio_pipeline.policies.env_data import EnvData, build_env_data  # noqa: E402
from portfolio_pipeline.policies.evaluation import evaluate_policy_window  # noqa: E402
from portfolio_pipeline.policies.policy_net import (  # noqa: E402
    SharedAssetEncoder,
    split_observation,
)

UNIVERSE = ("BTCUSDT", "ETHUSDT", "XMRUSDT", "LTCUSDT")
LOOKBACK = 4
WINDOW = (date(2023, 3, 1), date(2023, 9, 1))
SMALL = {"net_arch": [8], "episode_length": 30}
ALGORITHM_PARAMS = {
    "PPO": {"n_steps": 8, "batch_size": 16, "n_epochs": 1, "n_envs": 2},
    "A2C": {"n_steps": 5},
    "SAC": {"batch_size": 8},
    "DDPG": {"batch_size": 8},
}


@pytest.fixture(scope="module")
def data(sample_ohlcv: pl.DataFrame) -> EnvData:
    """Real prices and features; forecasts and sentiment whose every number says where it
    belongs (date, asset, channel), so a misplaced number is caught."""
    ohlcv = sample_ohlcv.filter(
        pl.col("symbol").is_in(UNIVERSE) & (pl.col("date") >= date(2022, 12, 1))
    )
    base = build_env_data(ohlcv, None, symbols=UNIVERSE)
    n_dates, n_assets = base.prices.shape
    t, i = np.meshgrid(np.arange(n_dates), np.arange(n_assets), indexing="ij")

    def tagged(k: int, offset: float) -> np.ndarray:
        code = t[:, :, None] * 1e-3 + i[:, :, None] * 0.1 + np.arange(k) * 0.01 + offset
        return code.astype(np.float32)

    return replace(
        base, forecasts=tagged(3, 1.0), sentiment=tagged(2, 2.0), sentiment_names=("s", "n")
    )


def _permuted(data: EnvData, order: list[int]) -> EnvData:
    return replace(
        data,
        symbols=tuple(data.symbols[i] for i in order),
        prices=data.prices[:, order],
        features=data.features[:, order],
        forecasts=data.forecasts[:, order],
        sentiment=data.sentiment[:, order],
    )


def _stepped_observations(data: EnvData, actions: np.ndarray) -> np.ndarray:
    env = PortfolioEnv(data, WINDOW, lookback=LOOKBACK)
    observations = [env.reset(seed=0)[0]]
    for action in actions:
        observations.append(env.step(action)[0])
    return np.asarray(observations)


def test_tokens_follow_the_env_observation_layout(data: EnvData):
    env = PortfolioEnv(data, WINDOW, lookback=LOOKBACK)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(7):  # drifted, non-trivial weights
        obs, *_ = env.step(rng.uniform(-1, 1, data.n_assets + 1).astype(np.float32))
    layout = env.observation_layout
    assert layout.size == obs.shape[0]
    assert layout.per_asset_blocks == (3, 2)
    tokens, cash = split_observation(torch.as_tensor(obs[None]), layout)
    tokens = tokens[0].numpy()
    t = env.current_index
    listed = data.listed.astype(np.float32)
    for asset in range(data.n_assets):
        window = np.concatenate(
            [
                data.features[t - LOOKBACK + 1 : t + 1, asset],
                listed[t - LOOKBACK + 1 : t + 1, asset, None],
            ],
            axis=1,
        )  # (lookback, F + 1), dates in order
        expected = np.concatenate(
            [
                window.reshape(-1),
                [env.weights[asset]],
                data.forecasts[t, asset],
                data.sentiment[t, asset],
            ]
        )
        np.testing.assert_allclose(tokens[asset], expected, rtol=0, atol=1e-7)
    assert cash.item() == pytest.approx(env.weights[-1], abs=1e-7)


def test_permuting_assets_permutes_the_observation_tokens(data: EnvData):
    order = [2, 0, 3, 1]
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, (5, data.n_assets + 1)).astype(np.float32)
    permuted_actions = np.concatenate([actions[:, order], actions[:, -1:]], axis=1)
    obs = _stepped_observations(data, actions)
    obs_permuted = _stepped_observations(_permuted(data, order), permuted_actions)
    layout = PortfolioEnv(data, WINDOW, lookback=LOOKBACK).observation_layout
    tokens, cash = split_observation(torch.as_tensor(obs), layout)
    tokens_p, cash_p = split_observation(torch.as_tensor(obs_permuted), layout)
    assert torch.equal(tokens[:, order], tokens_p)
    assert torch.equal(cash, cash_p)


def _model(algorithm: str, data: EnvData, **env_kwargs):
    params = {**SMALL, **ALGORITHM_PARAMS[algorithm], "policy_architecture": "shared_encoder"}
    model, _settings, _device = drl.build_model(
        algorithm, data, WINDOW, params, 64, seed=0,
        env_kwargs={"lookback": LOOKBACK, **env_kwargs},
    )  # fmt: skip
    return model


@pytest.mark.parametrize("algorithm", drl.ALGORITHMS)
def test_policy_is_permutation_equivariant(data: EnvData, algorithm: str):
    order = [2, 0, 3, 1]
    rng = np.random.default_rng(2)
    actions = rng.uniform(-1, 1, (6, data.n_assets + 1)).astype(np.float32)
    permuted_actions = np.concatenate([actions[:, order], actions[:, -1:]], axis=1)
    obs = torch.as_tensor(_stepped_observations(data, actions))
    obs_p = torch.as_tensor(_stepped_observations(_permuted(data, order), permuted_actions))
    policy = _model(algorithm, data).policy
    extractor = getattr(policy, "actor", policy).features_extractor
    assert isinstance(extractor, SharedAssetEncoder)
    index = [*order, data.n_assets]  # cash stays last
    with torch.no_grad():
        if algorithm in ("PPO", "A2C"):
            mean = policy.get_distribution(obs).distribution.mean
            mean_p = policy.get_distribution(obs_p).distribution.mean
            torch.testing.assert_close(mean[:, index], mean_p, rtol=0, atol=1e-5)
            torch.testing.assert_close(policy.predict_values(obs), policy.predict_values(obs_p))
            critic_inputs = None
        else:
            action, action_p = policy._predict(obs, True), policy._predict(obs_p, True)
            torch.testing.assert_close(action[:, index], action_p, rtol=0, atol=1e-5)
            q = policy.critic(obs[1:], torch.as_tensor(actions))
            q_p = policy.critic(obs_p[1:], torch.as_tensor(permuted_actions))
            critic_inputs = (q, q_p)
        # Not trivially constant: different observations give different outputs.
        if critic_inputs is None:
            assert mean.std(dim=0).max() > 0
        else:
            for q_net, q_net_p in zip(*critic_inputs, strict=True):
                torch.testing.assert_close(q_net, q_net_p, rtol=0, atol=1e-5)
            assert action.std(dim=0).max() > 0


@pytest.mark.parametrize("algorithm", drl.ALGORITHMS)
def test_parameter_count_does_not_grow_with_assets(data: EnvData, algorithm: str):
    def count(n_assets: int) -> int:
        policy = _model(algorithm, _permuted(data, list(range(n_assets)))).policy
        # PPO/A2C's Gaussian log-std is one number per action entry, not a network weight.
        return sum(p.numel() for name, p in policy.named_parameters() if name != "log_std")

    assert count(2) == count(4)
    # The flat MLP grows with N: the comparison the shared encoder is for.
    mlp = [
        sum(
            p.numel()
            for p in drl.build_model(
                algorithm,
                _permuted(data, list(range(n))),
                WINDOW,
                {**SMALL, **ALGORITHM_PARAMS[algorithm]},
                64,
                seed=0,
                env_kwargs={"lookback": LOOKBACK},
            )[0].policy.parameters()
        )  # fmt: skip
        for n in (2, 4)
    ]
    assert mlp[1] > mlp[0]


def test_shared_encoder_refuses_the_covariance_channel(data: EnvData):
    with pytest.raises(ValueError, match="include_covariance=False"):
        _model("PPO", data, include_covariance=True)


def test_unknown_architecture_is_named():
    with pytest.raises(ValueError, match="policy_architecture 'cnn' is not one of"):
        drl.policy_architecture({"policy_architecture": "cnn"})


def test_trained_shared_encoder_policy_saves_and_reloads(data: EnvData, tmp_path):
    params = {**SMALL, **ALGORITHM_PARAMS["PPO"], "policy_architecture": "shared_encoder"}
    policy = drl.train_policy(
        "PPO", data, WINDOW, params, 32, seed=0, env_kwargs={"lookback": LOOKBACK}
    )
    reloaded = drl.TrainedPolicy.load(policy.save(tmp_path / "policy"))
    assert type(reloaded.model.policy).__name__ == "SharedEncoderActorCriticPolicy"
    window = (date(2023, 9, 1), date(2023, 11, 1))
    first = evaluate_policy_window(policy, data, window)
    second = evaluate_policy_window(reloaded, data, window)
    np.testing.assert_array_equal(first.weights, second.weights)
