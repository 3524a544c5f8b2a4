"""Gymnasium portfolio-allocation environment over a precomputed daily panel.

Pure (no dagster; gymnasium is light and imported at module level). All dataframe work
happens once in :func:`~portfolio_pipeline.policies.env_data.build_env_data`, which pivots
polars frames into dense numpy arrays (:class:`~portfolio_pipeline.policies.env_data.EnvData`);
the observation arrays are precomputed once by
:func:`~portfolio_pipeline.policies.observation.observation_arrays`. :class:`PortfolioEnv` then
steps over those arrays with no per-step
dataframe work and delegates every accounting rule (cash last, drift, costs on turnover,
delisting) to :mod:`portfolio_pipeline.portfolio.accounting`, so the environment, the backtest
engine and the evaluation of trained policies agree to the last digit.

Timing convention (no look-ahead): the observation at decision date ``t`` holds only data
known by the close of ``t``; the weights chosen at ``t`` earn ``close[t+1] / close[t]``.
"""

from __future__ import annotations

from datetime import date
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from portfolio_pipeline.policies.env_data import DateLike, EnvData, EnvDataError
from portfolio_pipeline.policies.observation import OBSERVATION_BOUND, observation_arrays
from portfolio_pipeline.portfolio import accounting


def actions_to_weights(action: np.ndarray) -> np.ndarray:
    """Map an action in ``[-1, 1]^(N+1)`` to long-only weights summing to 1 (cash last).

    ``w = relu(a) / sum(relu(a))``; when no entry is positive the portfolio is 100% cash.
    """
    positive = np.maximum(action, 0.0, dtype=np.float64)
    total = positive.sum()
    if total <= 0.0:
        weights = np.zeros_like(positive)
        weights[-1] = 1.0
        return weights
    return positive / total


REWARDS: tuple[str, ...] = ("log_growth", "differential_sharpe")
# Starting second moment of the differential Sharpe ratio: a 2% daily volatility, so the first
# steps of an episode do not divide by a variance near zero.
DIFFERENTIAL_SHARPE_PRIOR = 0.02**2


def _check_arguments(
    env_data: EnvData,
    lookback: int,
    cost_rate: float,
    episode_length: int | None,
    residual: bool,
    residual_scale: float,
) -> None:
    if lookback < 1:
        raise ValueError(f"lookback must be >= 1, got {lookback}")
    if cost_rate < 0:
        raise ValueError(f"cost_rate must be >= 0, got {cost_rate}")
    if episode_length is not None and episode_length < 1:
        raise ValueError(f"episode_length must be >= 1, got {episode_length}")
    if residual and env_data.base_weights is None:
        raise EnvDataError(
            "residual=True needs env_data.base_weights (policies.residual.with_base_weights)"
        )
    if residual and not residual_scale > 0:
        raise ValueError(f"residual_scale must be > 0, got {residual_scale}")


def _check_reward(reward: str, sharpe_decay: float) -> None:
    if reward not in REWARDS:
        raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
    if not 0.0 < sharpe_decay <= 1.0:
        raise ValueError(f"sharpe_decay must be in (0, 1], got {sharpe_decay}")


