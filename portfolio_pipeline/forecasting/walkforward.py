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

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from portfolio_pipeline.forecasting.fold_cache import FoldCache
from portfolio_pipeline.forecasting.model import (
    QUANTILES,
    RETURN_KIND,
    TARGET_RETURN,
    TARGET_VOLATILITY,
    VOLATILITY_KIND,
    ForecastConfig,
    ForecastInputError,
    ForecastModel,
    ModelInputs,
    build_model_inputs,
    fit_models,
    predict_quantiles,
    predict_volatility_values,
)

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
    last = labelled_dates.max()
    if last_test_date is not None:
        last = min(last, last_test_date)
    if first_test_start > last:
        raise ForecastInputError(
            f"walk-forward: first_test_start {first_test_start} is after the last labelled "
            f"date {last}"
        )
    step = timedelta(days=retrain_every_days)
    schedule, start = [], first_test_start
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


def _check_embargo(plan: FoldPlan, fold: int, test_start: date, model: ForecastModel) -> None:
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
        _check_embargo(plan, fold, test_start, model)
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
    features, ohlcv, sentiment, config
        As in :func:`portfolio_pipeline.forecasting.model.build_model_inputs`. The training
        window expands from the start of the data, or rolls with
        ``config.train_window_days``.
    horizon : int
        H in days.
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
    backend : {"sequential", "ray"}, optional
        Where the folds are fitted (:func:`portfolio_pipeline.common.parallel.resolve_backend`);
        the results do not depend on it.
    fold_cache_dir : str or pathlib.Path, optional
        Reuse the stored outputs of every fold whose inputs are unchanged instead of
        refitting it (:mod:`portfolio_pipeline.forecasting.fold_cache`); the results do not depend
        on it. None (default): fit every fold.

    Returns
    -------
    backtest : polars.DataFrame
        Target ``ml.forecast_backtest``: as_of, symbol, horizon_days, fold, q10, q50, q90,
        realized, quantiles_reordered. Only out-of-sample rows; ``realized`` is null where
        the outcome is not known yet (only with ``include_unlabelled``).
    folds : polars.DataFrame
        Target ``ml.forecast_folds``: fold, horizon_days, train_start, train_end, test_start,
        test_end, n_train_rows, n_test_rows, n_quantiles_reordered, model_version.
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
        _check_embargo(plan, fold, test_start, model)
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
    :func:`~portfolio_pipeline.forecasting.model.fit_volatility_model` gives), its fit one more
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


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------


def _pinball(realized: pl.Expr, forecast: pl.Expr, q: float) -> pl.Expr:
    error = realized - forecast
    return pl.max_horizontal(q * error, (q - 1.0) * error)


def _metrics(group: pl.Expr | None = None) -> list[pl.Expr]:
    realized, q50 = pl.col("realized"), pl.col("q50")
    nonzero = realized != 0
    pinball = sum(
        _pinball(realized, pl.col(name), q)
        for name, q in zip(("q10", "q50", "q90"), QUANTILES, strict=True)
    ) / len(QUANTILES)
    return [
        (
            100.0
            * ((pl.col("_price_model") - pl.col("_price_actual")).abs() / pl.col("_price_actual"))
        )
        .mean()
        .alias("mape_model"),
        (100.0 * ((pl.col("_close") - pl.col("_price_actual")).abs() / pl.col("_price_actual")))
        .mean()
        .alias("mape_naive"),
        (q50.sign() == realized.sign()).filter(nonzero).mean().alias("directional_accuracy"),
        ((realized >= pl.col("q10")) & (realized <= pl.col("q90")))
        .mean()
        .alias("coverage_q10_q90"),
        pinball.mean().alias("pinball_loss"),
        pl.corr(q50, realized, method="spearman").alias("ts_rank_corr"),
        pl.col("as_of").min().alias("eval_start"),
        pl.col("as_of").max().alias("eval_end"),
        pl.len().alias("n"),
    ]


