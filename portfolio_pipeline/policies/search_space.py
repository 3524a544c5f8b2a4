"""What the DRL search explores: tuning profiles (budgets) and the hyperparameter space.

Pure (no dagster); ray is imported inside :func:`search_space`. A profile
(:class:`TuningProfile`, :data:`PROFILES`) sizes a search; :func:`search_space` is Tune's
param space for it and :func:`trial_params` turns one sampled configuration into an
algorithm and its Stable-Baselines3 parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from portfolio_pipeline.policies import drl

# SAC/DDPG take one gradient step per vector step: more environments than this would
# starve them of updates per transition.
OFF_POLICY_MAX_ENVS = 4

# Which config keys each algorithm uses, and the SB3 argument each becomes. The search
# space is flat (Tune samples every key); a trial keeps only its algorithm's keys.
ALGORITHM_PARAMS: dict[str, dict[str, str]] = {
    "PPO": {
        "learning_rate": "learning_rate",
        "gamma": "gamma",
        "ppo_n_steps": "n_steps",
        "ppo_batch_size": "batch_size",
        "ent_coef": "ent_coef",
        "clip_range": "clip_range",
        "ppo_n_epochs": "n_epochs",
        "net_arch": "net_arch",
        "episode_length": "episode_length",
        "n_envs": "n_envs",
        "policy_architecture": "policy_architecture",
    },
    "A2C": {
        "learning_rate": "learning_rate",
        "gamma": "gamma",
        "a2c_n_steps": "n_steps",
        "ent_coef": "ent_coef",
        "net_arch": "net_arch",
        "episode_length": "episode_length",
        "n_envs": "n_envs",
        "policy_architecture": "policy_architecture",
    },
    "SAC": {
        "learning_rate": "learning_rate",
        "gamma": "gamma",
        "off_policy_batch_size": "batch_size",
        "tau": "tau",
        "train_freq": "train_freq",
        "net_arch": "net_arch",
        "episode_length": "episode_length",
        "off_policy_n_envs": "n_envs",
        "policy_architecture": "policy_architecture",
    },
    "DDPG": {
        "learning_rate": "learning_rate",
        "gamma": "gamma",
        "off_policy_batch_size": "batch_size",
        "tau": "tau",
        "train_freq": "train_freq",
        "action_noise_sigma": "action_noise_sigma",
        "net_arch": "net_arch",
        "episode_length": "episode_length",
        "off_policy_n_envs": "n_envs",
        "policy_architecture": "policy_architecture",
    },
}


@dataclass(frozen=True)
class TuningProfile:
    """Budget of a search.

    Attributes
    ----------
    algorithms : algorithms searched; each gets its own trials (a grid dimension), so a
        small search never misses one by chance.
    samples_per_algorithm : hyperparameter samples per algorithm (trials =
        len(algorithms) x samples_per_algorithm).
    total_timesteps : training timesteps of a trial (and of each seed's retraining).
    report_every : timesteps between validation reports (ASHA rungs).
    grace_period : reports before ASHA may stop a trial.
    max_concurrent_trials : trials at once (<= CPUs).
    cpus_per_trial : CPUs a trial asks for (torch uses one thread).
    gpu_fraction : GPU share a trial asks for when torch sees a GPU (0 otherwise).
    n_envs : environments a PPO/A2C trial steps at once (a
        :class:`~portfolio_pipeline.policies.vec_env.BatchedPortfolioEnv`); SAC/DDPG use at most
        :data:`OFF_POLICY_MAX_ENVS`. 1 = a single :class:`PortfolioEnv`.
    env_kwargs : :class:`PortfolioEnv` settings for the search and the retraining.
    policy_architecture : ``"mlp"`` or ``"shared_encoder"``
        (:data:`~portfolio_pipeline.policies.drl.POLICY_ARCHITECTURES`), for every trial.
    residual_scales : the tilt sizes a residual policy's trials sample (``residual_scale``
        of the env: the largest change per weight before the long-only map), so the size
        is chosen on the tune window with the rest; one value fixes it.
    seed_backend : how the retraining's seeds run (``train_best_with_seeds``):
        ``"sequential"``, or None = Ray tasks of one CPU each where two fit (the seeds in
        parallel; Ray's start and its workers' torch import, ~10 s, pay off only for long
        trainings).
    """

    name: str
    algorithms: tuple[str, ...]
    samples_per_algorithm: int
    total_timesteps: int
    report_every: int
    grace_period: int = 1
    max_concurrent_trials: int = 2
    cpus_per_trial: float = 1.0
    gpu_fraction: float = 0.25
    n_envs: int = 1
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    policy_architecture: str = drl.DEFAULT_POLICY_ARCHITECTURE
    residual_scales: tuple[float, ...] = (0.05, 0.1, 0.2)
    seed_backend: str | None = "sequential"

    def __post_init__(self) -> None:
        drl.policy_architecture({"policy_architecture": self.policy_architecture})  # names it

    @property
    def n_reports(self) -> int:
        return -(-self.total_timesteps // self.report_every)


# quick: 6 trials (3 PPO, 3 A2C) of 40,960 timesteps, reported every 10,240, each collecting
# from 64 environments at once (benchmarks.drl: >= 10x the timesteps/s of one environment),
# so ten times the old 4,000-step budget in about the same wall time. On-policy algorithms
# only (SAC/DDPG take a gradient step per env step: ~20x slower per timestep on CPU) and a
# 10-day lookback to keep the observation small.
PROFILES: dict[str, TuningProfile] = {
    "quick": TuningProfile(
        name="quick",
        algorithms=("PPO", "A2C"),
        samples_per_algorithm=3,
        total_timesteps=40_960,  # 4 reports of 10,240 = whole rollouts of 64 environments
        report_every=10_240,
        grace_period=1,
        max_concurrent_trials=2,
        n_envs=64,
        env_kwargs={"lookback": 10},
    ),
    # cpu_1m: enough training to learn on a CPU: >= 1M timesteps per policy (2^20), PPO and
    # A2C on 64 batched environments, one trial each, reported every 2^18 timesteps.
    "cpu_1m": TuningProfile(
        name="cpu_1m",
        algorithms=("PPO", "A2C"),
        samples_per_algorithm=1,
        total_timesteps=1_048_576,
        report_every=262_144,
        grace_period=1,
        max_concurrent_trials=2,
        n_envs=64,
        env_kwargs={"lookback": 10},
        seed_backend=None,
    ),
    "full": TuningProfile(
        name="full",
        algorithms=drl.ALGORITHMS,
        samples_per_algorithm=8,
        total_timesteps=200_000,
        report_every=20_000,
        grace_period=3,
        max_concurrent_trials=8,
        n_envs=64,
        env_kwargs={"lookback": 30},
        seed_backend=None,
    ),
}


def search_space(profile: TuningProfile, seed: int) -> dict[str, Any]:
    """Tune's param space: algorithm (grid) and every algorithm's hyperparameters (flat).

    With many environments the rollout (``n_steps`` per environment x ``n_envs``) and the
    minibatches grow with them: PPO rolls out 1,024 or 2,048 transitions in minibatches of
    512 or 1,024 for 3 epochs, which is what makes a batched trial ~10x faster per
    timestep on a CPU than one environment with minibatches of 64 and 10 epochs.
    """
    from ray import tune

    n_envs = max(1, int(profile.n_envs))
    batched = n_envs > 1
    ppo_rollouts = (1024, 2048) if batched else (128, 256, 512)
    return {
        "algorithm": tune.grid_search(list(profile.algorithms)),
        "learning_rate": tune.loguniform(1e-4, 3e-3),
        "gamma": tune.choice([0.9, 0.97, 0.99]),
        "ent_coef": tune.choice([0.0, 0.005, 0.02]),
        "ppo_n_steps": tune.choice(sorted({max(8, r // n_envs) for r in ppo_rollouts})),
        "ppo_batch_size": tune.choice([512, 1024] if batched else [32, 64]),
        "ppo_n_epochs": tune.choice([3] if batched else [10]),
        "clip_range": tune.choice([0.1, 0.2, 0.3]),
        "a2c_n_steps": tune.choice([5, 8] if batched else [5, 16, 64]),
        "off_policy_batch_size": tune.choice([64, 128, 256]),
        "tau": tune.choice([0.005, 0.02]),
        "train_freq": tune.choice([1, 4]),
        "action_noise_sigma": tune.choice([0.05, 0.1, 0.2]),
        "net_arch": tune.choice([[64, 64], [128, 64], [256, 256]]),
        "episode_length": tune.choice([128, 256, 365]),
        "n_envs": n_envs,
        "off_policy_n_envs": min(n_envs, OFF_POLICY_MAX_ENVS),
        "policy_architecture": profile.policy_architecture,
        "residual_scale": tune.choice(list(profile.residual_scales)),
        "seed": seed,
    }


def trial_env_settings(config: Mapping[str, Any], env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The env settings of one trial (or of the best trial's retraining): a residual env
    takes the trial's sampled ``residual_scale``; any other env is left as it is."""
    settings = dict(env_kwargs)
    if settings.get("residual") and config.get("residual_scale") is not None:
        settings["residual_scale"] = float(config["residual_scale"])
    return settings


def trial_params(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(algorithm, SB3 params) of a sampled config: only that algorithm's keys, renamed."""
    algorithm = str(config["algorithm"]).upper()
    if algorithm not in ALGORITHM_PARAMS:
        raise ValueError(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHM_PARAMS)}")
    params = {
        target: config[key] for key, target in ALGORITHM_PARAMS[algorithm].items() if key in config
    }
    return algorithm, params


def with_budget(profile: str | TuningProfile, **changes: Any) -> TuningProfile:
    """A copy of a profile with some fields changed (tests, notebooks)."""
    base = PROFILES[profile] if isinstance(profile, str) else profile
    return replace(base, **changes)
