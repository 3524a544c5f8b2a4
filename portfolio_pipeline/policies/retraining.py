"""Retrain the best searched configuration with several seeds and score every seed.

Pure (no dagster); torch and stable_baselines3 are imported by the training it calls.
:func:`train_best_with_seeds` retrains the configuration the search chose
(:mod:`portfolio_pipeline.policies.tuning`) with several seeds on the FIT window, scores each
on the TUNE window (which chooses the deployed seed) and, for the record only, on the
VALIDATION and TEST windows, next to an equal-weight and a buy-and-hold-benchmark reference
(``buy_benchmark``, the market series of :mod:`portfolio_pipeline.market.context`) run through
the same environment. It returns the rows of ``ml.policy_registry``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from portfolio_pipeline.common import parallel
from portfolio_pipeline.policies import drl
from portfolio_pipeline.policies.env_data import EnvData
from portfolio_pipeline.policies.evaluation import (
    BUY_BENCHMARK,
    FIXED_WEIGHT_REFERENCES,
    WindowEvaluation,
    evaluate_base_strategy,
    evaluate_fixed_weights,
    evaluate_policy_window,
    evaluate_weight_schedule,
)
from portfolio_pipeline.policies.splits import Splits, WindowLike, decision_window, window_dates
from portfolio_pipeline.portfolio.metrics import max_drawdown

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


@dataclass
class SeedResults:
    """Outcome of :func:`train_best_with_seeds`.

    Attributes
    ----------
    registry : polars.DataFrame
        Rows for ``ml.policy_registry`` (:data:`REGISTRY_COLUMNS` first; ``total_timesteps``
        is what each seed actually trained), plus deployed (every seed: the deployed policy is
        their ensemble), val_total_return, test_total_return, test_mean_turnover,
        equal_weight_test_sharpe, benchmark_test_sharpe (buy-and-hold of the benchmark),
        ensemble_tune_sharpe, ensemble_val_sharpe, ensemble_test_sharpe, residual,
        base_strategy and base_test_sharpe (null for a plain policy).
    comparison : polars.DataFrame
        name (policy id, ``ensemble``, ``equal_weight``, ``buy_benchmark`` or
        ``base_<strategy>``), kind (policy | ensemble | reference), seed, window (tune |
        validation | test), sharpe, total_return, mean_turnover, max_drawdown; the returns
        booked are those of the window's dates, as in the backtests
        (:func:`~portfolio_pipeline.policies.splits.decision_window`). The ensemble holds the
        mean of the seeds' target weights each day.
    policies : list of TrainedPolicy, in seed order.
    test_returns : polars.DataFrame
        date, name, net_return over the test window for every policy and reference.
    """

    registry: pl.DataFrame
    comparison: pl.DataFrame
    policies: list[drl.TrainedPolicy]
    test_returns: pl.DataFrame


ENSEMBLE = "ensemble"


@dataclass(frozen=True)
class _SeedRun:
    """One retrained seed: the policy, where it was saved and its window evaluations."""

    seed: int
    policy: drl.TrainedPolicy
    policy_id: str
    trained_at: datetime
    artifact: Path
    evaluations: dict[str, WindowEvaluation]


def train_best_with_seeds(
    best_config: Mapping[str, Any],
    env_data: EnvData,
    seeds: Sequence[int] = (0, 1, 2),
    *,
    splits: Splits | None = None,
    artifact_dir: str | Path,
    total_timesteps: int | None = None,
    device: str = "auto",
    periods_per_year: int = 365,
    seed_backend: str | None = parallel.SEQUENTIAL,
) -> SeedResults:
    """Retrain the best configuration with several seeds on the fit window; score each.

    Every seed is deployed, as their ensemble (``deployed`` column); tune, validation and
    test Sharpe are recorded, never used to pick a seed. Steps: score the fixed-weight
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
    seed_backend : {"sequential", "ray"} or None
        How the seeds train (:func:`portfolio_pipeline.common.parallel.map_tasks`): one after
        another in this process (default), as Ray tasks of one CPU each (the seeds in
        parallel), or None = Ray where two tasks fit on this machine. Each seed trains on one
        torch thread either way, so both give the same policies.
    """
    if len(seeds) < 3:
        raise ValueError(f"train_best_with_seeds needs >= 3 seeds, got {list(seeds)}")
    splits = splits or Splits.from_dates(env_data.dates)
    algorithm = str(best_config["algorithm"]).upper()
    params = dict(best_config["params"])
    env_kwargs = drl.env_settings(best_config.get("env_kwargs"))
    env_kwargs["periods_per_year"] = periods_per_year
    timesteps = int(total_timesteps or best_config["total_timesteps"])
    windows = _scoring_windows(splits)
    references = _reference_evaluations(env_data, windows, env_kwargs, periods_per_year)
    job = _SeedJob(algorithm, params, 0, splits, windows, timesteps, device, env_kwargs,
                   Path(artifact_dir), periods_per_year)  # fmt: skip
    jobs = [replace(job, seed=int(seed)) for seed in seeds]
    trained = parallel.map_tasks(train_seed_job, env_data, jobs, backend=seed_backend)
    # The policies come back as their saved artifacts (a Ray task returns no torch module).
    runs = [_SeedRun(policy=drl.TrainedPolicy.load(t["artifact"], device), **t) for t in trained]
    ensemble = _ensemble_evaluations(runs, env_data, windows, env_kwargs, periods_per_year)
    return _seed_results(runs, references, ensemble, env_data, splits, algorithm, params)


def _scoring_windows(splits: Splits) -> dict[str, WindowLike]:
    """The tune, validation and test windows as env windows that book the returns of their
    dates, as the backtests do (:func:`~portfolio_pipeline.policies.splits.decision_window`)."""
    return {
        name: decision_window(window)
        for name, window in (
            ("tune", splits.tune),
            ("validation", splits.validation),
            ("test", splits.test),
        )
    }


def _reference_evaluations(
    env_data: EnvData,
    windows: Mapping[str, WindowLike],
    env_kwargs: Mapping[str, Any],
    periods_per_year: int,
) -> dict[str, dict[str, WindowEvaluation]]:
    """Every fixed-weight reference (equal weight, buy-and-hold benchmark) on every window,
    and the base strategy (``base_<name>``) of a residual policy."""
    references = {
        reference: {
            name: evaluate_fixed_weights(
                env_data,
                window,
                reference,
                env_kwargs=env_kwargs,
                periods_per_year=periods_per_year,
            )
            for name, window in windows.items()
        }
        for reference in FIXED_WEIGHT_REFERENCES
    }
    if env_kwargs.get("residual") and env_data.base_strategy is not None:
        references[f"base_{env_data.base_strategy}"] = {
            name: evaluate_base_strategy(
                env_data, window, env_kwargs=env_kwargs, periods_per_year=periods_per_year
            )
            for name, window in windows.items()
        }
    return references


def _ensemble_evaluations(
    runs: Sequence[_SeedRun],
    env_data: EnvData,
    windows: Mapping[str, WindowLike],
    env_kwargs: Mapping[str, Any],
    periods_per_year: int,
) -> dict[str, WindowEvaluation]:
    """The ensemble on every window: each day, the mean of the seeds' target weights (each
    seed replaying its own episode), held through the same env."""
    return {
        name: evaluate_weight_schedule(
            env_data,
            window,
            np.mean([run.evaluations[name].weights for run in runs], axis=0),
            env_kwargs=env_kwargs,
            periods_per_year=periods_per_year,
        )
        for name, window in windows.items()
    }


@dataclass(frozen=True)
class _SeedJob:
    """One seed's training and scoring, as a task of :func:`train_seed_job`."""

    algorithm: str
    params: Mapping[str, Any]
    seed: int
    splits: Splits
    windows: Mapping[str, WindowLike]
    timesteps: int
    device: str
    env_kwargs: Mapping[str, Any]
    artifact_dir: Path
    periods_per_year: int


