"""The CatBoost volatility model: annualised realized-volatility forecasts over the next H bars.

Pure (no dagster). Same inputs and fitting as the return model
(:mod:`portfolio_pipeline.forecasting.model`, ``kind=VOLATILITY_KIND``); it learns the ratio of
future realized variance to the trailing variance, scaled back here.
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl

from portfolio_pipeline.forecasting.config import (
    VOLATILITY_KIND,
    ForecastConfig,
)
from portfolio_pipeline.forecasting.model import (
    ForecastModel,
    catboost_frame,
    design_rows_at,
    fit_final_model,
)


def predict_volatility_values(model: ForecastModel, rows: pl.DataFrame) -> np.ndarray:
    """Annualised volatility forecasts over the next H days, shape (n_rows,)."""
    if model.kind != VOLATILITY_KIND:
        raise ValueError(f"needs a {VOLATILITY_KIND} model, got {model.kind}")
    ratio = np.asarray(
        model.booster.predict(catboost_frame(rows, model.feature_columns)), dtype=float
    )
    ratio = np.clip(ratio.reshape(rows.height), 0.0, None)
    return rows["_scale"].to_numpy() * np.sqrt(ratio * model.config.periods_per_year)


def fit_volatility_model(
    features: pl.DataFrame,
    ohlcv: pl.DataFrame,
    horizon: int,
    *,
    sentiment: pl.DataFrame | None = None,
    config: ForecastConfig | None = None,
) -> ForecastModel:
    """Volatility model on every labelled row (same inputs as the return model)."""
    return fit_final_model(
        features, ohlcv, horizon, sentiment=sentiment, config=config, kind=VOLATILITY_KIND
    )


def predict_volatility(
    model: ForecastModel,
    features: pl.DataFrame,
    ohlcv: pl.DataFrame,
    as_of: date,
    *,
    sentiment: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Annualised volatility forecasts over the next H days at ``as_of``.

    Returns
    -------
    polars.DataFrame
        as_of, symbol, horizon_days, vol_forecast, trailing_vol (annualised, for context),
        model_version.
    """
    rows = design_rows_at(model, features, ohlcv, as_of, sentiment)
    return pl.DataFrame(
        {
            "as_of": rows["date"],
            "symbol": rows["symbol"],
            "horizon_days": pl.Series([model.horizon_days] * rows.height, dtype=pl.Int32),
            "vol_forecast": predict_volatility_values(model, rows),
            "trailing_vol": rows["_scale"].to_numpy() * math.sqrt(model.config.periods_per_year),
            "model_version": [model.model_version] * rows.height,
        }
    )
