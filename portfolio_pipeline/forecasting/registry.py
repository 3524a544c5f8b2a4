"""Persistence of the forecast models: artifact and metadata sidecar, registry rows,
feature importance.

Pure (no dagster); CatBoost is imported inside :func:`load_model`.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from portfolio_pipeline.forecasting.config import (
    CODE_VERSION,
    ForecastConfig,
    ForecastInputError,
)
from portfolio_pipeline.forecasting.model import ForecastModel


def model_metadata(model: ForecastModel) -> dict[str, Any]:
    return {
        "model_version": model.model_version,
        "code_version": CODE_VERSION,
        "kind": model.kind,
        "horizon_days": model.horizon_days,
        "feature_columns": list(model.feature_columns),
        "params": model.params,
        "train_start": model.train_start.isoformat(),
        "train_end": model.train_end.isoformat(),
        "n_train_rows": model.n_train_rows,
        "data_fingerprint": model.data_fingerprint,
        "extra": model.extra,
    }


def save_model(model: ForecastModel, directory: str | Path) -> Path:
    """Write ``<kind>_h<H>_<version>.cbm`` and a ``.json`` metadata sidecar; return the .cbm path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    artifact = directory / f"{model.kind}_h{model.horizon_days}_{model.model_version}.cbm"
    model.booster.save_model(str(artifact), format="cbm")
    artifact.with_suffix(".json").write_text(json.dumps(model_metadata(model), indent=2))
    return artifact


def load_model(artifact_path: str | Path) -> ForecastModel:
    """Load a model written by :func:`save_model` (the sidecar gives its metadata)."""
    from catboost import CatBoostRegressor

    artifact_path = Path(artifact_path)
    meta = json.loads(artifact_path.with_suffix(".json").read_text())
    if meta["code_version"] != CODE_VERSION:
        raise ForecastInputError(
            f"{artifact_path} was written by {meta['code_version']}, this code is {CODE_VERSION}"
        )
    booster = CatBoostRegressor()
    booster.load_model(str(artifact_path), format="cbm")
    config_fields = set(ForecastConfig.__dataclass_fields__)
    config_values = {k: v for k, v in meta["params"].items() if k in config_fields}
    config_values["exclude_columns"] = tuple(config_values.get("exclude_columns", ()))
    return ForecastModel(
        booster=booster,
        kind=meta["kind"],
        horizon_days=meta["horizon_days"],
        feature_columns=tuple(meta["feature_columns"]),
        config=ForecastConfig(**config_values),
        train_start=date.fromisoformat(meta["train_start"]),
        train_end=date.fromisoformat(meta["train_end"]),
        n_train_rows=meta["n_train_rows"],
        data_fingerprint=meta["data_fingerprint"],
        model_version=meta["model_version"],
        extra=meta.get("extra", {}),
    )


def registry_row(
    model: ForecastModel,
    artifact_path: str | Path | None,
    metrics: dict[str, Any] | None = None,
    trained_at: datetime | None = None,
) -> dict[str, Any]:
    """One ``ml.model_registry`` row (params and metrics as JSON strings)."""
    return {
        "model_version": model.model_version,
        "kind": f"{model.kind}_h{model.horizon_days}",
        "trained_at": trained_at or datetime.now(UTC),
        "train_start": model.train_start,
        "train_end": model.train_end,
        "params": json.dumps(
            {
                **model.params,
                **model.extra,
                "feature_columns": list(model.feature_columns),
                "code_version": CODE_VERSION,
                "n_train_rows": model.n_train_rows,
            },
            sort_keys=True,
        ),  # fmt: skip
        "metrics": json.dumps(metrics or {}, sort_keys=True, default=str),
        "artifact_path": None if artifact_path is None else str(artifact_path),
    }


def feature_importance(model: ForecastModel) -> pl.DataFrame:
    """CatBoost PredictionValuesChange importance, shape (n_features, 2), largest first."""
    values = model.booster.get_feature_importance()
    return pl.DataFrame(
        {"feature": list(model.feature_columns), "importance": np.asarray(values, dtype=float)}
    ).sort("importance", descending=True)
