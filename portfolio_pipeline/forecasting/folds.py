"""Walk-forward folds: their schedule, the purge/embargo check, and the fitted model of each.

Pure (no dagster). Fold k tests the as_of dates ``[test_start_k, test_end_k]`` with a model
fitted at the close of ``test_start_k`` on every row whose label window (d, d+H] ends no
later than ``test_start_k`` (see :mod:`portfolio_pipeline.forecasting.walkforward`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import cast

import polars as pl

from portfolio_pipeline.forecasting.config import (
    RETURN_KIND,
    TARGET_RETURN,
    TARGET_VOLATILITY,
    ForecastInputError,
)
from portfolio_pipeline.forecasting.inputs import ModelInputs
from portfolio_pipeline.forecasting.model import ForecastModel, fit_models

DEFAULT_FIRST_TEST_START = date(2020, 1, 1)
# 180 days: ~12 folds per horizon on the 2020-2025 sample, so both horizons' walk-forward
# stays around two minutes on 2 cores (each refit sees up to ~45k rows).
DEFAULT_RETRAIN_EVERY_DAYS = 180
FOLD_COLUMNS = (
    "fold", "horizon_days", "train_start", "train_end", "train_label_end", "test_start",
    "test_end", "n_train_rows", "n_test_rows", "n_quantiles_reordered", "model_version",
)  # fmt: skip


class EmbargoViolation(AssertionError):
    """A fold's training labels reach into its test window (must never happen)."""


def fold_schedule(
    labelled_dates: pl.Series,
    first_test_start: date,
    retrain_every_days: int,
    last_test_date: date | None = None,
) -> list[tuple[date, date]]:
    """(test_start, test_end) pairs covering ``first_test_start`` .. the last labelled date."""
    if retrain_every_days < 1:
        raise ValueError(f"retrain_every_days must be >= 1, got {retrain_every_days}")
    if labelled_dates.len() == 0:
        raise ForecastInputError("walk-forward: no labelled rows at all")
    last = cast(date, labelled_dates.max())  # a Date series (polars types max() loosely)
    if last_test_date is not None:
        last = min(last, last_test_date)
    if first_test_start > last:
        raise ForecastInputError(
            f"walk-forward: first_test_start {first_test_start} is after the last labelled "
            f"date {last}"
        )
    step = timedelta(days=retrain_every_days)
    schedule: list[tuple[date, date]] = []
    start = first_test_start
    while start <= last:
        schedule.append((start, min(start + step - timedelta(days=1), last)))
        start += step
    return schedule


def fit_fold_models(
    inputs: ModelInputs, kind: str, cutoffs: list[date], backend: str | None = None
) -> list[ForecastModel]:
    """The model of every fold, fitted independently: in this process or as Ray tasks.

    Each fold's fit depends only on ``inputs`` and its cutoff (CatBoost is deterministic for
    a given seed and thread count), so both backends give the same models, in cutoff order
    (see :mod:`portfolio_pipeline.common.parallel`).
    """
    horizon = inputs.horizon_days
    return fit_models({horizon: inputs}, [(horizon, kind, c) for c in cutoffs], backend)


@dataclass(frozen=True)
class FoldPlan:
    """The folds of one (horizon, kind): candidate test rows and (test_start, test_end) pairs."""

    inputs: ModelInputs
    kind: str
    rows: pl.DataFrame
    schedule: list[tuple[date, date]]
    include_unlabelled: bool = False

    @property
    def tasks(self) -> list[tuple[int, str, date]]:
        """One fit per fold, cut off at its test_start (see :func:`fit_models`)."""
        return [(self.inputs.horizon_days, self.kind, start) for start, _ in self.schedule]


def plan_folds(
    inputs: ModelInputs,
    kind: str,
    first_test_start: date,
    retrain_every_days: int,
    last_test_date: date | None = None,
    *,
    include_unlabelled: bool = False,
) -> FoldPlan:
    """The folds to fit; test rows are the labelled ones (with ``include_unlabelled`` also the
    rows whose label is not known yet, up to the last date with features)."""
    target = TARGET_RETURN if kind == RETURN_KIND else TARGET_VOLATILITY
    labelled = inputs.frame.filter(pl.col(target).is_not_null() & pl.col("_scale").is_not_null())
    if include_unlabelled:
        labelled = inputs.frame.filter(pl.col("_scale").is_not_null())
    schedule = fold_schedule(labelled["date"], first_test_start, retrain_every_days, last_test_date)
    return FoldPlan(inputs, kind, labelled, schedule, include_unlabelled)


def check_embargo(plan: FoldPlan, fold: int, test_start: date, model: ForecastModel) -> None:
    label_end = date.fromisoformat(model.extra["train_label_end"])
    if model.train_end >= test_start or label_end > test_start:
        raise EmbargoViolation(
            f"fold {fold} H={plan.inputs.horizon_days}: train_end {model.train_end} (label "
            f"ends {label_end}) reaches test_start {test_start}"
        )


def folds_of(
    plan: FoldPlan, models: list[ForecastModel]
) -> Iterator[tuple[int, date, date, ForecastModel, pl.DataFrame]]:
    """Yield (fold, test_start, test_end, model, test rows), checking every fold's embargo."""
    for fold, ((test_start, test_end), model) in enumerate(zip(plan.schedule, models, strict=True)):
        check_embargo(plan, fold, test_start, model)
        test_rows = plan.rows.filter(pl.col("date").is_between(test_start, test_end))
        if test_rows.height:
            yield fold, test_start, test_end, model, test_rows


def iterate_folds(
    inputs: ModelInputs,
    kind: str,
    first_test_start: date,
    retrain_every_days: int,
    last_test_date: date | None = None,
    backend: str | None = None,
    *,
    include_unlabelled: bool = False,
) -> Iterator[tuple[int, date, date, ForecastModel, pl.DataFrame]]:
    """Yield (fold, test_start, test_end, model, test rows) for every fold.

    Test rows are the labelled ones; with ``include_unlabelled`` also the rows whose label is
    not known yet (the last H days of the data, an asset's last H days before it stops
    trading), up to the last date with features: a forecast is issued at every date,
    whether or not its outcome is known.
    """
    plan = plan_folds(
        inputs,
        kind,
        first_test_start,
        retrain_every_days,
        last_test_date,
        include_unlabelled=include_unlabelled,
    )
    models = fit_models({inputs.horizon_days: inputs}, plan.tasks, backend)
    yield from folds_of(plan, models)
