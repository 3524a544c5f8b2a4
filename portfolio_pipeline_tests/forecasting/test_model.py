"""CatBoost forecasts: labels, purged walk-forward, embargo, determinism, evaluation."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from scipy.stats import spearmanr

from portfolio_pipeline.forecasting.config import RETURN_KIND, ForecastConfig, ForecastInputError
from portfolio_pipeline.forecasting.evaluation import (
    daily_rank_ic,
    evaluate_forecasts,
    plot_interval,
)
from portfolio_pipeline.forecasting.inputs import (
    build_model_inputs,
    ohlcv_derived_frame,
    training_rows,
)
from portfolio_pipeline.forecasting.model import (
    ForecastModel,
    fit_final_model,
    fit_model,
    predict_latest,
    predict_quantiles,
)
from portfolio_pipeline.forecasting.registry import (
    feature_importance,
    load_model,
    registry_row,
    save_model,
)
from portfolio_pipeline.forecasting.volatility import fit_volatility_model, predict_volatility
from portfolio_pipeline.forecasting.walkforward import walk_forward
from portfolio_pipeline.market.features import compute_market_features

SYMBOLS = ["BTCUSDT", "ETHUSDT", "LTCUSDT", "XMRUSDT"]
FAST = ForecastConfig(iterations=30, depth=4, calibration_days=60)
FIRST_TEST = date(2021, 1, 1)
LAST_TEST = date(2022, 6, 30)
RETRAIN_DAYS = 120


@pytest.fixture(scope="module")
def small_ohlcv(sample_ohlcv: pl.DataFrame) -> pl.DataFrame:
    """4 symbols (XMR delisted 2024-02-20), 2018-01-01 .. 2024-06-30."""
    return sample_ohlcv.filter(
        pl.col("symbol").is_in(SYMBOLS)
        & pl.col("date").is_between(date(2018, 1, 1), date(2024, 6, 30))
    )


@pytest.fixture(scope="module")
def small_features(small_ohlcv: pl.DataFrame) -> pl.DataFrame:
    return compute_market_features(small_ohlcv)


@pytest.fixture(scope="module")
def walk_forward_h8(small_features, small_ohlcv) -> tuple[pl.DataFrame, pl.DataFrame]:
    return walk_forward(
        small_features,
        small_ohlcv,
        8,
        config=FAST,
        first_test_start=FIRST_TEST,
        retrain_every_days=RETRAIN_DAYS,
        last_test_date=LAST_TEST,
    )


@pytest.fixture(scope="module")
def final_model_h8(small_features, small_ohlcv) -> ForecastModel:
    return fit_final_model(small_features, small_ohlcv, 8, config=FAST)


def _close(ohlcv: pl.DataFrame, symbol: str, day: date) -> float:
    return ohlcv.filter((pl.col("symbol") == symbol) & (pl.col("date") == day))["close"].item()


# ---------------------------------------------------------------------------- labels


def test_forward_log_return_and_realized_vol_match_hand_computation(sample_ohlcv):
    derived = ohlcv_derived_frame(sample_ohlcv, 8)
    row = derived.filter((pl.col("symbol") == "BTCUSDT") & (pl.col("date") == date(2024, 1, 1)))
    # BTCUSDT closes 2024-01-01 44,179.55 and 2024-01-09 46,110.00 (sample README).
    assert row["target_log_return"].item() == pytest.approx(math.log(46110.0 / 44179.55), abs=1e-12)
    closes = [
        _close(sample_ohlcv, "BTCUSDT", date(2024, 1, 1) + timedelta(days=k)) for k in range(9)
    ]
    daily = np.diff(np.log(closes))
    assert row["target_realized_vol"].item() == pytest.approx(
        math.sqrt(np.mean(daily**2) * 365), rel=1e-12
    )
    assert row["_label_end"].item() == date(2024, 1, 9)


def test_labels_are_null_where_the_future_is_unknown(sample_ohlcv):
    derived = ohlcv_derived_frame(sample_ohlcv, 8)
    xmr = derived.filter(pl.col("symbol") == "XMRUSDT").sort("date")
    # XMR's last close is 2024-02-20: the last 8 as_of dates have no label, the one before has.
    assert xmr.tail(8)["target_log_return"].null_count() == 8
    assert xmr.row(-9, named=True)["target_log_return"] is not None
    # A hole inside the window (2024-01-05 removed) voids the labels that span it.
    holed = sample_ohlcv.filter(
        ~((pl.col("symbol") == "BTCUSDT") & (pl.col("date") == date(2024, 1, 5)))
    )
    btc = ohlcv_derived_frame(holed, 8).filter(pl.col("symbol") == "BTCUSDT")
    spanning = btc.filter(pl.col("date").is_between(date(2023, 12, 28), date(2024, 1, 4)))
    assert spanning["target_log_return"].null_count() == spanning.height == 8


def test_bad_inputs_raise_errors_naming_the_rule_symbol_and_date(small_features, small_ohlcv):
    duplicated = pl.concat([small_features, small_features.head(1)])
    with pytest.raises(ForecastInputError, match="duplicate.*BTCUSDT 2018-01-01"):
        build_model_inputs(duplicated, small_ohlcv, 8)
    orphan = small_ohlcv.filter(
        ~((pl.col("symbol") == "ETHUSDT") & (pl.col("date") == date(2020, 5, 5)))
    )
    with pytest.raises(ForecastInputError, match="without an OHLCV close.*ETHUSDT 2020-05-05"):
        build_model_inputs(small_features, orphan, 8)
    with pytest.raises(ValueError, match="horizon"):
        build_model_inputs(small_features, small_ohlcv, 0)


def test_sentiment_is_joined_with_has_news_flag_and_zeros(small_features, small_ohlcv):
    sentiment = pl.DataFrame(
        {
            "symbol": ["BTCUSDT", "ETHUSDT"],
            "date": [date(2022, 1, 3), date(2022, 1, 3)],
            "sentiment": [0.4, -0.2],
            "news_count": [3, 0],
            "market_sentiment": [0.1, 0.1],
        }
    )
    inputs = build_model_inputs(small_features, small_ohlcv, 1, sentiment=sentiment)
    assert {"sentiment", "news_count", "market_sentiment", "has_news"} <= set(
        inputs.feature_columns
    )
    day = inputs.frame.filter(pl.col("date") == date(2022, 1, 3)).sort("symbol")
    assert day["has_news"].to_list() == [1, 0, 0, 0]  # BTC, ETH (0 articles), LTC, XMR
    assert day["sentiment"].to_list() == [0.4, -0.2, 0.0, 0.0]
    assert day["market_sentiment"].to_list() == [0.1] * 4  # per date, for every symbol
    other_day = inputs.frame.filter(pl.col("date") == date(2022, 1, 4))
    assert other_day["has_news"].sum() == 0 and other_day["sentiment"].abs().sum() == 0.0


# ---------------------------------------------------------------------- walk-forward


def test_every_fold_respects_the_purge_and_tests_out_of_sample(
    walk_forward_h8, small_features, small_ohlcv
):
    backtest, folds = walk_forward_h8
    assert folds.height == 5  # 2021-01-01 .. 2022-06-30 in 120-day windows
    inputs = build_model_inputs(small_features, small_ohlcv, 8, config=FAST)
    for fold in folds.iter_rows(named=True):
        assert fold["train_end"] + timedelta(days=8) <= fold["test_start"]
        assert fold["train_start"] <= fold["train_end"] < fold["test_start"] <= fold["test_end"]
        used = training_rows(inputs, RETURN_KIND, fold["test_start"])
        assert used["_label_end"].max() <= fold["test_start"]
        assert used["date"].max() == fold["train_end"]
        tested = backtest.filter(pl.col("fold") == fold["fold"])
        assert tested.height == fold["n_test_rows"] > 0
        assert tested["as_of"].min() >= fold["test_start"]
        assert tested["as_of"].max() <= fold["test_end"]
    starts, ends = folds["test_start"].to_list(), folds["test_end"].to_list()
    assert all(
        end + timedelta(days=1) == start for end, start in zip(ends, starts[1:], strict=False)
    )
    assert backtest["as_of"].min() == FIRST_TEST and backtest["as_of"].max() <= LAST_TEST
    assert backtest["realized"].null_count() == 0
    assert backtest.select("as_of", "symbol").is_duplicated().sum() == 0


def test_changing_data_after_a_fold_cutoff_leaves_that_fold_unchanged(walk_forward_h8, small_ohlcv):
    """THE embargo test: rewrite every price after a cutoff inside fold 2's test window."""
    backtest, folds = walk_forward_h8
    fold = folds.filter(pl.col("fold") == 2).row(0, named=True)
    cutoff = fold["test_start"] + timedelta(days=30)
    rng = np.random.default_rng(0)
    shock = pl.Series(np.exp(rng.normal(0.0, 0.2, small_ohlcv.height)))
    after = pl.col("date") > cutoff
    prices = ("open", "high", "low", "close")
    changed = small_ohlcv.with_columns(
        [pl.when(after).then(pl.col(c) * shock).otherwise(pl.col(c)).alias(c) for c in prices]
    ).with_columns(
        pl.max_horizontal(*prices).alias("high"),
        pl.min_horizontal(*prices).alias("low"),
        pl.when(after).then(pl.col("volume") * 3.0).otherwise(pl.col("volume")).alias("volume"),
    )
    changed_features = compute_market_features(changed)

    # The training set of the fold (inputs and labels) is unchanged, row for row ...
    original_rows = training_rows(
        build_model_inputs(compute_market_features(small_ohlcv), small_ohlcv, 8, config=FAST),
        RETURN_KIND,
        fold["test_start"],
    )
    changed_rows = training_rows(
        build_model_inputs(changed_features, changed, 8, config=FAST),
        RETURN_KIND,
        fold["test_start"],
    )
    assert original_rows.equals(changed_rows)

    # ... and so are its model (same version) and every forecast made up to the cutoff.
    backtest_b, folds_b = walk_forward(
        changed_features,
        changed,
        8,
        config=FAST,
        first_test_start=FIRST_TEST,
        retrain_every_days=RETRAIN_DAYS,
        last_test_date=LAST_TEST,
    )
    early = [c for c in folds.columns if c != "n_test_rows"]
    up_to_fold = pl.col("fold") <= fold["fold"]
    assert folds.filter(up_to_fold).select(early).equals(folds_b.filter(up_to_fold).select(early))
    quantiles = ["as_of", "symbol", "fold", "q10", "q50", "q90"]
    known = pl.col("as_of") <= cutoff
    assert (
        backtest.filter(known).select(quantiles).equals(backtest_b.filter(known).select(quantiles))
    )
    # The perturbation is real: later folds and forecasts after the cutoff do change.
    assert not backtest.filter(~known)["q50"].equals(backtest_b.filter(~known)["q50"])
    assert folds["model_version"][-1] != folds_b["model_version"][-1]


