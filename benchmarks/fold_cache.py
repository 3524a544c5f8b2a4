"""The walk-forward fold cache on the shipped sample: cold, one new day, and warm.

The nightly ``forecast_walk_forward`` (both horizons, point-in-time rows included, default
ForecastConfig, first test fold 2020-01-01, refit every 180 days) three times on one cache
directory: cold on the sample without its last day, then with the last day appended (the
nightly case: only the folds that see the new day are refitted), then again unchanged
(every fold read back). Each figure comes with the number of folds fitted.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import polars as pl

from benchmarks._common import emit
from portfolio_pipeline.forecasting import walkforward
from portfolio_pipeline.forecasting.config import DEFAULT_HORIZONS
from portfolio_pipeline.market.features import compute_market_features

NAME = "fold_cache"
SAMPLE_PATH = Path(__file__).resolve().parents[1] / "data" / "crypto_ohlcv_daily.parquet"


def main() -> None:
    ohlcv = pl.read_parquet(SAMPLE_PATH)
    last_day = ohlcv["date"].max()
    history = ohlcv.filter(pl.col("date") < last_day)
    inputs = {
        "history": (compute_market_features(history), history),
        "appended": (compute_market_features(ohlcv), ohlcv),
    }
    fitted: list[int] = []
    real = walkforward.fit_models

    def counting(inputs_by_horizon, tasks, backend=None):
        fitted.append(len(tasks))
        return real(inputs_by_horizon, tasks, backend)

    walkforward.fit_models = counting  # counts the folds each run fits
    with tempfile.TemporaryDirectory() as cache_dir:
        for metric, data in (
            ("cold", "history"),
            ("one_new_day", "appended"),
            ("warm", "appended"),
        ):
            features, prices = inputs[data]
            fitted.clear()
            start = time.perf_counter()
            _, folds = walkforward.walk_forward_horizons(
                features, prices, DEFAULT_HORIZONS, include_unlabelled=True,
                fold_cache_dir=cache_dir,
            )  # fmt: skip
            emit(NAME, f"walk_forward_{metric}_seconds", round(time.perf_counter() - start, 2),
                 "s", folds=folds.height, folds_fitted=sum(fitted), last_day=str(prices["date"].max()),
                 horizons=list(DEFAULT_HORIZONS))  # fmt: skip


if __name__ == "__main__":
    main()
