"""Deep-RL allocation policies: Ray Tune search, multi-seed retraining, registry, weights."""

import os
from dataclasses import replace
from datetime import date, timedelta

import dagster as dg
import polars as pl

from portfolio_pipeline.core import warehouse
from portfolio_pipeline.core.market import market_context
from portfolio_pipeline.core.windows import windows_from_settings
from portfolio_pipeline.metadata import png_markdown, preview_markdown, table_metadata
from portfolio_pipeline.resources import WarehouseResource
from portfolio_pipeline.settings import load_settings

RAW_OHLCV_TABLE = "market.raw_ohlcv"
FEATURES_TABLE = "features.market_features"
DAILY_SENTIMENT_TABLE = "features.daily_sentiment"
FORECAST_BACKTEST_TABLE = "ml.forecast_backtest"
REGISTRY_TABLE = "ml.policy_registry"
TRIALS_TABLE = "ml.policy_search_trials"
EVALUATION_TABLE = "ml.policy_evaluation"
WEIGHTS_TABLE = "ml.policy_weights"


class PolicySettings(dg.Config):
    """``profile``: ``quick`` (default via PORTFOLIO_PIPELINE_PROFILE) or ``full``. Windows
    are half-open: train [train_start, train_end), validation [train_end, val_end), test
    [val_end, test_end); blank = from the data and the PORTFOLIO_PIPELINE_* window settings
    (core.windows: test = last 2 years, validation = the year before). With
    ``use_forecasts`` the training window starts no earlier than the first out-of-sample
    forecast, so the forecast channels are never blank in training."""

    profile: str = ""
    seeds: list[int] = [0, 1, 2]
    train_start: str = ""
    train_end: str = ""
    val_end: str = ""
    test_end: str = ""
    use_forecasts: bool = True
    use_sentiment: bool = True
    forecast_horizon: int = 8
    num_cpus: int = 2
    # Budget overrides of the profile (0 = the profile's own), for small runs and tests.
    total_timesteps: int = 0
    report_every: int = 0
    samples_per_algorithm: int = 0
    algorithms: list[str] = []


def _launchpad(config: PolicySettings) -> dict[str, object]:
    """Half-open launchpad bounds -> inclusive window overrides (blank = from the data)."""
    day = timedelta(days=1)
    bounds = {
        "train_start": config.train_start and date.fromisoformat(config.train_start),
        "validation_start": config.train_end and date.fromisoformat(config.train_end),
        "test_start": config.val_end and date.fromisoformat(config.val_end),
        "test_end": config.test_end and date.fromisoformat(config.test_end) - day,
    }
    return {name: value for name, value in bounds.items() if value}


def _plot_test_equity(test_returns: pl.DataFrame) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    for (name,), frame in test_returns.sort("date").partition_by("name", as_dict=True).items():
        equity = (1 + frame["net_return"]).cum_prod()
        ax.plot(
            frame["date"].to_list(),
            equity.to_list(),
            label=name,
            linewidth=2 if name in ("equal_weight", "buy_btc") else 1,
        )
    ax.set_title("DRL policies vs equal weight and buy-and-hold benchmark, test window, net")
    ax.set_ylabel("equity")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


