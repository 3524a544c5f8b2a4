"""Environment throughput: steps per second of PortfolioEnv and of the batched VecEnv.

10 assets + cash, lookback 30, the SPEC market features computed from the shipped sample,
one process, no wrappers. Actions are drawn up front so the figure measures the env alone.
``vec_env_steps_per_second`` counts aggregate steps (K environments x vector steps) of
:class:`~portfolio_pipeline.policies.vec_env.BatchedPortfolioEnv` with random starts and
256-step episodes (auto-reset), as in training.

    python -m benchmarks.env
"""

from __future__ import annotations

import time

import numpy as np
import polars as pl

from benchmarks._common import emit
from portfolio_pipeline.policies.env import PortfolioEnv
from portfolio_pipeline.policies.env_data import build_env_data
from portfolio_pipeline.settings import load_settings

BENCHMARK = "env"
SYMBOLS = (
    "ADAUSDT", "BNBUSDT", "BTCUSDT", "DOGEUSDT", "ETCUSDT",
    "ETHUSDT", "LTCUSDT", "TRXUSDT", "XLMUSDT", "XRPUSDT",
)  # fmt: skip


def _emit(metric: str, value: float, unit: str, **extra: object) -> None:
    emit(BENCHMARK, metric, value, unit, **extra)


def _market_features(ohlcv: pl.DataFrame) -> pl.DataFrame | None:
    try:
        from portfolio_pipeline.market.features import compute_market_features
    except ImportError:  # the built-in causal set of build_env_data is used instead
        return None
    return compute_market_features(ohlcv)


def vec_env_throughput(data, n_envs: int, total_steps: int, seed: int, lookback: int = 30) -> None:
    from portfolio_pipeline.policies.vec_env import BatchedPortfolioEnv

    env = BatchedPortfolioEnv(
        data, n_envs, lookback=lookback, cost_rate=0.001, random_start=True, episode_length=256
    )
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.0, 1.0, size=(64, n_envs, env.action_space.shape[0]))
    actions = actions.astype(np.float32)
    env.seed(seed)
    env.reset()
    vector_steps = max(1, total_steps // n_envs)
    started, cpu_started = time.perf_counter(), time.process_time()
    for step in range(vector_steps):
        env.step(actions[step % len(actions)])
    elapsed = time.perf_counter() - started
    cpu_elapsed = time.process_time() - cpu_started
    steps = vector_steps * n_envs
    _emit(
        "vec_env_steps_per_second",
        round(steps / elapsed),
        "steps/s",
        n_envs=n_envs,
        assets=data.n_assets,
        lookback=lookback,
        observation_size=int(env.observation_space.shape[0]),
        steps=steps,
    )
    _emit("vec_env_steps_per_cpu_second", round(steps / cpu_elapsed), "steps/s", n_envs=n_envs,
          lookback=lookback)  # fmt: skip


def main(total_steps: int = 200_000, seed: int = 0, n_envs: int = 64, lookbacks=(30, 10)) -> None:
    """The single and the batched env at each lookback (30: this benchmark's reference; 10:
    what the quick and cpu_1m profiles train on)."""
    ohlcv = pl.read_parquet(load_settings().sample_ohlcv_path).filter(
        pl.col("symbol").is_in(SYMBOLS)
    )
    started = time.perf_counter()
    data = build_env_data(ohlcv, _market_features(ohlcv), symbols=SYMBOLS)
    _emit("build_env_data_seconds", round(time.perf_counter() - started, 3), "s", rows=ohlcv.height)

    for lookback in lookbacks:
        single_env_throughput(data, total_steps, seed, lookback)
        vec_env_throughput(data, n_envs, 5 * total_steps, seed, lookback)


def single_env_throughput(data, total_steps: int, seed: int, lookback: int) -> None:
    env = PortfolioEnv(data, lookback=lookback, cost_rate=0.001)
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1.0, 1.0, size=(4096, env.action_space.shape[0])).astype(np.float32)
    env.reset(seed=seed)
    steps = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    while steps < total_steps:
        _, _, terminated, truncated, _ = env.step(actions[steps % len(actions)])
        steps += 1
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - started
    cpu_elapsed = time.process_time() - cpu_started
    _emit(
        "env_steps_per_second",
        round(steps / elapsed),
        "steps/s",
        assets=data.n_assets,
        lookback=lookback,
        observation_size=int(env.observation_space.shape[0]),
        steps=steps,
    )
    # CPU time of this process: the figure without other processes' share of the cores.
    _emit("env_steps_per_cpu_second", round(steps / cpu_elapsed), "steps/s", steps=steps,
          lookback=lookback)  # fmt: skip


if __name__ == "__main__":
    main()
