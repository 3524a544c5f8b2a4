"""Residual policies: the environment's target is a classic strategy's weights, tilted.

Pure (no dagster); skfolio is imported by the strategies it runs.

A residual policy does not learn an allocation from scratch: at each decision date ``d`` the
environment starts from the BASE strategy's weights at ``d`` and the action moves them,
``target = long_only_map(base[d] + residual_scale * action)``
(:func:`~portfolio_pipeline.policies.env.actions_to_weights`), so a zero action holds
exactly what the base strategy holds. The base weights at ``d`` are those of the backtest
engine (:func:`portfolio_pipeline.portfolio.backtest.weight_path`) run over the panel: right
after the strategy's decision at the close of ``d`` on a rebalance day (from rows ``<= d``
only), otherwise its weights drifted with prices up to ``d``. They enter the observation.

The default base strategy is the one the backtests' validation selection picks among the
classic strategies (:func:`choose_base_strategy`): chosen on the validation window, never
the test window, and known before any policy is trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date

import numpy as np
import polars as pl

from portfolio_pipeline.market.windows import EvaluationWindows
from portfolio_pipeline.policies.env_data import EnvData
from portfolio_pipeline.portfolio import accounting
from portfolio_pipeline.portfolio.backtest import (
    run_backtest_grid,
    select_default_strategy,
    weight_path,
)
from portfolio_pipeline.portfolio.strategies import (
    CLASSIC_STRATEGY_NAMES,
    EstimationCache,
    MarketPanel,
    Strategy,
    build_strategies,
)

DEFAULT_BASE_REBALANCE = "weekly"  # the backtests' default cadence (PortfolioConfig.rebalance)


class ResidualBaseError(ValueError):
    """The base strategy cannot be aligned with the environment data; the message says why."""


def base_strategies(forecasts: pl.DataFrame | None = None) -> list[Strategy]:
    """The classic strategies (and ``forecast_mv`` when forecasts are given), fitted: the
    candidates for the base, the backtests' strategies without the DRL ones."""
    return build_strategies(CLASSIC_STRATEGY_NAMES, forecasts=forecasts)


def choose_base_strategy(
    panel: MarketPanel,
    validation: tuple[date, date],
    test_start: date,
    *,
    forecasts: pl.DataFrame | None = None,
    rebalance: str = DEFAULT_BASE_REBALANCE,
    cost_bps: float = 10.0,
    periods_per_year: int = 365,
) -> str:
    """The strategy the backtests' validation selection picks among the non-DRL strategies:
    the best Sharpe over the inclusive ``validation`` window (which must end before
    ``test_start``), net of ``cost_bps``, rebalanced at ``rebalance``."""
    grid = run_backtest_grid(
        panel,
        base_strategies(forecasts),
        *validation,
        rebalance,
        cost_bps,
        sensitivity_rebalances=(),
        sensitivity_costs_bps=(),
        periods_per_year=periods_per_year,
    )
    return select_default_strategy(grid.metrics, test_start=test_start)


def base_strategy(name: str, forecasts: pl.DataFrame | None = None) -> Strategy:
    """The fitted base strategy called ``name`` (one of :func:`base_strategies`)."""
    by_name = {s.name: s for s in base_strategies(forecasts)}
    if name not in by_name:
        raise ResidualBaseError(f"base strategy {name!r} is not one of {', '.join(by_name)}")
    return by_name[name]


def base_weights(
    panel: MarketPanel,
    strategy: Strategy,
    env_data: EnvData,
    start: date,
    *,
    rebalance: str = DEFAULT_BASE_REBALANCE,
) -> np.ndarray:
    """(T, N+1) weights the base strategy holds at each row of ``env_data`` (cash last).

    Row ``d`` is the backtest's ``targets`` at ``d`` for a backtest whose first decision is
    the close of the panel date before ``start`` (at the earliest the panel's first date):
    what is held right after the decision (a rebalance day) or the drifted weights (any
    other day). Rows before that first decision are all cash. The last row (no next date to book) holds the drifted weights. Only rows
    ``<= d`` of ``panel`` decide row ``d``.
    """
    if tuple(panel.symbols) != tuple(sorted(env_data.symbols)) or not np.array_equal(
        panel.dates, env_data.dates
    ):
        raise ResidualBaseError(
            "the base strategy's panel and the env data differ in symbols or dates "
            f"({len(panel.symbols)} vs {env_data.n_assets} symbols, {len(panel.dates)} vs "
            f"{len(env_data.dates)} dates): build both from the same OHLCV frame"
        )
    last = panel.date_at(len(panel.dates) - 1)
    # The first decision needs a panel date before it: at the earliest the panel's second.
    start = max(start, panel.date_at(1))
    path = weight_path(panel, strategy, start, last, rebalance, EstimationCache())
    first = panel.row_of(path.decided_at[0])
    held = np.zeros((len(panel.dates), panel.n_assets + 1))
    held[:first, -1] = 1.0
    held[first : first + len(path.targets)] = path.targets
    held[-1] = _drift(panel, path.targets[-1], len(panel.dates) - 2)
    columns = [panel.symbols.index(s) for s in env_data.symbols] + [panel.n_assets]
    return held[:, columns]


