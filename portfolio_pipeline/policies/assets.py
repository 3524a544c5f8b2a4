"""Deep-RL allocation policies: Ray Tune search, multi-seed retraining, registry, weights."""

import os
from datetime import date, timedelta

import dagster as dg
import polars as pl

from portfolio_pipeline import tables
from portfolio_pipeline.core import warehouse
from portfolio_pipeline.core.market import market_context
from portfolio_pipeline.core.windows import windows_from_settings
from portfolio_pipeline.metadata import png_markdown, preview_markdown, table_metadata
from portfolio_pipeline.resources import WarehouseResource
from portfolio_pipeline.settings import Settings


class PolicySettings(dg.Config):
    """``profile``: ``quick`` (default via PORTFOLIO_PIPELINE_PROFILE) or ``full``. Windows
    are half-open: train [train_start, train_end), validation [train_end, val_end), test
    [val_end, test_end); blank = from the data and the PORTFOLIO_PIPELINE_* window settings
    (core.windows: test = last 2 years, validation = the year before). Inside the training
    window, policies learn on [train_start, tune_start) and the search and the seed choice use
    [tune_start, train_end) (blank tune_start = one year before train_end), so the validation
    window, where the recommendation strategy is chosen, is unseen by the DRL. With
    ``use_forecasts`` the training window starts no earlier than the first out-of-sample
    forecast, so the forecast channels are never blank in training. ``total_timesteps``,
    ``report_every``, ``samples_per_algorithm``, ``algorithms`` and ``n_envs`` override the
    profile's budget when set (0 / empty = the profile's own)."""

    profile: str = ""
    seeds: list[int] = [0, 1, 2]
    train_start: str = ""
    tune_start: str = ""
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
    n_envs: int = 0


def policy_profile(config: PolicySettings, default_profile: str):
    """The tuning profile named by the config (or the default) with its budget overrides."""
    from portfolio_pipeline.core.tuning import PROFILES, with_budget

    name = config.profile or default_profile
    if name not in PROFILES:
        raise ValueError(f"profile {name!r} is not one of {', '.join(PROFILES)}")
    changes: dict = {}
    if config.total_timesteps:
        changes["total_timesteps"] = config.total_timesteps
    if config.report_every:
        changes["report_every"] = config.report_every
    if config.samples_per_algorithm:
        changes["samples_per_algorithm"] = config.samples_per_algorithm
    if config.algorithms:
        changes["algorithms"] = tuple(a.upper() for a in config.algorithms)
    if config.n_envs:
        changes["n_envs"] = config.n_envs
    profile = with_budget(name, **changes)
    if profile.report_every > profile.total_timesteps:
        profile = with_budget(profile, report_every=profile.total_timesteps)
    return profile


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
    from portfolio_pipeline.core.plots import figure_png, pyplot

    plt = pyplot()

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
    return figure_png(fig)