def test_quantiles_never_cross(walk_forward_h8, final_model_h8, small_features, small_ohlcv):
    backtest, folds = walk_forward_h8
    assert (backtest["q10"] <= backtest["q50"]).all() and (backtest["q50"] <= backtest["q90"]).all()
    assert folds["n_quantiles_reordered"].sum() == backtest["quantiles_reordered"].sum()
    # The guard itself: a model whose raw outputs cross gets sorted rows and a flag.
    crossing = SimpleNamespace(predict=lambda frame: np.array([[0.3, 0.1, 0.2], [-0.1, 0.0, 0.1]]))
    guarded = ForecastModel(
        **{
            **final_model_h8.__dict__,
            "booster": crossing,
            "config": ForecastConfig(target_scaling=False),
            "extra": {},
        }
    )
    rows = build_model_inputs(small_features, small_ohlcv, 8).frame.head(2)
    quantiles, reordered = predict_quantiles(guarded, rows)
    assert quantiles.tolist() == [[0.1, 0.2, 0.3], [-0.1, 0.0, 0.1]]
    assert reordered.tolist() == [True, False]


def test_same_inputs_and_seed_give_identical_forecasts(final_model_h8, small_features, small_ohlcv):
    again = fit_final_model(small_features, small_ohlcv, 8, config=FAST)
    as_of = date(2024, 6, 30)
    first = predict_latest(final_model_h8, small_features, small_ohlcv, as_of)
    second = predict_latest(again, small_features, small_ohlcv, as_of)
    assert first.equals(second)
    assert again.model_version == final_model_h8.model_version
    other_seed = fit_final_model(
        small_features, small_ohlcv, 8, config=ForecastConfig(**{**FAST.__dict__, "random_seed": 7})
    )
    assert other_seed.model_version != final_model_h8.model_version


