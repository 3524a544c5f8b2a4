"""compute_market_features against independent numpy/pandas implementations on real data."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from portfolio_pipeline.market.features import (
    FeatureInputError,
    compute_market_features,
    returns_covariance,
)
from portfolio_pipeline.settings import SAMPLE_SYMBOLS

SPEC_COLUMNS = [
    "symbol", "date", "ret_1d", "log_ret_1d", "ret_5d", "ret_20d", "vol_20d", "vol_60d",
    "rsi_14", "macd", "macd_signal", "macd_hist", "bb_pct_b_20", "atr_14", "volume_z_20",
    "drawdown_60d",
]  # fmt: skip


@pytest.fixture(scope="module")
def features(sample_ohlcv: pl.DataFrame) -> pl.DataFrame:
    return compute_market_features(sample_ohlcv)


def _symbol_slice(frame: pl.DataFrame, symbol: str) -> pl.DataFrame:
    return frame.filter(pl.col("symbol") == symbol).sort("date")


def _wilder_reference(values: np.ndarray, period: int) -> np.ndarray:
    """Wilder's average of values[1:], seeded by the mean of values[1:period+1] (TA-Lib style)."""
    out = np.full(values.shape, np.nan)
    out[period] = values[1 : period + 1].mean()
    for t in range(period + 1, len(values)):
        out[t] = out[t - 1] + (values[t] - out[t - 1]) / period
    return out


def _assert_close(actual: pl.Series, expected: np.ndarray, rtol: float = 1e-9, atol: float = 1e-9):
    got = actual.to_numpy().astype(float)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)


def test_output_grain_columns_and_all_symbols(sample_ohlcv, features):
    assert features.height == sample_ohlcv.height
    assert set(SPEC_COLUMNS) <= set(features.columns)
    assert {"ret_60d", "ret_120d", "day_of_week", "month", "is_month_end"} <= set(features.columns)
    assert sorted(features["symbol"].unique()) == sorted(SAMPLE_SYMBOLS)
    assert features.select(pl.struct("symbol", "date").is_unique().all()).item()
    assert features.equals(features.sort("symbol", "date"))


def test_hand_computed_returns_on_btc(features):
    # BTCUSDT closes 2023-12-31 and 2024-01-01 (the README's known value 44,179.55).
    btc = _symbol_slice(features, "BTCUSDT")
    row = btc.filter(pl.col("date") == date(2024, 1, 1)).row(0, named=True)
    prev = btc.filter(pl.col("date") == date(2023, 12, 31))["close"].item()
    assert row["close"] == pytest.approx(44179.55)
    assert row["ret_1d"] == pytest.approx(44179.55 / prev - 1.0)
    assert row["log_ret_1d"] == pytest.approx(math.log(44179.55 / prev))
    close_5_before = btc.filter(pl.col("date") == date(2023, 12, 27))["close"].item()
    assert row["ret_5d"] == pytest.approx(44179.55 / close_5_before - 1.0)
    assert row["day_of_week"] == 1 and row["month"] == 1 and not row["is_month_end"]
    assert btc.filter(pl.col("date") == date(2023, 12, 31))["is_month_end"].item()


@pytest.mark.parametrize("symbol", ["BTCUSDT", "DOGEUSDT", "XMRUSDT"])
def test_indicators_match_independent_implementation(sample_ohlcv, features, symbol):
    raw = _symbol_slice(sample_ohlcv, symbol)
    got = _symbol_slice(features, symbol)
    close = raw["close"].to_numpy()
    high, low, volume = raw["high"].to_numpy(), raw["low"].to_numpy(), raw["volume"].to_numpy()
    closes = pd.Series(close)
    log_ret = np.log(closes / closes.shift(1))

    for horizon in (1, 5, 20, 60, 120):
        _assert_close(got[f"ret_{horizon}d"], (closes / closes.shift(horizon) - 1).to_numpy())
    for window in (20, 60):
        expected = log_ret.rolling(window).std(ddof=1) * math.sqrt(365)
        _assert_close(got[f"vol_{window}d"], expected.to_numpy())

    change = np.diff(close, prepend=np.nan)
    avg_gain = _wilder_reference(np.where(change > 0, change, 0.0), 14)
    avg_loss = _wilder_reference(np.where(change < 0, -change, 0.0), 14)
    _assert_close(got["rsi_14"], 100.0 - 100.0 / (1.0 + avg_gain / avg_loss), rtol=1e-8)

    ema12 = closes.ewm(span=12, adjust=False).mean()
    ema26 = closes.ewm(span=26, adjust=False).mean()
    macd = ema12 - ema26
    signal = macd.ewm(span=9, adjust=False).mean()
    _assert_close(got["macd"], macd.where(macd.index >= 25).to_numpy(), rtol=1e-8)
    _assert_close(got["macd_signal"], signal.where(signal.index >= 33).to_numpy(), rtol=1e-8)
    _assert_close(
        got["macd_hist"], (macd - signal).where(signal.index >= 33).to_numpy(), rtol=1e-7, atol=1e-9
    )

    mid = closes.rolling(20).mean()
    sd = closes.rolling(20).std(ddof=0)
    _assert_close(got["bb_pct_b_20"], ((closes - (mid - 2 * sd)) / (4 * sd)).to_numpy(), rtol=1e-7)

    prev_close = np.concatenate([[np.nan], close[:-1]])
    true_range = np.nanmax(
        np.vstack([high - low, np.abs(high - prev_close), np.abs(low - prev_close)]), axis=0
    )
    _assert_close(got["atr_14"], _wilder_reference(true_range, 14), rtol=1e-8)

    volumes = pd.Series(volume)
    volume_z = (volumes - volumes.rolling(20).mean()) / volumes.rolling(20).std(ddof=1)
    _assert_close(got["volume_z_20"], volume_z.to_numpy(), rtol=1e-8)

    drawdown = closes / closes.rolling(60).max() - 1
    _assert_close(got["drawdown_60d"], drawdown.to_numpy())


