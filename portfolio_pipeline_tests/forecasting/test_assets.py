from datetime import date

import dagster as dg
import polars as pl

from portfolio_pipeline import warehouse
from portfolio_pipeline.definitions import build_definitions
from portfolio_pipeline.market.features import compute_market_features
from portfolio_pipeline_tests.helpers import settings_for_tests

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "MATICUSDT"]
FAST = {"horizons": [1, 8], "first_test_start": "2024-01-01", "retrain_every_days": 240,
        "iterations": 30, "depth": 4}  # fmt: skip


def test_forecasting_assets_write_tables_and_registry(tmp_path, sample_ohlcv):
    path = tmp_path / "warehouse.duckdb"
    ohlcv = sample_ohlcv.filter(
        pl.col("symbol").is_in(SYMBOLS) & (pl.col("date") >= date(2021, 1, 1))
    )
    with warehouse.connection(path) as con:
        warehouse.replace_table(con, "market.raw_ohlcv", ohlcv)
        warehouse.replace_table(con, "features.market_features", compute_market_features(ohlcv))
    defs = build_definitions(settings_for_tests(path, home=tmp_path))  # models under tmp_path
    keys = ["forecast_backtest", "forecast_folds", "forecast_evaluation", "return_forecasts"]
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=[dg.AssetKey(k) for k in keys],
        instance=dg.DagsterInstance.ephemeral(),
        run_config={
            "ops": {"forecast_walk_forward": {"config": FAST}, "return_forecasts": {"config": FAST}}
        },
    )
    assert result.success
    with warehouse.connection(path, read_only=True) as con:
        evaluation = con.execute("select * from ml.forecast_evaluation").pl()
        folds = con.execute("select * from ml.forecast_folds").pl()
        latest = con.execute("select * from ml.return_forecasts").pl()
        registry = con.execute("select * from ml.model_registry").pl()
    assert set(evaluation["symbol"]) >= {"ALL", "BTCUSDT"}
    assert set(evaluation["horizon_days"]) == {1, 8}
    # purge: a training label (it ends H bars after train_end) never reaches into its test
    # window; on a 7-day calendar H bars are H days
    assert folds.filter(pl.col("train_label_end") > pl.col("test_start")).is_empty()
    assert folds.filter(
        pl.col("train_end") + pl.duration(days=pl.col("horizon_days")) != pl.col("train_label_end")
    ).is_empty()
    assert latest["as_of"].unique().to_list() == [date(2025, 12, 31)]
    assert "MATICUSDT" not in latest["symbol"].to_list()  # delisted in 2024
    assert (latest["q10"] <= latest["q50"]).all() and (latest["q50"] <= latest["q90"]).all()
    assert registry.height == 2
    for artifact in registry["artifact_path"]:
        assert (tmp_path / "data" / "models").as_posix() in artifact
    # the walk-forward kept one fold-cache entry per (horizon, fold) under the models dir,
    # so the next run reads back the folds whose inputs are unchanged
    cache = tmp_path / "data" / "models" / "fold_cache"
    assert len(list(cache.glob("*.parquet"))) == len(list(cache.glob("*.json"))) == folds.height
