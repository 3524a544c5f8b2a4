"""Deep-RL figures: training throughput, one environment vs a batch, and the quick profile.

1. ``train_timesteps_per_second`` of SB3 PPO and A2C on the env of ``benchmarks.env``
   (10 assets + cash, lookback 30, one torch thread), with ``n_envs`` = 1 (one
   PortfolioEnv, the settings the search used before batching: PPO rollouts of 1,024, minibatches
   of 64, 10 epochs) and ``n_envs`` = 64 (a BatchedPortfolioEnv with the batched search's
   settings: 32 steps x 64 environments, minibatches of 512, 3 epochs), in the same run, and
   their ratio (``train_speedup``). Wall-clock and CPU-time figures: on a shared machine the
   CPU-time one is the steadier.
2. The ``quick`` tuning profile on the real sample, every symbol: Ray Tune + ASHA search
   (wall time, next to the one-environment 4,000-timestep search it replaces, same run)
   fitted on 2018-2021 and tuned on 2022, then the best configuration retrained
   with ``--seeds`` seeds (default 5) and scored on the validation (2023) and held-out test
   (2024-2025) windows, next to equal weight and buy-and-hold of the benchmark
   (``buy_benchmark``) run through the same environment and costs, and the classic
   strategies backtested over the same test days (daily, 10 bps).

    python -m benchmarks.drl                 # both parts
    python -m benchmarks.drl --throughput-only
    python -m benchmarks.drl --full-rates    # full-profile training rates, wall-time bound
    python -m benchmarks.drl --n-assets 10 100   # training rate against the number of assets
    python -m benchmarks.drl --compare-architectures  # mlp vs shared_encoder, tune window

3. ``--n-assets``: training timesteps/s of PPO (the profiles' 64 environments, 32 steps,
   minibatches of 512, 3 epochs) and SAC (4 environments, minibatches of 128, one gradient
   step per vector step) at each N, on a block-bootstrapped panel of the sample's real rows
   (the generator of ``benchmarks.features``, N symbols x ``--days`` days, the SPEC market
   features, lookback 30), for each ``--policy-architecture`` (``mlp``: SB3's MlpPolicy on
   the flat observation; ``shared_encoder``: one set of weights applied to every asset,
   :mod:`portfolio_pipeline.policies.policy_net`), with the policy's parameter count, and the
   ratio of the rate at the smallest N to the rate at the largest (``throughput_drop``).
4. ``--compare-architectures``: the ``quick`` search and the 3-seed retraining on the real
   sample (every symbol, the SPEC market features) once per policy architecture, same seeds:
   the best trial's tune-window Sharpe and the seeds' tune-window Sharpe (mean, each). Only
   the tune window (inside the training window) is reported: it is what decides the default
   architecture, as it decides everything else about the DRL; the validation and test
   windows stay unseen.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import polars as pl

from benchmarks._common import emit, peak_rss_mb
from benchmarks.env import SYMBOLS, _market_features
from portfolio_pipeline.policies import drl, tuning
from portfolio_pipeline.policies.env_data import build_env_data
from portfolio_pipeline.policies.retraining import train_best_with_seeds
from portfolio_pipeline.policies.search_space import (
    OFF_POLICY_MAX_ENVS,
    PROFILES,
    with_budget,
)
from portfolio_pipeline.policies.splits import Splits
from portfolio_pipeline.settings import load_settings

BENCHMARK = "drl"
N_ENVS = 64
THROUGHPUT_SETTINGS = {
    ("PPO", 1): {"n_steps": 1024, "batch_size": 64, "n_epochs": 10},
    ("PPO", N_ENVS): {"n_steps": 32, "batch_size": 512, "n_epochs": 3, "n_envs": N_ENVS},
    ("A2C", 1): {"n_steps": 5},
    ("A2C", N_ENVS): {"n_steps": 5, "n_envs": N_ENVS},
}


def _throughput(data, algorithm: str, n_envs: int, timesteps: int) -> tuple[float, float]:
    import torch

    torch.set_num_threads(1)
    params = THROUGHPUT_SETTINGS[(algorithm, n_envs)]
    model, _settings, device = drl.build_model(
        algorithm,
        data,
        Splits.from_dates(data.dates).fit,
        params,
        timesteps,
        seed=0,
        env_kwargs={"lookback": 30},
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=timesteps)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    trained = int(model.num_timesteps)
    emit(BENCHMARK, "train_timesteps_per_second", round(trained / wall, 1), "timesteps/s",
         algorithm=algorithm, n_envs=n_envs, device=device, torch_threads=1, assets=data.n_assets,
         lookback=30, timesteps=trained, **{k: v for k, v in params.items() if k != "n_envs"})  # fmt: skip
    emit(BENCHMARK, "train_timesteps_per_cpu_second", round(trained / cpu, 1), "timesteps/s",
         algorithm=algorithm, n_envs=n_envs)  # fmt: skip
    return trained / wall, trained / cpu


def training_throughput(ohlcv: pl.DataFrame) -> None:
    subset = ohlcv.filter(pl.col("symbol").is_in(SYMBOLS))
    data = build_env_data(subset, _market_features(subset), symbols=SYMBOLS)
    budgets = {
        ("PPO", 1): 3_072,
        ("PPO", N_ENVS): 20_480,
        ("A2C", 1): 2_000,
        ("A2C", N_ENVS): 20_480,
    }
    for algorithm in ("PPO", "A2C"):
        single = _throughput(data, algorithm, 1, budgets[(algorithm, 1)])
        batched = _throughput(data, algorithm, N_ENVS, budgets[(algorithm, N_ENVS)])
        emit(BENCHMARK, "train_speedup", round(batched[0] / single[0], 2), "x",
             algorithm=algorithm, n_envs=N_ENVS, cpu_time_speedup=round(batched[1] / single[1], 2))  # fmt: skip


SCALING_SETTINGS = {
    # (params, timesteps): the batched settings of the tuning profiles (search_space).
    "PPO": ({"n_steps": 32, "batch_size": 512, "n_epochs": 3, "n_envs": N_ENVS}, 8_192),
    "SAC": ({"batch_size": 128, "train_freq": 1, "n_envs": OFF_POLICY_MAX_ENVS}, 1_200),
}


def _scaling_env_data(sample: pl.DataFrame, n_assets: int, days: int):
    from benchmarks.features import synthetic_panel

    panel = synthetic_panel(sample, n_assets, days)
    return build_env_data(panel, _market_features(panel))


def assets_scaling(
    sample: pl.DataFrame,
    n_assets: list[int],
    architectures: list[str],
    algorithms: list[str],
    days: int,
    lookback: int = 30,
) -> None:
    """Training throughput against the number of assets (part 3 of the module docstring)."""
    import torch

    torch.set_num_threads(1)
    rates: dict[tuple[str, str, int], tuple[float, float]] = {}  # (wall, CPU-time) rates
    for n in n_assets:
        data = _scaling_env_data(sample, n, days)
        for architecture in architectures:
            for algorithm in algorithms:
                params, budget = SCALING_SETTINGS[algorithm]
                params = {**params, "policy_architecture": architecture}
                model, _settings, device = drl.build_model(
                    algorithm, data, Splits.from_dates(data.dates).fit, params, budget,
                    seed=0, env_kwargs={"lookback": lookback, "include_forecasts": False,
                                        "include_sentiment": False},
                )  # fmt: skip
                n_parameters = sum(p.numel() for p in model.policy.parameters())
                started, cpu_started = time.perf_counter(), time.process_time()
                model.learn(total_timesteps=budget)
                wall = time.perf_counter() - started
                cpu = time.process_time() - cpu_started
                rate = model.num_timesteps / wall
                rates[(architecture, algorithm, n)] = (rate, model.num_timesteps / cpu)
                emit(BENCHMARK, "train_timesteps_per_second", round(rate, 1), "timesteps/s",
                     n_assets=n, algorithm=algorithm, policy_architecture=architecture,
                     n_envs=params["n_envs"], device=device, torch_threads=1, lookback=lookback,
                     observation_size=int(model.observation_space.shape[0]),
                     timesteps=int(model.num_timesteps),
                     cpu_rate=round(model.num_timesteps / cpu, 1))  # fmt: skip
                emit(BENCHMARK, "policy_parameters", n_parameters, "parameters", n_assets=n,
                     algorithm=algorithm, policy_architecture=architecture)  # fmt: skip
                del model
    low, high = min(n_assets), max(n_assets)
    if low == high:
        return
    for architecture in architectures:
        for algorithm in algorithms:
            (wall_low, cpu_low) = rates[(architecture, algorithm, low)]
            (wall_high, cpu_high) = rates[(architecture, algorithm, high)]
            # The CPU-time ratio is the steadier one on a shared machine.
            emit(BENCHMARK, "throughput_drop", round(wall_low / wall_high, 2), "x",
                 algorithm=algorithm, policy_architecture=architecture, from_n_assets=low,
                 to_n_assets=high, cpu_time_drop=round(cpu_low / cpu_high, 2))  # fmt: skip


def compare_architectures(ohlcv: pl.DataFrame, storage: str, seeds: tuple[int, ...]) -> None:
    """Part 4 of the module docstring."""
    data = build_env_data(ohlcv, _market_features(ohlcv))
    splits = Splits.from_dates(data.dates)
    for architecture in drl.POLICY_ARCHITECTURES:
        profile = with_budget("quick", policy_architecture=architecture)
        search = tuning.run_policy_search(
            data, f"{storage}/{architecture}", profile, splits=splits, seed=0, num_cpus=2
        )
        emit(BENCHMARK, "architecture_best_trial_tune_sharpe", round(search.best_tune_sharpe, 3),
             "sharpe", policy_architecture=architecture, best=search.best_config["algorithm"],
             trials=search.trials.height, search_wall_seconds=round(search.wall_seconds, 1),
             symbols=data.n_assets, trial_tune_sharpes=[round(v, 3) for v in search.trials[tuning.METRIC]])  # fmt: skip
        started = time.perf_counter()
        results = train_best_with_seeds(
            search.best_config, data, seeds=seeds, splits=splits,
            artifact_dir=f"{storage}/{architecture}/policies",
        )  # fmt: skip
        tune = results.registry["tune_sharpe"].to_numpy()
        emit(BENCHMARK, "architecture_seed_tune_sharpe_mean", round(float(np.mean(tune)), 3),
             "sharpe", policy_architecture=architecture, per_seed=[round(v, 3) for v in tune],
             std=round(float(np.std(tune, ddof=1)), 3), seeds=len(seeds),
             retraining_wall_seconds=round(time.perf_counter() - started, 1))  # fmt: skip


def full_profile_rates(ohlcv: pl.DataFrame) -> None:
    """Training rates at the full profile's settings (every symbol, lookback 30) and the
    search's wall time they imply on this machine without ASHA's early stops (an upper
    bound): 8 trials per algorithm x 200,000 timesteps, as many at once as there are CPUs,
    plus 3 seeds of the slowest algorithm."""
    import os

    import torch

    torch.set_num_threads(1)
    data = build_env_data(ohlcv, _market_features(ohlcv))
    profile = PROFILES["full"]
    off_envs = min(profile.n_envs, OFF_POLICY_MAX_ENVS)
    settings = {
        "PPO": ({"n_steps": 32, "batch_size": 512, "n_epochs": 3, "n_envs": profile.n_envs}, 8_192),
        "A2C": ({"n_steps": 5, "n_envs": profile.n_envs}, 8_000),
        "SAC": ({"batch_size": 128, "train_freq": 1, "n_envs": off_envs}, 800),
        "DDPG": ({"batch_size": 128, "train_freq": 1, "n_envs": off_envs}, 800),
    }
    seconds_per_trial = {}
    for algorithm, (params, budget) in settings.items():
        model, _settings, device = drl.build_model(
            algorithm, data, Splits.from_dates(data.dates).fit, params, budget, seed=0,
            env_kwargs=dict(profile.env_kwargs),
        )  # fmt: skip
        started = time.perf_counter()
        model.learn(total_timesteps=budget)
        rate = model.num_timesteps / (time.perf_counter() - started)
        seconds_per_trial[algorithm] = profile.total_timesteps / rate
        emit(BENCHMARK, "full_profile_train_timesteps_per_second", round(rate, 1), "timesteps/s",
             algorithm=algorithm, symbols=data.n_assets, device=device, **params)  # fmt: skip
    cpus = os.cpu_count() or 1
    trials = sum(profile.samples_per_algorithm * s for s in seconds_per_trial.values())
    bound = trials / min(cpus, profile.max_concurrent_trials) + 3 * max(seconds_per_trial.values())
    emit(BENCHMARK, "full_profile_wall_seconds_upper_bound", round(bound), "s", cpus=cpus,
         trials=profile.samples_per_algorithm * len(settings),
         timesteps_per_trial=profile.total_timesteps)  # fmt: skip


def _classic_test_sharpes(ohlcv: pl.DataFrame, splits: Splits) -> dict[str, float]:
    """Every classic strategy over the test days, daily rebalancing, 10 bps (as the DRL)."""
    from datetime import timedelta

    from portfolio_pipeline.portfolio.backtest import run_backtest_grid
    from portfolio_pipeline.portfolio.strategies import build_strategies

    grid = run_backtest_grid(
        ohlcv,
        build_strategies(),
        splits.val_end,
        splits.test_end - timedelta(days=1),
        "daily",
        10.0,
        sensitivity_rebalances=(),
    )
    return dict(grid.metrics.select("strategy", "sharpe").iter_rows())


def quick_profile(ohlcv: pl.DataFrame, storage: str, seeds: tuple[int, ...]) -> None:
    started = time.perf_counter()
    data = build_env_data(ohlcv, _market_features(ohlcv))
    emit(BENCHMARK, "env_data_seconds", round(time.perf_counter() - started, 2), "s",
         symbols=data.n_assets)  # fmt: skip
    # The same search as before batching (one environment, 4,000 timesteps per trial, the
    # one-environment search space), in the same run: the new profile's wall time is judged
    # against it, on the same machine and load.
    legacy = with_budget("quick", n_envs=1, total_timesteps=4_000, report_every=1_000)
    before = tuning.run_policy_search(data, f"{storage}/legacy", legacy, seed=0, num_cpus=2)
    emit(BENCHMARK, "quick_search_wall_seconds", round(before.wall_seconds, 1), "s",
         variant="one_env_4000_timesteps", trials=before.trials.height,
         timesteps_per_trial=legacy.total_timesteps, n_envs=1,
         best_tune_sharpe=round(before.best_tune_sharpe, 3))  # fmt: skip
    profile = PROFILES["quick"]
    search = tuning.run_policy_search(data, storage, profile, seed=0, num_cpus=2)
    emit(
        BENCHMARK,
        "quick_search_wall_seconds",
        round(search.wall_seconds, 1),
        "s",
        variant="batched",
        trials=search.trials.height,
        timesteps_per_trial=profile.total_timesteps,
        n_envs=profile.n_envs,
        symbols=data.n_assets,
        statuses=search.trials["status"].value_counts().sort("status").rows(),
        best=search.best_config["algorithm"],
        best_tune_sharpe=round(search.best_tune_sharpe, 3),
    )
    emit(BENCHMARK, "quick_search_wall_ratio", round(search.wall_seconds / before.wall_seconds, 2),
         "x", timesteps_ratio=profile.total_timesteps / legacy.total_timesteps)  # fmt: skip
    for row in search.trials.iter_rows(named=True):
        emit(BENCHMARK, "trial_tune_sharpe", round(row["tune_sharpe"], 3), "sharpe",
             trial=row["trial_id"], algorithm=row["algorithm"], status=row["status"],
             timesteps=row["timesteps"])  # fmt: skip

    started = time.perf_counter()
    results = train_best_with_seeds(
        search.best_config, data, seeds=seeds, artifact_dir=f"{storage}/policies"
    )
    emit(BENCHMARK, "quick_seed_retraining_wall_seconds", round(time.perf_counter() - started, 1),
         "s", seeds=len(seeds))  # fmt: skip
    registry = results.registry
    for row in registry.iter_rows(named=True):
        emit(BENCHMARK, "test_sharpe", round(row["test_sharpe"], 3), "sharpe",
             policy=row["policy_id"], seed=row["seed"], deployed=row["deployed"],
             tune_sharpe=round(row["tune_sharpe"], 3), val_sharpe=round(row["val_sharpe"], 3),
             test_total_return=round(row["test_total_return"], 3),
             timesteps=row["total_timesteps"])  # fmt: skip
    test = registry["test_sharpe"].to_numpy()
    emit(BENCHMARK, "test_sharpe_mean", round(float(np.mean(test)), 3), "sharpe",
         std=round(float(np.std(test, ddof=1)), 3), seeds=len(seeds),
         algorithm=search.best_config["algorithm"])  # fmt: skip
    for row in results.comparison.filter(pl.col("kind") == "reference").iter_rows(named=True):
        emit(BENCHMARK, f"{row['name']}_{row['window']}_sharpe", round(row["sharpe"], 3), "sharpe",
             total_return=round(row["total_return"], 3))  # fmt: skip
    classic = _classic_test_sharpes(ohlcv, Splits.from_dates(data.dates))
    for name, sharpe in sorted(classic.items()):
        emit(BENCHMARK, "classic_test_sharpe", round(sharpe, 3), "sharpe", strategy=name,
             rebalance="daily", cost_bps=10)  # fmt: skip
    emit(BENCHMARK, "peak_rss", round(peak_rss_mb(), 1), "MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--throughput-only", action="store_true")
    parser.add_argument("--profile-only", action="store_true")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--full-rates", action="store_true", help="only the full-profile rates")
    parser.add_argument("--n-assets", type=int, nargs="+", help="only the rate against N assets")
    parser.add_argument("--days", type=int, default=1500, help="panel days with --n-assets")
    parser.add_argument("--compare-architectures", action="store_true")
    parser.add_argument("--algorithms", nargs="+", default=list(SCALING_SETTINGS))
    parser.add_argument("--policy-architecture", nargs="+", default=list(drl.POLICY_ARCHITECTURES))
    args = parser.parse_args()
    ohlcv = pl.read_parquet(load_settings().sample_ohlcv_path)
    if args.compare_architectures:
        with tempfile.TemporaryDirectory(prefix="drl_arch_") as storage:
            compare_architectures(ohlcv, storage, tuple(range(args.seeds)))
        return
    if args.n_assets:
        assets_scaling(ohlcv, args.n_assets, args.policy_architecture, args.algorithms, args.days)
        return
    if args.full_rates:
        full_profile_rates(ohlcv)
        return
    if not args.profile_only:
        training_throughput(ohlcv)
    if not args.throughput_only:
        with tempfile.TemporaryDirectory(prefix="drl_bench_") as storage:
            quick_profile(ohlcv, storage, tuple(range(args.seeds)))


if __name__ == "__main__":
    main()
