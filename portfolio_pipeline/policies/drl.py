"""Deep-RL allocation policies: train with Stable-Baselines3, evaluate through PortfolioEnv.

Pure (no dagster). torch and stable_baselines3 are imported inside the functions that use
them. Every evaluation - trained policy, equal weight, buy-and-hold of the benchmark - runs
through the same :class:`~portfolio_pipeline.policies.env.PortfolioEnv` and therefore the same
accounting (:mod:`portfolio_pipeline.portfolio.accounting`), so their numbers are comparable and
agree with the backtest engine.

Windows are half-open ``[start, end)`` date ranges; the portfolio is held over the window
(decisions at ``start .. end-2`` earn the returns of ``start+1 .. end-1``), so a policy
trained on the training window never sees a validation or test price.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from portfolio_pipeline.market.context import CRYPTO_BENCHMARK
from portfolio_pipeline.market.windows import EvaluationWindows, windows_from_dates, years_before
from portfolio_pipeline.policies.env import EnvData, PortfolioEnv

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
# buy_benchmark: buy and hold the market series (market.context: BTCUSDT for crypto).
BUY_BENCHMARK = "buy_benchmark"
FIXED_WEIGHT_REFERENCES: tuple[str, ...] = ("equal_weight", BUY_BENCHMARK)

WindowLike = tuple[Any, Any]


@dataclass(frozen=True)
class Splits:
    """Train / validation / test windows, each half-open ``[start, end)``, and the inner split.

    No fixed dates: build them from the data with :meth:`from_dates` (test = the last 2
    years, validation = the year before, see :mod:`portfolio_pipeline.market.windows`) or from
    :class:`~portfolio_pipeline.market.windows.EvaluationWindows` with :meth:`from_windows`.

    ``tune_start`` splits the training window in two so that the DRL is chosen on data the
    pipeline's strategy selection never uses: policies learn on ``fit`` =
    ``[train_start, tune_start)`` and the search picks algorithm, hyperparameters and the
    deployed seed on ``tune`` = ``[tune_start, train_end)``. The validation window, where the
    recommendation strategy is chosen among all strategies (the DRL one included), and the
    test window are then unseen by every DRL choice. :meth:`from_windows` puts it
    ``tune_years`` (1) before the end of training, or halfway through a shorter training
    window. ``tune_start=None`` tunes on the validation window itself (the biased design this
    replaced; kept for comparisons).
    """

    train_start: date
    train_end: date
    val_end: date
    test_end: date
    tune_start: date | None = None

    @classmethod
    def from_windows(cls, windows: EvaluationWindows, *, tune_years: int | None = 1) -> Splits:
        train_start, train_end, val_end, test_end = windows.half_open()
        tune_start = None
        if tune_years:
            halfway = train_start + (train_end - train_start) / 2
            tune_start = max(years_before(train_end, tune_years), halfway)
        return cls(train_start, train_end, val_end, test_end, tune_start)

    @classmethod
    def from_dates(cls, dates: Any, *, tune_years: int | None = 1, **kwargs: Any) -> Splits:
        """Default windows of ``dates`` (any iterable of dates or a datetime64 array)."""
        values = np.asarray(dates).astype("datetime64[D]").tolist()
        return cls.from_windows(windows_from_dates(values, **kwargs), tune_years=tune_years)

    def __post_init__(self) -> None:
        if not self.train_start < self.train_end < self.val_end < self.test_end:
            raise ValueError(
                "splits must satisfy train_start < train_end <= validation < val_end <= test "
                f"< test_end, got {self.train_start}, {self.train_end}, {self.val_end}, "
                f"{self.test_end}"
            )
        if self.tune_start is not None and not self.train_start < self.tune_start < self.train_end:
            raise ValueError(
                "splits must satisfy train_start < tune_start < train_end (the tuning window "
                f"is the end of the training window), got {self.train_start}, "
                f"{self.tune_start}, {self.train_end}"
            )

    @property
    def train(self) -> tuple[date, date]:
        """The whole training window (fit + tune)."""
        return self.train_start, self.train_end

    @property
    def fit(self) -> tuple[date, date]:
        """Where policies learn: the training window before ``tune_start``."""
        return self.train_start, self.tune_start or self.train_end

    @property
    def tune(self) -> tuple[date, date]:
        """Where the DRL search and the seed choice score policies."""
        if self.tune_start is None:
            return self.validation
        return self.tune_start, self.train_end

    @property
    def validation(self) -> tuple[date, date]:
        return self.train_end, self.val_end

    @property
    def test(self) -> tuple[date, date]:
        return self.val_end, self.test_end


def decision_window(window: WindowLike) -> WindowLike:
    """The env window whose net returns are those of the dates ``[start, end)``.

    A backtest over ``[start, end]`` decides first at the close of the day before ``start``
    and books the returns of ``start`` onwards; an env window ``[start, end)`` decides first
    at ``start``. Evaluating policies on ``(start - 1 day, end)`` gives the same booked days
    as the backtest, from the same all-cash start, so the two agree exactly. The extra
    decision uses only data known at the close of ``start - 1 day``.
    """
    start, end = window
    if isinstance(start, date):
        return start - timedelta(days=1), end
    return window


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
            train_window=tuple(date.fromisoformat(d) for d in meta["train_window"]),
            env_kwargs=meta["env_kwargs"],
            total_timesteps=int(meta["total_timesteps"]),
            train_seconds=float(meta.get("train_seconds", 0.0)),
        )


def window_dates(env_data: EnvData, window: WindowLike) -> tuple[date, date]:
    """A window as (first date, exclusive end date) of the panel, for records."""
    first, stop = env_data.window_indices(*window)
    end = env_data.dates[stop - 1] + np.timedelta64(1, "D")
    return env_data.date_at(first), end.astype("datetime64[D]").item()


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
    expected = tuple(model.observation_space.shape)
    actual = tuple(env.observation_space.shape)
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
    env = _evaluation_env(env_data, window, env_kwargs, cost_rate)
    return _run_episode(env, _fixed_weight_chooser(env_data, weights), periods_per_year)


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


def policy_id(algorithm: str, params: Mapping[str, Any], seed: int, trained_at: str) -> str:
    """Stable, readable id: ``ppo-<hash of params>-s<seed>-<timestamp>``."""
    digest = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
    stamp = trained_at.replace("-", "").replace(":", "").replace("+0000", "")[:15]
    return f"{algorithm.lower()}-{digest[:8]}-s{seed}-{stamp}"
