"""The CatBoost quantile return model: fitting (one global model per horizon), conformal
calibration, prediction, versioning, and batches of fits in this process or as Ray tasks.

Pure (no dagster); CatBoost is imported inside the functions that use it. The inputs and
labels are built by :mod:`portfolio_pipeline.forecasting.inputs`; the volatility model's
predictions live in :mod:`portfolio_pipeline.forecasting.volatility`, persistence and the
registry in :mod:`portfolio_pipeline.forecasting.registry`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any, cast

import numpy as np
import polars as pl

from portfolio_pipeline.forecasting.config import (
    CODE_VERSION,
    QUANTILES,
    RETURN_KIND,
    TARGET_RETURN,
    TARGET_VOLATILITY,
    VOLATILITY_KIND,
    ForecastConfig,
    ForecastInputError,
)
from portfolio_pipeline.forecasting.inputs import (
    ModelInputs,
    build_model_inputs,
    thin_rows,
    training_rows,
)


@dataclass(frozen=True)
class ForecastModel:
    """A fitted CatBoost model and the metadata needed to use, version and register it."""

    booster: Any  # catboost.CatBoostRegressor
    kind: str
    horizon_days: int
    feature_columns: tuple[str, ...]
    config: ForecastConfig
    train_start: date
    train_end: date
    n_train_rows: int
    data_fingerprint: str
    model_version: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        """Everything that determines the model besides the data (JSON-serialisable)."""
        return {
            "kind": self.kind,
            "horizon_days": self.horizon_days,
            "loss_function": _loss_function(self.kind),
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.config).items()},
        }


def _loss_function(kind: str) -> str:
    if kind == RETURN_KIND:
        return "MultiQuantile:alpha=" + ",".join(str(q) for q in QUANTILES)
    if kind == VOLATILITY_KIND:
        return "RMSE"
    raise ValueError(f"unknown model kind {kind!r}")


def _categorical_columns(feature_columns: Sequence[str]) -> list[str]:
    return ["symbol"] if "symbol" in feature_columns else []


def catboost_frame(frame: pl.DataFrame, feature_columns: Sequence[str]):
    """CatBoost wants pandas with the categorical ``symbol`` (if used) as str, floats elsewhere."""
    return frame.select(
        *[pl.col(c).cast(pl.String) if c == "symbol" else pl.col(c) for c in feature_columns]
    ).to_pandas()


def _fingerprint(frame: pl.DataFrame, columns: Sequence[str]) -> str:
    """sha256 of the exact training rows (dates, symbols, inputs, target), hex."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(frame["symbol"].to_list()).encode())
    digest.update(frame["date"].cast(pl.Int32).to_numpy().tobytes())
    numeric = [c for c in columns if c != "symbol"]
    values = np.ascontiguousarray(frame.select(numeric).to_numpy().astype(np.float64))
    digest.update(values.tobytes())
    return digest.hexdigest()