def test_predict_latest_covers_trading_symbols_only(final_model_h8, small_features, small_ohlcv):
    assert final_model_h8.train_end == date(2024, 6, 22)  # last as_of whose 8-day label is known
    latest = predict_latest(final_model_h8, small_features, small_ohlcv, date(2024, 6, 30))
    assert latest["symbol"].to_list() == ["BTCUSDT", "ETHUSDT", "LTCUSDT"]  # XMR delisted
    assert latest.columns[:7] == [
        "as_of",
        "symbol",
        "horizon_days",
        "q10",
        "q50",
        "q90",
        "model_version",
    ]
    assert (latest["horizon_days"] == 8).all()
    assert (latest["model_version"] == final_model_h8.model_version).all()
    before_delisting = predict_latest(
        final_model_h8, small_features, small_ohlcv, date(2024, 2, 20)
    )
    assert "XMRUSDT" in before_delisting["symbol"].to_list()
    with pytest.raises(ForecastInputError, match="no feature rows at as_of 2030-01-01"):
        predict_latest(final_model_h8, small_features, small_ohlcv, date(2030, 1, 1))


def test_volatility_forecast_is_positive_and_versioned(small_features, small_ohlcv):
    model = fit_volatility_model(small_features, small_ohlcv, 8, config=FAST)
    forecast = predict_volatility(model, small_features, small_ohlcv, date(2024, 6, 30))
    assert forecast.columns[:4] == ["as_of", "symbol", "horizon_days", "vol_forecast"]
    assert forecast["symbol"].to_list() == ["BTCUSDT", "ETHUSDT", "LTCUSDT"]
    assert (forecast["vol_forecast"] > 0.05).all() and (forecast["vol_forecast"] < 5.0).all()
    assert model.model_version not in (None, "") and model.kind == "volatility"


