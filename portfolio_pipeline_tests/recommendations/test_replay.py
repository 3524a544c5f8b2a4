from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from portfolio_pipeline.portfolio.metrics import performance_summary
from portfolio_pipeline.portfolio.strategies import build_strategies
from portfolio_pipeline.recommendations.confidence_grid import (
    confidence_grid_table,
    name_recommended,
    select_confidence,
)
from portfolio_pipeline.recommendations.processes import (
    PROCESS_NAMES,
    SimulationSettings,
    gated_at,
)
from portfolio_pipeline.recommendations.replay import simulate_recommendations
from portfolio_pipeline_tests.helpers import walk_forward_like_forecasts

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT", "PAXGUSDT"]
WINDOWS = {"validation": (date(2022, 3, 1), date(2022, 4, 15))}
START_WEIGHTS = {"BTCUSDT": 0.4, "ETHUSDT": 0.3, "USDT": 0.3}
HORIZON = 8


@pytest.fixture(scope="module")
def ohlcv(sample_ohlcv: pl.DataFrame) -> pl.DataFrame:
    return sample_ohlcv.filter(
        pl.col("symbol").is_in(SYMBOLS)
        & pl.col("date").is_between(date(2020, 6, 1), date(2022, 5, 1))
    )


def _forecasts(ohlcv: pl.DataFrame, signal: float) -> pl.DataFrame:
    return walk_forward_like_forecasts(ohlcv, signal, horizon=HORIZON, start=date(2021, 1, 1))


def _simulate(ohlcv, forecasts, processes=PROCESS_NAMES, start_weights=START_WEIGHTS, **kwargs):
    (strategy,) = build_strategies(("inverse_volatility",), lookback_days=90, min_history=60)
    return simulate_recommendations(
        ohlcv,
        strategy,
        forecasts,
        WINDOWS,
        start_weights=start_weights,
        start_value=100_000.0,
        settings=SimulationSettings(horizon=HORIZON, gate_confidence=0.75),
        processes=processes,
        **kwargs,
    )


def test_never_trade_holds_the_starting_portfolio(ohlcv) -> None:
    result = _simulate(ohlcv, None, processes=["never_trade"])
    daily = result.daily
    closes = ohlcv.pivot(on="symbol", index="date", values="close").sort("date")
    start = closes.filter(pl.col("date") == date(2022, 2, 28)).row(0, named=True)
    end = closes.filter(pl.col("date") == date(2022, 4, 15)).row(0, named=True)
    expected = (
        0.3 + 0.4 * end["BTCUSDT"] / start["BTCUSDT"] + 0.3 * end["ETHUSDT"] / start["ETHUSDT"]
    )
    assert daily["equity"][-1] == pytest.approx(expected, rel=1e-12)
    assert daily["trades"].sum() == 0 and daily["cost"].sum() == 0


def test_metrics_are_recomputable_from_the_daily_rows(ohlcv) -> None:
    result = _simulate(ohlcv, _forecasts(ohlcv, 0.5))
    for row in result.metrics.iter_rows(named=True):
        daily = result.daily.filter(pl.col("process") == row["process"])
        again = performance_summary(
            daily.select("date", "daily_return"), 365, turnover=daily["turnover"]
        )
        assert again["sharpe"] == pytest.approx(row["sharpe"], rel=1e-9, nan_ok=True)
        assert again["total_return"] == pytest.approx(row["total_return"], rel=1e-9)
        equity = (1 + daily["daily_return"]).cum_prod()
        np.testing.assert_allclose(equity.to_numpy(), daily["equity"].to_numpy(), rtol=1e-9)


def test_the_gate_trades_on_informative_forecasts_and_refuses_noise(ohlcv) -> None:
    # Fully invested start and target: every move is a swap between two risky assets, which
    # the gate judges on the forecasts' information alone (the intercept cancels). With pure
    # noise the calibration's slope t-statistic is ~0.9 here, below z(0.9) = 1.28.
    invested = dict.fromkeys(SYMBOLS, 0.2)
    strict = gated_at(0.9)
    informative = _simulate(
        ohlcv, _forecasts(ohlcv, 1.0), [strict, "ungated"], start_weights=invested
    )
    noise = _simulate(ohlcv, _forecasts(ohlcv, 0.0), [strict], start_weights=invested)

    def metric(result, process, name):
        return result.metrics.filter(pl.col("process") == process)[name][0]

    assert metric(informative, strict.name, "trading_days") >= 20
    assert metric(noise, strict.name, "trading_days") == 0
    assert metric(noise, strict.name, "refused_turnover") > 0
    # with forecasts that know the future, gating must beat trading blindly
    assert metric(informative, strict.name, "total_return") > metric(
        informative, "ungated", "total_return"
    )