def daily_rank_ic(backtest: pl.DataFrame, min_symbols: int = 3) -> pl.DataFrame:
    """Spearman correlation across symbols of q50 vs realized, per (horizon_days, as_of).

    Dates with fewer than ``min_symbols`` symbols, or a constant q50 or realized, are dropped.
    """
    return (
        backtest.group_by("horizon_days", "as_of")
        .agg(
            pl.corr("q50", "realized", method="spearman").alias("rank_ic"),
            pl.len().alias("n_symbols"),
        )
        .filter((pl.col("n_symbols") >= min_symbols) & pl.col("rank_ic").is_not_nan())
        .sort("horizon_days", "as_of")
    )


def evaluate_forecasts(
    backtest: pl.DataFrame,
    ohlcv: pl.DataFrame,
    *,
    evaluation_start: date | None = None,
    evaluation_end: date | None = None,
) -> pl.DataFrame:
    """Accuracy of out-of-sample forecasts, per symbol and 'ALL', per horizon.

    Prices: model = close[d] * exp(q50), naive = close[d] (random walk), actual = close[d+H]
    from ``ohlcv``. MAPEs are in percent; ``mape_improvement_pct`` = 100 * (naive - model) /
    naive. ``directional_accuracy``: share of rows with sign(q50) == sign(realized), rows with
    realized == 0 excluded. ``rank_ic``: mean over dates of the cross-sectional Spearman
    correlation of q50 and realized (ALL rows only; a single symbol has no cross-section),
    ``rank_ic_ir`` = mean / std of the daily values (overlapping H-day windows make it look
    better than independent samples would). ``ts_rank_corr``: Spearman of q50 vs realized over
    the rows of the group. ``coverage_q10_q90``: share of realized within [q10, q90] (nominal
    0.8). ``pinball_loss``: mean over rows and the three quantiles.

    Returns
    -------
    polars.DataFrame
        Target ``ml.forecast_evaluation``: symbol, horizon_days, mape_model, mape_naive,
        mape_improvement_pct, directional_accuracy, rank_ic, rank_ic_ir, ts_rank_corr,
        coverage_q10_q90, pinball_loss, eval_start, eval_end, n. 'ALL' first per horizon.
    """
    rows = _labelled_in_window(backtest, evaluation_start, evaluation_end)
    rows = _with_prices(rows, ohlcv)
    per_symbol = rows.group_by("horizon_days", "symbol").agg(_metrics())
    overall = (
        rows.group_by("horizon_days").agg(_metrics()).with_columns(pl.lit("ALL").alias("symbol"))
    )
    ic = (
        daily_rank_ic(rows)
        .group_by("horizon_days")
        .agg(
            pl.col("rank_ic").mean().alias("rank_ic"),
            (pl.col("rank_ic").mean() / pl.col("rank_ic").std()).alias("rank_ic_ir"),
        )
    )
    overall = overall.join(ic, on="horizon_days", how="left")
    per_symbol = per_symbol.with_columns(
        pl.lit(None, dtype=pl.Float64).alias("rank_ic"),
        pl.lit(None, dtype=pl.Float64).alias("rank_ic_ir"),
    )
    columns = [
        "symbol", "horizon_days", "mape_model", "mape_naive", "mape_improvement_pct",
        "directional_accuracy", "rank_ic", "rank_ic_ir", "ts_rank_corr", "coverage_q10_q90",
        "pinball_loss", "eval_start", "eval_end", "n",
    ]  # fmt: skip
    return (
        pl.concat([overall.select(per_symbol.columns), per_symbol])
        .with_columns(
            (100.0 * (pl.col("mape_naive") - pl.col("mape_model")) / pl.col("mape_naive")).alias(
                "mape_improvement_pct"
            ),
            pl.col("n").cast(pl.Int64),
        )
        .with_columns((pl.col("symbol") != "ALL").alias("_not_all"))
        .sort("horizon_days", "_not_all", "symbol")
        .select(columns)
    )


