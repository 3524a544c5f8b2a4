from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from portfolio_pipeline.portfolio.metrics import (
    METRIC_KEYS,
    drawdown_series,
    historical_cvar,
    historical_var,
    performance_summary,
)

RETURNS = [0.10, -0.05, 0.02, -0.10, 0.04]


def test_metrics_recomputed_by_hand() -> None:
    m = performance_summary(np.array(RETURNS), periods_per_year=365)
    assert set(m) == set(METRIC_KEYS)
    # equity: 1.10, 1.045, 1.0659, 0.95931, 0.9976824
    assert m["total_return"] == pytest.approx(1.1 * 0.95 * 1.02 * 0.9 * 1.04 - 1, abs=1e-15)
    assert m["total_return"] == pytest.approx(-0.0023176, abs=1e-12)
    assert m["cagr"] == pytest.approx((1 - 0.0023176) ** (365 / 5) - 1, rel=1e-9)
    mean = sum(RETURNS) / 5  # 0.002
    var = sum((r - mean) ** 2 for r in RETURNS) / 4
    assert m["ann_vol"] == pytest.approx(math.sqrt(var) * math.sqrt(365), rel=1e-12)
    assert m["sharpe"] == pytest.approx(mean / math.sqrt(var) * math.sqrt(365), rel=1e-12)
    downside = math.sqrt((0.05**2 + 0.10**2) / 5)
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(365), rel=1e-12)
    # peak 1.10 then trough 0.95931: drawdown 1 - 0.95931 / 1.10
    assert m["max_drawdown"] == pytest.approx(1 - 0.95931 / 1.10, rel=1e-9)
    assert m["calmar"] == pytest.approx(m["cagr"] / m["max_drawdown"], rel=1e-12)
    # 5% quantile with linear interpolation: sorted [-0.10, -0.05, ...], position 0.2
    q05 = -0.10 + 0.2 * (-0.05 - -0.10)
    assert m["var_95"] == pytest.approx(-q05, rel=1e-12)
    assert m["cvar_95"] == pytest.approx(0.10, rel=1e-12)  # only -0.10 is <= q05
    assert math.isnan(m["turnover"])
    assert m["start"] is None and m["end"] is None


def test_dated_frame_gives_window_and_turnover() -> None:
    frame = pl.DataFrame(
        {"date": [date(2024, 1, 1) + timedelta(days=i) for i in range(5)], "daily_return": RETURNS}
    )
    m = performance_summary(frame, 252, turnover=[0.5, 0.0, 0.1, 0.0, 0.0])
    assert m["start"] == date(2024, 1, 1) and m["end"] == date(2024, 1, 5)
    assert m["turnover"] == pytest.approx(0.6 / 5 * 252)
    # 252 periods per year changes the annualisation, not the raw numbers
    assert m["sharpe"] == pytest.approx(
        performance_summary(np.array(RETURNS), 365)["sharpe"] * math.sqrt(252 / 365)
    )
    series = performance_summary(pl.Series(RETURNS), 252)
    assert series["total_return"] == pytest.approx(m["total_return"])


def test_first_period_loss_counts_as_drawdown() -> None:
    dd = drawdown_series(np.array([-0.2, 0.1]))
    assert dd[0] == pytest.approx(0.2)
    assert dd[1] == pytest.approx(1 - 0.88)


def test_var_cvar_against_numpy_on_random_sample() -> None:
    r = np.random.default_rng(0).standard_t(3, size=1000) * 0.02
    assert historical_var(r, 0.99) == pytest.approx(-np.percentile(r, 1))
    tail = r[r <= np.percentile(r, 5)]
    assert historical_cvar(r, 0.95) == pytest.approx(-tail.mean())
    assert historical_cvar(r, 0.95) >= historical_var(r, 0.95)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="finite"):
        performance_summary(np.array([0.1, np.nan]), 365)
    with pytest.raises(ValueError, match="> -1"):
        performance_summary(np.array([0.1, -1.0]), 365)
    with pytest.raises(ValueError, match="periods_per_year"):
        performance_summary(np.array([0.1]), 0)
    with pytest.raises(ValueError, match="turnover has 1"):
        performance_summary(np.array([0.1, 0.2]), 365, turnover=[0.1])


def test_empty_and_flat_series_are_nan_not_errors() -> None:
    empty = performance_summary(np.array([]), 365)
    assert math.isnan(empty["sharpe"]) and math.isnan(empty["total_return"])
    flat = performance_summary(np.zeros(10), 365)
    assert flat["total_return"] == 0 and math.isnan(flat["sharpe"]) and flat["max_drawdown"] == 0
