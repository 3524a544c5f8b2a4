"""The replay's output pinned (issue 22, item 7): the speed-ups of the replay (a day's inputs
read once for all its processes, rows booked without a frame, the QP's constraint matrix built
once per size) must not change a single result. Every process of the candidate grid, every
day, every column of ``daily``, ``metrics`` and the kept recommendation rows is compared with
the frames stored in ``data/replay_pinned_*.parquet``: everything but floats exactly, floats to
a relative 1e-7.

Why stored frames and not a digest: the first pin was a SHA-256 of the floats at 10
significant digits, taken on the code before the speed-ups. On another CPU (AVX-512 numpy and
OpenBLAS kernels) the QP and the covariance estimates differ in the last bits, a few values
rounded the other way and the digest changed, though the code had not. The frames were
written by the code that had passed that digest (``python -m
portfolio_pipeline_tests.recommendations.test_replay_pinned`` rewrites them; a deliberate
change of behaviour does that, and says why)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from portfolio_pipeline.portfolio.strategies import build_strategies
from portfolio_pipeline.recommendations.processes import SimulationSettings, candidate_processes
from portfolio_pipeline.recommendations.replay import simulate_recommendations
from portfolio_pipeline_tests.helpers import walk_forward_like_forecasts

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT", "PAXGUSDT"]
WINDOWS = {"validation": (date(2022, 3, 1), date(2022, 3, 31))}
PINNED = Path(__file__).parent / "data"
FRAMES = ("daily", "metrics", "trades")


def _assert_same(name: str, got: pl.DataFrame, pinned: pl.DataFrame) -> None:
    assert got.schema == pinned.schema, name
    assert got.height == pinned.height, name
    for column, dtype in got.schema.items():
        left, right = got.get_column(column), pinned.get_column(column)
        if dtype.is_float():
            np.testing.assert_allclose(
                left.to_numpy(), right.to_numpy(), rtol=1e-7, atol=1e-12, err_msg=f"{name}.{column}"
            )
        else:
            assert left.to_list() == right.to_list(), f"{name}.{column}"


def run_replay(sample_ohlcv: pl.DataFrame, *, keep_trades: bool):
    ohlcv = sample_ohlcv.filter(
        pl.col("symbol").is_in(SYMBOLS)
        & pl.col("date").is_between(date(2020, 6, 1), date(2022, 4, 30))
    )
    forecasts = walk_forward_like_forecasts(ohlcv, 0.5, horizon=8, start=date(2021, 1, 1))
    (strategy,) = build_strategies(("hrp",), lookback_days=90, min_history=60)
    return simulate_recommendations(
        ohlcv,
        strategy,
        forecasts,
        WINDOWS,
        start_weights={"BTCUSDT": 0.4, "ETHUSDT": 0.3, "USDT": 0.3},
        start_value=100_000.0,
        settings=SimulationSettings(horizon=8),
        processes=list(candidate_processes()),
        keep_trades=keep_trades,
    )


@pytest.fixture(scope="module")
def replay(sample_ohlcv: pl.DataFrame):
    return run_replay(sample_ohlcv, keep_trades=True)


def test_the_replay_of_every_candidate_process_is_pinned(replay) -> None:
    assert replay.trades.height > 0 and replay.metrics.height == len(candidate_processes())
    for name in FRAMES:
        _assert_same(
            name, getattr(replay, name), pl.read_parquet(PINNED / f"replay_pinned_{name}.parquet")
        )


def test_keeping_the_trades_changes_nothing_else(replay, sample_ohlcv) -> None:
    lean = run_replay(sample_ohlcv, keep_trades=False)
    assert lean.trades.is_empty()
    assert lean.daily.equals(replay.daily) and lean.metrics.equals(replay.metrics)


if __name__ == "__main__":  # rewrite the pinned frames (a deliberate change of behaviour)
    from portfolio_pipeline.settings import load_settings

    rewritten = run_replay(pl.read_parquet(load_settings().sample_ohlcv_path), keep_trades=True)
    for frame_name in FRAMES:
        getattr(rewritten, frame_name).write_parquet(PINNED / f"replay_pinned_{frame_name}.parquet")
