"""CatBoost return forecasts with intervals, their walk-forward evaluation, volatility
forecasts and the model registry."""

from datetime import UTC, date, datetime

import dagster as dg
import polars as pl

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.market.context import market_context
from portfolio_pipeline.market.windows import first_forecast_test_start, windows_from_settings
from portfolio_pipeline.metadata import png_markdown, preview_markdown, table_metadata
from portfolio_pipeline.settings import Settings
from portfolio_pipeline.warehouse.resources import WarehouseResource

INPUT_DEPS = ["raw_ohlcv", "market_features", "daily_sentiment"]


class ForecastSettings(dg.Config):
    """Horizons in BARS of each symbol's calendar (crypto days, equity sessions); walk-forward
    from ``first_test_start`` (blank = from the data: the first 1 January two years into the
    history, no later than the validation window, market.windows.first_forecast_test_start),
    refit every ``retrain_every_days`` calendar days; ``use_sentiment`` joins
    features.daily_sentiment."""

    horizons: list[int] = [1, 8]
    volatility_horizon: int = 8
    first_test_start: str = ""
    retrain_every_days: int = 180
    iterations: int = 200
    depth: int = 5
    random_seed: int = 42
    # one_hot | none | target_stats (README, "Scaling out"); 0 days turns early stopping off.
    # none + 120 days is ~2x faster at 100 symbols but ranks worse (see forecasting.model).
    symbol_encoding: str = "one_hot"
    early_stopping_days: int = 0
    # Rolling training window in calendar days (0 = expanding from the start of the data).
    train_window_days: int = 0
    # Rows one fit learns from at most (uniformly thinned above; 0 = no cap): keeps the cost
    # of a fit bounded as symbols and years grow (README, "Forecasting at 100+ symbols").
    max_fit_rows: int = 150_000
    use_sentiment: bool = True
    # Reuse the stored outputs of walk-forward folds whose inputs are unchanged (under
    # <models dir>/fold_cache, forecasting.fold_cache); False refits every fold.
    fold_cache: bool = True


def _config(settings: ForecastSettings, ohlcv: pl.DataFrame, project: Settings):
    """Model settings plus what the data says: its calendar and its benchmark symbol."""
    from portfolio_pipeline.forecasting.config import ForecastConfig

    market = market_context(ohlcv, project)
    return ForecastConfig(
        iterations=settings.iterations,
        depth=settings.depth,
        random_seed=settings.random_seed,
        periods_per_year=market.calendar.periods_per_year,
        market_symbol=market.benchmark.symbol,
        max_normal_gap_days=market.calendar.max_normal_gap_days,
        symbol_encoding=settings.symbol_encoding,
        early_stopping_days=settings.early_stopping_days,
        train_window_days=settings.train_window_days,
        max_fit_rows=settings.max_fit_rows,
    )


def _fold_cache_dir(settings: ForecastSettings, project: Settings):
    """Where the walk-forward keeps its fold cache, None when it is turned off."""
    return project.models_dir / "fold_cache" if settings.fold_cache else None


def _first_test_start(settings: ForecastSettings, ohlcv: pl.DataFrame, project: Settings) -> date:
    if settings.first_test_start:
        return date.fromisoformat(settings.first_test_start)
    dates = ohlcv.get_column("date").unique().to_list()
    return first_forecast_test_start(min(dates), windows_from_settings(dates, project))


def _inputs(con, settings: ForecastSettings):
    ohlcv = warehouse.read_table(con, tables.RAW_OHLCV)
    features = warehouse.read_table(con, tables.MARKET_FEATURES)
    sentiment = None
    if settings.use_sentiment and warehouse.table_exists(con, tables.DAILY_SENTIMENT):
        sentiment = warehouse.read_frame(
            con, f"select * from {tables.DAILY_SENTIMENT} where symbol <> 'MARKET'"
        )
    return ohlcv, features, sentiment


def _registry(con, rows: list[dict]) -> None:
    frame = pl.DataFrame(rows).with_columns(
        pl.col("trained_at").cast(pl.Datetime("us", "UTC")),
    )
    versions = frame["model_version"].to_list()
    warehouse.replace_rows(
        con,
        tables.MODEL_REGISTRY,
        frame,
        where="list_contains(?, model_version)",
        params=(versions,),
    )


def _backtest_metadata(backtest: pl.DataFrame, horizons, model_config) -> dict:
    """The backtest's table metadata and the benchmark's interval plot at every horizon."""
    from portfolio_pipeline.forecasting.evaluation import plot_interval

    benchmark = model_config.market_symbol
    return {
        **table_metadata(
            backtest.sort("as_of", descending=True),
            tables.FORECAST_BACKTEST,
            date_column="as_of",
        ),
        **{
            f"benchmark_interval_h{h}": png_markdown(
                plot_interval(backtest, benchmark, horizon_days=h), f"{benchmark} H={h}"
            )
            for h in horizons
            if backtest.filter(
                (pl.col("symbol") == benchmark) & (pl.col("horizon_days") == h)
            ).height
        },
        "benchmark": benchmark,
        "horizon_unit": "bars of each symbol's calendar",
        "periods_per_year": model_config.periods_per_year,
    }


