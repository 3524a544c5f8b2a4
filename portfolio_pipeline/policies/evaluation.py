"""Evaluation of DRL policies and of the fixed-weight references, through one environment.

Pure (no dagster); stable_baselines3 is only a type here. Every evaluation - trained policy,
equal weight, buy-and-hold of the benchmark - runs through the same
:class:`~portfolio_pipeline.policies.env.PortfolioEnv` and therefore the same accounting
(:mod:`portfolio_pipeline.portfolio.accounting`), so their numbers are comparable and agree
with the backtest engine. :func:`policy_target_weights` replays a policy into the daily target
weights the backtests use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import polars as pl

from portfolio_pipeline.market.context import CRYPTO_BENCHMARK
from portfolio_pipeline.policies.drl import TrainedPolicy, env_settings
from portfolio_pipeline.policies.env import PortfolioEnv
from portfolio_pipeline.policies.env_data import EnvData
from portfolio_pipeline.policies.splits import WindowLike

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

# buy_benchmark: buy and hold the market series (market.context: BTCUSDT for crypto).
BUY_BENCHMARK = "buy_benchmark"
FIXED_WEIGHT_REFERENCES: tuple[str, ...] = ("equal_weight", BUY_BENCHMARK)


def annualised_sharpe(returns: np.ndarray, periods_per_year: int) -> float:
    """:func:`~portfolio_pipeline.portfolio.metrics.sharpe_ratio` with 0 for a flat series: the
    search ranks every trial, and an all-cash policy ranks as zero, not as missing."""
    from portfolio_pipeline.portfolio.metrics import sharpe_ratio

    return sharpe_ratio(returns, periods_per_year, flat=0.0)


def _evaluation_env(
    env_data: EnvData,
    window: WindowLike,
    env_kwargs: Mapping[str, Any] | None,
    cost_rate: float | None,
) -> PortfolioEnv:
    settings = env_settings(env_kwargs)
    if cost_rate is not None:
        settings["cost_rate"] = float(cost_rate)
    return PortfolioEnv(env_data, window, random_start=False, **settings)


def _check_observation_shape(model: BaseAlgorithm, env: PortfolioEnv) -> None:
    # cast: gymnasium types Space.shape as optional; a Box always has one.
    expected = tuple(cast("tuple[int, ...]", model.observation_space.shape))
    actual = tuple(cast("tuple[int, ...]", env.observation_space.shape))
    if expected != actual:
        raise ValueError(
            f"policy expects observations of shape {expected} but this env data gives {actual} "
            f"({env.env_data.n_assets} symbols, {len(env.env_data.feature_names)} features, "
            "lookback and forecast/sentiment channels must match the training env)"
        )


@dataclass(frozen=True, eq=False)  # arrays: identity equality, no element-wise __eq__
class WindowEvaluation:
    """One deterministic pass over a date window, net of costs (policy or reference).

    Attributes
    ----------
    dates : list of date
        (S,) realised dates (the day each net return is earned).
    decision_dates : list of date
        (S,) decision dates (the close at which the weights were chosen).
    net_returns, log_returns : numpy.ndarray
        (S,) simple and log portfolio returns after costs.
    weights : numpy.ndarray
        (S, N+1) target weights decided at each decision date, cash last.
    symbols : list of str
        The N symbols and the cash symbol, the columns of ``weights``.
    turnover, costs : numpy.ndarray
        (S,) risky turnover and cost paid at each rebalance.
    sharpe : float
        Annualised (:func:`annualised_sharpe`, 0 for a flat series).
    total_return, mean_turnover : float
    returns_frame : polars.DataFrame
        date, net_return, turnover, cost, equity.
    weights_frame : polars.DataFrame
        as_of, symbol, weight (long form of ``weights``).
    """

    dates: list[date]
    decision_dates: list[date]
    net_returns: np.ndarray
    log_returns: np.ndarray
    weights: np.ndarray
    symbols: list[str]
    turnover: np.ndarray
    costs: np.ndarray
    sharpe: float
    total_return: float
    mean_turnover: float
    returns_frame: pl.DataFrame
    weights_frame: pl.DataFrame


def _run_episode(
    env: PortfolioEnv,
    choose_action: Callable[[np.ndarray, PortfolioEnv], np.ndarray],
    periods_per_year: int,
) -> WindowEvaluation:
    """Play the whole window once; collect returns and the weights decided each date."""
    obs, _ = env.reset(seed=0)
    decision_dates, dates, weights = [], [], []
    net_returns, log_returns, turnover, costs, values = [], [], [], [], []
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(choose_action(obs, env))
        done = terminated or truncated
        decision_dates.append(info["decision_date"])
        dates.append(info["date"])
        weights.append(info["weights"])
        net_returns.append(info["net_return"])
        log_returns.append(info["log_return"])
        turnover.append(info["turnover"])
        costs.append(info["cost"])
        values.append(info["portfolio_value"])
    net = np.asarray(net_returns)
    symbols = [*env.env_data.symbols, env.env_data.cash_symbol]
    weight_matrix = np.asarray(weights)
    return WindowEvaluation(
        dates=dates,
        decision_dates=decision_dates,
        net_returns=net,
        log_returns=np.asarray(log_returns),
        weights=weight_matrix,
        symbols=symbols,
        turnover=np.asarray(turnover),
        costs=np.asarray(costs),
        sharpe=annualised_sharpe(net, periods_per_year),
        total_return=float(values[-1] - 1.0),
        mean_turnover=float(np.mean(turnover)),
        returns_frame=pl.DataFrame(
            {
                "date": dates,
                "net_return": net,
                "turnover": np.asarray(turnover),
                "cost": np.asarray(costs),
                "equity": np.asarray(values),
            }
        ),
        weights_frame=_weights_frame(decision_dates, weight_matrix, symbols),
    )


def _weights_frame(as_of: list[date], weights: np.ndarray, symbols: list[str]) -> pl.DataFrame:
    """Long (as_of, symbol, weight) frame from a (dates, N+1) matrix."""
    n_dates, n_symbols = weights.shape
    return pl.DataFrame(
        {
            "as_of": np.repeat(np.array(as_of, dtype="datetime64[D]"), n_symbols),
            "symbol": symbols * n_dates,
            "weight": weights.reshape(-1),
        },
        schema={"as_of": pl.Date, "symbol": pl.String, "weight": pl.Float64},
    )


def _unwrap(policy: TrainedPolicy | BaseAlgorithm, env_kwargs: Mapping[str, Any] | None):
    if isinstance(policy, TrainedPolicy):
        return policy.model, {**policy.env_kwargs, **(env_kwargs or {})}
    return policy, env_kwargs


def evaluate_policy_window(
    model: TrainedPolicy | BaseAlgorithm,
    env_data: EnvData,
    window: WindowLike,
    cost_rate: float | None = None,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    periods_per_year: int = 365,
) -> WindowEvaluation:
    """Run a policy deterministically over ``window`` and measure it net of costs.

    Parameters
    ----------
    model : TrainedPolicy or SB3 model
        A :class:`TrainedPolicy` brings its own env settings; a bare SB3 model needs
        ``env_kwargs`` matching its training observation.
    window : (start, end)
        Half-open date window; the first decision is at ``start`` from 100% cash.
    cost_rate : float, optional
        Overrides the env's cost rate.
    periods_per_year : int
        Annualisation of the Sharpe ratio (365 crypto, 252 equities).

    Returns
    -------
    WindowEvaluation
    """
    sb3_model, settings = _unwrap(model, env_kwargs)
    env = _evaluation_env(env_data, window, settings, cost_rate)
    _check_observation_shape(sb3_model, env)

    def act(obs: np.ndarray, _: PortfolioEnv) -> np.ndarray:
        action, _state = sb3_model.predict(obs, deterministic=True)
        return action

    return _run_episode(env, act, periods_per_year)


def _fixed_weight_chooser(
    env_data: EnvData, weights: str | np.ndarray
) -> Callable[[np.ndarray, PortfolioEnv], np.ndarray]:
    n_assets = env_data.n_assets
    if isinstance(weights, str) and weights == "equal_weight":

        def equal(_: np.ndarray, env: PortfolioEnv) -> np.ndarray:
            target = np.zeros(n_assets + 1, np.float32)
            tradable = env.tradable_now
            if tradable.any():
                target[:-1][tradable] = 1.0 / tradable.sum()
            else:
                target[-1] = 1.0
            return target

        return equal
    if isinstance(weights, str):
        symbol = weights
        if weights == BUY_BENCHMARK:
            symbol = env_data.benchmark_symbol or CRYPTO_BENCHMARK
        if symbol not in env_data.symbols:
            raise ValueError(f"reference {weights!r}: symbol {symbol} is not in the universe")
        fixed = np.zeros(n_assets + 1, np.float32)
        fixed[env_data.symbols.index(symbol)] = 1.0
    else:
        fixed = np.asarray(weights, dtype=np.float32)
        if fixed.shape != (n_assets + 1,) or (fixed < 0).any() or abs(fixed.sum() - 1) > 1e-6:
            raise ValueError(
                f"fixed weights must be {n_assets + 1} non-negative numbers summing to 1 "
                f"(cash last), got {fixed.tolist()}"
            )
    return lambda _obs, _env: fixed  # relu-normalising non-negative weights keeps them


def evaluate_fixed_weights(
    env_data: EnvData,
    window: WindowLike,
    weights: str | np.ndarray = "equal_weight",
    cost_rate: float | None = None,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    periods_per_year: int = 365,
) -> WindowEvaluation:
    """Evaluate a reference allocation through the same env as the policies.

    ``weights``: ``"equal_weight"`` (1/n over the assets tradable that day, rebalanced daily),
    ``"buy_benchmark"`` (100% in ``env_data.benchmark_symbol``, chosen by
    :mod:`portfolio_pipeline.market.context`, BTCUSDT when unset; no trading after the first
    day since the weight does not drift), another symbol (100% in it), or an (N+1,) array
    rebalanced to daily. Returns the same :class:`WindowEvaluation` as
    :func:`evaluate_policy_window`.
    """
    # The weights are the target itself, never a tilt of a residual policy's base.
    settings = {**(env_kwargs or {}), "residual": False}
    env = _evaluation_env(env_data, window, settings, cost_rate)
    return _run_episode(env, _fixed_weight_chooser(env_data, weights), periods_per_year)


def evaluate_base_strategy(
    env_data: EnvData,
    window: WindowLike,
    cost_rate: float | None = None,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    periods_per_year: int = 365,
) -> WindowEvaluation:
    """The base strategy of ``env_data`` (:mod:`portfolio_pipeline.policies.residual`) through
    the same env: a residual env with a zero action, which holds what the base holds."""
    settings = {**(env_kwargs or {}), "residual": True}
    env = _evaluation_env(env_data, window, settings, cost_rate)
    zero = np.zeros(env_data.n_assets + 1, np.float32)
    return _run_episode(env, lambda _obs, _env: zero, periods_per_year)


def evaluate_weight_schedule(
    env_data: EnvData,
    window: WindowLike,
    schedule: np.ndarray,
    cost_rate: float | None = None,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    periods_per_year: int = 365,
) -> WindowEvaluation:
    """Hold a daily schedule of target weights over ``window`` through the same env.

    ``schedule``: (S, N+1) long-only weights summing to 1, cash last, one row per decision
    date of the window in order (an ensemble's mean of its seeds' ``weights``).
    """
    settings = {**(env_kwargs or {}), "residual": False}
    env = _evaluation_env(env_data, window, settings, cost_rate)
    rows = np.asarray(schedule, dtype=np.float64)
    if rows.shape != (env.window_end - env.window_start - 1, env_data.n_assets + 1):
        raise ValueError(
            f"schedule shape {rows.shape} != ({env.window_end - env.window_start - 1}, "
            f"{env_data.n_assets + 1}): one row per decision date of the window"
        )
    return _run_episode(
        env, lambda _obs, current: rows[current.current_index - env.window_start], periods_per_year
    )


def policy_target_weights(
    model: TrainedPolicy | BaseAlgorithm,
    env_data: EnvData,
    window: WindowLike,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
) -> pl.DataFrame:
    """Target weights the policy decides at every date of ``window`` (the backtest's input).

    The episode is replayed deterministically (weights drift between decisions as they
    would in the portfolio); the last date of the window is included, using only its own
    observation, so a window ending today yields today's recommendation.

    Returns
    -------
    polars.DataFrame
        Columns as_of (Date), symbol (String, the N symbols and the cash symbol), weight
        (Float64); one row per (as_of, symbol); weights of each as_of sum to 1.
    """
    sb3_model, settings = _unwrap(model, env_kwargs)
    env = _evaluation_env(env_data, window, settings, None)
    _check_observation_shape(sb3_model, env)
    obs, _ = env.reset(seed=0)
    as_of: list[date] = []
    weights: list[np.ndarray] = []
    while True:
        action, _ = sb3_model.predict(obs, deterministic=True)
        as_of.append(env.env_data.date_at(env.current_index))
        if env.current_index >= env.window_end - 1:  # the last date: decide, nothing to earn
            weights.append(env.target_weights(action))
            break
        obs, _, terminated, truncated, info = env.step(action)
        weights.append(info["weights"])
        if terminated:
            break
    symbols = [*env_data.symbols, env_data.cash_symbol]
    return _weights_frame(as_of, np.asarray(weights), symbols)
