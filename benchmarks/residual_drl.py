"""Residual vs plain DRL policies over 5 seeds: per-seed and ensemble Sharpe on every window.

On the real sample (every symbol, the SPEC market features, lookback 10 as in the quick
profile), one fixed configuration (A2C on 64 batched environments, SB3's defaults otherwise,
``--timesteps`` per seed) is retrained with ``--seeds`` seeds on the fit window for each
variant:

- ``plain``: the policy allocates from scratch (``residual=False``), log-growth reward;
- ``residual`` x ``--rewards``: the policy tilts the base strategy's weights
  (:mod:`portfolio_pipeline.policies.residual`, ``residual_scale`` 0.1), the base being the
  strategy the backtests' validation selection picks among the classic strategies.

Per seed it prints the tune, validation and test Sharpe, the test turnover (mean daily) and
max drawdown; then the ensemble (the mean of the seeds' weights) and the references (equal
weight, buy-and-hold of the benchmark, the base strategy) on the same windows, net of 10 bps,
and the training rate (timesteps per second of wall time, all seeds). The reward is chosen
on the tune window: ``reward_choice`` names the residual reward whose ensemble has the best
tune Sharpe; the validation and test figures are printed for the record only.

    python -m benchmarks.residual_drl                      # 5 seeds x 40,960 timesteps
    python -m benchmarks.residual_drl --timesteps 1048576  # the CPU profile's 1M per policy
    python -m benchmarks.residual_drl --timesteps 1048576 --no-plain --rewards log_growth \
        --parallel-seeds                                   # 1M x 5 seeds, 2 at once
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta

import polars as pl

from benchmarks._common import emit, peak_rss_mb
from benchmarks.env import _market_features
from portfolio_pipeline.policies.env_data import EnvData, build_env_data
from portfolio_pipeline.policies.residual import choose_base_strategy, with_base_weights
from portfolio_pipeline.policies.retraining import train_best_with_seeds
from portfolio_pipeline.policies.splits import Splits
from portfolio_pipeline.portfolio.strategies import MarketPanel
from portfolio_pipeline.settings import load_settings

BENCHMARK = "residual_drl"
PARAMS = {"n_steps": 5, "n_envs": 64, "net_arch": [64, 64], "episode_length": 256}
ENV_KWARGS = {"lookback": 10, "cost_rate": 0.001}
RESIDUAL_SCALE = 0.1


def _data(ohlcv: pl.DataFrame) -> tuple[EnvData, Splits]:
    """Env data with the validation-chosen base strategy's weights, and the default splits."""
    data = build_env_data(ohlcv, _market_features(ohlcv))
    splits = Splits.from_dates(data.dates)
    panel = MarketPanel.from_ohlcv(ohlcv, symbols=data.symbols)
    base = choose_base_strategy(
        panel, (splits.train_end, splits.val_end - timedelta(days=1)), splits.val_end
    )
    emit(BENCHMARK, "base_strategy", 1, "choice", strategy=base, chosen_on="validation")
    return with_base_weights(data, ohlcv, base, splits.train_start), splits


def _variant(
    data, splits, name: str, env_kwargs: dict, seeds, timesteps: int, storage: str,
    seed_backend: str | None = "sequential",
):  # fmt: skip
    config = {"algorithm": "A2C", "params": PARAMS, "env_kwargs": env_kwargs,
              "total_timesteps": timesteps}  # fmt: skip
    started = time.perf_counter()
    results = train_best_with_seeds(
        config, data, seeds=seeds, splits=splits, artifact_dir=f"{storage}/{name}",
        seed_backend=seed_backend,
    )  # fmt: skip
    wall = time.perf_counter() - started
    trained = int(results.registry["total_timesteps"].sum())
    emit(BENCHMARK, "retraining_wall_seconds", round(wall, 1), "s", variant=name,
         seeds=len(seeds), timesteps=trained, timesteps_per_second=round(trained / wall, 1),
         seed_backend=seed_backend or "ray (where two fit)")  # fmt: skip
    comparison = results.comparison
    for row in comparison.iter_rows(named=True):
        emit(BENCHMARK, f"{row['window']}_sharpe", round(row["sharpe"], 3), "sharpe",
             variant=name, name=row["name"], kind=row["kind"], seed=row["seed"],
             mean_turnover=round(row["mean_turnover"], 4),
             max_drawdown=round(row["max_drawdown"], 3),
             total_return=round(row["total_return"], 3))  # fmt: skip
    ensemble = comparison.filter(pl.col("kind") == "ensemble")
    return dict(ensemble.select("window", "sharpe").iter_rows())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--timesteps", type=int, default=40_960)
    parser.add_argument("--rewards", nargs="+", default=["log_growth", "differential_sharpe"])
    parser.add_argument("--no-plain", action="store_true", help="skip the plain policy")
    parser.add_argument(
        "--parallel-seeds", action="store_true", help="seeds as Ray tasks, one CPU each"
    )
    args = parser.parse_args()
    backend = None if args.parallel_seeds else "sequential"
    ohlcv = pl.read_parquet(load_settings().sample_ohlcv_path)
    data, splits = _data(ohlcv)
    seeds = tuple(range(args.seeds))
    tune_sharpe: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="residual_drl_") as storage:
        if not args.no_plain:
            _variant(
                data, splits, "plain", dict(ENV_KWARGS), seeds, args.timesteps, storage, backend
            )
        for reward in args.rewards:
            env_kwargs = {**ENV_KWARGS, "residual": True, "residual_scale": RESIDUAL_SCALE,
                          "reward": reward}  # fmt: skip
            ensemble = _variant(
                data, splits, f"residual_{reward}", env_kwargs, seeds, args.timesteps, storage,
                backend,
            )  # fmt: skip
            tune_sharpe[reward] = ensemble["tune"]
    best = max(tune_sharpe, key=lambda reward: tune_sharpe[reward])
    emit(BENCHMARK, "reward_choice", round(tune_sharpe[best], 3), "sharpe", reward=best,
         chosen_on="tune", candidates={k: round(v, 3) for k, v in tune_sharpe.items()})  # fmt: skip
    emit(BENCHMARK, "peak_rss", round(peak_rss_mb(), 1), "MiB")


if __name__ == "__main__":
    main()
