from __future__ import annotations

import json
from datetime import date, timedelta

import polars as pl
import pytest

from portfolio_pipeline.portfolio.backtest import (
    is_rebalance_day,
    plot_equity_curves,
    run_backtest,
    run_backtest_grid,
    select_default_strategy,
)
from portfolio_pipeline.portfolio.metrics import performance_summary
from portfolio_pipeline.portfolio.strategies import (
    BuyAndHold,
    EqualWeight,
    EstimationCache,
    ExternalWeights,
    InverseVolatility,
    MarketPanel,
    MinVariance,
)

D0 = date(2024, 1, 1)
COST = 0.001  # 10 bps


def _day(i: int) -> date:
    return D0 + timedelta(days=i)


@pytest.fixture()
def three_assets() -> pl.DataFrame:
    """A rises/falls, B falls/rises, C trades on days 0-1 only (delisted after day 1)."""
    closes = {
        "AUSDT": [100.0, 110.0, 99.0, 108.9, 108.9],
        "BUSDT": [50.0, 50.0, 55.0, 44.0, 44.0],
        "CUSDT": [10.0, 12.0],
    }
    rows = [
        {"symbol": s, "date": _day(i), "close": c, "volume": 1.0, "quote_volume": None}
        for s, cs in closes.items()
        for i, c in enumerate(cs)
    ]
    return pl.DataFrame(rows, schema_overrides={"quote_volume": pl.Float64})


@pytest.fixture()
def fixed_weights() -> ExternalWeights:
    frame = pl.DataFrame(
        {
            "as_of": [D0] * 4,
            "symbol": ["AUSDT", "BUSDT", "CUSDT", "USDT"],
            "weight": [0.5, 0.3, 0.1, 0.1],
        }
    )
    return ExternalWeights(name="fixed").fit(frame)


def test_drift_costs_and_delisting_exact_without_rebalancing(three_assets, fixed_weights) -> None:
    # Only the first decision (close of day 0) trades; then weights drift. By hand:
    # buy 90% of value in risky assets from cash: turnover 0.9, cost 0.0009, kept 0.9991.
    # day 1: 0.5*1.1 + 0.3*1.0 + 0.1*1.2 + 0.1 = 1.07
    # day 2: A 0.55*0.9, B 0.30*1.1, C stops trading (valued at its last price, then cash),
    #        cash 0.1 -> 0.495 + 0.33 + 0.12 + 0.1 = 1.045
    # day 3: A 0.495*1.1, B 0.33*0.8, cash 0.22 -> 0.5445 + 0.264 + 0.22 = 1.0285; day 4 flat.
    result = run_backtest(three_assets, fixed_weights, _day(1), _day(4), "monthly", 10.0)
    eq = result.equity
    assert eq.get_column("date").to_list() == [_day(i) for i in range(1, 5)]
    expected = [0.9991 * v for v in (1.07, 1.045, 1.0285, 1.0285)]
    assert eq.get_column("equity").to_list() == pytest.approx(expected, abs=1e-14)
    assert eq.get_column("turnover").to_list() == pytest.approx([0.9, 0, 0, 0], abs=1e-15)
    assert eq.get_column("cost").to_list() == pytest.approx([0.0009, 0, 0, 0], abs=1e-15)
    assert eq.get_column("rebalanced").to_list() == [True, False, False, False]
    assert eq.get_column("decided_at").to_list() == [_day(i) for i in range(4)]
    held_day4 = json.loads(eq.get_column("weights")[-1])
    assert "CUSDT" not in held_day4  # delisted position went to cash
    assert held_day4["USDT"] == pytest.approx(0.22 / 1.0285)
    assert held_day4["AUSDT"] == pytest.approx(0.5445 / 1.0285)


