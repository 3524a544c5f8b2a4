"""Deep-RL allocation policies: build and train Stable-Baselines3 models on the portfolio env.

Pure (no dagster). torch and stable_baselines3 are imported inside the functions that use
them. Policies learn on a half-open date window of the
:class:`~portfolio_pipeline.policies.env.PortfolioEnv` (or its batched twin,
:class:`~portfolio_pipeline.policies.vec_env.BatchedPortfolioEnv`); their evaluation is
:mod:`portfolio_pipeline.policies.evaluation`, their windows
:mod:`portfolio_pipeline.policies.splits`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from portfolio_pipeline.policies.env import PortfolioEnv
from portfolio_pipeline.policies.env_data import EnvData
from portfolio_pipeline.policies.splits import WindowLike, window_dates

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

ALGORITHMS: tuple[str, ...] = ("PPO", "A2C", "SAC", "DDPG")
ON_POLICY: frozenset[str] = frozenset({"PPO", "A2C"})

# Environment settings shared by training and evaluation (the observation must match).
DEFAULT_ENV_KWARGS: dict[str, Any] = {
    "cost_rate": 0.001,
    "lookback": 30,
    "include_forecasts": True,
    "include_sentiment": True,
    "include_covariance": False,
    "drawdown_penalty": 0.0,
    "volatility_penalty": 0.0,
    "periods_per_year": 365,
    # A residual policy tilts the base strategy's weights (policies.residual); off: it
    # allocates from scratch.
    "residual": False,
    "residual_scale": 1.0,
    # "log_growth" or "differential_sharpe" (PortfolioEnv's Rewards).
    "reward": "log_growth",
    "sharpe_decay": 0.01,
}
DEFAULT_TRAINING_EPISODE_LENGTH = 256
# Keys of ``params`` that are not SB3 constructor arguments.
SPECIAL_PARAMS: frozenset[str] = frozenset(
    {"net_arch", "action_noise_sigma", "episode_length", "n_envs", "policy_architecture"}
)
# "mlp": SB3's MlpPolicy on the flat observation (its first layer grows with N x lookback);
# "shared_encoder": one set of weights applied to every asset (policies.policy_net, EIIE-style).
POLICY_ARCHITECTURES: tuple[str, ...] = ("mlp", "shared_encoder")
DEFAULT_POLICY_ARCHITECTURE = "mlp"


def select_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; others pass through."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _algorithm_class(algorithm: str) -> type[BaseAlgorithm]:
    import stable_baselines3

    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
    return getattr(stable_baselines3, algorithm)


def algorithm_kwargs(
    algorithm: str, params: Mapping[str, Any], total_timesteps: int, n_actions: int
) -> dict[str, Any]:
    """Translate a flat hyperparameter dict into SB3 constructor keyword arguments.

    A search space is shared by all algorithms, so keys the chosen algorithm does not take
    (``n_steps`` for SAC, ``tau`` for PPO) are dropped; a key no algorithm takes raises.
    ``net_arch`` (list of layer widths) becomes ``policy_kwargs``; ``action_noise_sigma``
    becomes Gaussian action noise (DDPG default 0.1). Off-policy replay buffers are capped
    at ``total_timesteps`` so a large observation does not allocate a 1e6-row buffer.
    """
    accepted = {
        a: set(inspect.signature(_algorithm_class(a).__init__).parameters) for a in ALGORITHMS
    }
    known = set().union(*accepted.values()) | SPECIAL_PARAMS
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown hyperparameters {unknown} for {algorithm}")
    kwargs = {k: v for k, v in params.items() if k in accepted[algorithm] and k != "policy"}
    if "net_arch" in params:
        kwargs["policy_kwargs"] = {"net_arch": list(params["net_arch"])}
    if algorithm not in ON_POLICY:
        kwargs.setdefault("buffer_size", max(1_000, min(int(total_timesteps), 100_000)))
        kwargs.setdefault("learning_starts", min(100, max(1, int(total_timesteps) // 10)))
    if algorithm == "DDPG" or (algorithm == "SAC" and "action_noise_sigma" in params):
        from stable_baselines3.common.noise import NormalActionNoise

        sigma = float(params.get("action_noise_sigma", 0.1))
        kwargs["action_noise"] = NormalActionNoise(
            mean=np.zeros(n_actions), sigma=sigma * np.ones(n_actions)
        )
    return kwargs


def fit_rollout_to_budget(algorithm: str, params: Mapping[str, Any], budget: int) -> dict[str, Any]:
    """Shrink an on-policy rollout (``n_steps`` x ``n_envs``) to fit ``budget`` timesteps.

    SB3 trains whole rollouts, so a 256-step budget with 64 environments x 32 steps would
    train 2,048 steps. Here ``n_steps`` becomes at most ``budget // n_envs`` (>= 1) and,
    when ``n_envs`` divides the budget, the largest such value that also divides
    ``budget / n_envs``, so the rollouts add up to the budget exactly; a PPO
    ``batch_size`` becomes at most the rollout. Otherwise the timesteps trained are the
    budget rounded up to a whole rollout. Off-policy params pass through.
    """
    out = dict(params)
    if algorithm.upper() not in ON_POLICY:
        return out
    n_envs = int(out.get("n_envs", 1))
    default_steps = 2048 if algorithm.upper() == "PPO" else 5  # SB3's defaults
    per_env = max(1, int(budget) // n_envs)
    n_steps = min(int(out.get("n_steps", default_steps)), per_env)
    if int(budget) % n_envs == 0:
        n_steps = max(d for d in range(1, n_steps + 1) if per_env % d == 0)
    out["n_steps"] = n_steps
    if algorithm.upper() == "PPO":
        rollout = n_steps * n_envs
        out["batch_size"] = max(2, min(int(out.get("batch_size", 64)), rollout))
    return out


@dataclass
class TrainedPolicy:
    """A trained SB3 model with what is needed to evaluate, register and reload it."""

    model: BaseAlgorithm
    algorithm: str
    params: dict[str, Any]
    seed: int
    device: str
    train_window: tuple[date, date]
    env_kwargs: dict[str, Any]
    total_timesteps: int  # timesteps actually trained (SB3 rounds up to whole rollouts)
    train_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """Write ``<path>.zip`` (SB3) and ``<path>.json`` (metadata); return the zip path."""
        target = Path(path).with_suffix(".zip")
        target.parent.mkdir(parents=True, exist_ok=True)
        self.model.save(target)
        target.with_suffix(".json").write_text(
            json.dumps(
                {
                    "algorithm": self.algorithm,
                    "params": self.params,
                    "seed": self.seed,
                    "device": self.device,
                    "train_window": [d.isoformat() for d in self.train_window],
                    "env_kwargs": self.env_kwargs,
                    "total_timesteps": self.total_timesteps,
                    "train_seconds": self.train_seconds,
                },
                indent=2,
                default=str,
            )
        )
        return target

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> TrainedPolicy:
        """Reload a policy written by :meth:`save` (``device`` chooses where it runs now)."""
        target = Path(path).with_suffix(".zip")
        meta = json.loads(target.with_suffix(".json").read_text())
        resolved = select_device(device)
        model = _algorithm_class(meta["algorithm"]).load(target, device=resolved)
        return cls(
            model=model,
            algorithm=meta["algorithm"],
            params=meta["params"],
            seed=int(meta["seed"]),
            device=resolved,
            train_window=cast(
                "tuple[date, date]", tuple(date.fromisoformat(d) for d in meta["train_window"])
            ),
            env_kwargs=meta["env_kwargs"],
            total_timesteps=int(meta["total_timesteps"]),
            train_seconds=float(meta.get("train_seconds", 0.0)),
        )


def env_settings(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """:data:`DEFAULT_ENV_KWARGS` updated with ``overrides``."""
    kwargs = dict(DEFAULT_ENV_KWARGS)
    kwargs.update(overrides or {})
    return kwargs


def build_model(
    algorithm: str,
    env_data: EnvData,
    train_window: WindowLike,
    params: Mapping[str, Any],
    total_timesteps: int,
    seed: int,
    device: str = "auto",
    env_kwargs: Mapping[str, Any] | None = None,
) -> tuple[BaseAlgorithm, dict[str, Any], str]:
    """An untrained SB3 model on a training env; returns (model, env kwargs, device).

    ``params["n_envs"]`` (default 1) > 1 trains on a
    :class:`~portfolio_pipeline.policies.vec_env.BatchedPortfolioEnv` of that many environments
    (PPO/A2C roll out ``n_steps`` per environment; SAC/DDPG collect one transition per
    environment per step), 1 on a single :class:`PortfolioEnv`.
    ``params["policy_architecture"]``: ``"mlp"`` (default, SB3's ``MlpPolicy`` on the flat
    observation) or ``"shared_encoder"`` (one network applied to every asset, its size
    independent of N: :mod:`portfolio_pipeline.policies.policy_net`; ``net_arch`` sizes its
    pooled layers).
    """
    algorithm = algorithm.upper()
    cls = _algorithm_class(algorithm)
    resolved = select_device(device)
    settings = env_settings(env_kwargs)
    episode_length = int(params.get("episode_length", DEFAULT_TRAINING_EPISODE_LENGTH))
    n_envs = int(params.get("n_envs", 1))
    if n_envs > 1:
        # K environments in one numpy call; SB3's n_steps counts steps per environment.
        from portfolio_pipeline.policies.vec_env import BatchedPortfolioEnv

        env: Any = BatchedPortfolioEnv(
            env_data,
            n_envs,
            train_window,
            random_start=True,
            episode_length=episode_length,
            **settings,
        )
    elif n_envs == 1:
        env = PortfolioEnv(
            env_data, train_window, random_start=True, episode_length=episode_length, **settings
        )
    else:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    n_actions = int(env.action_space.shape[0])
    kwargs = algorithm_kwargs(algorithm, params, total_timesteps, n_actions)
    policy: Any = "MlpPolicy"
    if policy_architecture(params) == "shared_encoder":
        from portfolio_pipeline.policies.policy_net import shared_encoder_policy

        layout = getattr(env, "template", env).observation_layout
        policy, kwargs["policy_kwargs"] = shared_encoder_policy(
            algorithm, layout, kwargs.get("policy_kwargs")
        )
    model = cls(policy, env, seed=seed, device=resolved, verbose=0, **kwargs)
    return model, settings, resolved


def policy_architecture(params: Mapping[str, Any]) -> str:
    """``params["policy_architecture"]`` (default :data:`DEFAULT_POLICY_ARCHITECTURE`), checked."""
    architecture = str(params.get("policy_architecture") or DEFAULT_POLICY_ARCHITECTURE)
    if architecture not in POLICY_ARCHITECTURES:
        raise ValueError(
            f"policy_architecture {architecture!r} is not one of {', '.join(POLICY_ARCHITECTURES)}"
        )
    return architecture


def train_policy(
    algorithm: str,
    env_data: EnvData,
    train_window: WindowLike,
    params: Mapping[str, Any],
    total_timesteps: int,
    seed: int,
    device: str = "auto",
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    num_threads: int = 1,
) -> TrainedPolicy:
    """Train an SB3 policy on ``train_window`` of ``env_data``.

    Parameters
    ----------
    algorithm : {"PPO", "A2C", "SAC", "DDPG"}
    env_data : EnvData
    train_window : (start, end)
        Half-open; training episodes start at random dates inside it (``episode_length``
        steps, from ``params``, default 256).
    params : dict
        Flat hyperparameters (see :func:`algorithm_kwargs`).
    total_timesteps : int
        Budget; the policy records the timesteps actually trained (whole rollouts).
    seed : int
        Seeds SB3 (python, numpy, torch) and the environment.
    device : str
        ``"auto"`` = ``"cuda"`` if available else ``"cpu"``; the one used is recorded.
    env_kwargs : dict, optional
        :class:`PortfolioEnv` settings (default :data:`DEFAULT_ENV_KWARGS`); kept with the
        policy so evaluation builds the same observation.
    num_threads : int
        torch intra-op threads (small: several trainings share few cores).
    """
    import torch

    torch.set_num_threads(num_threads)
    model, settings, resolved = build_model(
        algorithm, env_data, train_window, params, total_timesteps, seed, device, env_kwargs
    )
    started = time.perf_counter()
    model.learn(total_timesteps=int(total_timesteps))
    return TrainedPolicy(
        model=model,
        algorithm=algorithm.upper(),
        params=dict(params),
        seed=int(seed),
        device=resolved,
        train_window=window_dates(env_data, train_window),
        env_kwargs=settings,
        total_timesteps=int(model.num_timesteps),
        train_seconds=time.perf_counter() - started,
    )


def policy_id(algorithm: str, params: Mapping[str, Any], seed: int, trained_at: str) -> str:
    """Stable, readable id: ``ppo-<hash of params>-s<seed>-<timestamp>``."""
    digest = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
    stamp = trained_at.replace("-", "").replace(":", "").replace("+0000", "")[:15]
    return f"{algorithm.lower()}-{digest[:8]}-s{seed}-{stamp}"
