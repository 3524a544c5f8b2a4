"""Tuning profiles and the search space: what a trial of each algorithm receives."""

from __future__ import annotations

import pytest

from portfolio_pipeline.policies import drl
from portfolio_pipeline.policies.search_space import (
    PROFILES,
    search_space,
    trial_params,
    with_budget,
)


def test_trial_params_keep_only_the_algorithms_keys():
    config = {
        "algorithm": "A2C",
        "learning_rate": 1e-3,
        "a2c_n_steps": 16,
        "ppo_n_steps": 256,
        "tau": 0.01,
        "net_arch": [8],
    }
    assert trial_params(config) == (
        "A2C",
        {"learning_rate": 1e-3, "n_steps": 16, "net_arch": [8]},
    )
    batched = {"algorithm": "SAC", "n_envs": 64, "off_policy_n_envs": 4, "tau": 0.01}
    assert trial_params(batched) == ("SAC", {"tau": 0.01, "n_envs": 4})
    with pytest.raises(ValueError, match="'DQN' is not one of"):
        trial_params({"algorithm": "DQN"})
    assert PROFILES["quick"].n_reports == 4
    assert PROFILES["quick"].total_timesteps >= 40_000  # 10x the one-env 4,000
    assert PROFILES["quick"].n_envs == 64
    assert set(PROFILES["full"].algorithms) == set(drl.ALGORITHMS)


def test_policy_architecture_reaches_every_trial():
    shared = with_budget("quick", policy_architecture="shared_encoder")
    assert search_space(shared, seed=0)["policy_architecture"] == "shared_encoder"
    assert PROFILES["quick"].policy_architecture == drl.DEFAULT_POLICY_ARCHITECTURE
    for algorithm in drl.ALGORITHMS:
        config = {"algorithm": algorithm, "policy_architecture": "shared_encoder"}
        assert trial_params(config) == (algorithm, {"policy_architecture": "shared_encoder"})
    with pytest.raises(ValueError, match="policy_architecture 'cnn' is not one of"):
        with_budget("quick", policy_architecture="cnn")


def test_a_trial_sizes_the_tilt_of_a_residual_env_only():
    from portfolio_pipeline.policies.search_space import trial_env_settings

    residual = {"lookback": 10, "residual": True, "residual_scale": 1.0}
    assert trial_env_settings({"residual_scale": 0.05}, residual)["residual_scale"] == 0.05
    assert residual["residual_scale"] == 1.0  # the profile's settings are not changed
    plain = {"lookback": 10, "residual": False}
    assert trial_env_settings({"residual_scale": 0.05}, plain) == plain


def test_a_configured_residual_scale_fixes_the_searched_sizes():
    from portfolio_pipeline.policies.assets import PolicySettings, policy_profile

    searched = policy_profile(PolicySettings(), "quick")
    assert searched.residual_scales == (0.05, 0.1, 0.2) and searched.env_kwargs["residual"]
    assert policy_profile(PolicySettings(residual_scale=0.3), "quick").residual_scales == (0.3,)
    with pytest.raises(ValueError, match="residual_scale must be >= 0"):
        policy_profile(PolicySettings(residual_scale=-0.1), "quick")
