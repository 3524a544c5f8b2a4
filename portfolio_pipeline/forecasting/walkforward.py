"""Walk-forward (expanding or rolling window, purged) evaluation of the CatBoost forecasts.

Pure (no dagster). Fold k tests the as_of dates ``[test_start_k, test_end_k]`` with a model
fitted at the close of ``test_start_k`` on every row whose label window (d, d+H] ends no
later than ``test_start_k``: H counts bars of each symbol's own calendar, and the label of
the last training as_of ``train_end`` ends at ``train_label_end`` (its H-th bar), which is
``<= test_start`` (purge/embargo), so no training label overlaps the test window and
nothing after ``test_start`` is ever read for training. Folds restart every
``retrain_every_days``; the training window starts at the beginning of the data (expanding)
or covers the last ``ForecastConfig.train_window_days`` before the cutoff (rolling); above
``ForecastConfig.max_fit_rows`` a fit's rows are thinned uniformly over its window (the
default), so the cost of a walk-forward grows linearly with the history, not with its square.

Every (horizon, fold) fit is an independent task: :func:`walk_forward_horizons` submits
the folds of all horizons as one batch (:mod:`portfolio_pipeline.common.parallel`), and the
volatility walk-forward can fit its final model in the same batch. With ``fold_cache_dir``
a fold whose inputs (every design-frame row up to its test end, the code version and the
configuration) are unchanged is read back instead of refitted
(:mod:`portfolio_pipeline.forecasting.fold_cache`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from portfolio_pipeline.forecasting.config import (
    RETURN_KIND,
    TARGET_RETURN,
    TARGET_VOLATILITY,
    VOLATILITY_KIND,
    ForecastConfig,
)
from portfolio_pipeline.forecasting.fold_cache import FoldCache
from portfolio_pipeline.forecasting.folds import (
    DEFAULT_FIRST_TEST_START,
    DEFAULT_RETRAIN_EVERY_DAYS,
    FOLD_COLUMNS,
    FoldPlan,
    check_embargo,
    plan_folds,
)
from portfolio_pipeline.forecasting.inputs import ModelInputs, build_model_inputs
from portfolio_pipeline.forecasting.model import ForecastModel, fit_models, predict_quantiles
from portfolio_pipeline.forecasting.volatility import predict_volatility_values


def _fold_row(fold, horizon, model, test_start, test_end, n_test, n_reordered) -> dict:
    return {
        "fold": fold,
        "horizon_days": horizon,
        "train_start": model.train_start,
        "train_end": model.train_end,
        "train_label_end": date.fromisoformat(model.extra["train_label_end"]),
        "test_start": test_start,
        "test_end": test_end,
        "n_train_rows": model.n_train_rows,
        "n_test_rows": n_test,
        "n_quantiles_reordered": n_reordered,
        "model_version": model.model_version,
    }


def walk_forward(
    features: pl.DataFrame,
    ohlcv: pl.DataFrame,
    horizon: int,
    *,
    sentiment: pl.DataFrame | None = None,
    config: ForecastConfig | None = None,
    first_test_start: date = DEFAULT_FIRST_TEST_START,
    retrain_every_days: int = DEFAULT_RETRAIN_EVERY_DAYS,
    last_test_date: date | None = None,
    include_unlabelled: bool = False,
    backend: str | None = None,
    fold_cache_dir: str | Path | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Out-of-sample quantile forecasts by purged walk-forward, one horizon.

    Parameters
    ----------
    features, ohlcv, horizon, sentiment, config
        As in :func:`portfolio_pipeline.forecasting.inputs.build_model_inputs` (horizon: H in
        days). The training window expands from the start of the data, or rolls with
        ``config.train_window_days``.
    first_test_start : datetime.date
        First out-of-sample as_of (earlier data is training history only).
    retrain_every_days : int
        Length R of each test window; the model is refitted at every window start.
    last_test_date : datetime.date, optional
        Last as_of to test (default: the last date whose label is known, or with
        ``include_unlabelled`` the last date with features).
    include_unlabelled : bool
        Also forecast the rows whose outcome is not known yet (``realized`` null), so the
        table is the point-in-time feed a live run sees: a forecast for every date, and no
        missing row that gives away an asset stopping within H days.
    backend, fold_cache_dir : {"sequential", "ray"}, str or pathlib.Path, optional
        Where the folds are fitted (:func:`portfolio_pipeline.common.parallel.resolve_backend`),
        and where the outputs of folds whose inputs are unchanged are reused instead of refitted
        (:mod:`portfolio_pipeline.forecasting.fold_cache`; None, the default, fits every fold).
        The results depend on neither.

    Returns
    -------
    backtest : polars.DataFrame
        Target ``ml.forecast_backtest``: :data:`RETURN_BACKTEST_COLUMNS`, out-of-sample rows
        only; ``realized`` is null where the outcome is not known yet (``include_unlabelled``).
    folds : polars.DataFrame
        Target ``ml.forecast_folds``: the :data:`~portfolio_pipeline.forecasting.folds.FOLD_COLUMNS`.
    """
    return walk_forward_horizons(
        features,
        ohlcv,
        [horizon],
        sentiment=sentiment,
        config=config,
        first_test_start=first_test_start,
        retrain_every_days=retrain_every_days,
        last_test_date=last_test_date,
        include_unlabelled=include_unlabelled,
        backend=backend,
        fold_cache_dir=fold_cache_dir,
    )


