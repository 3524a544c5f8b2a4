"""Decisions taken ahead of the backtests, as parallel tasks, and the one-BLAS-thread block
they (and the grids) run in."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any

import numpy as np

from portfolio_pipeline.common import parallel
from portfolio_pipeline.portfolio.backtest.schedule import decision_rows
from portfolio_pipeline.portfolio.strategies import (
    EstimationCache,
    MarketPanel,
    Strategy,
)


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the block with one BLAS thread (restored after).

    A decision works on matrices of at most a few hundred assets (Ledoit-Wolf, the
    positive-definite check's eigenvalues, HRP's correlations): too small for BLAS threads to
    pay, and OpenBLAS's threads spin while they wait. At 100 assets one thread cut the CPU
    time of a Ledoit-Wolf estimate from ~50 ms to ~4 ms on a busy 2-core machine, with the
    same numbers (the sample's backtest tables are equal to the last bit either way).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def decide_in_parallel(
    panel: MarketPanel,
    strategies: Sequence[Strategy],
    runs: Sequence[tuple[tuple[date, date], str]],
    *,
    chunks: int = 16,
    backend: str | None = None,
) -> None:
    """Take every decision the ``runs`` (``(start, end), rebalance``) will need, in parallel.

    Decision days are independent (each reads rows ``<= row`` only), so they split into
    ``chunks`` tasks of :func:`portfolio_pipeline.common.parallel.map_tasks` (Ray tasks on the
    cluster at ``RAY_ADDRESS``); each task estimates its days' moments once for all the
    strategies. The decisions go into each strategy's memo (:meth:`Strategy.remember`), so the
    backtests that follow only replay them: the same numbers as deciding in this process.
    """
    needed: dict[str, set[int]] = {s.name: set() for s in strategies}
    for strategy in strategies:
        for (start, end), rebalance in runs:
            needed[strategy.name].update(decision_rows(panel, strategy, start, end, rebalance))
    days = sorted(set().union(*needed.values()))
    if not days:
        return
    parts = [list(map(int, part)) for part in np.array_split(days, min(chunks, len(days)))]
    shared = (panel, list(strategies), needed)
    for found in parallel.map_tasks(_decide_days, shared, parts, backend=backend):
        for strategy in strategies:
            strategy.remember(panel, found[strategy.name])


def _decide_days(shared: tuple, days: list[int]) -> dict[str, dict[int, Any]]:
    """One task of :func:`decide_in_parallel`: every needed decision on ``days``."""
    panel, strategies, needed = shared
    cache = EstimationCache()
    out: dict[str, dict[int, Any]] = {s.name: {} for s in strategies}
    with single_threaded_blas():
        for row in days:
            for strategy in strategies:
                if row in needed[strategy.name]:
                    out[strategy.name][row] = strategy.decide(panel, row, cache)
    return out
