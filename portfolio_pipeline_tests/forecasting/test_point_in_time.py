"""The forecast channel the DRL observes is point-in-time: issued at every date, realized or
not, and never changed by data after its date; a live run at D sees what training saw at D."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from portfolio_pipeline.forecasting.config import ForecastConfig
from portfolio_pipeline.forecasting.walkforward import walk_forward
from portfolio_pipeline.market.features import compute_market_features
from portfolio_pipeline.policies.env import PortfolioEnv
from portfolio_pipeline.policies.env_data import build_env_data

SYMBOLS = ["BTCUSDT", "ETHUSDT", "XMRUSDT"]
FAST = ForecastConfig(iterations=20, depth=3, calibration_days=40)
HORIZON = 8
FIRST_TEST = date(2024, 1, 1)
LIVE_DAY = date(2024, 2, 25)  # XMR's last close is 2024-02-20: within H days before it


@pytest.fixture(scope="module")
def ohlcv(sample_ohlcv: pl.DataFrame) -> pl.DataFrame:
    return sample_ohlcv.filter(
        pl.col("symbol").is_in(SYMBOLS)
        & pl.col("date").is_between(date(2022, 6, 1), date(2024, 3, 20))
    )


def _feed(ohlcv: pl.DataFrame, last_day: date, include_unlabelled: bool = True):
    """The walk-forward feed as a run on the data known at the close of ``last_day`` makes it."""
    known = ohlcv.filter(pl.col("date") <= last_day)
    features = compute_market_features(known)
    backtest, _ = walk_forward(
        features,
        known,
        HORIZON,
        config=FAST,
        first_test_start=FIRST_TEST,
        retrain_every_days=30,
        include_unlabelled=include_unlabelled,
    )
    return known, features, backtest


@pytest.fixture(scope="module")
def full_feed(ohlcv):
    return _feed(ohlcv, ohlcv["date"].max())


@pytest.fixture(scope="module")
def live_feed(ohlcv):
    return _feed(ohlcv, LIVE_DAY)


def test_forecasts_are_issued_at_every_date(ohlcv, live_feed):
    known, _, feed = live_feed
    # Up to the live day itself, for every symbol trading, outcome known or not.
    assert feed["as_of"].max() == LIVE_DAY
    last_rows = feed.filter(pl.col("as_of") == LIVE_DAY)
    assert sorted(last_rows["symbol"]) == ["BTCUSDT", "ETHUSDT"]
    assert last_rows["realized"].is_null().all()
    assert last_rows["q50"].is_finite().all()
    # XMR is forecast up to its last close, not H days before (which would give away that
    # it stops trading): the missing label is not a missing forecast.
    xmr = feed.filter(pl.col("symbol") == "XMRUSDT")
    assert xmr["as_of"].max() == date(2024, 2, 20)
    assert xmr.filter(pl.col("as_of") > date(2024, 2, 12))["realized"].is_null().all()
    # The labelled rows are exactly those of a labelled-only walk-forward.
    _, _, labelled_only = _feed(ohlcv, LIVE_DAY, include_unlabelled=False)
    labelled = feed.filter(pl.col("realized").is_not_null()).sort("as_of", "symbol")
    assert labelled_only.sort("as_of", "symbol").equals(labelled)


def test_no_forecast_changes_because_of_later_data(full_feed, live_feed):
    _, _, full = full_feed
    _, _, live = live_feed
    keys = ["as_of", "symbol", "horizon_days"]
    columns = [*keys, "fold", "q10", "q50", "q90"]
    seen_live = full.filter(pl.col("as_of") <= LIVE_DAY).select(columns).sort(keys)
    assert seen_live.height == live.height
    np.testing.assert_array_equal(
        seen_live.select("q10", "q50", "q90").to_numpy(),
        live.sort(keys).select("q10", "q50", "q90").to_numpy(),
    )
    # Only the realized outcome arrives later.
    later = full.filter(pl.col("as_of").is_between(LIVE_DAY - timedelta(days=7), LIVE_DAY))
    assert later["realized"].is_not_null().sum() > 0


def test_observation_at_the_latest_date_equals_the_live_one(full_feed, live_feed):
    """The env built from the whole history (training, backtests) and the one a live run at
    LIVE_DAY builds give the same observation at LIVE_DAY, forecast channel included."""
    observations = []
    for known, features, feed in (full_feed, live_feed):
        data = build_env_data(known, features, forecasts=feed, forecast_horizon=HORIZON)
        env = PortfolioEnv(data, (LIVE_DAY - timedelta(days=1), None), lookback=5)
        env.reset(seed=0)
        cash = np.zeros(env.action_space.shape, np.float32)
        cash[-1] = 1.0
        obs, *_ = env.step(cash)  # the decision at LIVE_DAY - 1 day: stay in cash
        assert data.date_at(env.current_index) == LIVE_DAY
        assert data.forecasts is not None
        row = env.current_index
        forecast_channel = data.forecasts[row]
        observations.append((obs, forecast_channel))
    (full_obs, full_forecasts), (live_obs, live_forecasts) = observations
    np.testing.assert_array_equal(full_obs, live_obs)
    # BTC and ETH have a forecast at the live date (not the 0 of "unknown").
    assert np.count_nonzero(live_forecasts[:2]) > 0
    np.testing.assert_array_equal(full_forecasts, live_forecasts)