def _labelled_in_window(
    backtest: pl.DataFrame, evaluation_start: date | None, evaluation_end: date | None
) -> pl.DataFrame:
    """The backtest rows issued in the window whose outcome is known; at least one."""
    rows = backtest
    if evaluation_start is not None:
        rows = rows.filter(pl.col("as_of") >= evaluation_start)
    if evaluation_end is not None:
        rows = rows.filter(pl.col("as_of") <= evaluation_end)
    rows = rows.filter(pl.col("realized").is_not_null())
    if rows.height == 0:
        raise ForecastInputError(
            f"evaluate_forecasts: no labelled backtest rows in {evaluation_start}..{evaluation_end}"
        )
    return rows


def _with_prices(rows: pl.DataFrame, ohlcv: pl.DataFrame) -> pl.DataFrame:
    """Adds the close at as_of, the actual close H bars later and the model's price."""
    closes = ohlcv.select(
        pl.col("symbol").cast(pl.String), "date", pl.col("close").cast(pl.Float64)
    ).sort("symbol", "date")
    # The realized price is the close H BARS after as_of (the symbol's own calendar).
    ahead = pl.concat(
        [
            closes.select(
                "symbol",
                pl.col("date").alias("as_of"),
                pl.lit(h, dtype=rows.schema["horizon_days"]).alias("horizon_days"),
                pl.col("close").alias("_close"),
                pl.col("close").shift(-h).over("symbol").alias("_price_actual"),
            )
            for h in sorted(rows["horizon_days"].unique().to_list())
        ]
    )
    rows = rows.join(ahead, on=["symbol", "as_of", "horizon_days"], how="left")
    unpriced = rows.filter(pl.col("_close").is_null() | pl.col("_price_actual").is_null())
    if unpriced.height:
        raise ForecastInputError(
            "evaluate_forecasts: backtest rows without a close at as_of or as_of + H: "
            + ", ".join(
                f"{r['symbol']} {r['as_of']}" for r in unpriced.head(5).iter_rows(named=True)
            )
        )
    return rows.with_columns((pl.col("_close") * pl.col("q50").exp()).alias("_price_model"))


def evaluate_volatility_forecasts(backtest: pl.DataFrame) -> pl.DataFrame:
    """Volatility accuracy per symbol and 'ALL', per horizon, against the trailing-vol naive.

    Returns
    -------
    polars.DataFrame
        symbol, horizon_days, rmse_model, rmse_naive, rmse_improvement_pct, mae_model,
        mae_naive, n (errors in annualised volatility units).
    """
    metrics = [
        ((pl.col("vol_forecast") - pl.col("realized_vol")) ** 2).mean().sqrt().alias("rmse_model"),
        ((pl.col("trailing_vol") - pl.col("realized_vol")) ** 2).mean().sqrt().alias("rmse_naive"),
        (pl.col("vol_forecast") - pl.col("realized_vol")).abs().mean().alias("mae_model"),
        (pl.col("trailing_vol") - pl.col("realized_vol")).abs().mean().alias("mae_naive"),
        pl.len().cast(pl.Int64).alias("n"),
    ]
    rows = backtest.filter(pl.col("realized_vol").is_not_null())
    overall = rows.group_by("horizon_days").agg(metrics).with_columns(pl.lit("ALL").alias("symbol"))
    per_symbol = rows.group_by("horizon_days", "symbol").agg(metrics)
    return (
        pl.concat([overall.select(per_symbol.columns), per_symbol])
        .with_columns(
            (100.0 * (pl.col("rmse_naive") - pl.col("rmse_model")) / pl.col("rmse_naive")).alias(
                "rmse_improvement_pct"
            ),
            (pl.col("symbol") != "ALL").alias("_not_all"),
        )
        .sort("horizon_days", "_not_all", "symbol")
        .select(
            "symbol",
            "horizon_days",
            "rmse_model",
            "rmse_naive",
            "rmse_improvement_pct",
            "mae_model",
            "mae_naive",
            "n",
        )  # fmt: skip
    )