def _drift(panel: MarketPanel, weights: np.ndarray, row: int) -> np.ndarray:
    """``weights`` held from the close of ``row`` to the close of ``row + 1`` (no trade)."""
    today, tomorrow = panel.close[row], panel.close[row + 1]
    return accounting.step(
        weights,
        weights,
        accounting.price_relatives(today, tomorrow),
        0.0,
        delisted_next=np.isfinite(today) & ~np.isfinite(tomorrow),
    ).next_weights


def with_base_weights(
    env_data: EnvData,
    ohlcv: pl.DataFrame,
    name: str,
    start: date,
    *,
    forecasts: pl.DataFrame | None = None,
    rebalance: str = DEFAULT_BASE_REBALANCE,
) -> EnvData:
    """``env_data`` carrying the weights of base strategy ``name`` (:func:`base_weights`,
    first decision the day before ``start``), built from the same ``ohlcv`` frame."""
    panel = MarketPanel.from_ohlcv(
        ohlcv, symbols=env_data.symbols, cash_symbol=env_data.cash_symbol
    )
    weights = base_weights(
        panel, base_strategy(name, forecasts), env_data, start, rebalance=rebalance
    )
    return replace(env_data, base_weights=weights, base_strategy=name)


def with_validation_base(
    env_data: EnvData,
    ohlcv: pl.DataFrame,
    windows: EvaluationWindows,
    start: date,
    *,
    name: str = "",
    forecasts: pl.DataFrame | None = None,
    periods_per_year: int = 365,
    rebalance: str = DEFAULT_BASE_REBALANCE,
    cost_bps: float = 10.0,
) -> EnvData:
    """``env_data`` with the base weights of ``name`` or, blank, of the strategy the
    backtests' validation selection picks (:func:`choose_base_strategy` on
    ``windows.validation_start .. validation_end``, never the test window), rebalanced at
    ``rebalance`` and judged net of ``cost_bps``: the backtests' own settings."""
    if not name:
        panel = MarketPanel.from_ohlcv(
            ohlcv, symbols=env_data.symbols, cash_symbol=env_data.cash_symbol
        )
        name = choose_base_strategy(
            panel,
            (windows.validation_start, windows.validation_end),
            windows.test_start,
            forecasts=forecasts,
            rebalance=rebalance,
            cost_bps=cost_bps,
            periods_per_year=periods_per_year,
        )
    return with_base_weights(env_data, ohlcv, name, start, forecasts=forecasts, rebalance=rebalance)


def ensemble_weights(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """The mean of several policies' target weights, date by date and symbol by symbol.

    ``frames``: one ``as_of, symbol, weight`` frame per seed (from
    :func:`~portfolio_pipeline.policies.evaluation.policy_target_weights` over the same
    window), with the same rows in the same order. The mean of long-only weights that sum
    to 1 is long-only and sums to 1. Returns ``as_of, symbol, weight``.
    """
    if not frames:
        raise ValueError("ensemble_weights needs at least one weights frame")
    keys = frames[0].select("as_of", "symbol")
    for index, frame in enumerate(frames[1:], start=1):
        if not frame.select("as_of", "symbol").equals(keys):
            raise ValueError(f"weights frame {index} has other (as_of, symbol) rows than frame 0")
    stacked = np.stack([frame["weight"].to_numpy() for frame in frames])
    return keys.with_columns(pl.Series("weight", stacked.mean(axis=0), dtype=pl.Float64))
