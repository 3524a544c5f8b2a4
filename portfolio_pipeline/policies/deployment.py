"""Search, retrain and deploy a DRL policy: the whole procedure behind the ``drl_policy`` asset,
as one pure function returning a frozen result (the asset only reads, calls and writes).

1. Ray Tune searches algorithm and hyperparameters on the tune window (:mod:`.tuning`).
2. The best configuration is retrained with several seeds, each scored on the tune,
   validation and test windows next to the references.
3. The ensemble of every seed is deployed, not a seed picked on a window: each day it holds
   the mean of the seeds' target weights, from the decision before the validation window
   (strategy ``drl_<algorithm>``, ``drl_residual_<algorithm>`` for a residual policy); they
   feed the backtests and the recommendations.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from portfolio_pipeline.market.windows import EvaluationWindows
from portfolio_pipeline.policies.env_data import EnvData
from portfolio_pipeline.policies.splits import Splits


@dataclass(frozen=True)
class PolicyDeployment:
    """What one search-retrain-deploy produced (rows of the four ``ml.policy_*`` tables).

    registry : one row per seed (``ml.policy_registry``), with ``deployed`` and ``ensemble_id``.
    trials : the search trials (``ml.policy_search_trials``).
    comparison : policies and references per window (``ml.policy_evaluation``).
    weights : the deployed ensemble's daily target weights (``ml.policy_weights``).
    test_returns : daily test-window returns of every seed and reference (for the plot).
    deployed : the ensemble: policy_id (its id), algorithm, device, members (the seeds'
        policy ids); strategy : its strategy name.
    search_wall_seconds : how long the search took.
    """

    registry: pl.DataFrame
    trials: pl.DataFrame
    comparison: pl.DataFrame
    weights: pl.DataFrame
    test_returns: pl.DataFrame
    deployed: dict[str, Any]
    strategy: str
    search_wall_seconds: float


def policy_splits(
    windows: EvaluationWindows, first_forecast: date | None, tune_start: date | None = None
) -> Splits:
    """DRL splits from the data's windows. With forecasts, training starts no earlier than the
    first out-of-sample forecast, so the forecast channels are never blank in training."""
    if first_forecast is not None:
        windows = replace(windows, train_start=max(windows.train_start, first_forecast))
    splits = Splits.from_windows(windows)
    return replace(splits, tune_start=tune_start) if tune_start else splits


def search_train_deploy(
    env_data: EnvData,
    splits: Splits,
    profile: Any,
    *,
    models_dir: Path,
    seeds: Sequence[int],
    num_cpus: int | None,
    periods_per_year: int,
    benchmark_symbol: str,
    log: Callable[[str], None] = lambda message: None,
) -> PolicyDeployment:
    """Run the procedure of the module docstring; ``profile`` is a :class:`.tuning` profile."""
    from portfolio_pipeline.policies.retraining import train_best_with_seeds
    from portfolio_pipeline.policies.search_space import PROFILES
    from portfolio_pipeline.policies.tuning import run_policy_search

    search = run_policy_search(
        env_data,
        models_dir / "ray_results",
        profile=profile,
        splits=splits,
        num_cpus=num_cpus,
        periods_per_year=periods_per_year,
    )
    log(
        f"search took {search.wall_seconds:.1f}s; best {search.best_config['algorithm']} "
        f"tune Sharpe {search.best_tune_sharpe:.3f}"
    )
    results = train_best_with_seeds(
        search.best_config,
        env_data,
        seeds=tuple(seeds),
        splits=splits,
        artifact_dir=models_dir / "policies",
        periods_per_year=periods_per_year,
        seed_backend=(PROFILES[profile] if isinstance(profile, str) else profile).seed_backend,
    )
    # The annualisation of the Sharpe ratios and the buy-and-hold reference, next to them.
    registry = results.registry.with_columns(
        pl.lit(periods_per_year).alias("periods_per_year"),
        pl.lit(benchmark_symbol).alias("benchmark"),
    )
    deployed = _ensemble(registry)
    registry = registry.with_columns(pl.lit(deployed["policy_id"]).alias("ensemble_id"))
    strategy = f"drl_{'residual_' if deployed['residual'] else ''}{deployed['algorithm'].lower()}"
    weights = ensemble_target_weights(registry, deployed, strategy, env_data, splits)
    trials = _trials_with_search(search, profile)
    comparison = results.comparison.with_columns(pl.lit(periods_per_year).alias("periods_per_year"))
    return PolicyDeployment(
        registry=registry,
        trials=trials,
        comparison=comparison,
        weights=weights,
        test_returns=results.test_returns,
        deployed=deployed,
        strategy=strategy,
        search_wall_seconds=search.wall_seconds,
    )


def _ensemble(registry: pl.DataFrame) -> dict[str, Any]:
    """The deployed ensemble of the registry's seeds: its id (the first member's, with
    ``ens<n>`` for the seed), algorithm, device, residual flag and members."""
    members = registry.filter(pl.col("deployed"))
    first = members.row(0, named=True)
    head, digest, _seed, stamp = str(first["policy_id"]).split("-", 3)
    return {
        "policy_id": f"{head}-{digest}-ens{members.height}-{stamp}",
        "algorithm": str(first["algorithm"]),
        "device": str(first["device"]),
        "residual": bool(first.get("residual", False)),
        "members": members["policy_id"].to_list(),
    }


def ensemble_target_weights(
    registry: pl.DataFrame,
    deployed: dict[str, Any],
    strategy: str,
    env_data: EnvData,
    splits: Splits,
) -> pl.DataFrame:
    """The ensemble's daily target weights, from the decision before the validation window's
    first day, as the backtest replays it (``ml.policy_weights`` rows): each saved seed
    replays its own episode and the ensemble holds their mean."""
    from portfolio_pipeline.policies.drl import TrainedPolicy
    from portfolio_pipeline.policies.evaluation import policy_target_weights
    from portfolio_pipeline.policies.residual import ensemble_weights
    from portfolio_pipeline.policies.splits import decision_window

    window = decision_window((splits.train_end, None))
    members = registry.filter(pl.col("deployed"))["artifact_path"].to_list()
    frames = [policy_target_weights(TrainedPolicy.load(path), env_data, window) for path in members]
    return ensemble_weights(frames).with_columns(
        pl.lit(strategy).alias("strategy"), pl.lit(deployed["policy_id"]).alias("policy_id")
    )


def _trials_with_search(search: Any, profile: Any) -> pl.DataFrame:
    """The search's trials (``ml.policy_search_trials``) with the search id (its Tune
    experiment's folder), the profile name and the search's wall time."""
    return search.trials.with_columns(
        pl.lit(os.path.basename(search.storage_path)).alias("search_id"),
        pl.lit(profile.name).alias("profile"),
        pl.lit(search.wall_seconds).alias("search_wall_seconds"),
    )
