"""The validation selection: a strategy built on another must beat its base by more than noise."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from portfolio_pipeline.portfolio.backtest.selection import (
    edges_over_bases,
    select_default_strategy,
    sharpe_difference_z,
)

DAYS = [date(2023, 1, 1) + timedelta(days=i) for i in range(365)]


def _returns(**series: np.ndarray) -> pl.DataFrame:
    return pl.concat(
        pl.DataFrame({"strategy": name, "date": DAYS, "daily_return": values})
        for name, values in series.items()
    )


def _metrics(returns: pl.DataFrame) -> pl.DataFrame:
    return returns.group_by("strategy").agg(
        (pl.col("daily_return").mean() / pl.col("daily_return").std() * math.sqrt(365)).alias(
            "sharpe"
        ),
        pl.col("date").max().alias("end"),
    )


def test_sharpe_difference_z_matches_memmel_by_hand() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.002, 0.02, 500), rng.normal(0.001, 0.02, 500)
    sr_a, sr_b = a.mean() / a.std(ddof=1), b.mean() / b.std(ddof=1)
    rho = np.corrcoef(a, b)[0, 1]
    v = (2 - 2 * rho + 0.5 * (sr_a**2 + sr_b**2 - 2 * sr_a * sr_b * rho**2)) / 500
    assert sharpe_difference_z(a, b) == pytest.approx((sr_a - sr_b) / math.sqrt(v), rel=1e-12)
    assert sharpe_difference_z(b, a) == pytest.approx(-sharpe_difference_z(a, b), rel=1e-12)
    assert math.isnan(sharpe_difference_z(np.zeros(10), b[:10]))


def test_a_small_edge_over_the_base_is_noise_and_is_not_selected() -> None:
    rng = np.random.default_rng(6)
    base = rng.normal(0.002, 0.03, 365)
    residual = base + rng.normal(0.0002, 0.004, 365)  # a tilt: ~0.99 correlated, a hair better
    other = rng.normal(0.0015, 0.03, 365)
    returns = _returns(hrp=base, drl_residual_a2c=residual, equal_weight=other)
    metrics = _metrics(returns)
    sharpe = dict(zip(metrics["strategy"], metrics["sharpe"], strict=True))
    assert sharpe["drl_residual_a2c"] > sharpe["hrp"] > sharpe["equal_weight"]
    edges = edges_over_bases(returns, {"drl_residual_a2c": "hrp"})
    assert edges["base_strategy"].to_list() == ["hrp"] and edges["edge_over_base_p"][0] > 0.05
    assert select_default_strategy(metrics) == "drl_residual_a2c"  # without the rule
    assert select_default_strategy(metrics, edges=edges) == "hrp"


def test_an_edge_far_beyond_noise_is_selected() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(0.0005, 0.03, 365)
    residual = base + rng.normal(0.004, 0.004, 365)
    returns = _returns(hrp=base, drl_residual_a2c=residual)
    edges = edges_over_bases(returns, {"drl_residual_a2c": "hrp"})
    assert edges["edge_over_base_p"][0] < 0.001
    assert select_default_strategy(_metrics(returns), edges=edges) == "drl_residual_a2c"


def test_a_derived_strategy_whose_base_has_no_returns_is_not_a_candidate() -> None:
    rng = np.random.default_rng(3)
    returns = _returns(
        drl_residual_a2c=rng.normal(0.003, 0.03, 365), equal_weight=rng.normal(0, 0.03, 365)
    )
    edges = edges_over_bases(returns, {"drl_residual_a2c": "hrp"})  # no hrp returns
    assert edges["base_strategy"].to_list() == ["hrp"] and edges["edge_over_base_p"].is_nan().all()
    assert select_default_strategy(_metrics(returns)) == "drl_residual_a2c"  # without the rule
    assert select_default_strategy(_metrics(returns), edges=edges) == "equal_weight"