def walk_forward_horizons(
    features: pl.DataFrame,
    ohlcv: pl.DataFrame,
    horizons: Sequence[int],
    *,
    sentiment: pl.DataFrame | None = None,
    config: ForecastConfig | None = None,
    first_test_start: date = DEFAULT_FIRST_TEST_START,
    retrain_every_days: int = DEFAULT_RETRAIN_EVERY_DAYS,
    last_test_date: date | None = None,
    include_unlabelled: bool = False,
    backend: str | None = None,
    fold_cache_dir: str | Path | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """:func:`walk_forward` for several horizons; every (horizon, fold) fit is one task of a
    single batch (Ray tasks with the ``ray`` backend), and the frames are those of the
    horizons one after the other (identical to calling :func:`walk_forward` per horizon).
    """
    plans = [
        plan_folds(
            build_model_inputs(features, ohlcv, h, sentiment=sentiment, config=config),
            RETURN_KIND,
            first_test_start,
            retrain_every_days,
            last_test_date,
            include_unlabelled=include_unlabelled,
        )
        for h in horizons
    ]
    backtests, folds, _ = _run_plans(
        plans, backend, _return_fold, RETURN_BACKTEST_COLUMNS, _cache(fold_cache_dir)
    )
    return _collect(backtests, folds)


RETURN_BACKTEST_COLUMNS = [
    "as_of", "symbol", "horizon_days", "fold", "q10", "q50", "q90", "realized",
    "quantiles_reordered",
]  # fmt: skip
VOLATILITY_BACKTEST_COLUMNS = [
    "as_of", "symbol", "horizon_days", "fold", "vol_forecast", "trailing_vol", "realized_vol",
]  # fmt: skip
# (plan, fold, test_start, test_end, model, test rows) -> (backtest rows, fold row)
FoldOutputs = Callable[
    [FoldPlan, int, date, date, ForecastModel, pl.DataFrame], tuple[pl.DataFrame, dict]
]


def _return_fold(plan, fold, test_start, test_end, model, rows) -> tuple[pl.DataFrame, dict]:
    horizon = plan.inputs.horizon_days
    quantiles, reordered = predict_quantiles(model, rows)
    backtest = pl.DataFrame(
        {
            "as_of": rows["date"],
            "symbol": rows["symbol"],
            "horizon_days": pl.Series([horizon] * rows.height, dtype=pl.Int32),
            "fold": pl.Series([fold] * rows.height, dtype=pl.Int32),
            "q10": quantiles[:, 0],
            "q50": quantiles[:, 1],
            "q90": quantiles[:, 2],
            "realized": rows[TARGET_RETURN],
            "quantiles_reordered": reordered,
        }
    )
    row = _fold_row(fold, horizon, model, test_start, test_end, rows.height, int(reordered.sum()))
    return backtest, row


def _volatility_fold(plan, fold, test_start, test_end, model, rows) -> tuple[pl.DataFrame, dict]:
    horizon = plan.inputs.horizon_days
    annualise = np.sqrt(plan.inputs.config.periods_per_year)
    backtest = pl.DataFrame(
        {
            "as_of": rows["date"],
            "symbol": rows["symbol"],
            "horizon_days": pl.Series([horizon] * rows.height, dtype=pl.Int32),
            "fold": pl.Series([fold] * rows.height, dtype=pl.Int32),
            "vol_forecast": predict_volatility_values(model, rows),
            "trailing_vol": rows["_scale"].to_numpy() * annualise,
            "realized_vol": rows[TARGET_VOLATILITY],
        }
    )
    return backtest, _fold_row(fold, horizon, model, test_start, test_end, rows.height, 0)


def _cache(directory: str | Path | None) -> FoldCache | None:
    return None if directory is None else FoldCache(directory)


def _run_plans(
    plans: list[FoldPlan],
    backend: str | None,
    outputs: FoldOutputs,
    columns: list[str],
    cache: FoldCache | None,
    extra: Sequence[tuple[int, str, None]] = (),
) -> tuple[list[pl.DataFrame], list[dict], list[ForecastModel]]:
    """Backtest pieces and fold rows of every plan's folds, in order, and the ``extra`` models.

    With ``cache``, a fold whose key (:class:`~portfolio_pipeline.forecasting.fold_cache.FoldCache`)
    has an entry is read back instead of fitted; the other folds (and ``extra``) are fitted
    as one batch (:func:`fit_models`) and stored.
    """
    if len({p.inputs.horizon_days for p in plans}) != len(plans):
        raise ValueError("walk-forward: each horizon may appear once")
    results: dict[tuple[int, int], tuple[pl.DataFrame, dict | None]] = {}
    keys: dict[tuple[int, int], str] = {}
    pending: list[tuple[int, int]] = []
    for p, plan in enumerate(plans):
        for fold, (test_start, test_end) in enumerate(plan.schedule):
            if cache is not None:
                keys[p, fold] = cache.key(
                    plan.inputs, plan.kind, fold, test_start, test_end, plan.include_unlabelled
                )
                hit = cache.load(keys[p, fold], columns)
                if hit is not None:
                    results[p, fold] = hit
                    continue
            pending.append((p, fold))
    tasks = [plans[p].tasks[fold] for p, fold in pending]
    models = (
        fit_models({p.inputs.horizon_days: p.inputs for p in plans}, [*tasks, *extra], backend)
        if tasks or extra
        else []
    )
    for (p, fold), model in zip(pending, models, strict=False):
        plan = plans[p]
        test_start, test_end = plan.schedule[fold]
        check_embargo(plan, fold, test_start, model)
        rows = plan.rows.filter(pl.col("date").is_between(test_start, test_end))
        if rows.height:
            results[p, fold] = outputs(plan, fold, test_start, test_end, model, rows)
        else:  # a fold without test rows (e.g. a gap in the data) gives nothing
            results[p, fold] = (pl.DataFrame(schema={c: pl.Float64 for c in columns}), None)
        if cache is not None:
            cache.store(keys[p, fold], *results[p, fold])
    backtests, folds = [], []
    for p, plan in enumerate(plans):
        for fold in range(len(plan.schedule)):
            piece, row = results[p, fold]
            if row is not None:
                backtests.append(piece)
                folds.append(row)
    return backtests, folds, models[len(tasks) :]


def _collect(backtests: list[pl.DataFrame], folds: list[dict]) -> tuple[pl.DataFrame, pl.DataFrame]:
    folds_frame = pl.DataFrame(folds).with_columns(pl.col("fold", "horizon_days").cast(pl.Int32))
    # Horizon first: one horizon's rows together, as_of then symbol within (a total order).
    backtest = pl.concat(backtests).sort("horizon_days", "as_of", "symbol")
    return backtest, folds_frame.select(FOLD_COLUMNS)


def walk_forward_volatility(
    features: pl.DataFrame,
    ohlcv: pl.DataFrame,
    horizon: int,
    *,
    sentiment: pl.DataFrame | None = None,
    config: ForecastConfig | None = None,
    first_test_start: date = DEFAULT_FIRST_TEST_START,
    retrain_every_days: int = DEFAULT_RETRAIN_EVERY_DAYS,
    last_test_date: date | None = None,
    backend: str | None = None,
    fold_cache_dir: str | Path | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Walk-forward of the volatility model (same folds and purge as :func:`walk_forward`).

    Returns
    -------
    backtest : polars.DataFrame
        as_of, symbol, horizon_days, fold, vol_forecast, trailing_vol (the naive forecast),
        realized_vol (annualised).
    folds : polars.DataFrame
        As in :func:`walk_forward` (n_quantiles_reordered = 0).
    """
    backtest, folds, _ = _volatility(
        build_model_inputs(features, ohlcv, horizon, sentiment=sentiment, config=config),
        first_test_start, retrain_every_days, last_test_date, backend, _cache(fold_cache_dir),
        final_model=False,
    )  # fmt: skip
    return backtest, folds


def walk_forward_volatility_and_model(
    features: pl.DataFrame,
    ohlcv: pl.DataFrame,
    horizon: int,
    *,
    sentiment: pl.DataFrame | None = None,
    config: ForecastConfig | None = None,
    first_test_start: date = DEFAULT_FIRST_TEST_START,
    retrain_every_days: int = DEFAULT_RETRAIN_EVERY_DAYS,
    last_test_date: date | None = None,
    backend: str | None = None,
    fold_cache_dir: str | Path | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, ForecastModel]:
    """:func:`walk_forward_volatility` plus the model fitted on every labelled row (what
    :func:`~portfolio_pipeline.forecasting.volatility.fit_volatility_model` gives), its fit one more
    task of the folds' batch, on the same inputs."""
    backtest, folds, final = _volatility(
        build_model_inputs(features, ohlcv, horizon, sentiment=sentiment, config=config),
        first_test_start, retrain_every_days, last_test_date, backend, _cache(fold_cache_dir),
        final_model=True,
    )  # fmt: skip
    assert final is not None
    return backtest, folds, final


def _volatility(
    inputs: ModelInputs,
    first_test_start: date,
    retrain_every_days: int,
    last_test_date: date | None,
    backend: str | None,
    cache: FoldCache | None,
    *,
    final_model: bool,
) -> tuple[pl.DataFrame, pl.DataFrame, ForecastModel | None]:
    horizon = inputs.horizon_days
    plan = plan_folds(inputs, VOLATILITY_KIND, first_test_start, retrain_every_days, last_test_date)
    extra = [(horizon, VOLATILITY_KIND, None)] if final_model else []
    backtests, folds, final = _run_plans(
        [plan], backend, _volatility_fold, VOLATILITY_BACKTEST_COLUMNS, cache, extra
    )
    backtest, fold_frame = _collect(backtests, folds)
    return backtest, fold_frame, (final[0] if final_model else None)
