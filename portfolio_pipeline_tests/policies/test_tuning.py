from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from portfolio_pipeline.policies import drl, tuning
from portfolio_pipeline.policies.env_data import EnvData, build_env_data
from portfolio_pipeline.policies.evaluation import evaluate_fixed_weights, evaluate_policy_window
from portfolio_pipeline.policies.retraining import REGISTRY_COLUMNS, train_best_with_seeds
from portfolio_pipeline.policies.search_space import (
    with_budget,
)
from portfolio_pipeline.policies.splits import Splits, decision_window

UNIVERSE = ("BTCUSDT", "ETHUSDT", "XMRUSDT")
SPLITS = Splits(
    train_start=date(2023, 3, 1),
    tune_start=date(2023, 8, 1),
    train_end=date(2023, 10, 1),
    val_end=date(2024, 1, 1),
    test_end=date(2024, 4, 1),
)
TINY = with_budget(
    "quick",
    samples_per_algorithm=1,
    total_timesteps=128,
    report_every=64,
    max_concurrent_trials=2,
    n_envs=4,
    env_kwargs={"lookback": 5},
)


@pytest.fixture(scope="module")
def env_data(sample_ohlcv: pl.DataFrame) -> EnvData:
    ohlcv = sample_ohlcv.filter(
        pl.col("symbol").is_in(UNIVERSE) & (pl.col("date") >= date(2022, 12, 1))
    )
    return build_env_data(ohlcv, None)


@pytest.fixture(scope="module")
def ray_session():
    import ray

    started = tuning.init_ray(num_cpus=2)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def search(ray_session, env_data: EnvData, tmp_path_factory) -> tuning.SearchResult:
    storage = tmp_path_factory.mktemp("tune")
    return tuning.run_policy_search(env_data, storage, TINY, splits=SPLITS, seed=0)


@pytest.mark.slow
def test_search_reports_tune_window_sharpe_per_trial(search: tuning.SearchResult):
    trials = search.trials
    assert trials.height == 2
    assert trials.columns[:4] == ["trial_id", "algorithm", "params", "tune_sharpe"]
    assert set(trials["status"]) <= {"COMPLETED", "STOPPED_EARLY"}
    assert sorted(trials["algorithm"]) == ["A2C", "PPO"]  # one trial per algorithm
    assert trials["tune_sharpe"].is_finite().all()
    # Whole rollouts fit each report: a trial trains exactly its budget (64 per report).
    assert (trials["timesteps"] == 64 * trials["reports"]).all()
    assert (trials.filter(pl.col("status") == "COMPLETED")["timesteps"] == 128).all()
    assert set(trials["device"]) == {drl.select_device("auto")}
    best = search.best_config
    completed = trials.filter(pl.col("status") == "COMPLETED")
    assert completed.height >= 1  # ASHA keeps at least the best trial of a rung running
    assert search.best_tune_sharpe == pytest.approx(completed["tune_sharpe"].max())
    assert best["algorithm"] in ("PPO", "A2C") and best["total_timesteps"] == 128
    assert best["env_kwargs"]["lookback"] == 5
    row = completed.filter(pl.col("tune_sharpe") == search.best_tune_sharpe).row(0, named=True)
    assert json.loads(row["params"]) == best["params"]
    assert Path(search.storage_path).is_dir()


@pytest.mark.slow
def test_best_config_retrained_with_seeds(search: tuning.SearchResult, env_data, tmp_path):
    results = train_best_with_seeds(
        search.best_config, env_data, seeds=(0, 1, 2), splits=SPLITS, artifact_dir=tmp_path
    )
    registry = results.registry
    assert registry.columns[: len(REGISTRY_COLUMNS)] == list(REGISTRY_COLUMNS)
    assert registry["seed"].to_list() == [0, 1, 2]
    assert registry["policy_id"].n_unique() == 3
    first = registry.row(0, named=True)
    assert (first["train_start"], first["train_end"]) == SPLITS.fit  # where it learned
    assert (first["val_start"], first["val_end"]) == SPLITS.validation
    assert (first["test_start"], first["test_end"]) == SPLITS.test
    assert (first["tune_start"], first["tune_end"]) == SPLITS.tune
    assert registry["total_timesteps"].to_list() == [128, 128, 128]
    # No seed is picked on a window: every seed is deployed, as their ensemble.
    assert registry["deployed"].all()
    assert registry["residual"].to_list() == [False] * 3
    assert registry["base_strategy"].is_null().all()
    # The search trained with seed 0 and the same budget: seed 0 reproduces its score,
    # which proves the trainable reported the Sharpe of the policy it trained.
    assert first["tune_sharpe"] == pytest.approx(search.best_tune_sharpe, rel=1e-5)
    assert registry["test_sharpe"].is_finite().all()
    assert all(Path(p).is_file() for p in registry["artifact_path"])

    reference = evaluate_fixed_weights(
        env_data,
        decision_window(SPLITS.test),
        "equal_weight",
        env_kwargs=search.best_config["env_kwargs"],
    )
    assert first["equal_weight_test_sharpe"] == pytest.approx(reference.sharpe)
    comparison = results.comparison
    assert set(comparison["name"]) == {
        *registry["policy_id"],
        "ensemble",
        "equal_weight",
        "buy_benchmark",
    }
    reloaded = drl.TrainedPolicy.load(first["artifact_path"], device="cpu")
    test = evaluate_policy_window(reloaded, env_data, decision_window(SPLITS.test))
    assert test.sharpe == pytest.approx(first["test_sharpe"])
    assert np.isfinite(results.test_returns["net_return"].to_numpy()).all()
    with pytest.raises(ValueError, match=">= 3 seeds"):
        train_best_with_seeds(
            search.best_config, env_data, seeds=(0, 1), splits=SPLITS, artifact_dir=tmp_path
        )