@dg.asset(
    group_name="policies",
    deps=["raw_ohlcv", "market_features", "daily_sentiment", "forecast_backtest"],
    kinds={"ray", "pytorch", "duckdb"},
    metadata={"table": REGISTRY_TABLE},
)
def drl_policy(
    context: dg.AssetExecutionContext, config: PolicySettings, warehouse_resource: WarehouseResource
):
    """One ``ml.policy_registry`` row per seed: a stable-baselines3 policy (PPO, A2C, SAC or
    DDPG) whose algorithm and hyperparameters were chosen by a Ray Tune search (ASHA) on the
    validation-window Sharpe net of costs, retrained with several seeds and scored on a
    held-out test window the search never saw, next to equal weight and buy-and-hold of the
    benchmark (reference ``buy_btc``: BTCUSDT for crypto, else PORTFOLIO_PIPELINE_BENCHMARK or
    the largest traded value).

    Also writes the search trials (``ml.policy_search_trials``), the comparison
    (``ml.policy_evaluation``) and the daily target weights of the seed with the best
    VALIDATION Sharpe (``ml.policy_weights``, strategy ``drl_<algorithm>``), which the
    backtests and recommendations use. Device: cuda when available, recorded per row."""
    from portfolio_pipeline.core.drl import Splits, TrainedPolicy, policy_target_weights
    from portfolio_pipeline.core.env import build_env_data
    from portfolio_pipeline.core.tuning import (
        run_policy_search,
        train_best_with_seeds,
    )

    settings = load_settings()
    profile = config.profile or settings.profile
    with warehouse_resource.connect() as con:
        ohlcv = warehouse.read_table(con, RAW_OHLCV_TABLE)
        features = warehouse.read_table(con, FEATURES_TABLE)
        sentiment = (
            warehouse.read_frame(
                con, f"select * from {DAILY_SENTIMENT_TABLE} where symbol <> 'MARKET'"
            ).select("symbol", "date", "sentiment_ewm", "news_count", "market_sentiment_ewm")
            if config.use_sentiment and warehouse.table_exists(con, DAILY_SENTIMENT_TABLE)
            else None
        )
        forecasts = (
            warehouse.read_frame(
                con,
                f"select * from {FORECAST_BACKTEST_TABLE} where horizon_days = ?",
                (config.forecast_horizon,),
            )
            if config.use_forecasts and warehouse.table_exists(con, FORECAST_BACKTEST_TABLE)
            else None
        )
    market = market_context(ohlcv, settings)
    windows = windows_from_settings(
        ohlcv.get_column("date").unique().to_list(), settings, launchpad=_launchpad(config)
    )
    splits = Splits.from_windows(windows)
    if forecasts is not None and forecasts.height:
        splits = replace(splits, train_start=max(splits.train_start, forecasts["as_of"].min()))
    env_data = build_env_data(
        ohlcv,
        features,
        forecasts=forecasts,
        sentiment=sentiment,
        forecast_horizon=config.forecast_horizon if forecasts is not None else None,
        cash_symbol=settings.cash_symbol,
        benchmark_symbol=market.benchmark.symbol,
    )
    context.log.info(
        f"policy search ({profile}) on {len(env_data.symbols)} assets, train {splits.train}, "
        f"validation {splits.validation}, test {splits.test}, "
        f"forecasts={'yes' if forecasts is not None else 'no'}, "
        f"ray={'cluster ' + os.environ['RAY_ADDRESS'] if os.environ.get('RAY_ADDRESS') else 'local'}"
    )
    search = run_policy_search(
        env_data,
        settings.models_dir / "ray_results",
        profile=profile,
        splits=splits,
        num_cpus=config.num_cpus,
        periods_per_year=market.calendar.periods_per_year,
    )
    context.log.info(
        f"search took {search.wall_seconds:.1f}s; best {search.best_config['algorithm']} "
        f"val Sharpe {search.best_val_sharpe:.3f}"
    )
    seeds = train_best_with_seeds(
        search.best_config,
        env_data,
        seeds=tuple(config.seeds),
        splits=splits,
        artifact_dir=settings.models_dir / "policies",
        periods_per_year=market.calendar.periods_per_year,
    )
    # The annualisation of val/test Sharpe and the buy-and-hold reference, next to them.
    registry = seeds.registry.with_columns(
        pl.lit(market.calendar.periods_per_year).alias("periods_per_year"),
        pl.lit(market.benchmark.symbol).alias("benchmark"),
    )
    deployed = registry.sort("val_sharpe", descending=True).row(0, named=True)
    strategy = f"drl_{str(deployed['algorithm']).lower()}"
    weights = policy_target_weights(
        TrainedPolicy.load(deployed["artifact_path"]), env_data, (splits.train_end, None)
    ).with_columns(
        pl.lit(strategy).alias("strategy"), pl.lit(deployed["policy_id"]).alias("policy_id")
    )
    search_id = os.path.basename(search.storage_path)
    trials = search.trials.with_columns(
        pl.lit(search_id).alias("search_id"),
        pl.lit(profile).alias("profile"),
        pl.lit(search.wall_seconds).alias("search_wall_seconds"),
    )
    with warehouse_resource.connect() as con:
        warehouse.append_rows(con, REGISTRY_TABLE, registry)
        warehouse.append_rows(con, TRIALS_TABLE, trials)
        warehouse.replace_table(
            con,
            EVALUATION_TABLE,
            seeds.comparison.with_columns(
                pl.lit(market.calendar.periods_per_year).alias("periods_per_year")
            ),
        )
        warehouse.replace_table(con, WEIGHTS_TABLE, weights)
    test = seeds.comparison.filter(pl.col("window") == "test").select(
        "name", "kind", "seed", "sharpe", "total_return", "mean_turnover"
    )
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                registry.select(
                    "policy_id",
                    "algorithm",
                    "seed",
                    "val_sharpe",
                    "test_sharpe",
                    "device",
                    "artifact_path",
                ),
                REGISTRY_TABLE,
            ),
            "search_trials": dg.MetadataValue.md(
                preview_markdown(
                    trials.select("trial_id", "algorithm", "val_sharpe", "timesteps", "status"), 40
                )
            ),
            "test_window_comparison": dg.MetadataValue.md(preview_markdown(test, 20)),
            "test_equity": png_markdown(_plot_test_equity(seeds.test_returns), "test equity"),
            "search_wall_seconds": round(search.wall_seconds, 1),
            "profile": profile,
            "deployed_policy": deployed["policy_id"],
            "deployed_strategy_name": strategy,
            "device": str(deployed["device"]),
            **windows.as_metadata(),
            **market.as_metadata(),
        }
    )
