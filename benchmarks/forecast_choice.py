"""Forecast settings compared on the VALIDATION window only (issue 15: cheaper, not worse).

Inputs: the shipped sample (21 symbols, 2017-08..2025-12) and its default windows
(:func:`portfolio_pipeline.market.windows.windows_from_dates`: validation = 2023, test =
2024-01..2025-12). For every candidate, the return walk-forward (H = 1 and 8) and the
volatility walk-forward (H = 8) forecast the validation window only: folds start on the
validation start, models are fitted on rows whose labels are known by each fold's start
(nothing of the test window is read by a fit; a label of a validation day may end up to H
days into the test window, as every walk-forward label does). The test window is never
evaluated here.

Figures per candidate and horizon (JSON lines, ``candidate`` = its name): the
``ml.forecast_evaluation`` metrics of ALL (pinball loss, rank IC, q10-q90 coverage, MAPE
improvement vs the naive price, directional accuracy), the volatility RMSE improvement vs
the trailing volatility, the CPU seconds of all fits, and the mean training rows per fit.

The rule a candidate must pass to become the default (fixed before the figures were seen):
on the validation window, for both horizons, pinball loss at most 0.5% above the current
default's, rank IC at most 0.01 below it, coverage in [0.75, 0.85], and volatility RMSE
improvement at most 1 point below it; among those that pass, the cheapest at 100 symbols.

Usage: ``python -m benchmarks.forecast_choice [--candidates NAME ...]``.
"""

from __future__ import annotations

import argparse
import resource
import sys
from dataclasses import replace
from pathlib import Path

import polars as pl

from benchmarks._common import emit
from portfolio_pipeline.forecasting.config import ForecastConfig
from portfolio_pipeline.forecasting.evaluation import (
    evaluate_forecasts,
    evaluate_volatility_forecasts,
)
from portfolio_pipeline.forecasting.walkforward import (
    walk_forward_horizons,
    walk_forward_volatility,
)
from portfolio_pipeline.market.features import compute_market_features
from portfolio_pipeline.market.windows import windows_from_dates

NAME = "forecast_choice"
SAMPLE_PATH = Path(__file__).resolve().parents[1] / "data" / "crypto_ohlcv_daily.parquet"
HORIZONS = (1, 8)
# name -> (ForecastConfig changes, retrain_every_days)
CANDIDATES: dict[str, tuple[dict, int]] = {
    "expanding_refit180": ({}, 180),  # the default before this comparison
    "rolling3y_refit180": ({"train_window_days": 3 * 365}, 180),
    "rolling2y_refit180": ({"train_window_days": 2 * 365}, 180),
    "rolling4y_refit180": ({"train_window_days": 4 * 365}, 180),
    "expanding_refit365": ({}, 365),
    "rolling3y_refit365": ({"train_window_days": 3 * 365}, 365),
    "expanding_depth4": ({"depth": 4}, 180),
    "expanding_100trees_lr01": ({"iterations": 100, "learning_rate": 0.1}, 180),
    # Second round (after the rolling windows lost on validation): keep the whole history,
    # thin the fit rows uniformly to a cap. ~50% and ~28% of the sample's mean fit rows; 28%
    # is what a 100k-row cap keeps of the last fold at 100 symbols x 10 years.
    "expanding_thin16k_refit180": ({"max_fit_rows": 16_000}, 180),
    "expanding_thin9k_refit180": ({"max_fit_rows": 9_000}, 180),
    "expanding_thin9k_refit365": ({"max_fit_rows": 9_000}, 365),
    "expanding_depth4_thin9k_refit180": ({"depth": 4, "max_fit_rows": 9_000}, 180),
}
METRICS = (
    "pinball_loss", "rank_ic", "coverage_q10_q90", "mape_improvement_pct", "directional_accuracy",
)  # fmt: skip


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def evaluate_candidate(name: str, ohlcv: pl.DataFrame, features: pl.DataFrame) -> None:
    changes, retrain = CANDIDATES[name]
    windows = windows_from_dates(ohlcv["date"].unique().to_list())
    config = replace(ForecastConfig(), **changes)
    window = dict(
        config=config,
        first_test_start=windows.validation_start,
        retrain_every_days=retrain,
        last_test_date=windows.validation_end,
    )
    started = _cpu()
    backtest, folds = walk_forward_horizons(features, ohlcv, HORIZONS, **window)
    vol_backtest, vol_folds = walk_forward_volatility(features, ohlcv, 8, **window)
    cpu = _cpu() - started
    n_fits = folds.height + vol_folds.height
    mean_rows = (folds["n_train_rows"].sum() + vol_folds["n_train_rows"].sum()) / n_fits
    common = dict(candidate=name, window=f"{windows.validation_start}..{windows.validation_end}")
    emit(NAME, "fit_cpu_seconds", round(cpu, 1), "s", fits=n_fits,
         mean_train_rows=int(mean_rows), **common)  # fmt: skip
    evaluation = evaluate_forecasts(backtest, ohlcv).filter(pl.col("symbol") == "ALL")
    for row in evaluation.sort("horizon_days").iter_rows(named=True):
        for metric in METRICS:
            emit(NAME, metric, round(float(row[metric]), 5), "", horizon_days=row["horizon_days"],
                 n=row["n"], **common)  # fmt: skip
    vol = evaluate_volatility_forecasts(vol_backtest).filter(pl.col("symbol") == "ALL")
    emit(NAME, "vol_rmse_improvement_pct", round(float(vol["rmse_improvement_pct"][0]), 3),
         "pct", horizon_days=8, **common)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", nargs="+", choices=sorted(CANDIDATES),
                        default=list(CANDIDATES))  # fmt: skip
    args = parser.parse_args(argv)
    ohlcv = pl.read_parquet(SAMPLE_PATH)
    features = compute_market_features(ohlcv)
    for name in args.candidates:
        evaluate_candidate(name, ohlcv, features)
    return 0


if __name__ == "__main__":
    sys.exit(main())