def test_turnover_is_measured_from_drifted_weights_exact(three_assets, fixed_weights) -> None:
    result = run_backtest(three_assets, fixed_weights, _day(1), _day(3), "daily", 10.0)
    eq = result.equity
    # day 0 -> 1 as above
    e1 = 0.9991 * 1.07
    # close of day 1: drifted A .55/1.07, B .30/1.07, C .12/1.07; back to .5/.3/.1 (C still trades)
    t1 = abs(0.5 - 0.55 / 1.07) + abs(0.3 - 0.30 / 1.07) + abs(0.1 - 0.12 / 1.07)
    gross2 = 0.5 * 0.9 + 0.3 * 1.1 + 0.1 * 1.0 + 0.1
    e2 = e1 * (1 - COST * t1) * gross2
    # close of day 2: C delisted -> its 0.1 went to cash; drifted A .45/g, B .33/g, cash .2/g;
    # target: C has no price today so its 0.1 goes to cash -> A .5, B .3, cash .2
    t2 = abs(0.5 - 0.45 / gross2) + abs(0.3 - 0.33 / gross2)
    gross3 = 0.5 * 1.1 + 0.3 * 0.8 + 0.2
    e3 = e2 * (1 - COST * t2) * gross3
    assert eq.get_column("turnover").to_list() == pytest.approx([0.9, t1, t2], abs=1e-14)
    assert eq.get_column("equity").to_list() == pytest.approx([e1, e2, e3], abs=1e-14)
    assert json.loads(eq.get_column("weights")[-1]) == pytest.approx(
        {"AUSDT": 0.5, "BUSDT": 0.3, "USDT": 0.2}
    )


