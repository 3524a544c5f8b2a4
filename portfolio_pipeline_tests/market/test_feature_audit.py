from datetime import date

import polars as pl

from portfolio_pipeline.market.feature_audit import ERROR_RULE, WARNING_RULE, audit_features
from portfolio_pipeline.market.features import compute_market_features

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def _slice(sample_ohlcv: pl.DataFrame) -> pl.DataFrame:
    return sample_ohlcv.filter(
        pl.col("symbol").is_in(SYMBOLS)
        & pl.col("date").is_between(date(2023, 1, 1), date(2023, 8, 31))
    )


def test_clean_sample_passes(sample_ohlcv):
    ohlcv = _slice(sample_ohlcv)
    audit = audit_features(compute_market_features(ohlcv), ohlcv)
    assert audit.ok and not audit.warnings
    assert "features finite after 120 bars" in audit.describe()


def test_constant_volume_is_a_warning_with_its_reason(sample_ohlcv):
    # ETH's volume frozen for 30 days in July: the z-score is undefined, not bad data.
    ohlcv = _slice(sample_ohlcv).with_columns(
        pl.when(
            (pl.col("symbol") == "ETHUSDT")
            & pl.col("date").is_between(date(2023, 7, 1), date(2023, 7, 30))
        )
        .then(1000.0)
        .otherwise(pl.col("volume"))
        .alias("volume")
    )
    audit = audit_features(compute_market_features(ohlcv), ohlcv)
    assert audit.ok
    columns = {i.column: i for i in audit.warnings}
    assert set(columns) == {"volume_z_20", "volume_z_20_xs_rank"}
    issue = columns["volume_z_20"]
    assert issue.rule == WARNING_RULE
    assert issue.symbols == ("ETHUSDT",)
    # the 20-bar window is flat from the 20th frozen day on
    assert issue.first_dates == (date(2023, 7, 20),) and issue.last_date == date(2023, 7, 30)
    assert "volume did not change over the last 20 bars" in audit.describe()


def test_non_finite_from_bad_data_is_an_error_naming_column_symbols_dates(sample_ohlcv):
    ohlcv = _slice(sample_ohlcv)
    features = compute_market_features(ohlcv).with_columns(
        pl.when((pl.col("symbol") == "BTCUSDT") & (pl.col("date") >= date(2023, 8, 10)))
        .then(float("nan"))
        .otherwise(pl.col("vol_20d"))
        .alias("vol_20d")
    )
    audit = audit_features(features, ohlcv)
    assert not audit.ok
    (issue,) = audit.errors
    assert (issue.rule, issue.column, issue.symbols) == (ERROR_RULE, "vol_20d", ("BTCUSDT",))
    assert issue.first_dates == (date(2023, 8, 10),) and issue.n_rows == 22
    text = audit.describe()
    assert "rule finite_after_warm_up: column vol_20d" in text
    assert "BTCUSDT from 2023-08-10" in text and "22 NaN" in text