def test_save_load_registry_importance_and_plot(
    final_model_h8, walk_forward_h8, small_features, small_ohlcv, tmp_path
):
    artifact = save_model(final_model_h8, tmp_path / "models")
    assert artifact.suffix == ".cbm" and artifact.with_suffix(".json").exists()
    loaded = load_model(artifact)
    as_of = date(2024, 6, 30)
    assert predict_latest(loaded, small_features, small_ohlcv, as_of).equals(
        predict_latest(final_model_h8, small_features, small_ohlcv, as_of)
    )
    row = registry_row(final_model_h8, artifact, metrics={"coverage_q10_q90": 0.8})
    assert row["model_version"] == final_model_h8.model_version
    assert row["kind"] == "return_quantiles_h8"
    params = json.loads(row["params"])
    assert params["loss_function"] == "MultiQuantile:alpha=0.1,0.5,0.9"
    assert params["random_seed"] == FAST.random_seed and "conformal_delta" in params
    assert json.loads(row["metrics"]) == {"coverage_q10_q90": 0.8}
    assert row["train_end"] == date(2024, 6, 22) and row["artifact_path"] == str(artifact)

    importance = feature_importance(final_model_h8)
    assert importance["feature"].sort().to_list() == sorted(final_model_h8.feature_columns)
    assert importance["importance"].sum() == pytest.approx(100.0)
    png = plot_interval(walk_forward_h8[0], symbol="BTCUSDT")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


# ------------------------------------------------------------------------ evaluation


