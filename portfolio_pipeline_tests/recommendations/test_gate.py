from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from portfolio_pipeline.recommendations.gate import (
    ForecastCalibration,
    ForecastHistory,
    GateInputError,
    driscoll_kraay,
    lower_bound_passes,
    z_value,
)

START = date(2022, 1, 1)


def _panel(n_dates: int = 400, n_symbols: int = 10, slope: float = 0.5, seed: int = 0):
    """Forecast medians with a known information content and a common daily shock."""
    rng = np.random.default_rng(seed)
    dates = [START + timedelta(days=i) for i in range(n_dates)]
    median = rng.normal(0, 0.02, (n_dates, n_symbols))
    market = rng.normal(0, 0.05, (n_dates, 1))  # every symbol shares it: errors correlate
    realized = slope * median + market + rng.normal(0, 0.03, (n_dates, n_symbols))
    frame = pl.DataFrame(
        {
            "as_of": pl.Series([d for d in dates for _ in range(n_symbols)], dtype=pl.Date),
            "symbol": [f"S{j}" for j in range(n_symbols)] * n_dates,
            "horizon_days": 1,
            "q50": np.log1p(median).ravel(),
            "realized": np.log1p(realized).ravel(),
        }
    )
    return frame, pl.Series(dates + [dates[-1] + timedelta(days=1)])


def test_calibration_recovers_the_slope_and_common_shocks_widen_its_error() -> None:
    frame, calendar = _panel()
    history = ForecastHistory.from_backtest(frame, calendar, horizon=1)
    fitted = history.calibrate(START + timedelta(days=500), lookback_bars=10_000, min_dates=10)
    assert fitted is not None
    assert fitted.slope == pytest.approx(0.5, abs=0.1)
    # The intercept's error reflects the common market shock: ~0.05 / sqrt(400), far above
    # what plain OLS over 4,000 rows would say (~0.058 / sqrt(4000)).
    intercept_se = np.sqrt(fitted.covariance[0, 0])
    assert 0.5 * 0.05 / np.sqrt(400) < intercept_se < 2.0 * 0.05 / np.sqrt(400)
    x = np.column_stack([np.ones(frame.height), np.expm1(frame["q50"].to_numpy())])
    y = np.expm1(frame["realized"].to_numpy())
    residual = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    ols_se = np.sqrt(residual.var() / frame.height)
    assert intercept_se > 2 * ols_se


def test_calibration_uses_only_outcomes_known_at_the_decision_date() -> None:
    horizon_bars = 1
    frame, calendar = _panel()
    decision = START + timedelta(days=250)
    history = ForecastHistory.from_backtest(frame, calendar, horizon=1)
    base = history.calibrate(decision, min_dates=10)
    # Poison every row whose outcome was not known by the close of the decision date.
    poisoned = frame.with_columns(
        pl.when(pl.col("as_of") + timedelta(days=horizon_bars) > decision)
        .then(pl.col("realized") * 50 + 1)
        .otherwise(pl.col("realized"))
        .alias("realized")
    )
    again = ForecastHistory.from_backtest(poisoned, calendar, horizon=1).calibrate(
        decision, min_dates=10
    )
    assert base is not None and again is not None
    assert again.last_issue == decision - timedelta(days=1)
    assert again.slope == base.slope and np.array_equal(again.covariance, base.covariance)


def test_too_short_a_track_record_gives_no_calibration() -> None:
    frame, calendar = _panel(n_dates=50)
    history = ForecastHistory.from_backtest(frame, calendar, horizon=1)
    assert history.calibrate(START + timedelta(days=100), min_dates=120) is None
    assert history.calibrate(START - timedelta(days=1), min_dates=1) is None


def test_advantage_of_two_risky_assets_cancels_the_intercept() -> None:
    calibration = ForecastCalibration(
        intercept=0.01,
        slope=0.5,
        covariance=np.array([[1e-4, 0.0], [0.0, 0.04]]),
        horizon=8,
        n_rows=1,
        n_dates=1,
        first_issue=START,
        last_issue=START,
    )
    mean, se = calibration.expected_advantage(0.04, 0.02)
    assert mean == pytest.approx(0.5 * 0.02)
    assert se == pytest.approx(0.2 * 0.02)  # only the slope's error, scaled by the gap
    mean_cash, se_cash = calibration.expected_advantage(0.04, None)
    assert mean_cash == pytest.approx(0.01 + 0.5 * 0.04)
    assert se_cash == pytest.approx(np.sqrt(1e-4 + 0.04 * 0.04**2))
    assert lower_bound_passes(mean, se, 0.9, 0.002) is True  # 1% - 1.28 x 0.4% > 0.2%
    assert lower_bound_passes(mean, se, 0.999, 0.002) is False  # 1% - 3.09 x 0.4% < 0