def test_metrics_recomputed_from_equity_frame(three_assets, fixed_weights) -> None:
    result = run_backtest(three_assets, fixed_weights, _day(1), _day(4), "daily", 25.0)
    eq = result.equity
    returns = (eq.get_column("equity") / eq.get_column("equity").shift(1, fill_value=1.0)) - 1
    again = performance_summary(
        pl.DataFrame({"date": eq.get_column("date"), "daily_return": returns}),
        365,
        turnover=eq.get_column("turnover"),
    )
    assert (again["start"], again["end"]) == (_day(1), _day(4))
    for key, value in again.items():
        if key not in ("start", "end"):
            assert result.metrics[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert result.metrics[key] == value
    assert result.metrics["cost_bps"] == 25.0 and result.metrics["rebalance"] == "daily"


def test_rebalance_calendar() -> None:
    assert is_rebalance_day(date(2024, 1, 7), date(2024, 1, 8), "weekly")  # Sunday
    assert not is_rebalance_day(date(2024, 1, 6), date(2024, 1, 7), "weekly")
    assert is_rebalance_day(date(2024, 1, 31), date(2024, 2, 1), "monthly")
    assert not is_rebalance_day(date(2024, 1, 30), date(2024, 1, 31), "monthly")
    with pytest.raises(ValueError, match="rebalance must be one of"):
        is_rebalance_day(date(2024, 1, 1), date(2024, 1, 2), "hourly")


@pytest.fixture(scope="module")
def small_panel(sample_ohlcv: pl.DataFrame) -> MarketPanel:
    symbols = ("BTCUSDT", "ETHUSDT", "MATICUSDT", "PAXGUSDT")
    return MarketPanel.from_ohlcv(
        sample_ohlcv.filter(
            pl.col("symbol").is_in(symbols)
            & pl.col("date").is_between(date(2024, 3, 1), date(2024, 10, 31))
        )
    )


def test_real_delisting_and_buy_and_hold(small_panel: MarketPanel) -> None:
    kwargs = {"lookback_days": 60, "min_history": 30}
    bh = run_backtest(
        small_panel, BuyAndHold(**kwargs).fit(), date(2024, 8, 1), date(2024, 10, 31), "weekly", 10
    )
    turnover = bh.equity.get_column("turnover").to_list()
    assert turnover[0] == pytest.approx(1.0) and all(t == 0 for t in turnover[1:])
    ew = run_backtest(
        small_panel, EqualWeight(**kwargs).fit(), date(2024, 8, 1), date(2024, 10, 31), "weekly", 10
    )
    # held over 09-11 at its last price (relative 1), then liquidated to cash
    after = ew.equity.filter(pl.col("date") > date(2024, 9, 11))
    assert all("MATICUSDT" not in json.loads(w) for w in after.get_column("weights"))
    before = ew.equity.filter(pl.col("date") == date(2024, 9, 10))
    assert "MATICUSDT" in json.loads(before.get_column("weights")[0])
    with pytest.raises(ValueError, match="empty"):
        run_backtest(small_panel, EqualWeight(**kwargs).fit(), date(2024, 9, 1), date(2024, 9, 1))


def test_grid_sensitivity_and_cache(small_panel: MarketPanel) -> None:
    kwargs = {"lookback_days": 60, "min_history": 30}
    strategies = [s(**kwargs).fit() for s in (EqualWeight, InverseVolatility, MinVariance)]
    cache = EstimationCache()
    grid = run_backtest_grid(
        small_panel,
        strategies,
        date(2024, 9, 1),
        date(2024, 10, 31),
        sensitivity_rebalances=("weekly", "monthly"),
        sensitivity_costs_bps=(0.0, 50.0),
        cache=cache,
    )
    assert grid.metrics.get_column("strategy").to_list() == [s.name for s in strategies]
    assert grid.sensitivity.height == 3 * 2 * 2
    assert grid.equity.group_by("strategy").len().get_column("len").to_list() == [61] * 3
    ew = grid.sensitivity.filter(
        pl.col("strategy") == "equal_weight", pl.col("rebalance") == "weekly"
    )
    by_cost = dict(ew.select("cost_bps", "total_return").iter_rows())
    assert by_cost[0.0] > by_cost[50.0]  # costs only ever cost
    # weights optimised once per decision day, reused across frequencies and costs
    days = [date(2024, 8, 31) + timedelta(days=i) for i in range(62)]
    decision_days = {days[0]} | {
        d
        for d, n in zip(days, days[1:], strict=False)
        if is_rebalance_day(d, n, "weekly") or is_rebalance_day(d, n, "monthly")
    }
    assert set(strategies[2].decisions_) == {small_panel.row_of(d) for d in decision_days}
    # the moments of a day are estimated once for the three strategies
    assert len(cache.estimates) == len(decision_days) and cache.panel is small_panel


def test_select_default_strategy_uses_validation_only() -> None:
    metrics = pl.DataFrame(
        {
            "strategy": ["a", "b", "c"],
            "end": [date(2023, 12, 31)] * 3,
            "sharpe": [0.5, 1.5, float("nan")],
        }
    )
    assert select_default_strategy(metrics, test_start=date(2024, 1, 1)) == "b"
    with pytest.raises(ValueError, match="leak"):
        select_default_strategy(metrics, test_start=date(2023, 6, 1))


def test_plot_is_png(three_assets, fixed_weights) -> None:
    result = run_backtest(three_assets, fixed_weights, _day(1), _day(4), "daily", 10.0)
    png = plot_equity_curves(result.equity)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


@pytest.mark.slow
def test_decisions_as_ray_tasks_equal_the_ones_taken_here(
    small_panel: MarketPanel, ray_cluster_client, monkeypatch
) -> None:
    """decide_in_parallel on a separate Ray cluster fills each strategy's memo with exactly
    the decisions the backtest would take in this process, on the days it needs."""
    import numpy as np

    from portfolio_pipeline.portfolio.backtest import (
        decide_in_parallel,
        single_threaded_blas,
        weight_path,
    )
    from portfolio_pipeline.portfolio.strategies import HierarchicalRiskParity

    kwargs = {"lookback_days": 60, "min_history": 30}
    classes = (InverseVolatility, MinVariance, HierarchicalRiskParity, BuyAndHold)
    window = (date(2024, 9, 1), date(2024, 10, 31))
    runs = [(window, "weekly"), (window, "monthly")]
    here = [cls(**kwargs).fit() for cls in classes]
    with single_threaded_blas():
        for strategy in here:
            for (start, end), frequency in runs:
                weight_path(small_panel, strategy, start, end, frequency, EstimationCache())
    there = [cls(**kwargs).fit() for cls in classes]
    decide_in_parallel(small_panel, there, runs, chunks=3, backend="ray")
    for mine, theirs in zip(here, there, strict=True):
        assert sorted(theirs.decisions_) == sorted(mine.decisions_), mine.name
        for row, decision in mine.decisions_.items():
            np.testing.assert_array_equal(theirs.decisions_[row].weights, decision.weights)
            assert theirs.decisions_[row].reason == decision.reason
    assert len(there[-1].decisions_) == 1  # buy-and-hold decides once
