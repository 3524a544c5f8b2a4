"""Ray Tune search over DRL algorithms and hyperparameters, then multi-seed retraining.

Pure (no dagster); ray, torch and stable_baselines3 are imported inside functions.

1. :func:`run_policy_search` samples trial configurations (algorithm + hyperparameters),
   trains each on the FIT window (the training window before ``Splits.tune_start``) and
   reports the Sharpe ratio of the policy on the TUNE window (the rest of the training
   window), net of costs, every ``report_every`` timesteps; ASHA stops trials that trail
   their rung. The best configuration is the one with the highest last reported tune Sharpe.
2. :func:`train_best_with_seeds` retrains that configuration with several seeds on the fit
   window, scores each on the tune window (which chooses the deployed seed) and, for the
   record only, on the VALIDATION and TEST windows, next to an equal-weight and a
   buy-and-hold-benchmark reference (``buy_benchmark``, the market series of
   :mod:`portfolio_pipeline.market.context`) run through the same environment. It returns the
   rows of ``ml.policy_registry``.

No DRL choice looks at the validation window: the pipeline chooses its recommendation
strategy there among all strategies, the DRL one included, so that choice is honest.

The trainable lives in this module (Ray workers cannot import test modules) and receives
the :class:`~portfolio_pipeline.policies.env.EnvData` through ``tune.with_parameters``, i.e.
through Ray's object store, not by re-reading files.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from portfolio_pipeline.policies import drl
from portfolio_pipeline.policies.env import EnvData

METRIC = "tune_sharpe"
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

REGISTRY_COLUMNS: tuple[str, ...] = (
    "policy_id",
    "algorithm",
    "params",
    "seed",
    "train_start",
    "train_end",
    "val_start",
    "val_end",
    "test_start",
    "test_end",
    "val_sharpe",
    "test_sharpe",
    "device",
    "trained_at",
    "artifact_path",
    "tune_start",
    "tune_end",
    "tune_sharpe",
    "total_timesteps",
)


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
        "seed": seed,
    }


def trial_params(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(algorithm, SB3 params) of a sampled config: only that algorithm's keys, renamed."""
    algorithm = str(config["algorithm"]).upper()
    if algorithm not in ALGORITHM_PARAMS:
        raise ValueError(f"algorithm {algorithm!r} is not one of {', '.join(ALGORITHM_PARAMS)}")
    params = {
        target: config[key] for key, target in ALGORITHM_PARAMS[algorithm].items() if key in config
    }
    return algorithm, params


