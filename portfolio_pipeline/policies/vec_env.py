"""K copies of :class:`~portfolio_pipeline.policies.env.PortfolioEnv` stepped in one numpy call.

Pure (no dagster). Imports stable_baselines3 (and so torch) at module import: it is loaded
only by the training code, never by the Dagster definitions.

Why: one ``PortfolioEnv`` steps at ~80k steps/s, but an SB3 learner stepping it one
observation at a time spends most of its time in per-step Python and in torch calls on a
batch of one. With K environments in one array the policy runs one forward pass for K
observations and the environment one set of numpy operations for K portfolios.

Identity: the environment reuses the arrays precomputed by a ``PortfolioEnv`` built with the
same arguments (observation channels, price relatives, tradable and delisting masks) and
the accounting of :func:`portfolio_pipeline.portfolio.accounting.step_batch`, the batched twin of
:func:`~portfolio_pipeline.portfolio.accounting.step`. Environment ``i`` seeded with ``seed + i``
draws its random episode starts from the same generator as a ``PortfolioEnv`` reset with
``seed + i``. A test checks observations, rewards, dones and terminal observations against
K separate ``PortfolioEnv`` instances to 1e-12.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from portfolio_pipeline.policies.env import DIFFERENTIAL_SHARPE_PRIOR, PortfolioEnv
from portfolio_pipeline.policies.env_data import DateLike, EnvData
from portfolio_pipeline.portfolio import accounting


class BatchedPortfolioEnv(VecEnv):
    """An SB3 ``VecEnv`` of ``n_envs`` portfolio environments over the same panel and window.

    ## Description

    Each of the K environments is a :class:`PortfolioEnv` (same actions, observations,
    rewards, costs and episode rules; see its docstring); they differ only in their random
    episode starts. ``step`` takes a (K, N+1) action array and returns stacked (K, D)
    float32 observations, (K,) float64 rewards and (K,) bool dones.

    ## Auto-reset

    An environment whose episode ends (truncated at its window or ``episode_length``, or
    terminated when its value reaches 0) is reset at once: ``infos[i]["terminal_observation"]``
    holds its last observation, ``infos[i]["TimeLimit.truncated"]`` says whether it was a
    truncation, and the returned observation is the first of the next episode (SB3's
    convention, as in ``DummyVecEnv``).

    ## Seeding

    ``seed(s)`` gives environment ``i`` the seed ``s + i`` at the next ``reset()``; its
    episode starts then come from ``gymnasium.utils.seeding.np_random(s + i)``, exactly as
    a ``PortfolioEnv`` reset with ``seed=s + i``.

    ## Arguments

    ``env_data``, ``date_window`` and the keyword arguments are those of
    :class:`PortfolioEnv`; ``n_envs`` is K (>= 1).
    """

    def __init__(
        self,
        env_data: EnvData,
        n_envs: int,
        date_window: tuple[DateLike, DateLike] | None = None,
        **env_kwargs: Any,
    ) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        # The template does every validation and precomputation once; its arrays are shared.
        template = PortfolioEnv(env_data, date_window, **env_kwargs)
        self.template = template
        self.env_data = env_data
        self.render_mode = None
        n_dates, n_channels = env_data.prices.shape[0], template._padded_channels.shape[1]
        observation_size = int(template._observation_size)
        tail = observation_size - template._window_width  # weights + per-date channels
        # The padded panel plus enough zero rows that a full observation's width fits after
        # the last window.
        self._padded = np.concatenate(
            [template._padded_channels, np.zeros((-(-tail // n_channels), n_channels), np.float32)]
        )
        row_bytes, item_bytes = self._padded.strides
        # Row t of this view starts with the flattened window of dates t-lookback+1 .. t and
        # is a whole observation wide: one fancy-index gather copies K windows straight into
        # a fresh (K, D) observation array, whose short tail (weights, per-date channels) is
        # then overwritten. The window, ~4.5k floats, is copied once per step, not twice.
        self._rows = np.lib.stride_tricks.as_strided(
            self._padded,
            shape=(n_dates, observation_size),
            strides=(row_bytes, item_bytes),
            writeable=False,
        )
        self._window_width = template._window_width
        self._per_date = template._per_date
        self._relatives = template._relatives
        self._delisted_next = template._delisted_next
        self._tradable = template._tradable
        self._all_tradable = template._all_tradable
        self._base = template._base  # (T, N+1) for a residual env, else None
        self._residual_scale = template.residual_scale
        self._n_weights = env_data.n_assets + 1
        self._rngs: list[np.random.Generator | None] = [None] * n_envs
        self._t = np.full(n_envs, template.window_start, dtype=np.int64)
        self._episode_end = np.full(n_envs, template.window_end, dtype=np.int64)
        self._weights = np.zeros((n_envs, self._n_weights))
        self._weights[:, -1] = 1.0
        self._value = np.ones(n_envs)
        self._peak = np.ones(n_envs)
        self._sharpe_first = np.zeros(n_envs)
        self._sharpe_second = np.full(n_envs, DIFFERENTIAL_SHARPE_PRIOR)
        self._actions: np.ndarray | None = None
        super().__init__(n_envs, template.observation_space, template.action_space)

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> np.ndarray:
        for i in range(self.num_envs):
            self._reset_one(i, self._seeds[i])
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self._observations()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async(actions)")
        actions, self._actions = self._actions, None
        t = self._t
        target = self.target_weights(actions)
        result = accounting.step_batch(
            self._weights,
            target,
            self._relatives[t],
            self.template.cost_rate,
            self._delisted_next[t],
        )
        rewards = self._rewards(result)
        self._t = t + 1
        self._weights = result.next_weights
        terminated = ~(result.growth > 0.0)
        truncated = self._t >= self._episode_end - 1
        dones = terminated | truncated
        observations = self._observations()
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones) if dones.any() else ():
            infos[i]["terminal_observation"] = observations[i].copy()
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            self._reset_one(int(i), None)
            observations[i] = self._observations(np.array([i]))[0]
        return observations, rewards, dones, infos

    def close(self) -> None:
        return None

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        # Per-environment state first; anything else is shared through the template.
        per_env = {
            "current_index": self._t,
            "portfolio_value": self._value,
            "weights": self._weights,
        }
        if attr_name in per_env:
            return [per_env[attr_name][i].copy() for i in self._get_indices(indices)]
        return [getattr(self.template, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(
            f"BatchedPortfolioEnv shares one configuration across its {self.num_envs} "
            f"environments; build a new one instead of setting {attr_name!r}"
        )

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        method = getattr(self.template, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    # ------------------------------------------------------------------ state
    @property
    def current_index(self) -> np.ndarray:
        """(K,) rows of the decision dates the next actions apply to (a copy)."""
        return self._t.copy()

    @property
    def portfolio_value(self) -> np.ndarray:
        """(K,) value of each portfolio in its current episode (a copy)."""
        return self._value.copy()

    @property
    def weights(self) -> np.ndarray:
        """(K, N+1) current drifted weights, cash last (a copy)."""
        return self._weights.copy()

    def target_weights(self, actions: np.ndarray) -> np.ndarray:
        """(K, N+1) weights the actions mean at each environment's decision date."""
        if self._base is not None:  # tilts of what the base strategy holds at each t
            actions = self._base[self._t] + self._residual_scale * np.asarray(actions, np.float64)
        weights = np.maximum(actions, 0.0, dtype=np.float64)
        total = weights.sum(axis=1)
        empty = total <= 0.0
        if empty.any():  # no positive entry: 100% cash, as actions_to_weights
            total[empty] = 1.0
            weights[empty, -1] = 1.0
        weights /= total[:, None]
        if not self._all_tradable[self._t].all():
            accounting.restrict_to_tradable_batch(weights, self._tradable[self._t])
        return weights

    # ------------------------------------------------------------------ helpers
    def _reset_one(self, i: int, seed: int | None) -> None:
        rng = self._rngs[i]
        if seed is not None or rng is None:
            rng, _ = seeding.np_random(seed)
            self._rngs[i] = rng
        start = self._draw_start(rng)
        end = self.template.window_end
        if self.template.episode_length is not None:
            end = min(end, start + self.template.episode_length + 1)
        self._t[i] = start
        self._episode_end[i] = end
        self._weights[i] = 0.0
        self._weights[i, -1] = 1.0
        self._value[i] = 1.0
        self._peak[i] = 1.0
        self._sharpe_first[i] = 0.0
        self._sharpe_second[i] = DIFFERENTIAL_SHARPE_PRIOR

    def _draw_start(self, rng: np.random.Generator) -> int:
        env = self.template
        if not env.random_start:
            return env.window_start
        steps_wanted = max(env.min_episode_steps, env.episode_length or 0)
        last_start = max(env.window_start, env.window_end - 1 - steps_wanted)
        return int(rng.integers(env.window_start, last_start + 1))

    def _rewards(self, result: accounting.BatchStepResult) -> np.ndarray:
        env = self.template
        self._value = self._value * result.growth
        rewards = result.log_return.copy()
        if env.reward == "differential_sharpe":
            rewards = self._differential_sharpe(result.growth - 1.0)
        if env.volatility_penalty:
            rewards -= env.volatility_penalty * result.log_return**2
        if env.drawdown_penalty:
            self._peak = np.maximum(self._peak, self._value)
            rewards -= env.drawdown_penalty * (1.0 - self._value / self._peak)
        return rewards

    def _differential_sharpe(self, net_returns: np.ndarray) -> np.ndarray:
        """(K,) :meth:`PortfolioEnv._differential_sharpe`, element by element."""
        first, second = self._sharpe_first, self._sharpe_second
        delta_first = net_returns - first
        delta_second = net_returns * net_returns - second
        variance = second - first * first
        usable = variance > 1e-12
        safe = np.where(usable, variance, 1.0)
        values = np.where(
            usable, (second * delta_first - 0.5 * first * delta_second) / safe**1.5, 0.0
        )
        decay = self.template.sharpe_decay
        self._sharpe_first = first + decay * delta_first
        self._sharpe_second = second + decay * delta_second
        return values

    def _observations(self, envs: np.ndarray | None = None) -> np.ndarray:
        """(K or len(envs), D) float32: window, drifted weights, per-date channels.

        The same layout as :meth:`PortfolioEnv._observation`. A fresh array each call: SB3
        keeps the previous observation while the next step runs.
        """
        t = self._t if envs is None else self._t[envs]
        weights = self._weights if envs is None else self._weights[envs]
        width, n_weights = self._window_width, self._n_weights
        out = self._rows[t]
        out[:, width : width + n_weights] = weights
        out[:, width + n_weights :] = self._per_date[t]
        return out
