"""build_env_data: shapes, alignment, input rules and causal normalisation."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from portfolio_pipeline.policies.env_data import (
    EnvData,
    EnvDataError,
    build_env_data,
    causal_zscore,
)


def test_build_env_data_shapes_and_alignment(
    small_ohlcv: pl.DataFrame, small_data: EnvData, small_universe: tuple[str, ...]
):
    n_dates = small_ohlcv["date"].n_unique()
    assert small_data.symbols == tuple(sorted(small_universe))
    assert small_data.prices.shape == (n_dates, 3)
    assert small_data.forecasts is not None and small_data.forecasts.shape == (n_dates, 3, 3)
    assert small_data.sentiment is not None and small_data.sentiment.shape == (n_dates, 3, 2)
    assert small_data.sentiment_names == ("sentiment", "news_count")
    btc = small_data.symbols.index("BTCUSDT")
    row = int(np.searchsorted(small_data.dates, np.datetime64("2024-01-01")))
    assert small_data.prices[row, btc] == pytest.approx(44179.55)
    # XMR is delisted after 2024-02-20: NaN afterwards, never forward-filled.
    xmr = small_data.symbols.index("XMRUSDT")
    last_xmr = int(np.searchsorted(small_data.dates, np.datetime64("2024-02-20")))
    assert np.isfinite(small_data.prices[last_xmr, xmr])
    assert np.isnan(small_data.prices[last_xmr + 1 :, xmr]).all()
    assert np.all(small_data.features[last_xmr + 1 :, xmr] == 0.0)
    assert np.isfinite(small_data.features).all()


def test_build_env_data_uses_spec_market_features(small_ohlcv: pl.DataFrame):
    from portfolio_pipeline.policies.env_data import MARKET_FEATURE_COLUMNS

    grid = small_ohlcv.select("symbol", "date")
    features = grid.with_columns(
        [pl.lit(float(i)).alias(name) for i, name in enumerate(MARKET_FEATURE_COLUMNS)]
    ).with_columns((pl.col("date").dt.ordinal_day().cast(pl.Float64)).alias("rsi_14"))
    data = build_env_data(small_ohlcv, features)
    assert data.feature_names == MARKET_FEATURE_COLUMNS
    rsi = MARKET_FEATURE_COLUMNS.index("rsi_14")
    assert np.abs(data.features[100:, :, rsi]).max() > 0.5  # a varying column is z-scored
    assert np.all(data.features[:, :, 0] == 0.0)  # a constant column has no information
    with pytest.raises(EnvDataError, match="lacks required columns"):
        build_env_data(small_ohlcv, features.drop("macd"))


def test_build_env_data_rejects_bad_input(small_ohlcv: pl.DataFrame):
    duplicated = pl.concat([small_ohlcv, small_ohlcv.head(1)])
    with pytest.raises(EnvDataError, match=r"duplicate \(symbol, date\) rows: BTCUSDT 2023-06-01"):
        build_env_data(duplicated, None)
    negative = small_ohlcv.with_columns(
        pl.when((pl.col("symbol") == "ETHUSDT") & (pl.col("date") == date(2023, 7, 1)))
        .then(-1.0)
        .otherwise(pl.col("close"))
        .alias("close")
    )
    with pytest.raises(EnvDataError, match="positive number: ETHUSDT 2023-07-01"):
        build_env_data(negative, None)
    with pytest.raises(EnvDataError, match="DOGEUSDT"):
        build_env_data(small_ohlcv, None, symbols=["BTCUSDT", "DOGEUSDT"])


def test_features_are_causal(small_ohlcv: pl.DataFrame):
    """Features at dates <= D do not change when data after D is removed or altered."""
    cutoff = date(2024, 3, 1)
    full = build_env_data(small_ohlcv, None)
    altered_future = small_ohlcv.with_columns(
        pl.when(pl.col("date") > cutoff)
        .then(pl.col("close") * 3.0)
        .otherwise(pl.col("close"))
        .alias("close")
    )
    altered = build_env_data(altered_future, None)
    truncated = build_env_data(small_ohlcv.filter(pl.col("date") <= cutoff), None)
    n_known = len(truncated.dates)
    np.testing.assert_array_equal(full.features[:n_known], truncated.features)
    np.testing.assert_array_equal(full.features[:n_known], altered.features[:n_known])
    assert not np.array_equal(full.features[n_known + 1 :], altered.features[n_known + 1 :])


def test_causal_zscore_matches_direct_computation():
    rng = np.random.default_rng(3)
    values = rng.normal(50.0, 10.0, size=(80, 2, 1))
    values[:5, 1, 0] = np.nan
    z = causal_zscore(values, window=30, min_periods=10)
    t = 60
    window = values[t - 29 : t + 1, 0, 0]
    expected = (values[t, 0, 0] - window.mean()) / window.std()
    assert z[t, 0, 0] == pytest.approx(expected, rel=1e-5)
    assert np.all(z[:9, 0, 0] == 0.0)  # fewer than min_periods values
    assert np.all(z[:5, 1, 0] == 0.0)