def model_version_for(
    kind: str,
    horizon: int,
    config: ForecastConfig,
    feature_columns: Sequence[str],
    train_start: date,
    train_end: date,
    data_fingerprint: str,
) -> str:
    """Short sha256 of the code version, kind, horizon, parameters, features and data window."""
    payload = {
        "code_version": CODE_VERSION,
        "kind": kind,
        "horizon_days": horizon,
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "feature_columns": list(feature_columns),
        "train_start": train_start.isoformat(),
        "train_end": train_end.isoformat(),
        "data": data_fingerprint,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _scaled_target(
    rows: pl.DataFrame, kind: str, horizon: int, config: ForecastConfig
) -> np.ndarray:
    if kind == RETURN_KIND:
        y = rows[TARGET_RETURN].to_numpy()
        if config.target_scaling:
            y = y / (rows["_scale"].to_numpy() * math.sqrt(horizon))
        return y
    # Volatility: learn the ratio of future realized variance to the trailing variance
    # (RMSE on variance is unbiased for E[variance]); winsorise the training target at its
    # 99.5% quantile so listing-day candles do not dominate the squared loss.
    ratio = (rows[TARGET_VOLATILITY].to_numpy() ** 2) / (
        (rows["_scale"].to_numpy() ** 2) * config.periods_per_year
    )
    return np.minimum(ratio, np.quantile(ratio, 0.995))


def fit_model(
    inputs: ModelInputs, kind: str = RETURN_KIND, label_known_by: date | None = None
) -> ForecastModel:
    """Fit one global CatBoost model on the rows whose label is known by ``label_known_by``.

    For the return model with ``config.calibration_days > 0``, the rows whose as_of lies in
    the last ``calibration_days`` of the labelled window are held out of the fit (rows whose
    label would overlap them are purged) and give the conformal band adjustment.

    Raises
    ------
    ForecastInputError
        When no row qualifies (names the horizon and cutoff).
    """
    rows = training_rows(inputs, kind, label_known_by)
    horizon, config = inputs.horizon_days, inputs.config
    if rows.height < 10:
        raise ForecastInputError(
            f"{kind} H={horizon}: only {rows.height} labelled training rows with labels known "
            f"by {label_known_by} (need >= 10)"
        )
    fit_rows, calibration_rows = _split_calibration(rows, kind, horizon, config, label_known_by)
    fit_rows = thin_rows(fit_rows, config.max_fit_rows, config.random_seed)
    stopped, iterations = _early_stopping(fit_rows, inputs.feature_columns, kind, horizon, config)
    if stopped is not None and not config.early_stopping_refit:
        booster = stopped
    else:
        booster = _fit_booster(fit_rows, inputs.feature_columns, kind, horizon, config, iterations)
    # ISO string (the metadata sidecar is JSON): the walk-forward checks its embargo on it.
    extra: dict[str, Any] = {
        "train_label_end": cast(date, rows["_label_end"].max()).isoformat(),
        "iterations": iterations,
        "n_fit_rows": fit_rows.height,
    }
    if calibration_rows is not None:
        extra["conformal_delta"] = _conformal_delta(
            booster, calibration_rows, inputs.feature_columns, horizon, config
        )
        extra["n_calibration_rows"] = calibration_rows.height
    train_start, train_end = cast(date, rows["date"].min()), cast(date, rows["date"].max())
    target = TARGET_RETURN if kind == RETURN_KIND else TARGET_VOLATILITY
    fingerprint = _fingerprint(rows, [*inputs.feature_columns, "_scale", target])
    return ForecastModel(
        booster=booster,
        kind=kind,
        horizon_days=horizon,
        feature_columns=inputs.feature_columns,
        config=config,
        train_start=train_start,
        train_end=train_end,
        n_train_rows=rows.height,
        data_fingerprint=fingerprint,
        model_version=model_version_for(
            kind, horizon, config, inputs.feature_columns, train_start, train_end, fingerprint
        ),
        extra=extra,
    )


def _split_calibration(
    rows: pl.DataFrame,
    kind: str,
    horizon: int,
    config: ForecastConfig,
    label_known_by: date | None,
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """(fit rows, conformal calibration rows or None): the return model holds out the as_of
    dates of the last ``calibration_days``, purging the fit rows whose label overlaps them."""
    fit_rows, calibration_rows = rows, None
    if kind == RETURN_KIND and config.calibration_days > 0:
        last = cast(date, rows["date"].max())
        calibration_start = last - timedelta(days=config.calibration_days - 1)
        fit_rows = rows.filter(pl.col("_label_end") <= calibration_start)
        calibration_rows = rows.filter(pl.col("date") >= calibration_start)
        if fit_rows.height < 10:
            raise ForecastInputError(
                f"{kind} H={horizon}: only {fit_rows.height} rows before the calibration "
                f"window starting {calibration_start} (cutoff {label_known_by})"
            )
    return fit_rows, calibration_rows


def _pool(rows: pl.DataFrame, feature_columns, kind, horizon, config):
    from catboost import Pool

    y = _scaled_target(rows, kind, horizon, config)
    return Pool(
        catboost_frame(rows, feature_columns), y, cat_features=_categorical_columns(feature_columns)
    )


def _fit_booster(rows, feature_columns, kind, horizon, config, iterations: int | None = None):
    from catboost import CatBoostRegressor

    params = config.catboost_params(_loss_function(kind))
    if iterations is not None:
        params["iterations"] = iterations
    booster = CatBoostRegressor(**params)
    booster.fit(_pool(rows, feature_columns, kind, horizon, config))
    return booster


def _early_stopping(rows, feature_columns, kind, horizon, config) -> tuple[Any, int]:
    """(stopped booster or None, number of trees) chosen on the last ``early_stopping_days``
    of ``rows`` (time-ordered).

    The holdout is the last ``early_stopping_days`` as_of dates of ``rows``; the rows fitted
    to choose the count end with labels known by the holdout's first day (the purge rule of
    :func:`training_rows`), so the holdout's labels never leak into that fit. Falls back to
    ``config.iterations`` when either side has fewer than 10 rows.
    """
    if config.early_stopping_days == 0 or rows.height == 0:
        return None, config.iterations
    from catboost import CatBoostRegressor

    holdout_start = rows["date"].max() - timedelta(days=config.early_stopping_days - 1)
    fit_part = rows.filter(pl.col("_label_end") <= holdout_start)
    holdout = rows.filter(pl.col("date") >= holdout_start)
    if fit_part.height < 10 or holdout.height < 10:
        return None, config.iterations
    params = config.catboost_params(_loss_function(kind))
    params.update(od_type="Iter", od_wait=config.early_stopping_rounds, use_best_model=True)
    booster = CatBoostRegressor(**params)
    booster.fit(
        _pool(fit_part, feature_columns, kind, horizon, config),
        eval_set=_pool(holdout, feature_columns, kind, horizon, config),
    )
    return booster, int(booster.get_best_iteration()) + 1


def _raw_quantiles(booster, rows: pl.DataFrame, feature_columns) -> tuple[np.ndarray, np.ndarray]:
    """Model outputs in target units, sorted per row, and whether sorting was needed."""
    raw = np.asarray(booster.predict(catboost_frame(rows, feature_columns)), dtype=float)
    raw = raw.reshape(rows.height, len(QUANTILES))
    return np.sort(raw, axis=1), np.any(np.diff(raw, axis=1) < 0, axis=1)


def _conformal_delta(booster, rows, feature_columns, horizon, config) -> float:
    """CQR adjustment: the (1 - alpha)(1 + 1/n) quantile of max(q10 - y, y - q90)."""
    quantiles, _ = _raw_quantiles(booster, rows, feature_columns)
    y = _scaled_target(rows, RETURN_KIND, horizon, config)
    scores = np.maximum(quantiles[:, 0] - y, y - quantiles[:, 2])
    miss_rate = QUANTILES[0] + (1.0 - QUANTILES[2])
    level = min(1.0, (1.0 - miss_rate) * (1.0 + 1.0 / len(scores)))
    return float(np.quantile(scores, level, method="higher"))


def predict_quantiles(model: ForecastModel, rows: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Quantile log-return forecasts for design rows.

    Returns
    -------
    quantiles : numpy.ndarray
        Shape (n_rows, 3): q10, q50, q90 of the H-day log return, sorted per row.
    reordered : numpy.ndarray
        Shape (n_rows,), bool: the raw outputs crossed and sorting was needed.
    """
    if model.kind != RETURN_KIND:
        raise ValueError(f"predict_quantiles needs a {RETURN_KIND} model, got {model.kind}")
    quantiles, reordered = _raw_quantiles(model.booster, rows, model.feature_columns)
    delta = model.extra.get("conformal_delta", 0.0)
    # A negative delta narrows the band; it may not cross the median.
    quantiles[:, 0] = np.minimum(quantiles[:, 0] - delta, quantiles[:, 1])
    quantiles[:, 2] = np.maximum(quantiles[:, 2] + delta, quantiles[:, 1])
    if model.config.target_scaling:
        quantiles = quantiles * (rows["_scale"].to_numpy() * math.sqrt(model.horizon_days))[:, None]
    return quantiles, reordered


def fit_task(inputs: ModelInputs, task: tuple[int, str, date | None]) -> ForecastModel:
    """Fit one model of a batch: ``task`` = (horizon, kind, label_known_by or None), on the
    inputs of that horizon.

    Module level, so that Ray workers can import it (:func:`fit_models`).
    """
    horizon, kind, label_known_by = task
    if inputs.horizon_days != horizon:
        raise ValueError(f"task for H={horizon} got the inputs of H={inputs.horizon_days}")
    return fit_model(inputs, kind, label_known_by=label_known_by)


def fit_models(
    inputs_by_horizon: dict[int, ModelInputs],
    tasks: Sequence[tuple[int, str, date | None]],
    backend: str | None = None,
) -> list[ForecastModel]:
    """Fit independent models (folds, horizons, final models) in this process or as Ray tasks.

    Each fit depends only on its horizon's inputs and its cutoff (CatBoost is deterministic
    for a given seed and thread count), so both backends give the same models, in the order
    of ``tasks`` (:mod:`portfolio_pipeline.common.parallel`; each horizon's inputs go to Ray's
    object store once for the whole batch).
    """
    from portfolio_pipeline.common.parallel import map_tasks

    cpus = max(inputs.config.thread_count for inputs in inputs_by_horizon.values())
    return map_tasks(
        fit_task,
        inputs_by_horizon,
        list(tasks),
        backend=backend,
        cpus_per_task=cpus,
        shared_key=lambda task: task[0],  # a task ships its own horizon's frame only
    )


def fit_final_models(
    features: pl.DataFrame,
    ohlcv: pl.DataFrame,
    horizons: Sequence[int],
    *,
    sentiment: pl.DataFrame | None = None,
    config: ForecastConfig | None = None,
    kind: str = RETURN_KIND,
    backend: str | None = None,
) -> list[ForecastModel]:
    """:func:`fit_final_model` for every horizon, as one batch of (Ray) tasks, in order."""
    inputs = {
        h: build_model_inputs(features, ohlcv, h, sentiment=sentiment, config=config)
        for h in dict.fromkeys(horizons)
    }
    return fit_models(inputs, [(h, kind, None) for h in horizons], backend)


def fit_final_model(
    features: pl.DataFrame,
    ohlcv: pl.DataFrame,
    horizon: int,
    *,
    sentiment: pl.DataFrame | None = None,
    config: ForecastConfig | None = None,
    kind: str = RETURN_KIND,
) -> ForecastModel:
    """Train on every row whose H-day label is known (d + H <= the last OHLCV date)."""
    return fit_model(
        build_model_inputs(features, ohlcv, horizon, sentiment=sentiment, config=config), kind
    )


def design_rows_at(model: ForecastModel, features, ohlcv, as_of, sentiment) -> pl.DataFrame:
    inputs = build_model_inputs(
        features, ohlcv, model.horizon_days, sentiment=sentiment, config=model.config
    )
    missing = [c for c in model.feature_columns if c not in inputs.feature_columns]
    if missing:
        raise ForecastInputError(f"inputs lack the model's feature columns {missing}")
    # Only symbols with a row at as_of are still trading: delisted ones get no forecast.
    rows = inputs.frame.filter(pl.col("date") == as_of)
    if rows.height == 0:
        raise ForecastInputError(f"no feature rows at as_of {as_of}: nothing to forecast")
    return rows.sort("symbol")


def predict_latest(
    model: ForecastModel,
    features: pl.DataFrame,
    ohlcv: pl.DataFrame,
    as_of: date,
    *,
    sentiment: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Quantile forecasts at ``as_of`` for every symbol with a row at that date.

    Returns
    -------
    polars.DataFrame
        Target table ``ml.return_forecasts``: as_of, symbol, horizon_days, q10, q50, q90 (log
        return over the next H days), model_version, quantiles_reordered (bool).
    """
    rows = design_rows_at(model, features, ohlcv, as_of, sentiment)
    quantiles, reordered = predict_quantiles(model, rows)
    return pl.DataFrame(
        {
            "as_of": rows["date"],
            "symbol": rows["symbol"],
            "horizon_days": pl.Series([model.horizon_days] * rows.height, dtype=pl.Int32),
            "q10": quantiles[:, 0],
            "q50": quantiles[:, 1],
            "q90": quantiles[:, 2],
            "model_version": [model.model_version] * rows.height,
            "quantiles_reordered": reordered,
        }
    )