def test_driscoll_kraay_matches_white_errors_without_lags_and_one_row_per_date() -> None:
    rng = np.random.default_rng(3)
    x = np.column_stack([np.ones(200), rng.normal(size=200)])
    y = 0.3 * x[:, 1] + rng.normal(size=200)
    beta, cov = driscoll_kraay(x, y, np.arange(200), max_lag=0)
    residual = y - x @ beta
    bread = np.linalg.inv(x.T @ x)
    white = bread @ (x.T * residual**2) @ x @ bread
    np.testing.assert_allclose(cov, white, rtol=1e-10)


def test_confidence_must_be_a_probability() -> None:
    assert z_value(0.5) == 0.0
    with pytest.raises(GateInputError, match="gate confidence"):
        z_value(1.0)


def test_a_wrong_way_track_record_is_ignored_not_inverted() -> None:
    calibration = ForecastCalibration(
        intercept=0.0,
        slope=-0.8,
        covariance=np.diag([1e-6, 1e-4]),
        horizon=8,
        n_rows=1,
        n_dates=1,
        first_issue=START,
        last_issue=START,
    )
    mean, _ = calibration.expected_advantage(-0.05, 0.05)  # buy the asset forecast to fall
    assert mean == 0.0


def _reference_calibration(history, as_of, lookback_bars, min_dates):
    """The scan-and-sort calibration the prefix search replaced (issue 15), as the reference."""
    day = np.datetime64(as_of, "D")
    known = history.label_end <= day
    if not known.any():
        return None
    issue = history.issue[known]
    distinct = np.unique(issue)
    if len(distinct) < min_dates:
        return None
    first = distinct[max(0, len(distinct) - lookback_bars)]
    window = issue >= first
    issue, median = issue[window], history.median[known][window]
    realized = history.realized[known][window]
    date_index = np.searchsorted(np.unique(issue), issue)
    x = np.column_stack([np.ones_like(median), median])
    xtx_inv = np.linalg.pinv(x.T @ x)
    beta = xtx_inv @ (x.T @ realized)
    scores = np.zeros((int(date_index.max()) + 1, 2))
    np.add.at(scores, date_index, x * (realized - x @ beta)[:, None])
    meat = scores.T @ scores
    for lag in range(1, min(history.horizon, len(scores) - 1) + 1):
        gamma = scores[lag:].T @ scores[:-lag]
        meat += (1.0 - lag / (history.horizon + 1.0)) * (gamma + gamma.T)
    return beta, xtx_inv @ meat @ xtx_inv, len(realized), first


def test_calibration_at_every_day_equals_the_full_scan_to_the_bit() -> None:
    rng = np.random.default_rng(3)
    calendar = [date(2023, 1, 1) + timedelta(days=i) for i in range(200)]
    rows = [
        {"as_of": d, "symbol": f"S{s}", "horizon_days": 5, "q50": float(rng.normal(0, 0.02))}
        for d in calendar[:190]
        for s in range(int(rng.integers(3, 9)))  # a ragged universe: 3 to 8 symbols a day
    ]
    frame = pl.DataFrame(rows).with_columns(
        (pl.col("q50") * 0.5 + pl.Series(rng.normal(0, 0.03, len(rows)))).alias("realized")
    )
    history = ForecastHistory.from_backtest(frame, pl.Series(calendar), horizon=5)
    compared = 0
    for day in calendar:
        for lookback, min_dates in ((730, 20), (30, 10)):
            got = history.calibrate(day, lookback_bars=lookback, min_dates=min_dates)
            want = _reference_calibration(history, day, lookback, min_dates)
            assert (got is None) == (want is None), day
            if got is None:
                continue
            beta, covariance, n_rows, first = want
            assert (got.intercept, got.slope) == (beta[0], beta[1])
            np.testing.assert_array_equal(got.covariance, covariance)
            assert (got.n_rows, got.first_issue) == (n_rows, first.astype(date))
            compared += 1
    assert compared > 200


def test_forecast_history_must_be_sorted() -> None:
    day = np.array(["2024-01-02", "2024-01-01"], dtype="datetime64[D]")
    with pytest.raises(
        GateInputError, match="issue date 2024-01-02 at row 0 is followed by 2024-01-01"
    ):
        ForecastHistory(1, day, day, np.zeros(2), np.zeros(2))
