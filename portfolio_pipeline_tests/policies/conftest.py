"""Fixtures shared by the environment tests: a small real slice of the sample."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from portfolio_pipeline.policies.env_data import EnvData, build_env_data

SMALL_UNIVERSE = ("BTCUSDT", "ETHUSDT", "XMRUSDT")


@pytest.fixture(scope="module")
def small_universe() -> tuple[str, ...]:
    return SMALL_UNIVERSE


@pytest.fixture(scope="module")
def small_ohlcv(sample_ohlcv: pl.DataFrame) -> pl.DataFrame:
    return sample_ohlcv.filter(
        pl.col("symbol").is_in(SMALL_UNIVERSE) & (pl.col("date") >= date(2023, 6, 1))
    )


@pytest.fixture(scope="module")
def small_data(small_ohlcv: pl.DataFrame) -> EnvData:
    # Forecasts and sentiment shaped like ml.forecast_backtest / features.daily_sentiment.
    rows = small_ohlcv.select("symbol", pl.col("date").alias("as_of"))
    forecasts = pl.concat(
        [
            rows.with_columns(
                pl.lit(h).alias("horizon_days"),
                pl.lit(-0.05 * h).alias("q10"),
                pl.lit(0.001 * h).alias("q50"),
                pl.lit(0.05 * h).alias("q90"),
            )
            for h in (1, 7)
        ]
    )
    sentiment = small_ohlcv.filter(pl.col("date").dt.day() % 3 == 0).select(
        "symbol",
        "date",
        (pl.col("date").dt.day() / 31.0 - 0.5).alias("sentiment"),
        pl.col("date").dt.day().cast(pl.Int64).alias("news_count"),
    )
    return build_env_data(small_ohlcv, None, forecasts=forecasts, sentiment=sentiment)