def test_rsi_and_bands_hand_computed_edge_cases():
    days = pl.date_range(date(2024, 1, 1), date(2024, 2, 9), eager=True)
    n = days.len()
    rising = np.arange(1.0, n + 1.0)
    flat = np.full(n, 5.0)
    frame = pl.DataFrame(
        {
            "symbol": ["UP"] * n + ["FLAT"] * n,
            "date": pl.concat([days, days]),
            "open": np.concatenate([rising, flat]),
            "high": np.concatenate([rising + 0.5, flat]),
            "low": np.concatenate([rising - 0.5, flat]),
            "close": np.concatenate([rising, flat]),
            "volume": np.ones(2 * n),
        }
    )
    out = compute_market_features(frame)
    up, flat_rows = _symbol_slice(out, "UP"), _symbol_slice(out, "FLAT")
    assert up["rsi_14"][:14].is_null().all()
    assert up["rsi_14"][14:].to_list() == [100.0] * (n - 14)  # only gains
    assert flat_rows["rsi_14"][14:].to_list() == [50.0] * (n - 14)  # no movement at all
    # A steady +1 per day: true range = 1.5 (high - previous close) every day after the first.
    assert up["atr_14"][14:].to_numpy() == pytest.approx(np.full(n - 14, 1.5))
    assert flat_rows["bb_pct_b_20"].is_null().all()  # bands collapse: undefined, not inf
    assert flat_rows["volume_z_20"].is_null().all()
    assert up["drawdown_60d"].is_null().all()  # 40 rows < 60-row window
    # Rising by 1: ranks on every date put UP above FLAT once both have a 20-day return.
    both = out.filter(pl.col("ret_20d").is_not_null())
    assert both.filter(pl.col("symbol") == "UP")["ret_20d_xs_rank"].to_list() == [1.0] * (n - 20)
    assert both.filter(pl.col("symbol") == "FLAT")["ret_20d_xs_rank"].to_list() == [0.0] * (n - 20)


def test_cross_sectional_ranks_use_same_date_only(features):
    day = features.filter(pl.col("date") == date(2022, 6, 15))
    values = day["ret_20d"].to_numpy()
    expected = (pd.Series(values).rank(method="average").to_numpy() - 1) / (len(values) - 1)
    _assert_close(day["ret_20d_xs_rank"], expected)
    assert day["xs_n_symbols"].unique().to_list() == [day.height]
    ranks = features["vol_20d_xs_rank"].drop_nulls()
    assert ranks.min() >= 0.0 and ranks.max() <= 1.0


@pytest.mark.parametrize(
    "cutoff", [date(2018, 3, 1), date(2020, 3, 12), date(2021, 11, 10), date(2024, 9, 10)]
)
def test_no_look_ahead_truncated_history_gives_identical_rows(sample_ohlcv, features, cutoff):
    truncated = compute_market_features(sample_ohlcv.filter(pl.col("date") <= cutoff))
    expected = features.filter(pl.col("date") <= cutoff)
    assert truncated.height == expected.height
    assert_frame_equal(truncated, expected, check_exact=True)


def test_no_look_ahead_future_shock_leaves_past_untouched(sample_ohlcv, features):
    shock_day = date(2023, 5, 1)
    shocked = sample_ohlcv.with_columns(
        [
            pl.when(pl.col("date") > shock_day).then(pl.col(c) * 10.0).otherwise(pl.col(c)).alias(c)
            for c in ("open", "high", "low", "close", "volume")
        ]
    )
    recomputed = compute_market_features(shocked)
    past = pl.col("date") <= shock_day
    assert_frame_equal(recomputed.filter(past), features.filter(past))
    assert not recomputed.filter(~past).equals(features.filter(~past))


