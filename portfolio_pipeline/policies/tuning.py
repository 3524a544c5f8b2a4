"""Ray Tune search over DRL algorithms and hyperparameters.

Pure (no dagster); ray, torch and stable_baselines3 are imported inside functions.

:func:`run_policy_search` samples trial configurations (algorithm + hyperparameters, from a
profile of :mod:`portfolio_pipeline.policies.search_space`), trains each on the FIT window
(the training window before ``Splits.tune_start``) and reports the Sharpe ratio of the policy
on the TUNE window (the rest of the training window), net of costs, every ``report_every``
timesteps; ASHA stops trials that trail their rung. The best configuration is the one with
the highest last reported tune Sharpe; :mod:`portfolio_pipeline.policies.retraining` then
retrains it with several seeds.

No DRL choice looks at the validation window: the pipeline chooses its recommendation
strategy there among all strategies, the DRL one included, so that choice is honest.

The trainable lives in this module (Ray workers cannot import test modules) and receives
the :class:`~portfolio_pipeline.policies.env_data.EnvData` through ``tune.with_parameters``,
i.e. through Ray's object store, not by re-reading files.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from portfolio_pipeline.policies import drl, evaluation
from portfolio_pipeline.policies.env_data import EnvData
from portfolio_pipeline.policies.search_space import (
    PROFILES,
    TuningProfile,
    search_space,
    trial_env_settings,
    trial_params,
)
from portfolio_pipeline.policies.splits import Splits, decision_window

METRIC = "tune_sharpe"


def policy_trainable(
    config: dict[str, Any],
    env_data: EnvData,
    splits: Splits,
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
        algorithm, env_data, splits.fit, params, total_timesteps, seed=int(config["seed"]),
        device="auto", env_kwargs=trial_env_settings(config, env_kwargs),
    )  # fmt: skip
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
        scored = evaluation.evaluate_policy_window(
            model,
            env_data,
            decision_window(splits.tune),
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
    splits: Splits | None = None,
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
        only (both inside the training window, see :class:`~portfolio_pipeline.policies.Splits`).
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
    if not env_kwargs.get("residual"):  # sampled, but a plain policy has no tilt to size
        trials = trials.with_columns(pl.lit(None, pl.Float64).alias("residual_scale"))
    best = _best_trial(trials, results)
    return SearchResult(
        trials=trials,
        best_config={
            "algorithm": best["algorithm"],
            "params": json.loads(best["params"]),
            "env_kwargs": trial_env_settings(best, env_kwargs),
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
    splits: Splits | None,
    periods_per_year: int,
    cost_rate: float | None,
) -> tuple[TuningProfile, Splits, dict[str, Any]]:
    """The profile, the windows (default: from the data) and the env settings of a search;
    fails early, naming the window, if the fit or tune window is empty."""
    chosen = PROFILES[profile] if isinstance(profile, str) else profile
    splits = splits or Splits.from_dates(env_data.dates)
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
    splits: Splits,
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
                "residual_scale": result.config.get("residual_scale"),
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
        "residual_scale": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema).sort("trial_id")


__all__ = [
    "METRIC",
    "SearchResult",
    "init_ray",
    "policy_trainable",
    "run_policy_search",
]