def test_evaluation_metrics_match_hand_computation():
    days = [date(2024, 1, d) for d in range(1, 6)]
    symbols = ["AAA", "BBB", "CCC"]
    rng = np.random.default_rng(3)
    closes = {s: 100.0 * np.exp(np.cumsum(rng.normal(0, 0.05, len(days)))) for s in symbols}
    ohlcv = pl.DataFrame(
        {
            "symbol": [s for s in symbols for _ in days],
            "date": days * len(symbols),
            "close": np.concatenate([closes[s] for s in symbols]),
        }
    )
    records = []
    for s in symbols:
        for i in range(len(days) - 1):  # H = 1: realized = log(close[d+1] / close[d])
            realized = math.log(closes[s][i + 1] / closes[s][i])
            q50 = float(rng.normal(0, 0.03))
            records.append((days[i], s, q50 - 0.04, q50, q50 + 0.04, realized))
    records[0] = (*records[0][:5], 0.0)  # a zero realized return: excluded from direction
    backtest = pl.DataFrame(
        records, schema=["as_of", "symbol", "q10", "q50", "q90", "realized"], orient="row"
    )
    backtest = backtest.with_columns(horizon_days=pl.lit(1, pl.Int32), fold=pl.lit(0, pl.Int32))
    # The zeroed realized return must match a real price for MAPE: set close[d+1] = close[d].
    ohlcv = ohlcv.with_columns(
        pl.when((pl.col("symbol") == "AAA") & (pl.col("date") == days[1]))
        .then(float(closes["AAA"][0]))
        .otherwise(pl.col("close"))
        .alias("close")
    )

    evaluation = evaluate_forecasts(backtest, ohlcv)
    overall = evaluation.filter(pl.col("symbol") == "ALL").row(0, named=True)
    close_now, price_actual = [], []
    for row in backtest.iter_rows(named=True):
        close_now.append(_close(ohlcv, row["symbol"], row["as_of"]))
        price_actual.append(_close(ohlcv, row["symbol"], row["as_of"] + timedelta(days=1)))
    close_now, price_actual = np.array(close_now), np.array(price_actual)
    q10, q50, q90, y = (backtest[c].to_numpy() for c in ("q10", "q50", "q90", "realized"))
    mape_model = 100 * np.mean(np.abs(close_now * np.exp(q50) - price_actual) / price_actual)
    mape_naive = 100 * np.mean(np.abs(close_now - price_actual) / price_actual)
    assert overall["mape_model"] == pytest.approx(mape_model, rel=1e-12)
    assert overall["mape_naive"] == pytest.approx(mape_naive, rel=1e-12)
    assert overall["mape_improvement_pct"] == pytest.approx(
        100 * (mape_naive - mape_model) / mape_naive
    )
    nonzero = y != 0
    assert nonzero.sum() == len(y) - 1
    assert overall["directional_accuracy"] == pytest.approx(
        np.mean(np.sign(q50[nonzero]) == np.sign(y[nonzero]))
    )
    assert overall["coverage_q10_q90"] == pytest.approx(np.mean((y >= q10) & (y <= q90)))
    pinball = np.mean(
        [
            np.maximum(q * (y - f), (q - 1) * (y - f))
            for q, f in ((0.1, q10), (0.5, q50), (0.9, q90))
        ]
    )
    assert overall["pinball_loss"] == pytest.approx(pinball)
    assert overall["n"] == backtest.height

    daily = [
        spearmanr(group["q50"].to_numpy(), group["realized"].to_numpy())[0]
        for (_,), group in backtest.group_by("as_of")
    ]
    assert overall["rank_ic"] == pytest.approx(np.mean(daily))
    assert overall["rank_ic_ir"] == pytest.approx(np.mean(daily) / np.std(daily, ddof=1))
    assert daily_rank_ic(backtest).height == len(days) - 1

    aaa = evaluation.filter(pl.col("symbol") == "AAA").row(0, named=True)
    assert aaa["n"] == len(days) - 1 and aaa["rank_ic"] is None
    assert aaa["ts_rank_corr"] == pytest.approx(spearmanr(q50[:4], y[:4])[0])


# ------------------------------------------------------------------- symbol encoding


