import json
from datetime import date

import dagster as dg
import polars as pl
import pytest

from portfolio_pipeline import warehouse
from portfolio_pipeline.definitions import build_definitions
from portfolio_pipeline.market.features import compute_market_features
from portfolio_pipeline.policies.assets import POLICY_OUTPUTS
from portfolio_pipeline_tests.helpers import settings_for_tests

SMALL = {
    "train_start": "2022-01-01", "tune_start": "2023-01-01", "train_end": "2024-01-01",
    "val_end": "2025-01-01", "test_end": "2026-01-01", "total_timesteps": 256,
    "report_every": 128, "samples_per_algorithm": 1, "algorithms": ["PPO", "A2C"],
    "n_envs": 8, "num_cpus": 2,
}  # fmt: skip


@pytest.mark.slow
def test_drl_policy_registers_seeds_and_writes_weights(tmp_path, sample_ohlcv):
    ohlcv = sample_ohlcv.filter(
        pl.col("symbol").is_in(["BTCUSDT", "ETHUSDT", "PAXGUSDT"])
        & (pl.col("date") >= date(2021, 1, 1))
    )
    path = tmp_path / "warehouse.duckdb"
    with warehouse.connection(path) as con:
        warehouse.replace_table(con, "market.raw_ohlcv", ohlcv)
        warehouse.replace_table(con, "features.market_features", compute_market_features(ohlcv))
    defs = build_definitions(settings_for_tests(path, home=tmp_path))
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=[dg.AssetKey(name) for name in POLICY_OUTPUTS],  # one multi-asset
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"drl_policy": {"config": SMALL}}},
    )
    assert result.success
    with warehouse.connection(path, read_only=True) as con:
        registry = con.execute("select * from ml.policy_registry").pl()
        trials = con.execute("select * from ml.policy_search_trials").pl()
        weights = con.execute("select * from ml.policy_weights").pl()
        evaluation = con.execute("select * from ml.policy_evaluation").pl()
    # Each table is its own asset, materialized by the one step.
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == set(POLICY_OUTPUTS)
    # The buy-and-hold reference is the configured benchmark (BTCUSDT here), named neutrally.
    assert {"equal_weight", "buy_benchmark", "ensemble"} <= set(evaluation["name"])
    # Residual by default: every seed tilts the base strategy chosen on validation (2024).
    (base,) = registry["base_strategy"].unique().to_list()
    assert f"base_{base}" in set(evaluation["name"]) and registry["residual"].all()
    assert registry["benchmark"].unique().to_list() == ["BTCUSDT"]
    assert registry["benchmark_test_sharpe"].is_not_null().all()
    assert sorted(registry["seed"].to_list()) == [0, 1, 2, 3, 4]
    assert set(registry["device"]) == {"cpu"}
    assert registry["test_start"].unique().to_list() == [date(2025, 1, 1)]
    assert set(trials["algorithm"]) == {"PPO", "A2C"}
    # The tilt's size is searched on the tune window: the seeds retrain the best trial's.
    assert trials["residual_scale"].is_in([0.05, 0.1, 0.2]).all()
    best = trials.filter(pl.col("status") == "COMPLETED").sort("tune_sharpe").row(-1, named=True)
    assert registry["residual_scale"].unique().to_list() == [best["residual_scale"]]
    # The budget overrides are what ran: 2 reports of 128 timesteps (8 envs x 16 steps).
    assert registry["total_timesteps"].to_list() == [256] * 5
    assert (trials["timesteps"] == 128 * trials["reports"]).all()
    assert json.loads(trials.filter(pl.col("algorithm") == "PPO")["params"][0])["n_envs"] == 8
    # Fit 2022, tune 2023: the search and every DRL choice stay inside the training window;
    # the validation window (strategy selection) and the test are unseen by the DRL.
    assert registry["train_end"].unique().to_list() == [date(2023, 1, 1)]
    assert registry["tune_start"].unique().to_list() == [date(2023, 1, 1)]
    assert registry["tune_end"].unique().to_list() == [date(2024, 1, 1)]
    # The deployed policy is the ensemble of the 5 seeds, none picked on a window.
    assert registry["deployed"].all()
    assert weights["policy_id"].unique().to_list() == registry["ensemble_id"].unique().to_list()
    assert weights["strategy"].unique().to_list() == [
        "drl_residual_" + registry["algorithm"][0].lower()
    ]
    sums = weights.group_by("as_of").agg(pl.col("weight").sum())
    assert ((sums["weight"] - 1).abs() < 1e-9).all()
    # From the decision before the validation window's first day (as the backtest replays it).
    assert weights["as_of"].min() == date(2023, 12, 31)
    assert weights["as_of"].max() == date(2025, 12, 31)
    assert set(weights["symbol"]) == {"BTCUSDT", "ETHUSDT", "PAXGUSDT", "USDT"}
