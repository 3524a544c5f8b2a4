"""The replay's output pinned (issue 22, item 7): the speed-ups of the replay (a day's inputs
read once for all its processes, rows booked without a frame, the QP's constraint matrix built
once per size) must not change a single result. Every process of the candidate grid, every
day, every column of ``daily``, ``metrics`` and the kept recommendation rows is digested
(floats to 10 significant digits, so the pin holds across BLAS builds); the digest was taken
on the code before the speed-ups. A deliberate change of behaviour updates it."""

from __future__ import annotations

import hashlib
from datetime import date

import polars as pl
import pytest

from portfolio_pipeline.portfolio.strategies import build_strategies
from portfolio_pipeline.recommendations.processes import SimulationSettings, candidate_processes
from portfolio_pipeline.recommendations.replay import simulate_recommendations
from portfolio_pipeline_tests.helpers import walk_forward_like_forecasts

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT", "PAXGUSDT"]
WINDOWS = {"validation": (date(2022, 3, 1), date(2022, 3, 31))}
PINNED = "cd017633018490b88d6b5de31f22072caa3cd72cf0a8d363441d93e914860f15"


def _digest(*frames: pl.DataFrame) -> str:
    h = hashlib.sha256()
    for frame in frames:
        h.update(str(frame.schema).encode())
        for column in frame.columns:
            for value in frame.get_column(column).to_list():
                text = f"{value:.9e}" if isinstance(value, float) else repr(value)
                h.update(text.encode() + b"|")
    return h.hexdigest()


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
    assert _digest(replay.daily, replay.metrics, replay.trades) == PINNED


def test_keeping_the_trades_changes_nothing_else(replay, sample_ohlcv) -> None:
    lean = run_replay(sample_ohlcv, keep_trades=False)
    assert lean.trades.is_empty()
    assert lean.daily.equals(replay.daily) and lean.metrics.equals(replay.metrics)