def test_warm_up_is_null_and_values_finite_after(features):
    warm = features.filter(pl.col("history_days") <= 14)
    assert warm["rsi_14"].is_null().all() and warm["atr_14"].is_null().all()
    assert features.filter(pl.col("history_days") <= 59)["drawdown_60d"].is_null().all()
    mature = features.filter(pl.col("history_days") > 120)
    numeric = [c for c, t in mature.schema.items() if t == pl.Float64]
    nulls = mature.select(pl.col(numeric).is_null().sum()).row(0, named=True)
    assert {c: n for c, n in nulls.items() if n} == {}
    non_finite = mature.select((~pl.col(numeric).is_finite()).sum()).row(0, named=True)
    assert {c: n for c, n in non_finite.items() if n} == {}
    assert mature["rsi_14"].is_between(0, 100).all()
    assert mature["drawdown_60d"].is_between(-1, 0).all()


def test_periods_per_year_scales_volatility(sample_ohlcv, features):
    btc = sample_ohlcv.filter(pl.col("symbol") == "BTCUSDT")
    equities = compute_market_features(btc, periods_per_year=252)
    crypto = features.filter(pl.col("symbol") == "BTCUSDT")
    ratio = (equities["vol_20d"] / crypto["vol_20d"]).drop_nulls()
    assert ratio.to_numpy() == pytest.approx(math.sqrt(252 / 365))
    with pytest.raises(ValueError, match="periods_per_year"):
        compute_market_features(btc, periods_per_year=0)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: pl.concat([f, f.tail(1)]), r"duplicate \(symbol, date\).*ETHUSDT 2018-01-31"),
        (
            lambda f: f.with_columns(
                pl.when(pl.col("date") == date(2018, 1, 5))
                .then(-1.0)
                .otherwise("close")
                .alias("close")
            ),
            r"non-positive price.*BTCUSDT 2018-01-05",
        ),
        (
            lambda f: f.with_columns(
                pl.when(pl.col("date") == date(2018, 1, 7))
                .then(None)
                .otherwise("close")
                .alias("close")
            ),
            r"null price.*BTCUSDT 2018-01-07",
        ),
        (
            lambda f: f.with_columns(
                pl.when(pl.col("date") == date(2018, 1, 9))
                .then(1.0)
                .otherwise("high")
                .alias("high")
            ),
            r"high below low.*BTCUSDT 2018-01-09",
        ),
        (lambda f: f.drop("volume"), r"lacks required columns \['volume'\]"),
    ],
)
def test_bad_input_raises_naming_rule_symbol_and_date(sample_ohlcv, mutate, message):
    small = sample_ohlcv.filter(
        pl.col("symbol").is_in(["BTCUSDT", "ETHUSDT"]) & (pl.col("date") < date(2018, 2, 1))
    )
    with pytest.raises(FeatureInputError, match=message):
        compute_market_features(mutate(small))


def test_returns_covariance_matches_numpy(sample_ohlcv, features):
    as_of = date(2024, 6, 30)
    result = returns_covariance(features, window=90, as_of=as_of)
    assert result.end == as_of and result.n_observations == 90
    assert "XMRUSDT" not in result.symbols  # delisted 2024-02-20: no complete window
    assert "BTCUSDT" in result.symbols and len(result.symbols) == 20
    wide = (
        features.filter(pl.col("date").is_between(result.start, as_of))
        .pivot(on="symbol", index="date", values="log_ret_1d")
        .sort("date")
        .select(result.symbols)
        .to_numpy()
    )
    assert wide.shape == (90, 20)
    np.testing.assert_allclose(result.matrix, np.cov(wide, rowvar=False), rtol=1e-12)
    from_ohlcv = returns_covariance(sample_ohlcv, window=90, as_of=as_of, periods_per_year=365)
    np.testing.assert_allclose(from_ohlcv.matrix, result.matrix * 365, rtol=1e-10)
    # Later data must not matter.
    later_removed = returns_covariance(features.filter(pl.col("date") <= as_of), 90, as_of)
    np.testing.assert_array_equal(later_removed.matrix, result.matrix)


def test_returns_covariance_rejects_symbol_without_full_window(features):
    # XMRUSDT stops on 2024-02-20: a window ending 2024-03-15 is partly empty.
    with pytest.raises(FeatureInputError, match=r"XMRUSDT lacks log returns on 24 of the 90"):
        returns_covariance(features, 90, date(2024, 3, 15), symbols=["BTCUSDT", "XMRUSDT"])
    with pytest.raises(FeatureInputError, match="XMRUSDT has no returns"):
        returns_covariance(features, 90, date(2024, 6, 30), symbols=["XMRUSDT"])
    chosen = returns_covariance(features, 30, date(2024, 6, 30), symbols=["ETHUSDT", "BTCUSDT"])
    assert chosen.symbols == ["ETHUSDT", "BTCUSDT"] and chosen.matrix.shape == (2, 2)
