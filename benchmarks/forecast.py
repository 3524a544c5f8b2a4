"""CatBoost forecasts on the shipped sample: walk-forward time and out-of-sample accuracy.

Inputs: ``compute_market_features`` of the whole sample (21 symbols, 2017-08..2025-12).
Default settings (ForecastConfig(), first test fold 2020-01-01, refit every 180 days).
Figures: wall time of the walk-forward per horizon and for both, the final fit, the
volatility walk-forward (H=8), and the out-of-sample metrics of ``evaluate_forecasts`` for
BTCUSDT and ALL. Nothing here is tuned on the test windows.
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl

from benchmarks._common import emit, peak_rss_mb
from portfolio_pipeline.forecasting.config import DEFAULT_HORIZONS
from portfolio_pipeline.forecasting.evaluation import (
    evaluate_forecasts,
    evaluate_volatility_forecasts,
)
from portfolio_pipeline.forecasting.model import fit_final_model
from portfolio_pipeline.forecasting.walkforward import walk_forward, walk_forward_volatility
from portfolio_pipeline.market.features import compute_market_features

NAME = "forecast"
SAMPLE_PATH = Path(__file__).resolve().parents[1] / "data" / "crypto_ohlcv_daily.parquet"
REPORTED = {
    "mape_improvement_pct": "pct",
    "mape_model": "pct",
    "mape_naive": "pct",
    "directional_accuracy": "fraction",
    "rank_ic": "spearman",
    "rank_ic_ir": "ratio",
    "coverage_q10_q90": "fraction",
    "pinball_loss": "log_return",
}


def main() -> None:
    ohlcv = pl.read_parquet(SAMPLE_PATH)
    features = compute_market_features(ohlcv)
    total = 0.0
    evaluations = []
    for horizon in DEFAULT_HORIZONS:
        start = time.perf_counter()
        backtest, folds = walk_forward(features, ohlcv, horizon)
        seconds = time.perf_counter() - start
        total += seconds
        emit(NAME, f"walk_forward_h{horizon}_seconds", round(seconds, 2), "s",
             folds=folds.height, rows=backtest.height,
             quantiles_reordered=int(folds["n_quantiles_reordered"].sum()))  # fmt: skip
        evaluations.append(evaluate_forecasts(backtest, ohlcv))
    emit(NAME, "walk_forward_both_horizons_seconds", round(total, 2), "s",
         horizons=list(DEFAULT_HORIZONS))  # fmt: skip

    evaluation = pl.concat(evaluations).filter(pl.col("symbol").is_in(["ALL", "BTCUSDT"]))
    for row in evaluation.iter_rows(named=True):
        for metric, unit in REPORTED.items():
            if row[metric] is not None:
                emit(NAME, f"{metric}_h{row['horizon_days']}_{row['symbol']}",
                     round(float(row[metric]), 5), unit, n=row["n"],
                     eval_start=str(row["eval_start"]), eval_end=str(row["eval_end"]))  # fmt: skip

    start = time.perf_counter()
    model = fit_final_model(features, ohlcv, max(DEFAULT_HORIZONS))
    emit(NAME, f"fit_final_model_h{model.horizon_days}_seconds",
         round(time.perf_counter() - start, 2), "s", rows=model.n_train_rows)  # fmt: skip

    start = time.perf_counter()
    vol_backtest, _ = walk_forward_volatility(features, ohlcv, 8)
    emit(NAME, "walk_forward_volatility_h8_seconds", round(time.perf_counter() - start, 2), "s")
    for row in (
        evaluate_volatility_forecasts(vol_backtest)
        .filter(pl.col("symbol").is_in(["ALL", "BTCUSDT"]))
        .iter_rows(named=True)
    ):
        emit(NAME, f"vol_rmse_improvement_pct_h8_{row['symbol']}",
             round(row["rmse_improvement_pct"], 3), "pct", rmse_model=round(row["rmse_model"], 4),
             rmse_naive=round(row["rmse_naive"], 4), n=row["n"])  # fmt: skip
    emit(NAME, "peak_rss", round(peak_rss_mb(), 1), "MiB")


if __name__ == "__main__":
    main()