def train_seed_job(env_data: EnvData, job: _SeedJob) -> dict[str, Any]:
    """Train, save and score one seed (a task of ``map_tasks``): the fields of its
    :class:`_SeedRun` but the policy, which the caller reloads from ``artifact``."""
    run = _train_and_score_seed(
        job.algorithm, job.params, job.seed, env_data, job.splits, job.windows, job.timesteps,
        job.device, job.env_kwargs, job.artifact_dir, job.periods_per_year,
    )  # fmt: skip
    fields = {name: getattr(run, name) for name in _SeedRun.__dataclass_fields__}
    return {name: value for name, value in fields.items() if name != "policy"}


def _train_and_score_seed(
    algorithm: str,
    params: Mapping[str, Any],
    seed: int,
    env_data: EnvData,
    splits: Splits,
    windows: Mapping[str, WindowLike],
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
        name: evaluate_policy_window(policy, env_data, window, periods_per_year=periods_per_year)
        for name, window in windows.items()
    }
    return _SeedRun(int(seed), policy, identifier, trained_at, artifact, evaluations)


def _registry_row(
    run: _SeedRun,
    algorithm: str,
    params: Mapping[str, Any],
    window_bounds: Mapping[str, tuple[Any, Any]],
    references: Mapping[str, Mapping[str, WindowEvaluation]],
    ensemble: Mapping[str, WindowEvaluation],
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
        "val_start": window_bounds["validation"][0],
        "val_end": window_bounds["validation"][1],
        "test_start": window_bounds["test"][0],
        "test_end": window_bounds["test"][1],
        "val_sharpe": evaluations["validation"].sharpe,
        "test_sharpe": evaluations["test"].sharpe,
        "device": run.policy.device,
        "trained_at": run.trained_at,
        "artifact_path": str(run.artifact),
        "tune_start": window_bounds["tune"][0],
        "tune_end": window_bounds["tune"][1],
        "tune_sharpe": evaluations["tune"].sharpe,
        "total_timesteps": run.policy.total_timesteps,
        "val_total_return": evaluations["validation"].total_return,
        "test_total_return": evaluations["test"].total_return,
        "test_mean_turnover": evaluations["test"].mean_turnover,
        "equal_weight_test_sharpe": references["equal_weight"]["test"].sharpe,
        "benchmark_test_sharpe": references[BUY_BENCHMARK]["test"].sharpe,
        **_ensemble_and_base_columns(run, ensemble, references),
    }