class PortfolioEnv(gym.Env):
    """Daily long-only allocation over N risky assets plus cash.

    ## Description

    At the close of each date ``t`` the agent chooses target weights for N crypto assets and
    cash (``USDT``, last). The portfolio is rebalanced from its drifted weights to the target,
    paying ``cost_rate`` on the risky turnover, and held until the close of ``t+1``. All
    accounting is :func:`portfolio_pipeline.portfolio.accounting.step`, shared with the backtest.

    ## Action Space

    ``Box(-1, 1, (N+1,), float32)``, mapped by :func:`actions_to_weights`:
    ``w = relu(a) / sum(relu(a))``, and 100% cash when no entry is positive. Why not a
    softmax: a softmax of bounded logits in [-1, 1] cannot go beyond ``e^2 : 1`` between two
    assets, so with 11 entries no weight exceeds ~40% and the policy is stuck near equal
    weight. The relu map reaches every point of the simplex: one positive entry gives a 100%
    position, only the cash entry positive (or none positive) gives 100% cash, and a
    Gaussian policy centred at 0 starts from a diversified random portfolio. Assets without a
    price at ``t`` (not listed yet, delisted) are forced to 0 by
    :func:`accounting.restrict_to_tradable`; their weight goes to cash.

    With ``residual`` the action is a tilt of the base strategy's weights at ``t``
    (``env_data.base_weights``, :mod:`portfolio_pipeline.policies.residual`):
    ``w = map(base[t] + residual_scale * a)`` through the same map, so a zero action holds
    exactly what the base strategy holds.

    ## Observation Space

    ``Box(-10, 10, (D,), float32)``, the concatenation of

    - the last ``lookback`` dates (``t-lookback+1 .. t``) of per-asset channels, shape
      ``(lookback, N, F + 1)``: the F causally z-scored features and a listed flag (1 if the
      asset had a price that date); dates before the panel start are zeros;
    - the current (drifted) weights, ``(N + 1,)``;
    - forecasts q10/q50/q90 issued at ``t``, ``(N, 3)``, when the data has them and
      ``include_forecasts``;
    - sentiment usable at ``t``, ``(N, k)``, when present and ``include_sentiment``;
    - with ``residual``, the base strategy's weights at ``t`` of the N assets, ``(N, 1)``;
    - optionally the upper triangle of the annualised covariance of daily log returns over the
      last ``lookback`` dates, ``(N (N + 1) / 2,)``, clipped to [-10, 10].

    Unknown values are 0. Nothing dated after ``t`` enters the observation at ``t``.

    ## Rewards

    ``log(V[t+1] / V[t])`` net of costs, minus ``drawdown_penalty * drawdown[t+1]`` (drawdown
    of the episode's value from its running peak, in [0, 1]) and minus
    ``volatility_penalty * log_return ** 2`` (a per-step variance proxy). Both coefficients
    default to 0, so by default the episode return is the log growth of the portfolio.
    ``reward="differential_sharpe"`` replaces the log growth by Moody and Saffell's
    differential Sharpe ratio of the net return ``r``: with exponential moments ``A`` and
    ``B`` of ``r`` and ``r**2`` (decay ``sharpe_decay``, from ``A = 0`` and
    ``B = DIFFERENTIAL_SHARPE_PRIOR``, a 2% daily volatility), the step's reward is
    ``(B dA - A dB / 2) / (B - A**2) ** 1.5`` with ``dA = r - A``, ``dB = r**2 - B``: the
    first-order change of the moving Sharpe ratio that ``r`` causes.

    ## Starting State

    100% cash, value 1, at the first date of the date window; with ``random_start`` at a date
    drawn uniformly (from ``self.np_random``) so that ``max(min_episode_steps,
    episode_length)`` steps remain when the window is long enough.

    ## Episode End

    ``truncated`` when the episode reaches the end of its date window (or
    ``episode_length`` steps); ``terminated`` only if the portfolio value reaches 0.

    ## Arguments

    - ``env_data``: :class:`EnvData` from :func:`build_env_data`.
    - ``date_window``: ``(start, end)``, half-open, dates or row indices (None = whole panel).
      Decisions at ``start .. end-2`` earn returns of ``start+1 .. end-1``: no price outside
      the window is used.
    - ``cost_rate``: proportional cost on risky turnover (0.001 = 10 bps).
    - ``lookback``: observation window in dates (default 30).
    - ``include_forecasts``, ``include_sentiment``, ``include_covariance``: observation parts.
    - ``drawdown_penalty``, ``volatility_penalty``: reward shaping coefficients (default 0).
    - ``reward``: ``"log_growth"`` (default) or ``"differential_sharpe"``; ``sharpe_decay``
      its moments' decay (see Rewards).
    - ``random_start``, ``episode_length``, ``min_episode_steps``: training episodes.
    - ``periods_per_year``: annualisation of the covariance channel (365 crypto, 252 equities).
    - ``residual``, ``residual_scale``: act as a tilt of ``env_data.base_weights`` (see Action
      Space); the data must carry base weights.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        env_data: EnvData,
        date_window: tuple[DateLike, DateLike] | None = None,
        *,
        cost_rate: float = 0.001,
        lookback: int = 30,
        include_forecasts: bool = True,
        include_sentiment: bool = True,
        include_covariance: bool = False,
        drawdown_penalty: float = 0.0,
        volatility_penalty: float = 0.0,
        random_start: bool = False,
        episode_length: int | None = None,
        min_episode_steps: int = 1,
        periods_per_year: int = 365,
        residual: bool = False,
        residual_scale: float = 1.0,
        reward: str = "log_growth",
        sharpe_decay: float = 0.01,
    ) -> None:
        _check_arguments(env_data, lookback, cost_rate, episode_length, residual, residual_scale)
        _check_reward(reward, sharpe_decay)
        self.reward = reward
        self.sharpe_decay = float(sharpe_decay)
        self.residual = bool(residual)
        self.residual_scale = float(residual_scale)
        self._base = env_data.base_weights if residual else None
        self.env_data = env_data
        self.cost_rate = float(cost_rate)
        self.lookback = int(lookback)
        self.drawdown_penalty = float(drawdown_penalty)
        self.volatility_penalty = float(volatility_penalty)
        self.random_start = bool(random_start)
        self.episode_length = episode_length
        self.min_episode_steps = int(min_episode_steps)
        self.window_start, self.window_end = env_data.window_indices(*(date_window or (None, None)))
        if self.window_end - self.window_start - 1 < self.min_episode_steps:
            raise EnvDataError(
                f"date window {date_window} gives {self.window_end - self.window_start - 1} "
                f"steps, fewer than min_episode_steps={self.min_episode_steps}"
            )

        self._precompute(
            include_forecasts=include_forecasts,
            include_sentiment=include_sentiment,
            include_covariance=include_covariance,
            periods_per_year=periods_per_year,
        )
        n_weights = env_data.n_assets + 1
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n_weights,), dtype=np.float32)
        self.observation_space = spaces.Box(
            -OBSERVATION_BOUND, OBSERVATION_BOUND, shape=(self._observation_size,), dtype=np.float32
        )
        self._t = self.window_start
        self._episode_end = self.window_end
        self._weights = self._all_cash()
        self._value = 1.0
        self._peak = 1.0
        self._sharpe_moments = (0.0, DIFFERENTIAL_SHARPE_PRIOR)

    # ------------------------------------------------------------------ precomputation
    def _precompute(
        self,
        *,
        include_forecasts: bool,
        include_sentiment: bool,
        include_covariance: bool,
        periods_per_year: int,
    ) -> None:
        data = self.env_data
        n_dates, n_assets = data.prices.shape
        listed = data.listed
        arrays = observation_arrays(
            data,
            self.lookback,
            include_forecasts=include_forecasts,
            include_sentiment=include_sentiment,
            include_covariance=include_covariance,
            periods_per_year=periods_per_year,
            include_base=self.residual,
        )
        self._padded_channels = arrays.padded_channels
        self._window_width = arrays.window_width
        self._per_date = arrays.per_date
        self._observation_size = arrays.size
        self.observation_layout = arrays.layout

        self._tradable = listed  # buyable at t: priced at t (no knowledge of t+1)
        self._all_tradable = cast(np.ndarray, listed.all(axis=1))  # (T,) bool, not a scalar
        self._relatives = np.ones((n_dates, n_assets))
        self._relatives[:-1] = accounting.price_relatives(data.prices[:-1], data.prices[1:])
        self._delisted_next = np.zeros((n_dates, n_assets), dtype=bool)
        self._delisted_next[:-1] = listed[:-1] & ~listed[1:]
        self._date_list: list[date] = data.dates.tolist()  # python dates for info, no per-step cast

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = self._draw_start()
        max_end = self.window_end
        if self.episode_length is not None:
            max_end = min(max_end, self._t + self.episode_length + 1)
        self._episode_end = max_end
        self._weights = self._all_cash()
        self._value = 1.0
        self._peak = 1.0
        self._sharpe_moments = (0.0, DIFFERENTIAL_SHARPE_PRIOR)
        return self._observation(), {"date": self._date_list[self._t], "portfolio_value": 1.0}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        target = self.target_weights(action)
        t = self._t
        result = accounting.step(
            self._weights,
            target,
            self._relatives[t],
            self.cost_rate,
            self._delisted_next[t],
        )
        reward = self._reward(result)
        self._t = t + 1
        self._weights = result.next_weights
        terminated = not result.growth > 0.0
        truncated = self._t >= self._episode_end - 1
        info = {
            "date": self._date_list[self._t],
            "decision_date": self._date_list[t],
            "portfolio_value": self._value,
            "log_return": result.log_return,
            "net_return": result.growth - 1.0,
            "weights": target,
            "drifted_weights": result.next_weights,
            "turnover": result.turnover,
            "cost": result.cost,
        }
        return self._observation(), reward, terminated, truncated, info

    # ------------------------------------------------------------------ helpers
    @property
    def current_index(self) -> int:
        """Row of the decision date the next action applies to."""
        return self._t

    @property
    def tradable_now(self) -> np.ndarray:
        """(N,) bool: assets that can be held from the current decision date."""
        return self._tradable[self._t]

    @property
    def portfolio_value(self) -> float:
        return self._value

    @property
    def weights(self) -> np.ndarray:
        """(N+1,) current drifted weights, cash last (a copy)."""
        return self._weights.copy()

    def _all_cash(self) -> np.ndarray:
        weights = np.zeros(self.env_data.n_assets + 1)
        weights[-1] = 1.0
        return weights

    def _draw_start(self) -> int:
        if not self.random_start:
            return self.window_start
        # Leave room for a full episode (episode_length steps) where the window allows it.
        steps_wanted = max(self.min_episode_steps, self.episode_length or 0)
        last_start = max(self.window_start, self.window_end - 1 - steps_wanted)
        return int(self.np_random.integers(self.window_start, last_start + 1))

    def target_weights(self, action: np.ndarray) -> np.ndarray:
        """(N+1,) weights an action means at the current decision date (cash last)."""
        if self._base is not None:  # a tilt of what the base strategy holds at t
            action = self._base[self._t] + self.residual_scale * np.asarray(action, np.float64)
        weights = actions_to_weights(action)
        if self._all_tradable[self._t]:  # nothing to restrict: skip the copy (hot path)
            return weights
        return accounting.restrict_to_tradable(weights, self._tradable[self._t])

    def _reward(self, result: accounting.StepResult) -> float:
        self._value *= result.growth
        reward = result.log_return
        if self.reward == "differential_sharpe":
            reward = self._differential_sharpe(result.growth - 1.0)
        if self.volatility_penalty:
            reward -= self.volatility_penalty * result.log_return**2
        if self.drawdown_penalty:
            self._peak = max(self._peak, self._value)
            reward -= self.drawdown_penalty * (1.0 - self._value / self._peak)
        return float(reward)

    def _differential_sharpe(self, net_return: float) -> float:
        """Moody and Saffell's differential Sharpe ratio of this step; updates the moments."""
        first, second = self._sharpe_moments
        delta_first = net_return - first
        delta_second = net_return * net_return - second
        variance = second - first * first
        value = 0.0
        if variance > 1e-12:
            value = (second * delta_first - 0.5 * first * delta_second) / variance**1.5
        self._sharpe_moments = (
            first + self.sharpe_decay * delta_first,
            second + self.sharpe_decay * delta_second,
        )
        return value

    def _observation(self) -> np.ndarray:
        t = self._t
        return np.concatenate(
            (
                self._padded_channels[t : t + self.lookback].reshape(-1),
                self._weights.astype(np.float32),
                self._per_date[t],
            )
        )