def test_symbol_encoding_none_drops_the_identity_and_still_forecasts(small_features, small_ohlcv):
    config = ForecastConfig(**{**FAST.__dict__, "symbol_encoding": "none"})
    inputs = build_model_inputs(small_features, small_ohlcv, 8, config=config)
    assert "symbol" not in inputs.feature_columns
    model = fit_final_model(small_features, small_ohlcv, 8, config=config)
    assert model.booster.get_cat_feature_indices() == []
    latest = predict_latest(model, small_features, small_ohlcv, date(2024, 6, 30))
    assert latest["symbol"].to_list() == ["BTCUSDT", "ETHUSDT", "LTCUSDT"]
    assert (latest["q10"] <= latest["q50"]).all() and (latest["q50"] <= latest["q90"]).all()
    # Without the identity, two symbols with the same inputs get the same scaled forecast:
    # the model is one function of the inputs, whatever the size of the universe.
    rows = inputs.frame.filter(pl.col("date") == date(2024, 6, 30)).head(1)
    twin = rows.with_columns(pl.lit("LTCUSDT").alias("symbol"))
    first, _ = predict_quantiles(model, rows)
    second, _ = predict_quantiles(model, twin)
    assert np.array_equal(first, second)


@pytest.mark.parametrize("encoding", ["one_hot", "target_stats"])
def test_symbol_encodings_keep_the_symbol_as_a_categorical(encoding, small_features, small_ohlcv):
    config = ForecastConfig(**{**FAST.__dict__, "symbol_encoding": encoding})
    model = fit_final_model(small_features, small_ohlcv, 8, config=config)
    assert model.feature_columns[0] == "symbol"
    assert model.booster.get_cat_feature_indices() == [0]
    assert model.booster.get_params()["one_hot_max_size"] == (255 if encoding == "one_hot" else 1)
    assert model.params["symbol_encoding"] == encoding


def test_unknown_symbol_encoding_is_refused():
    with pytest.raises(ValueError, match="symbol_encoding must be one of"):
        ForecastConfig(symbol_encoding="hash")


# -------------------------------------------------------------------- early stopping


def test_early_stopping_chooses_the_tree_count_inside_the_training_window(
    small_features, small_ohlcv
):
    config = ForecastConfig(
        **{
            **FAST.__dict__,
            "iterations": 120,
            "early_stopping_days": 90,
            "early_stopping_refit": True,
        }
    )
    inputs = build_model_inputs(small_features, small_ohlcv, 8, config=config)
    cutoff = date(2022, 1, 1)
    model = fit_model(inputs, RETURN_KIND, label_known_by=cutoff)
    assert 1 <= model.extra["iterations"] <= 120
    assert model.booster.tree_count_ == model.extra["iterations"]
    # Nothing after the cutoff reaches the choice: rewrite every later price, same model.
    later = pl.col("date") > cutoff
    changed = small_ohlcv.with_columns(
        [
            pl.when(later).then(pl.col(c) * 1.7).otherwise(pl.col(c))
            for c in ("open", "high", "low", "close")
        ]
    )
    again = fit_model(
        build_model_inputs(compute_market_features(changed), changed, 8, config=config),
        RETURN_KIND,
        label_known_by=cutoff,
    )
    assert again.extra == model.extra and again.model_version == model.model_version
    # Without the refit (the default) the early-stopped model itself is kept: same tree count.
    no_refit = ForecastConfig(**{**config.__dict__, "early_stopping_refit": False})
    kept = fit_model(
        build_model_inputs(small_features, small_ohlcv, 8, config=no_refit), RETURN_KIND, cutoff
    )
    assert kept.extra["iterations"] == model.extra["iterations"] == kept.booster.tree_count_
    assert kept.model_version != model.model_version
    # Off: exactly ``iterations`` trees.
    off = ForecastConfig(**{**FAST.__dict__, "early_stopping_days": 0})
    plain = fit_model(
        build_model_inputs(small_features, small_ohlcv, 8, config=off), RETURN_KIND, cutoff
    )
    assert plain.extra["iterations"] == FAST.iterations == plain.booster.tree_count_


def test_early_stopping_parameters_are_checked():
    with pytest.raises(ValueError, match="early_stopping_days must be >= 0"):
        ForecastConfig(early_stopping_days=-1)


# ------------------------------------------------------------- rolling training window