def _ensemble_and_base_columns(
    run: _SeedRun,
    ensemble: Mapping[str, WindowEvaluation],
    references: Mapping[str, Mapping[str, WindowEvaluation]],
) -> dict[str, Any]:
    """The ensemble's Sharpe per window and, for a residual policy, its base strategy's."""
    base = next((name for name in references if name.startswith("base_")), None)
    return {
        "ensemble_tune_sharpe": ensemble["tune"].sharpe,
        "ensemble_val_sharpe": ensemble["validation"].sharpe,
        "ensemble_test_sharpe": ensemble["test"].sharpe,
        "residual": bool(run.policy.env_kwargs.get("residual", False)),
        "residual_scale": (
            float(run.policy.env_kwargs["residual_scale"])
            if run.policy.env_kwargs.get("residual")
            else None
        ),
        "base_strategy": base.removeprefix("base_") if base else None,
        "base_test_sharpe": references[base]["test"].sharpe if base else None,
    }


def _seed_results(
    runs: Sequence[_SeedRun],
    references: Mapping[str, Mapping[str, WindowEvaluation]],
    ensemble: Mapping[str, WindowEvaluation],
    env_data: EnvData,
    splits: Splits,
    algorithm: str,
    params: Mapping[str, Any],
) -> SeedResults:
    """Registry rows (every seed deployed: the ensemble), comparison rows (policies, the
    ensemble, then references) and the test-window returns of all."""
    window_bounds = {
        "tune": window_dates(env_data, splits.tune),
        "validation": window_dates(env_data, splits.validation),
        "test": window_dates(env_data, splits.test),
    }
    comparison_rows, returns_frames = [], []
    for run in runs:
        for window_name, evaluation in run.evaluations.items():
            comparison_rows.append(
                _comparison_row(run.policy_id, "policy", run.seed, window_name, evaluation)
            )
        returns_frames.append(_named_returns(run.policy_id, run.evaluations["test"]))
    for window_name, evaluation in ensemble.items():
        comparison_rows.append(_comparison_row(ENSEMBLE, "ensemble", None, window_name, evaluation))
    returns_frames.append(_named_returns(ENSEMBLE, ensemble["test"]))
    for reference, by_window in references.items():
        for window_name, evaluation in by_window.items():
            comparison_rows.append(
                _comparison_row(reference, "reference", None, window_name, evaluation)
            )
        returns_frames.append(_named_returns(reference, by_window["test"]))

    registry = pl.DataFrame(
        [_registry_row(run, algorithm, params, window_bounds, references, ensemble) for run in runs]
    ).with_columns(pl.col("trained_at").dt.convert_time_zone("UTC"))
    # The deployed policy is the ensemble of every seed, not a seed picked on a window.
    registry = registry.with_columns(pl.lit(True).alias("deployed"))
    return SeedResults(
        registry=registry.select(
            *REGISTRY_COLUMNS, *[c for c in registry.columns if c not in REGISTRY_COLUMNS]
        ),
        comparison=pl.DataFrame(comparison_rows, schema_overrides={"seed": pl.Int64}),
        policies=[run.policy for run in runs],
        test_returns=pl.concat(returns_frames),
    )


def _comparison_row(
    name: str, kind: str, seed: int | None, window: str, evaluation: WindowEvaluation
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "seed": seed,
        "window": window,
        "sharpe": float(evaluation.sharpe),
        "total_return": float(evaluation.total_return),
        "mean_turnover": float(evaluation.mean_turnover),
        "max_drawdown": max_drawdown(evaluation.net_returns),
    }


def _named_returns(name: str, evaluation: WindowEvaluation) -> pl.DataFrame:
    frame = evaluation.returns_frame.select("date", "net_return")
    return frame.with_columns(pl.lit(name).alias("name")).select("date", "name", "net_return")