def test_no_look_ahead_poisoning_after_d_leaves_decisions_up_to_d_unchanged(ohlcv) -> None:
    forecasts = _forecasts(ohlcv, 1.0)
    cut = date(2022, 3, 25)
    processes = ["recommended", "band_5pct", "cost_aware", "band_edge"]
    base = _simulate(ohlcv, forecasts, processes=processes, keep_trades=True)
    poisoned_prices = ohlcv.with_columns(
        pl.when(pl.col("date") > cut).then(pl.col("close") * 3.0).otherwise(pl.col("close"))
    )
    poisoned_forecasts = forecasts.with_columns(
        pl.when(pl.col("as_of") > cut).then(-pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c in ("q10", "q50", "q90")
    ).with_columns(  # outcomes not known by the cut date are poisoned too
        pl.when(pl.col("as_of") + timedelta(days=HORIZON) > cut)
        .then(pl.col("realized") * -5)
        .otherwise(pl.col("realized"))
    )
    again = _simulate(
        poisoned_prices,
        poisoned_forecasts,
        processes=processes,
        keep_trades=True,
    )
    for result in (base, again):
        assert result.trades.height > 0
    traded = base.trades.filter(pl.col("action") != "HOLD")["process"].unique().to_list()
    assert {"cost_aware", "band_edge"} <= set(traded)  # the new processes decide something
    decided = lambda r: r.trades.filter(pl.col("as_of") <= cut).drop("generated_at")  # noqa: E731
    assert decided(base).equals(decided(again))
    before = lambda r: r.daily.filter(pl.col("decided_at") < cut)  # noqa: E731
    assert before(base).equals(before(again))
    assert not base.daily.equals(again.daily)


def test_confidence_is_chosen_on_validation_and_named_recommended(ohlcv) -> None:
    levels = [0.5, 0.9]
    result = _simulate(ohlcv, _forecasts(ohlcv, 1.0), processes=[gated_at(c) for c in levels])
    grid = confidence_grid_table(result.metrics, levels)
    assert grid["confidence"].to_list() == levels
    chosen = select_confidence(grid)
    best = grid.sort(["sharpe", "confidence"], descending=[True, True])
    assert chosen == best["confidence"][0]  # ties go to the stricter level
    daily, metrics = name_recommended(result, chosen)
    assert "recommended" in metrics["process"].to_list()
    assert daily.filter(pl.col("process") == "recommended")["equity"].equals(
        daily.filter(pl.col("process") == gated_at(chosen).name)["equity"]
    )


def test_a_window_without_prices_is_a_clear_error(ohlcv) -> None:
    (strategy,) = build_strategies(("equal_weight",))
    with pytest.raises(ValueError, match="recommendation backtest test: need prices"):
        simulate_recommendations(
            ohlcv,
            strategy,
            None,
            {"test": (date(2030, 1, 1), date(2030, 6, 1))},
            start_weights=START_WEIGHTS,
            start_value=1.0,
        )


@pytest.mark.slow
def test_the_rolling_choice_for_a_year_is_unchanged_when_that_year_is_poisoned(
    sample_ohlcv,
) -> None:
    from portfolio_pipeline.recommendations.process_replay import replay_and_choose
    from portfolio_pipeline.recommendations.processes import PROCESSES, cost_aware_at

    history = sample_ohlcv.filter(
        pl.col("symbol").is_in(SYMBOLS)
        & pl.col("date").is_between(date(2019, 6, 1), date(2022, 5, 1))
    )
    year_start = date(2022, 1, 1)  # the rolling row for 2022 is chosen on 2021 alone
    candidates = [
        PROCESSES["target"], PROCESSES["band_5pct"], PROCESSES["never_trade"],
        cost_aware_at(4.0, 1.0, 0.9),
    ]  # fmt: skip

    def replay(ohlcv, forecasts):
        (strategy,) = build_strategies(("inverse_volatility",), lookback_days=90, min_history=60)
        return replay_and_choose(
            ohlcv, strategy, forecasts, WINDOWS, start_weights=None, start_value=100_000.0,
            settings=SimulationSettings(horizon=HORIZON), candidates=candidates,
            confidence_levels=[0.9],
        )  # fmt: skip

    forecasts = _forecasts(history, 1.0)
    clean = replay(history, forecasts)
    poisoned = replay(
        history.with_columns(
            pl.when(pl.col("date") >= year_start)
            .then(
                pl.col("close") * pl.when(pl.col("symbol") == "BTCUSDT").then(4.0).otherwise(0.25)
            )
            .otherwise(pl.col("close"))
        ),
        forecasts.with_columns(
            pl.when(pl.col("as_of") + timedelta(days=HORIZON) >= year_start)
            .then(pl.col(c) * -3)
            .otherwise(pl.col(c))
            .alias(c)
            for c in ("q10", "q50", "q90", "realized")
        ),
    )
    row = lambda r: r.rolling.filter(pl.col("year") == 2022).row(0, named=True)  # noqa: E731
    assert row(clean)["process"] == row(poisoned)["process"]  # chosen on 2021 alone
    assert row(clean)["sharpe__target"] != row(poisoned)["sharpe__target"]  # 2022 did change