def _evaluation_metadata(evaluation: pl.DataFrame, benchmark: str) -> dict:
    """The evaluation's table metadata (previewing ALL and the benchmark) and each horizon's
    MAPE improvement over the naive forecast."""
    overall = evaluation.filter(pl.col("symbol").is_in(["ALL", benchmark])).sort(
        "horizon_days", "symbol"
    )
    return {
        **table_metadata(evaluation, tables.FORECAST_EVALUATION, preview=overall),
        **{
            f"mape_improvement_pct_all_h{r['horizon_days']}": float(r["mape_improvement_pct"])
            for r in evaluation.filter(pl.col("symbol") == "ALL").iter_rows(named=True)
        },
    }


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "forecast_backtest",
            deps=INPUT_DEPS,
            kinds={"catboost", "duckdb"},
            description="One row per (as_of, symbol, horizon): out-of-sample q10/q50/q90 of "
            "the forward log return from an expanding-window, purged walk-forward (no "
            "training label overlaps its test window), with the realized return (null while "
            "not known yet: a forecast is issued at every date), table ml.forecast_backtest. "
            "horizon_days counts bars of each symbol's calendar (crypto days, equity sessions).",
            metadata={"table": tables.FORECAST_BACKTEST},
        ),
        dg.AssetSpec(
            "forecast_folds",
            deps=INPUT_DEPS,
            kinds={"duckdb"},
            description="One row per (fold, horizon): train and test windows of the "
            "walk-forward and train_label_end, the day the last training label is known "
            "(<= test_start), table ml.forecast_folds. horizon_days counts bars.",
            metadata={"table": tables.FORECAST_FOLDS},
        ),
        dg.AssetSpec(
            "forecast_evaluation",
            deps=INPUT_DEPS,
            kinds={"duckdb"},
            description="One row per symbol (and ALL) and horizon: MAPE of the implied price "
            "vs the naive forecast, improvement %, directional accuracy, rank IC, q10-q90 "
            "coverage, pinball loss, n, table ml.forecast_evaluation.",
            metadata={"table": tables.FORECAST_EVALUATION},
        ),
    ]
)
def forecast_walk_forward(
    context: dg.AssetExecutionContext,
    config: ForecastSettings,
    warehouse_resource: WarehouseResource,
    settings: dg.ResourceParam[Settings],
):
    """Walk-forward evaluation of the CatBoost quantile model for every horizon; folds whose
    inputs are unchanged are read back from the fold cache (``ForecastSettings.fold_cache``)."""
    from portfolio_pipeline.forecasting.evaluation import evaluate_forecasts
    from portfolio_pipeline.forecasting.walkforward import walk_forward_horizons

    with warehouse_resource.connect() as con:
        ohlcv, features, sentiment = _inputs(con, config)
    model_config = _config(config, ohlcv, settings)
    first_test = _first_test_start(config, ohlcv, settings)
    # Every (horizon, fold) fit is one task of a single batch: Ray tasks with
    # PORTFOLIO_PIPELINE_PARALLEL=ray or RAY_ADDRESS (common.parallel), else a loop here.
    backtest, fold_frame = walk_forward_horizons(
        features,
        ohlcv,
        config.horizons,
        sentiment=sentiment,
        config=model_config,
        first_test_start=first_test,
        retrain_every_days=config.retrain_every_days,
        # Point-in-time: forecasts at every date, realized null where not known yet, so
        # the DRL and forecast_mv see in training what they see live.
        include_unlabelled=True,
        fold_cache_dir=_fold_cache_dir(config, settings),
    )
    for horizon, n_folds in fold_frame.group_by("horizon_days").len().sort("horizon_days").rows():
        context.log.info(f"H={horizon}: {n_folds} folds")
    evaluation = evaluate_forecasts(backtest, ohlcv)
    with warehouse_resource.connect() as con:
        warehouse.replace_table(con, tables.FORECAST_BACKTEST, backtest)
        warehouse.replace_table(con, tables.FORECAST_FOLDS, fold_frame)
        warehouse.replace_table(con, tables.FORECAST_EVALUATION, evaluation)
    benchmark = model_config.market_symbol
    yield dg.MaterializeResult(
        asset_key="forecast_backtest",
        metadata=_backtest_metadata(backtest, config.horizons, model_config),
    )
    yield dg.MaterializeResult(
        asset_key="forecast_folds",
        metadata=table_metadata(fold_frame, tables.FORECAST_FOLDS, preview_rows=30),
    )
    yield dg.MaterializeResult(
        asset_key="forecast_evaluation",
        metadata=_evaluation_metadata(evaluation, benchmark),
    )