def policy_trainable(
    config: dict[str, Any],
    env_data: EnvData,
    splits: drl.Splits,
    env_kwargs: Mapping[str, Any],
    total_timesteps: int,
    report_every: int,
    periods_per_year: int,
) -> None:
    """Ray Tune function trainable: train on the fit window, report the tune-window Sharpe.

    Reports ``tune_sharpe`` (annualised, net of costs, deterministic actions), the tune
    window's total return, the timesteps so far, the device and the process id and node of
    the worker, every ``report_every`` timesteps.
    """
    import torch
    from ray import tune

    torch.set_num_threads(1)
    algorithm, params = trial_params(config)
    # Each report covers whole rollouts, so the trial trains exactly its budget.
    params = drl.fit_rollout_to_budget(algorithm, params, report_every)
    model, settings, device = drl.build_model(
        algorithm,
        env_data,
        splits.fit,
        params,
        total_timesteps,
        seed=int(config["seed"]),
        device="auto",
        env_kwargs=env_kwargs,
    )
    n_reports = -(-total_timesteps // report_every)
    for report in range(1, n_reports + 1):
        # Train up to a cumulative target: SB3 rounds each learn() up to whole rollouts, and
        # chunks sized from the model's own counter keep the rollout sequence (and so the
        # final model) identical to one learn(total_timesteps) call with the same seed.
        target = min(report * report_every, total_timesteps)
        if model.num_timesteps < target:
            model.learn(
                total_timesteps=target - model.num_timesteps,
                reset_num_timesteps=model.num_timesteps == 0,
            )
        scored = drl.evaluate_policy_window(
            model,
            env_data,
            drl.decision_window(splits.tune),
            env_kwargs=settings,
            periods_per_year=periods_per_year,
        )
        tune.report(
            {
                METRIC: scored.sharpe,
                "tune_total_return": scored.total_return,
                "timesteps": int(model.num_timesteps),
                "device": device,
                "pid": os.getpid(),
                "node_ip": _node_ip(),
            }
        )


def _node_ip() -> str:
    import ray

    try:
        return str(ray.util.get_node_ip_address())
    except Exception:  # outside a Ray worker (a direct call in a notebook)
        return ""


def init_ray(num_cpus: int | None = None) -> bool:
    """Start (or join) Ray quietly; return True when this call started it.

    ``RAY_ADDRESS`` set: join that cluster. Otherwise a local Ray with ``num_cpus``, no
    dashboard, worker logs not forwarded, usage stats off.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    else:
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    return True


@dataclass
class SearchResult:
    """Outcome of :func:`run_policy_search`.

    Attributes
    ----------
    trials : polars.DataFrame
        One row per trial: trial_id, algorithm, params (JSON of the SB3 params used),
        tune_sharpe (last report), tune_total_return, timesteps, reports, status
        (COMPLETED | STOPPED_EARLY (ASHA) | ERROR), device, pid, node_ip.
    best_config : dict
        ``{"algorithm", "params", "env_kwargs", "total_timesteps"}`` of the best trial: the
        highest last tune-window Sharpe among trials that ran the whole budget (among all
        trials only if ASHA stopped every one).
    best_tune_sharpe : float
    profile : str
    wall_seconds : float
    storage_path : str
        Where Tune wrote its experiment.
    """

    trials: pl.DataFrame
    best_config: dict[str, Any]
    best_tune_sharpe: float
    profile: str
    wall_seconds: float
    storage_path: str


def run_policy_search(
    env_data: EnvData,
    storage_dir: str | Path,
    profile: str | TuningProfile = "quick",
    *,
    splits: drl.Splits | None = None,
    seed: int = 0,
    num_cpus: int | None = 2,
    periods_per_year: int = 365,
    cost_rate: float | None = None,
) -> SearchResult:
    """Search algorithm and hyperparameters with Ray Tune + ASHA on the tune-window Sharpe.

    Steps: resolve the profile, windows and env settings (:func:`_search_settings`), wrap the
    trainable with its data and resources (:func:`_search_trainable`), run the Tuner
    (:func:`_run_tuner`), then table the trials and pick the best (:func:`_best_trial`).

    Parameters
    ----------
    env_data : EnvData
        The whole panel; trials train on ``splits.fit`` and are scored on ``splits.tune``
        only (both inside the training window, see :class:`~portfolio_pipeline.policies.drl.Splits`).
    storage_dir : path
        Tune's ``storage_path`` (results, trial logs) lives under it.
    profile : "quick" | "full" | TuningProfile
    splits : Splits, optional (default: from the data, market.windows: test = the last 2 years,
        validation = the year before).
    seed : int
        Seeds the sampling of configurations and every trial's training.
    num_cpus : int, optional
        CPUs of a local Ray started here (ignored when joining ``RAY_ADDRESS`` or an
        already-initialised Ray).
    cost_rate : float, optional
        Overrides the profile's env cost rate.
    """
    chosen, splits, env_kwargs = _search_settings(
        env_data, profile, splits, periods_per_year, cost_rate
    )
    trainable = _search_trainable(chosen, env_data, splits, env_kwargs, periods_per_year)
    storage = Path(storage_dir).resolve()
    storage.mkdir(parents=True, exist_ok=True)
    experiment = f"policy_search_{chosen.name}_{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    results, wall = _run_tuner(trainable, chosen, seed, storage / experiment, num_cpus)
    trials = _trials_table(results, chosen.n_reports, chosen.report_every)
    best = _best_trial(trials, results)
    return SearchResult(
        trials=trials,
        best_config={
            "algorithm": best["algorithm"],
            "params": json.loads(best["params"]),
            "env_kwargs": env_kwargs,
            "total_timesteps": chosen.total_timesteps,
        },
        best_tune_sharpe=float(best[METRIC]),
        profile=chosen.name,
        wall_seconds=wall,
        storage_path=str(storage / experiment),
    )


def _search_settings(
    env_data: EnvData,
    profile: str | TuningProfile,
    splits: drl.Splits | None,
    periods_per_year: int,
    cost_rate: float | None,
) -> tuple[TuningProfile, drl.Splits, dict[str, Any]]:
    """The profile, the windows (default: from the data) and the env settings of a search;
    fails early, naming the window, if the fit or tune window is empty."""
    chosen = PROFILES[profile] if isinstance(profile, str) else profile
    splits = splits or drl.Splits.from_dates(env_data.dates)
    env_kwargs = drl.env_settings(chosen.env_kwargs)
    if cost_rate is not None:
        env_kwargs["cost_rate"] = float(cost_rate)
    env_kwargs["periods_per_year"] = periods_per_year
    for window in (splits.fit, splits.tune):
        env_data.window_indices(*window)
    return chosen, splits, env_kwargs


def _search_trainable(
    chosen: TuningProfile,
    env_data: EnvData,
    splits: drl.Splits,
    env_kwargs: Mapping[str, Any],
    periods_per_year: int,
) -> Any:
    """:func:`policy_trainable` bound to its data (through Ray's object store) and given the
    resources of a trial (a GPU share only when torch sees a GPU)."""
    from ray import tune

    gpu = _gpu_available()
    resources = {"cpu": chosen.cpus_per_trial, "gpu": chosen.gpu_fraction if gpu else 0.0}
    return tune.with_resources(
        tune.with_parameters(
            policy_trainable,
            env_data=env_data,
            splits=splits,
            env_kwargs=env_kwargs,
            total_timesteps=chosen.total_timesteps,
            report_every=chosen.report_every,
            periods_per_year=periods_per_year,
        ),
        resources,
    )


def _run_tuner(
    trainable: Any, chosen: TuningProfile, seed: int, experiment: Path, num_cpus: int | None
) -> tuple[Any, float]:
    """Run the Tuner (ASHA on the tune Sharpe) in ``experiment``; (results, wall seconds).
    Ray is shut down afterwards only when this call started it."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    started_ray = init_ray(num_cpus)
    started = time.perf_counter()
    try:
        tuner = tune.Tuner(
            trainable,
            param_space=search_space(chosen, seed),
            tune_config=tune.TuneConfig(
                metric=METRIC,
                mode="max",
                num_samples=chosen.samples_per_algorithm,
                max_concurrent_trials=chosen.max_concurrent_trials,
                scheduler=ASHAScheduler(
                    time_attr="training_iteration",
                    max_t=chosen.n_reports,
                    grace_period=min(chosen.grace_period, chosen.n_reports),
                    reduction_factor=2,
                ),
                search_alg=BasicVariantGenerator(random_state=seed),
            ),
            run_config=tune.RunConfig(
                name=experiment.name, storage_path=str(experiment.parent), verbose=0
            ),
        )
        results = tuner.fit()
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    return results, time.perf_counter() - started


def _best_trial(trials: pl.DataFrame, results: Any) -> dict[str, Any]:
    """The trial with the highest last tune Sharpe among those that ran the whole budget
    (among every scored trial only if ASHA stopped them all); raises if every trial failed."""
    completed = trials.filter((pl.col("status") != "ERROR") & pl.col(METRIC).is_not_nan())
    if completed.is_empty():
        errors = [str(r.error)[:300] for r in results if r.error is not None]
        raise RuntimeError(f"policy search: every trial failed; first errors: {errors[:2]}")
    # Prefer trials that ran the whole budget: an ASHA-stopped trial's score belongs to a
    # shorter training than the retraining in train_best_with_seeds would give it.
    full_budget = completed.filter(pl.col("status") == "COMPLETED")
    candidates = full_budget if full_budget.height else completed
    return candidates.sort(METRIC, descending=True).row(0, named=True)


def _gpu_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _trials_table(results: Any, n_reports: int, report_every: int) -> pl.DataFrame:
    rows = []
    for result in results:
        algorithm, params = trial_params(result.config)
        params = drl.fit_rollout_to_budget(algorithm, params, report_every)  # what it trained
        metrics = result.metrics or {}
        reports = int(metrics.get("training_iteration", 0) or 0)
        if result.error is not None:
            status = "ERROR"
        elif reports < n_reports:
            status = "STOPPED_EARLY"
        else:
            status = "COMPLETED"
        rows.append(
            {
                "trial_id": str(metrics.get("trial_id", result.path.rsplit("/", 1)[-1])),
                "algorithm": algorithm,
                "params": json.dumps(params, sort_keys=True),
                METRIC: float(metrics.get(METRIC, float("nan"))),
                "tune_total_return": float(metrics.get("tune_total_return", float("nan"))),
                "timesteps": int(metrics.get("timesteps", 0) or 0),
                "reports": reports,
                "status": status,
                "device": str(metrics.get("device", "")),
                "pid": int(metrics.get("pid", 0) or 0),
                "node_ip": str(metrics.get("node_ip", "")),
            }
        )
    schema = {
        "trial_id": pl.String,
        "algorithm": pl.String,
        "params": pl.String,
        METRIC: pl.Float64,
        "tune_total_return": pl.Float64,
        "timesteps": pl.Int64,
        "reports": pl.Int64,
        "status": pl.String,
        "device": pl.String,
        "pid": pl.Int64,
        "node_ip": pl.String,
    }
    return pl.DataFrame(rows, schema=schema).sort("trial_id")


@dataclass
class SeedResults:
    """Outcome of :func:`train_best_with_seeds`.

    Attributes
    ----------
    registry : polars.DataFrame
        Rows for ``ml.policy_registry`` (:data:`REGISTRY_COLUMNS` first; ``total_timesteps``
        is what each seed actually trained), plus deployed (the seed with the best tune
        Sharpe), val_total_return, test_total_return, test_mean_turnover,
        equal_weight_test_sharpe, benchmark_test_sharpe (buy-and-hold of the benchmark).
    comparison : polars.DataFrame
        name (policy id, ``equal_weight`` or ``buy_benchmark``), kind (policy | reference),
        seed, window (tune | validation | test), sharpe, total_return, mean_turnover; the
        returns booked are those of the window's dates, as in the backtests
        (:func:`~portfolio_pipeline.policies.drl.decision_window`).
    policies : list of TrainedPolicy, in seed order.
    test_returns : polars.DataFrame
        date, name, net_return over the test window for every policy and reference.
    """

    registry: pl.DataFrame
    comparison: pl.DataFrame
    policies: list[drl.TrainedPolicy]
    test_returns: pl.DataFrame


@dataclass(frozen=True)
class _SeedRun:
    """One retrained seed: the policy, where it was saved and its window evaluations."""

    seed: int
    policy: drl.TrainedPolicy
    policy_id: str
    trained_at: datetime
    artifact: Path
    evaluations: dict[str, drl.WindowEvaluation]


def train_best_with_seeds(
    best_config: Mapping[str, Any],
    env_data: EnvData,
    seeds: Sequence[int] = (0, 1, 2),
    *,
    splits: drl.Splits | None = None,
    artifact_dir: str | Path,
    total_timesteps: int | None = None,
    device: str = "auto",
    periods_per_year: int = 365,
) -> SeedResults:
    """Retrain the best configuration with several seeds on the fit window; score each.

    The tune-window Sharpe chooses the deployed seed (``deployed`` column); validation and
    test Sharpe are recorded, never used for a choice here. Steps: score the fixed-weight
    references on every window (:func:`_reference_evaluations`), train, save and score each
    seed (:func:`_train_and_score_seed`), then assemble the registry, the comparison and the
    test returns (:func:`_seed_results`).

    Parameters
    ----------
    best_config : mapping
        ``SearchResult.best_config``: algorithm, params, env_kwargs, total_timesteps.
    seeds : at least 3 seeds (the spread is the point).
    splits : Splits, optional
        Same windows as the search; the test window must not overlap training or validation.
    artifact_dir : path
        Each policy is saved as ``<artifact_dir>/<policy_id>.zip`` (+ ``.json``).
    total_timesteps : int, optional
        Default: the search's ``total_timesteps``.
    """
    if len(seeds) < 3:
        raise ValueError(f"train_best_with_seeds needs >= 3 seeds, got {list(seeds)}")
    splits = splits or drl.Splits.from_dates(env_data.dates)
    algorithm = str(best_config["algorithm"]).upper()
    params = dict(best_config["params"])
    env_kwargs = drl.env_settings(best_config.get("env_kwargs"))
    env_kwargs["periods_per_year"] = periods_per_year
    timesteps = int(total_timesteps or best_config["total_timesteps"])
    windows = {
        name: drl.decision_window(window)
        for name, window in (
            ("tune", splits.tune),
            ("validation", splits.validation),
            ("test", splits.test),
        )
    }
    references = _reference_evaluations(env_data, windows, env_kwargs, periods_per_year)
    runs = [
        _train_and_score_seed(
            algorithm,
            params,
            seed,
            env_data,
            splits,
            windows,
            timesteps,
            device,
            env_kwargs,
            Path(artifact_dir),
            periods_per_year,
        )  # fmt: skip
        for seed in seeds
    ]
    return _seed_results(runs, references, env_data, splits, algorithm, params)


def _reference_evaluations(
    env_data: EnvData,
    windows: Mapping[str, drl.WindowLike],
    env_kwargs: Mapping[str, Any],
    periods_per_year: int,
) -> dict[str, dict[str, drl.WindowEvaluation]]:
    """Every fixed-weight reference (equal weight, buy-and-hold benchmark) on every window."""
    return {
        reference: {
            name: drl.evaluate_fixed_weights(
                env_data,
                window,
                reference,
                env_kwargs=env_kwargs,
                periods_per_year=periods_per_year,
            )
            for name, window in windows.items()
        }
        for reference in drl.FIXED_WEIGHT_REFERENCES
    }


def _train_and_score_seed(
    algorithm: str,
    params: Mapping[str, Any],
    seed: int,
    env_data: EnvData,
    splits: drl.Splits,
    windows: Mapping[str, drl.WindowLike],
    timesteps: int,
    device: str,
    env_kwargs: Mapping[str, Any],
    artifact_dir: Path,
    periods_per_year: int,
) -> _SeedRun:
    """Train one seed on the fit window, save it under its policy id, score every window."""
    policy = drl.train_policy(
        algorithm,
        env_data,
        splits.fit,
        params,
        timesteps,
        seed,
        device,
        env_kwargs=env_kwargs,
    )
    trained_at = datetime.now(UTC)
    identifier = drl.policy_id(algorithm, params, seed, trained_at.strftime("%Y%m%dT%H%M%S"))
    artifact = policy.save(artifact_dir / identifier)
    evaluations = {
        name: drl.evaluate_policy_window(
            policy, env_data, window, periods_per_year=periods_per_year
        )
        for name, window in windows.items()
    }
    return _SeedRun(int(seed), policy, identifier, trained_at, artifact, evaluations)


def _registry_row(
    run: _SeedRun,
    algorithm: str,
    params: Mapping[str, Any],
    window_dates: Mapping[str, tuple[Any, Any]],
    references: Mapping[str, Mapping[str, drl.WindowEvaluation]],
) -> dict[str, Any]:
    """One ``ml.policy_registry`` row (:data:`REGISTRY_COLUMNS`, then the extra columns)."""
    evaluations = run.evaluations
    return {
        "policy_id": run.policy_id,
        "algorithm": algorithm,
        "params": json.dumps(params, sort_keys=True),
        "seed": run.seed,
        "train_start": run.policy.train_window[0],
        "train_end": run.policy.train_window[1],
        "val_start": window_dates["validation"][0],
        "val_end": window_dates["validation"][1],
        "test_start": window_dates["test"][0],
        "test_end": window_dates["test"][1],
        "val_sharpe": evaluations["validation"].sharpe,
        "test_sharpe": evaluations["test"].sharpe,
        "device": run.policy.device,
        "trained_at": run.trained_at,
        "artifact_path": str(run.artifact),
        "tune_start": window_dates["tune"][0],
        "tune_end": window_dates["tune"][1],
        "tune_sharpe": evaluations["tune"].sharpe,
        "total_timesteps": run.policy.total_timesteps,
        "val_total_return": evaluations["validation"].total_return,
        "test_total_return": evaluations["test"].total_return,
        "test_mean_turnover": evaluations["test"].mean_turnover,
        "equal_weight_test_sharpe": references["equal_weight"]["test"].sharpe,
        "benchmark_test_sharpe": references[drl.BUY_BENCHMARK]["test"].sharpe,
    }


def _seed_results(
    runs: Sequence[_SeedRun],
    references: Mapping[str, Mapping[str, drl.WindowEvaluation]],
    env_data: EnvData,
    splits: drl.Splits,
    algorithm: str,
    params: Mapping[str, Any],
) -> SeedResults:
    """Registry rows with the deployed seed (best tune Sharpe, first on ties), comparison
    rows (policies, then references) and the test-window returns of all."""
    window_dates = {
        "tune": drl.window_dates(env_data, splits.tune),
        "validation": drl.window_dates(env_data, splits.validation),
        "test": drl.window_dates(env_data, splits.test),
    }
    comparison_rows, returns_frames = [], []
    for run in runs:
        for window_name, evaluation in run.evaluations.items():
            comparison_rows.append(
                _comparison_row(run.policy_id, "policy", run.seed, window_name, evaluation)
            )
        returns_frames.append(_named_returns(run.policy_id, run.evaluations["test"]))
    for reference, by_window in references.items():
        for window_name, evaluation in by_window.items():
            comparison_rows.append(
                _comparison_row(reference, "reference", None, window_name, evaluation)
            )
        returns_frames.append(_named_returns(reference, by_window["test"]))

    registry = pl.DataFrame(
        [_registry_row(run, algorithm, params, window_dates, references) for run in runs]
    ).with_columns(pl.col("trained_at").dt.convert_time_zone("UTC"))
    best_tune = registry.sort("tune_sharpe", descending=True, maintain_order=True)["seed"][0]
    registry = registry.with_columns((pl.col("seed") == best_tune).alias("deployed"))
    return SeedResults(
        registry=registry.select(
            *REGISTRY_COLUMNS, *[c for c in registry.columns if c not in REGISTRY_COLUMNS]
        ),
        comparison=pl.DataFrame(comparison_rows, schema_overrides={"seed": pl.Int64}),
        policies=[run.policy for run in runs],
        test_returns=pl.concat(returns_frames),
    )


def _comparison_row(
    name: str, kind: str, seed: int | None, window: str, evaluation: drl.WindowEvaluation
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "seed": seed,
        "window": window,
        "sharpe": float(evaluation.sharpe),
        "total_return": float(evaluation.total_return),
        "mean_turnover": float(evaluation.mean_turnover),
    }


def _named_returns(name: str, evaluation: drl.WindowEvaluation) -> pl.DataFrame:
    frame = evaluation.returns_frame.select("date", "net_return")
    return frame.with_columns(pl.lit(name).alias("name")).select("date", "name", "net_return")


def with_budget(profile: str | TuningProfile, **changes: Any) -> TuningProfile:
    """A copy of a profile with some fields changed (tests, notebooks)."""
    base = PROFILES[profile] if isinstance(profile, str) else profile
    return replace(base, **changes)


__all__ = [
    "ALGORITHM_PARAMS",
    "PROFILES",
    "REGISTRY_COLUMNS",
    "SearchResult",
    "SeedResults",
    "TuningProfile",
    "init_ray",
    "policy_trainable",
    "run_policy_search",
    "search_space",
    "train_best_with_seeds",
    "trial_params",
    "with_budget",
]
