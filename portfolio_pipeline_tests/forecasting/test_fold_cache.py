"""The walk-forward fold cache: unchanged folds are read back, changed ones refitted, and the
frames are those of a walk-forward without the cache."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from portfolio_pipeline.forecasting import walkforward
from portfolio_pipeline.forecasting.config import ForecastConfig
from portfolio_pipeline.forecasting.walkforward import (
    walk_forward_horizons,
    walk_forward_volatility_and_model,
)
from portfolio_pipeline.market.features import compute_market_features

SYMBOLS = ["BTCUSDT", "ETHUSDT", "LTCUSDT", "XMRUSDT"]
FAST = ForecastConfig(iterations=20, depth=3, calibration_days=60)
FIRST_TEST = date(2021, 1, 1)  # folds of 120 days: Jan-Apr, May-Aug, Aug-Dec 2021
RETRAIN_DAYS = 120
LAST_BASE_DAY = date(2021, 12, 20)


@pytest.fixture(scope="module")
def ohlcv_full(sample_ohlcv: pl.DataFrame) -> pl.DataFrame:
    """4 symbols, 2019-01-01 .. 2021-12-31."""
    return sample_ohlcv.filter(
        pl.col("symbol").is_in(SYMBOLS)
        & pl.col("date").is_between(date(2019, 1, 1), date(2021, 12, 31))
    )


@pytest.fixture(scope="module")
def ohlcv_base(ohlcv_full: pl.DataFrame) -> pl.DataFrame:
    return ohlcv_full.filter(pl.col("date") <= LAST_BASE_DAY)


@pytest.fixture
def fitted(monkeypatch) -> list[int]:
    """Counts the folds each walk-forward fits (tasks handed to ``fit_models``)."""
    counts: list[int] = []
    real = walkforward.fit_models

    def counting(inputs_by_horizon, tasks, backend=None):
        counts.append(len(tasks))
        return real(inputs_by_horizon, tasks, backend)

    monkeypatch.setattr(walkforward, "fit_models", counting)
    return counts


def _run(ohlcv: pl.DataFrame, cache_dir=None) -> tuple[pl.DataFrame, pl.DataFrame]:
    return walk_forward_horizons(
        compute_market_features(ohlcv),
        ohlcv,
        [1, 8],
        config=FAST,
        first_test_start=FIRST_TEST,
        retrain_every_days=RETRAIN_DAYS,
        include_unlabelled=True,
        fold_cache_dir=cache_dir,
    )


def _assert_same(a: tuple[pl.DataFrame, pl.DataFrame], b: tuple[pl.DataFrame, pl.DataFrame]):
    assert_frame_equal(a[0], b[0])
    assert_frame_equal(a[1], b[1])


@pytest.fixture(scope="module")
def uncached_base(ohlcv_base):
    return _run(ohlcv_base)


def test_a_warm_cache_fits_nothing_and_gives_the_uncached_frames(
    ohlcv_base, uncached_base, fitted, tmp_path
):
    cold = _run(ohlcv_base, tmp_path)
    warm = _run(ohlcv_base, tmp_path)
    n_folds = uncached_base[1].height
    assert n_folds == 6  # 3 folds x 2 horizons
    assert fitted == [n_folds]  # the cold run fits every fold, the warm one calls no fit
    _assert_same(cold, uncached_base)
    _assert_same(warm, uncached_base)
    assert len(list(tmp_path.glob("*.parquet"))) == n_folds


def test_new_days_refit_only_the_folds_that_see_them(ohlcv_base, ohlcv_full, fitted, tmp_path):
    _run(ohlcv_base, tmp_path)
    fitted.clear()
    updated = _run(ohlcv_full, tmp_path)
    # Per horizon: folds 0 and 1 (tests end 2021-08-28, labels end before 2021-12-20)
    # are read back; fold 2 (its test end moved from 12-20 to 12-26 and its last labels
    # filled in) and the new fold 3 (12-27 .. 12-31) are fitted.
    assert fitted == [4]
    assert sorted(updated[1].filter(pl.col("horizon_days") == 8)["fold"].to_list()) == [0, 1, 2, 3]
    fitted.clear()
    _assert_same(updated, _run(ohlcv_full))


def test_a_corrected_old_close_refits_every_fold_that_sees_it(ohlcv_base, fitted, tmp_path):
    _run(ohlcv_base, tmp_path)
    fitted.clear()
    # A data correction inside fold 1's test window (2021-05-01 .. 2021-08-28): fold 0 never
    # sees it (its rows end 2021-04-30 and its labels before the corrected bar), folds 1, 2 do.
    corrected = ohlcv_base.with_columns(
        pl.when((pl.col("symbol") == "LTCUSDT") & (pl.col("date") == date(2021, 6, 15)))
        .then(pl.col("close") * 1.05)
        .otherwise(pl.col("close"))
        .alias("close")
    ).with_columns(
        pl.max_horizontal("high", "close").alias("high"),
        pl.min_horizontal("low", "close").alias("low"),
    )
    result = _run(corrected, tmp_path)
    assert fitted == [4]  # folds 1 and 2 of both horizons
    fitted.clear()
    _assert_same(result, _run(corrected))


def test_a_corrupt_entry_is_refitted_not_fatal(ohlcv_base, uncached_base, fitted, tmp_path):
    _run(ohlcv_base, tmp_path)
    fitted.clear()
    entries = sorted(tmp_path.glob("*.parquet"))
    entries[0].write_bytes(b"not a parquet file")
    entries[1].with_suffix(".json").write_text("{")
    entries[2].with_suffix(".json").unlink()
    _assert_same(_run(ohlcv_base, tmp_path), uncached_base)
    assert fitted == [3]
    fitted.clear()
    _run(ohlcv_base, tmp_path)  # the refitted entries were rewritten
    assert fitted == []


def test_volatility_folds_are_cached_and_the_final_model_always_fitted(
    ohlcv_base, fitted, tmp_path
):
    features = compute_market_features(ohlcv_base)
    window = dict(config=FAST, first_test_start=FIRST_TEST, retrain_every_days=RETRAIN_DAYS)
    plain = walk_forward_volatility_and_model(features, ohlcv_base, 8, **window)
    cold = walk_forward_volatility_and_model(
        features, ohlcv_base, 8, fold_cache_dir=tmp_path, **window
    )
    warm = walk_forward_volatility_and_model(
        features, ohlcv_base, 8, fold_cache_dir=tmp_path, **window
    )
    assert fitted == [4, 4, 1]  # 3 folds + the final model; then the final model alone
    for result in (cold, warm):
        assert_frame_equal(result[0], plain[0])
        assert_frame_equal(result[1], plain[1])
        assert result[2].model_version == plain[2].model_version


def test_an_unwritable_cache_directory_only_costs_the_refits(ohlcv_base, uncached_base, tmp_path):
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("a file where the cache directory should be")
    _assert_same(_run(ohlcv_base, blocker / "fold_cache"), uncached_base)


def test_other_fitting_code_refits_every_fold(ohlcv_base, fitted, tmp_path, monkeypatch):
    from portfolio_pipeline.forecasting import fold_cache

    _run(ohlcv_base, tmp_path)
    fitted.clear()
    _run(ohlcv_base, tmp_path)
    assert fitted == []
    monkeypatch.setattr(fold_cache, "code_fingerprint", lambda: "an edited forecast.py")
    _run(ohlcv_base, tmp_path)
    assert fitted == [6]