@dg.asset(
    deps=["raw_ohlcv", "market_features", "daily_sentiment", "forecast_backtest"],
    kinds={"ray", "pytorch", "duckdb"},
    metadata={"table": tables.POLICY_REGISTRY},
)
def drl_policy(
    context: dg.AssetExecutionContext,
    config: PolicySettings,
    warehouse_resource: WarehouseResource,
    settings: dg.ResourceParam[Settings],
):
    """One ``ml.policy_registry`` row per seed: a stable-baselines3 policy (PPO, A2C, SAC or
    DDPG) whose algorithm and hyperparameters were chosen by a Ray Tune search (ASHA) on the
    Sharpe net of costs over the tune window (the last part of the training window),
    retrained with several seeds and scored on the validation and held-out test windows,
    which no DRL choice looked at, next to equal weight and buy-and-hold of the benchmark
    (reference ``buy_btc``: BTCUSDT for crypto, else PORTFOLIO_PIPELINE_BENCHMARK or the
    largest traded value).

    Also writes the search trials (``ml.policy_search_trials``), the comparison
    (``ml.policy_evaluation``) and the daily target weights of the seed with the best
    TUNE-window Sharpe (``ml.policy_weights``, strategy ``drl_<algorithm>``), which the
    backtests (rebalanced daily, as the policy acts) and recommendations use. Device: cuda
    when available, recorded per row."""
    from portfolio_pipeline.core.deployment import policy_splits, search_train_deploy
    from portfolio_pipeline.core.env import build_env_data

    profile = policy_profile(config, settings.profile)
    with warehouse_resource.connect() as con:
        ohlcv = warehouse.read_table(con, tables.RAW_OHLCV)
        features = warehouse.read_table(con, tables.MARKET_FEATURES)
        sentiment = (
            warehouse.read_frame(
                con, f"select * from {tables.DAILY_SENTIMENT} where symbol <> 'MARKET'"
            ).select("symbol", "date", "sentiment_ewm", "news_count", "market_sentiment_ewm")
            if config.use_sentiment and warehouse.table_exists(con, tables.DAILY_SENTIMENT)
            else None
        )
        forecasts = (
            warehouse.read_frame(
                con,
                f"select * from {tables.FORECAST_BACKTEST} where horizon_days = ?",
                (config.forecast_horizon,),
            )
            if config.use_forecasts and warehouse.table_exists(con, tables.FORECAST_BACKTEST)
            else None
        )
    if forecasts is not None and forecasts.is_empty():
        forecasts = None
    market = market_context(ohlcv, settings)
    windows = windows_from_settings(
        ohlcv.get_column("date").unique().to_list(), settings, launchpad=_launchpad(config)
    )
    splits = policy_splits(
        windows,
        forecasts["as_of"].min() if forecasts is not None else None,
        date.fromisoformat(config.tune_start) if config.tune_start else None,
    )
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
        f"policy search ({profile.name}: {len(profile.algorithms)} algorithms x "
        f"{profile.samples_per_algorithm} samples x {profile.total_timesteps} timesteps, "
        f"{profile.n_envs} envs) on {len(env_data.symbols)} assets, fit {splits.fit}, "
        f"tune {splits.tune}, validation {splits.validation}, test {splits.test}, "
        f"forecasts={'yes' if forecasts is not None else 'no'}, "
        f"ray={'cluster ' + os.environ['RAY_ADDRESS'] if os.environ.get('RAY_ADDRESS') else 'local'}"
    )
    result = search_train_deploy(
        env_data,
        splits,
        profile,
        models_dir=settings.models_dir,
        seeds=config.seeds,
        num_cpus=config.num_cpus,
        periods_per_year=market.calendar.periods_per_year,
        benchmark_symbol=market.benchmark.symbol,
        log=context.log.info,
    )
    registry, trials, deployed = result.registry, result.trials, result.deployed
    with warehouse_resource.connect() as con:
        warehouse.append_rows(con, tables.POLICY_REGISTRY, registry)
        warehouse.append_rows(con, tables.POLICY_SEARCH_TRIALS, trials)
        warehouse.replace_table(con, tables.POLICY_EVALUATION, result.comparison)
        warehouse.replace_table(con, tables.POLICY_WEIGHTS, result.weights)
    test = result.comparison.filter(pl.col("window") == "test").select(
        "name", "kind", "seed", "sharpe", "total_return", "mean_turnover"
    )
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                registry.select(
                    "policy_id",
                    "algorithm",
                    "seed",
                    "deployed",
                    "tune_sharpe",
                    "val_sharpe",
                    "test_sharpe",
                    "total_timesteps",
                    "device",
                    "artifact_path",
                ),
                tables.POLICY_REGISTRY,
            ),
            "search_trials": dg.MetadataValue.md(
                preview_markdown(
                    trials.select("trial_id", "algorithm", "tune_sharpe", "timesteps", "status"),
                    40,
                )
            ),
            "test_window_comparison": dg.MetadataValue.md(preview_markdown(test, 20)),
            "test_equity": png_markdown(_plot_test_equity(result.test_returns), "test equity"),
            "search_wall_seconds": round(result.search_wall_seconds, 1),
            "profile": profile.name,
            "deployed_policy": deployed["policy_id"],
            "deployed_strategy_name": result.strategy,
            "device": str(deployed["device"]),
            **windows.as_metadata(),
            **market.as_metadata(),
        }
    )
