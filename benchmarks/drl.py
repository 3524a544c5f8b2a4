"""Deep-RL figures: SB3 PPO training throughput and the quick-profile search end to end.

1. PPO training timesteps/s on the env of ``benchmarks.env`` (10 assets + cash, lookback 30).
2. The ``quick`` tuning profile on the real sample, every symbol: Ray Tune + ASHA search
   (wall time), then the best configuration retrained with seeds 0, 1, 2 and scored on the
   held-out test window (2024-01-01..2025-12-31), next to equal weight and buy-and-hold BTC
   run through the same environment and costs.

    python -m benchmarks.drl            # both parts
    python -m benchmarks.drl --ppo-only
"""

from __future__ import annotations

import argparse
import tempfile
import time

import polars as pl

from benchmarks._common import emit, peak_rss_mb
from benchmarks.env import SYMBOLS, _market_features
from portfolio_pipeline.core import drl, tuning
from portfolio_pipeline.core.env import build_env_data
from portfolio_pipeline.settings import load_settings

BENCHMARK = "drl"


def ppo_throughput(ohlcv: pl.DataFrame, timesteps: int = 4_096) -> None:
    subset = ohlcv.filter(pl.col("symbol").is_in(SYMBOLS))
    data = build_env_data(subset, _market_features(subset), symbols=SYMBOLS)
    splits = drl.Splits.from_dates(data.dates)
    started = time.perf_counter()
    policy = drl.train_policy(
        "PPO",
        data,
        splits.train,
        {"n_steps": 1024, "batch_size": 64},
        timesteps,
        seed=0,
        env_kwargs={"lookback": 30},
    )
    elapsed = time.perf_counter() - started
    emit(
        BENCHMARK,
        "ppo_train_timesteps_per_second",
        round(timesteps / elapsed, 1),
        "timesteps/s",
        assets=data.n_assets,
        lookback=30,
        device=policy.device,
        torch_threads=1,
        n_steps=1024,
        n_epochs=10,
    )


def quick_profile(ohlcv: pl.DataFrame, storage: str) -> None:
    started = time.perf_counter()
    data = build_env_data(ohlcv, _market_features(ohlcv))
    emit(
        BENCHMARK,
        "env_data_seconds",
        round(time.perf_counter() - started, 2),
        "s",
        symbols=data.n_assets,
    )

    search = tuning.run_policy_search(data, storage, "quick", seed=0, num_cpus=2)
    emit(
        BENCHMARK,
        "quick_search_wall_seconds",
        round(search.wall_seconds, 1),
        "s",
        trials=search.trials.height,
        symbols=data.n_assets,
        statuses=search.trials["status"].value_counts().sort("status").rows(),
        best=search.best_config["algorithm"],
        best_val_sharpe=round(search.best_val_sharpe, 3),
    )
    for row in search.trials.iter_rows(named=True):
        emit(BENCHMARK, "trial_val_sharpe", round(row["val_sharpe"], 3), "sharpe",
             trial=row["trial_id"], algorithm=row["algorithm"], status=row["status"],
             timesteps=row["timesteps"])  # fmt: skip

    started = time.perf_counter()
    results = tuning.train_best_with_seeds(
        search.best_config, data, seeds=(0, 1, 2), artifact_dir=f"{storage}/policies"
    )
    emit(
        BENCHMARK,
        "quick_seed_retraining_wall_seconds",
        round(time.perf_counter() - started, 1),
        "s",
        seeds=3,
    )
    for row in results.registry.iter_rows(named=True):
        emit(
            BENCHMARK,
            "test_sharpe",
            round(row["test_sharpe"], 3),
            "sharpe",
            policy=row["policy_id"],
            seed=row["seed"],
            val_sharpe=round(row["val_sharpe"], 3),
            test_total_return=round(row["test_total_return"], 3),
            equal_weight_test_sharpe=round(row["equal_weight_test_sharpe"], 3),
            btc_test_sharpe=round(row["btc_test_sharpe"], 3),
        )
    for row in results.comparison.filter(pl.col("kind") == "reference").iter_rows(named=True):
        emit(BENCHMARK, f"{row['name']}_{row['window']}_sharpe", round(row["sharpe"], 3), "sharpe",
             total_return=round(row["total_return"], 3))  # fmt: skip
    emit(BENCHMARK, "peak_rss", round(peak_rss_mb(), 1), "MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ppo-only", action="store_true")
    args = parser.parse_args()
    ohlcv = pl.read_parquet(load_settings().sample_ohlcv_path)
    ppo_throughput(ohlcv)
    if not args.ppo_only:
        with tempfile.TemporaryDirectory(prefix="drl_bench_") as storage:
            quick_profile(ohlcv, storage)


if __name__ == "__main__":
    main()