def test_rolling_window_keeps_the_last_days_before_the_cutoff_and_the_purge(
    small_features, small_ohlcv
):
    config = ForecastConfig(**{**FAST.__dict__, "train_window_days": 365})
    inputs = build_model_inputs(small_features, small_ohlcv, 8, config=config)
    cutoff = date(2022, 1, 1)
    rows = training_rows(inputs, RETURN_KIND, cutoff)
    expanding = training_rows(
        build_model_inputs(small_features, small_ohlcv, 8, config=FAST), RETURN_KIND, cutoff
    )
    last = expanding["date"].max()
    assert rows["date"].max() == last and (rows["_label_end"] <= cutoff).all()
    assert rows["date"].min() == last - timedelta(days=364)
    assert rows.height == expanding.filter(pl.col("date") > last - timedelta(days=365)).height
    model = fit_model(inputs, RETURN_KIND, label_known_by=cutoff)
    assert model.train_start == last - timedelta(days=364) and model.train_end == last
    # The cost of a fit no longer depends on how much history precedes the window.
    later = fit_model(inputs, RETURN_KIND, label_known_by=date(2023, 1, 1))
    assert abs(later.n_train_rows - model.n_train_rows) <= 8 * len(SYMBOLS)
    with pytest.raises(ValueError, match="train_window_days must be 0 .* longer than calibration"):
        ForecastConfig(train_window_days=60, calibration_days=120)


def test_all_horizons_in_one_batch_equal_one_walk_forward_per_horizon(small_features, small_ohlcv):
    from portfolio_pipeline.forecasting.walkforward import walk_forward_horizons

    window = dict(
        config=FAST,
        first_test_start=date(2022, 1, 1),
        retrain_every_days=180,
        last_test_date=LAST_TEST,
    )
    both = walk_forward_horizons(small_features, small_ohlcv, [1, 8], **window)
    one = [walk_forward(small_features, small_ohlcv, h, **window) for h in (1, 8)]
    assert both[0].equals(pl.concat([one[0][0], one[1][0]]))
    assert both[1].equals(pl.concat([one[0][1], one[1][1]]))
    assert sorted(both[1]["horizon_days"].unique().to_list()) == [1, 8]


def test_row_cap_thins_fit_rows_uniformly_and_point_in_time(small_features, small_ohlcv):
    from portfolio_pipeline.forecasting.inputs import _row_uniforms, thin_rows

    config = ForecastConfig(**{**FAST.__dict__, "max_fit_rows": 2000})
    inputs = build_model_inputs(small_features, small_ohlcv, 8, config=config)
    cutoff = date(2022, 1, 1)
    rows = training_rows(inputs, RETURN_KIND, cutoff)
    kept = thin_rows(rows, 2000, 42)
    assert abs(kept.height - 2000) < 150 and thin_rows(rows, 2000, 42).equals(kept)
    # Uniform over time: each year keeps about its share of the rows.
    share = (
        kept.group_by(pl.col("date").dt.year())
        .len()
        .join(rows.group_by(pl.col("date").dt.year()).len(), on="date")
    )
    assert ((share["len"] / share["len_right"] - 2000 / rows.height).abs() < 0.08).all()
    # A row's draw depends on (symbol, date, seed) alone, not on the rest of the frame (so
    # not on later data), and a lower cap keeps a subset of what a higher one keeps.
    early = rows.filter(pl.col("date") < date(2021, 1, 1))
    np.testing.assert_array_equal(_row_uniforms(early, 42), _row_uniforms(rows, 42)[: early.height])
    assert thin_rows(rows, 1000, 42).join(kept, on=["symbol", "date"], how="anti").height == 0
    model = fit_model(inputs, RETURN_KIND, label_known_by=cutoff)
    assert model.extra["n_fit_rows"] < 2150 and model.n_train_rows == rows.height
    assert (
        model.extra["n_calibration_rows"]
        == rows.filter(
            pl.col("date") > rows["date"].max() - timedelta(days=FAST.calibration_days)
        ).height
    )
    with pytest.raises(ValueError, match="max_fit_rows must be 0"):
        ForecastConfig(max_fit_rows=10)