@dg.asset(
    deps=INPUT_DEPS,
    kinds={"catboost", "duckdb"},
    metadata={"table": tables.RETURN_FORECASTS},
)
def return_forecasts(
    context: dg.AssetExecutionContext,
    config: ForecastSettings,
    warehouse_resource: WarehouseResource,
    settings: dg.ResourceParam[Settings],
):
    """One row per (as_of, symbol, horizon): q10/q50/q90 of the log return over the next H
    bars (``horizon_days`` counts bars of the symbol's calendar: crypto days, equity sessions),
    predicted at the latest market day by a model trained on everything labelled up to
    then, for every symbol still trading (delisted symbols have no row), table
    ``ml.return_forecasts`` (history kept per as_of). Each model is saved under
    ``data/models/`` and registered in ``ml.model_registry``."""
    from portfolio_pipeline.forecasting.model import fit_final_models, predict_latest
    from portfolio_pipeline.forecasting.registry import feature_importance, registry_row, save_model

    with warehouse_resource.connect() as con:
        ohlcv, features, sentiment = _inputs(con, config)
        evaluation = (
            warehouse.read_table(con, tables.FORECAST_EVALUATION)
            if warehouse.table_exists(con, tables.FORECAST_EVALUATION)
            else None
        )
    model_config = _config(config, ohlcv, settings)
    as_of = features["date"].max()
    frames, registry, importance_md = [], [], {}
    models = fit_final_models(
        features, ohlcv, config.horizons, sentiment=sentiment, config=model_config
    )
    for horizon, model in zip(config.horizons, models, strict=True):
        frames.append(predict_latest(model, features, ohlcv, as_of, sentiment=sentiment))
        path = save_model(model, settings.models_dir / "forecasts")
        metrics = {}
        if evaluation is not None:
            row = evaluation.filter(
                (pl.col("symbol") == "ALL") & (pl.col("horizon_days") == horizon)
            )
            metrics = row.drop("symbol").to_dicts()[0] if row.height else {}
        registry.append(registry_row(model, path, metrics=metrics))
        top = feature_importance(model).head(15)
        importance_md[f"feature_importance_h{horizon}"] = dg.MetadataValue.md(
            preview_markdown(top, 15)
        )
        context.log.info(f"H={horizon}: model {model.model_version} saved to {path}")
    frame = pl.concat(frames)
    with warehouse_resource.connect() as con:
        warehouse.replace_rows(
            con, tables.RETURN_FORECASTS, frame, where="as_of = ?", params=(as_of,)
        )
        _registry(con, registry)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(frame, tables.RETURN_FORECASTS, date_column="as_of", preview_rows=25),
            **importance_md,
            "model_versions": ", ".join(r["model_version"] for r in registry),
        }
    )


@dg.asset(
    deps=INPUT_DEPS,
    kinds={"catboost", "duckdb"},
    metadata={"table": tables.VOLATILITY_FORECASTS},
)
def volatility_forecasts(
    context: dg.AssetExecutionContext,
    config: ForecastSettings,
    warehouse_resource: WarehouseResource,
    settings: dg.ResourceParam[Settings],
):
    """One row per (as_of, symbol): annualised realized volatility forecast over the next H
    bars (CatBoost, same inputs and machinery as the return model) next to the trailing
    volatility, for the risk reports, table ``ml.volatility_forecasts`` (history kept per
    as_of). Its walk-forward accuracy against the trailing-volatility forecast is in
    ``ml.volatility_evaluation``."""
    from portfolio_pipeline.forecasting.evaluation import evaluate_volatility_forecasts
    from portfolio_pipeline.forecasting.registry import registry_row, save_model
    from portfolio_pipeline.forecasting.volatility import predict_volatility
    from portfolio_pipeline.forecasting.walkforward import walk_forward_volatility_and_model

    horizon = config.volatility_horizon
    with warehouse_resource.connect() as con:
        ohlcv, features, sentiment = _inputs(con, config)
    model_config = _config(config, ohlcv, settings)
    as_of = features["date"].max()
    backtest, _, model = walk_forward_volatility_and_model(
        features,
        ohlcv,
        horizon,
        sentiment=sentiment,
        config=model_config,
        first_test_start=_first_test_start(config, ohlcv, settings),
        retrain_every_days=config.retrain_every_days,
        fold_cache_dir=_fold_cache_dir(config, settings),
    )
    evaluation = evaluate_volatility_forecasts(backtest)
    frame = predict_volatility(model, features, ohlcv, as_of, sentiment=sentiment)
    path = save_model(model, settings.models_dir / "volatility")
    overall = evaluation.filter(pl.col("symbol") == "ALL")
    row = registry_row(
        model, path, metrics=overall.drop("symbol").to_dicts()[0] if overall.height else {}
    )
    with warehouse_resource.connect() as con:
        warehouse.replace_rows(
            con, tables.VOLATILITY_FORECASTS, frame, where="as_of = ?", params=(as_of,)
        )
        warehouse.replace_table(con, tables.VOLATILITY_EVALUATION, evaluation)
        _registry(con, [row])
    context.log.info(f"volatility model {model.model_version} trained at {datetime.now(UTC)}")
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                frame, tables.VOLATILITY_FORECASTS, date_column="as_of", preview_rows=25
            ),
            "evaluation": dg.MetadataValue.md(preview_markdown(evaluation, 25)),
            "model_version": model.model_version,
            "periods_per_year": model_config.periods_per_year,  # annualises vol_forecast
            "horizon_unit": "bars of each symbol's calendar",
        }
    )
