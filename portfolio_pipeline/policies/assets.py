"""Deep-RL allocation policies: Ray Tune search, multi-seed retraining, registry, weights."""

import os
from datetime import date, timedelta

import dagster as dg
import polars as pl

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.market.context import market_context
from portfolio_pipeline.market.windows import windows_from_settings
from portfolio_pipeline.metadata import png_markdown, preview_markdown, table_metadata, table_specs
from portfolio_pipeline.settings import Settings
from portfolio_pipeline.warehouse.resources import WarehouseResource


class PolicySettings(dg.Config):
    """``profile``: ``quick`` (default via PORTFOLIO_PIPELINE_PROFILE) or ``full``. Windows
    are half-open: train [train_start, train_end), validation [train_end, val_end), test
    [val_end, test_end); blank = from the data and the PORTFOLIO_PIPELINE_* window settings
    (market.windows: test = last 2 years, validation = the year before). Inside the training
    window, policies learn on [train_start, tune_start) and the search and the seed choice use
    [tune_start, train_end) (blank tune_start = one year before train_end), so the validation
    window, where the recommendation strategy is chosen, is unseen by the DRL. With
    ``use_forecasts`` the training window starts no earlier than the first out-of-sample
    forecast, so the forecast channels are never blank in training. ``total_timesteps``,
    ``report_every``, ``samples_per_algorithm``, ``algorithms`` and ``n_envs`` override the
    profile's budget when set (0 / empty = the profile's own); ``policy_architecture``
    (``mlp`` or ``shared_encoder``: one network shared by every asset, its size independent
    of the number of assets) overrides the profile's. With ``residual`` (default) the policy
    tilts the weights of ``base_strategy`` (blank = the strategy the backtests' validation
    selection picks among the classic ones) by at most ``residual_scale`` per entry
    (policies.residual; 0 = chosen by the search on the tune window among the profile's
    ``residual_scales``); ``seeds`` are retrained and deployed as an ensemble (the mean of
    their weights)."""

    profile: str = ""
    seeds: list[int] = [0, 1, 2, 3, 4]
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
    # "mlp" | "shared_encoder" (blank = the profile's own; policies.drl.POLICY_ARCHITECTURES).
    policy_architecture: str = ""
    residual: bool = True
    residual_scale: float = 0.0
    base_strategy: str = ""
    # The base's rebalancing and costs: keep them equal to the backtests' (PortfolioConfig
    # rebalance / cost_bps) so that the base is the strategy the backtests replay.
    base_rebalance: str = "weekly"
    base_cost_bps: float = 10.0


def policy_profile(config: PolicySettings, default_profile: str):
    """The tuning profile named by the config (or the default) with its budget overrides."""
    from portfolio_pipeline.policies.search_space import PROFILES, with_budget

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
    if config.policy_architecture:
        changes["policy_architecture"] = config.policy_architecture
    if config.residual_scale < 0:
        raise ValueError(
            f"drl_policy: residual_scale must be >= 0 (0 = searched), got {config.residual_scale}"
        )
    if config.residual:
        changes["env_kwargs"] = {**PROFILES[name].env_kwargs, "residual": True}
        if config.residual_scale > 0:
            changes["residual_scales"] = (config.residual_scale,)
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
    from portfolio_pipeline.common.plots import figure_png, pyplot
    from portfolio_pipeline.policies.evaluation import FIXED_WEIGHT_REFERENCES

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(9, 4))
    for (name,), frame in test_returns.sort("date").partition_by("name", as_dict=True).items():
        equity = (1 + frame["net_return"]).cum_prod()
        ax.plot(
            frame["date"].to_list(),
            equity.to_list(),
            label=name,
            linewidth=2 if name in FIXED_WEIGHT_REFERENCES else 1,
        )
    ax.set_title("DRL policies vs equal weight and buy-and-hold benchmark, test window, net")
    ax.set_ylabel("equity")
    ax.legend(fontsize=7)
    return figure_png(fig)


POLICY_DEPS = ["raw_ohlcv", "market_features", "daily_sentiment", "forecast_backtest"]
# asset -> (table, description). ``drl_policy`` keeps its key (the registry) so that the
# backtests and recommendations that depend on it, and run configs under ops.drl_policy,
# resolve as before.
POLICY_OUTPUTS = {
    "drl_policy": (
        tables.POLICY_REGISTRY,
        "One row per seed: a stable-baselines3 policy (PPO, A2C, SAC or DDPG) whose algorithm "
        "and hyperparameters were chosen by a Ray Tune search (ASHA) on the Sharpe net of "
        "costs over the tune window (the last part of the training window), retrained with "
        "several seeds and scored on the validation and held-out test windows, which no DRL "
        "choice looked at, next to equal weight and buy-and-hold of the benchmark (reference "
        "buy_benchmark: BTCUSDT for crypto, else PORTFOLIO_PIPELINE_BENCHMARK or the largest "
        "traded value). The deployed policy is the ensemble of every seed (each day the mean "
        "of their target weights; ensemble_id); with residual, each policy tilts the weights "
        "of a classic base strategy (base_strategy, chosen on validation). Device: cuda when "
        "available, recorded per row.",
    ),
    "policy_search_trials": (
        tables.POLICY_SEARCH_TRIALS,
        "One row per trial of each search: algorithm, params, last tune-window Sharpe, "
        "timesteps, status (COMPLETED, STOPPED_EARLY by ASHA, ERROR), device and worker.",
    ),
    "policy_evaluation": (
        tables.POLICY_EVALUATION,
        "One row per policy, the seeds' ensemble or reference (equal weight, buy-and-hold, the "
        "base strategy) x window (tune, validation, test) of the latest retraining: Sharpe, "
        "total return, mean turnover and max drawdown, net of costs.",
    ),
    "policy_weights": (
        tables.POLICY_WEIGHTS,
        "One row per as_of x symbol (cash included): the daily target weights of the deployed "
        "ensemble (strategy drl_<algorithm> or drl_residual_<algorithm>) from the decision before the validation window; the "
        "backtests (rebalanced daily, as the policy acts) and the recommendations use them.",
    ),
}


def _read_inputs(warehouse_resource: WarehouseResource, config: PolicySettings):
    """(ohlcv, features, sentiment or None, forecasts or None) from the warehouse."""
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
    return ohlcv, features, sentiment, forecasts


def _write_outputs(warehouse_resource: WarehouseResource, result) -> None:
    """Registry and trials keep their history; evaluation and weights are the latest."""
    with warehouse_resource.connect() as con:
        warehouse.append_rows(con, tables.POLICY_REGISTRY, result.registry)
        warehouse.append_rows(con, tables.POLICY_SEARCH_TRIALS, result.trials)
        warehouse.replace_table(con, tables.POLICY_EVALUATION, result.comparison)
        warehouse.replace_table(con, tables.POLICY_WEIGHTS, result.weights)


def _materialize_results(result, profile, windows, market):
    """One MaterializeResult per output spec, with its table's metadata."""
    test = result.comparison.filter(pl.col("window") == "test").select(
        "name", "kind", "seed", "sharpe", "total_return", "mean_turnover"
    )
    deployed = result.deployed
    registry_columns = (
        "policy_id", "algorithm", "seed", "deployed", "tune_sharpe", "val_sharpe",
        "test_sharpe", "total_timesteps", "device", "artifact_path",
    )  # fmt: skip
    yield dg.MaterializeResult(
        asset_key="drl_policy",
        metadata={
            **table_metadata(result.registry.select(registry_columns), tables.POLICY_REGISTRY),
            "test_window_comparison": dg.MetadataValue.md(preview_markdown(test, 20)),
            "test_equity": png_markdown(_plot_test_equity(result.test_returns), "test equity"),
            "profile": profile.name,
            "policy_architecture": profile.policy_architecture,
            "deployed_policy": deployed["policy_id"],
            "deployed_strategy_name": result.strategy,
            "device": str(deployed["device"]),
            **windows.as_metadata(),
            **market.as_metadata(),
        },
    )
    trials = result.trials.select("trial_id", "algorithm", "tune_sharpe", "timesteps", "status")
    yield dg.MaterializeResult(
        asset_key="policy_search_trials",
        metadata={
            **table_metadata(trials, tables.POLICY_SEARCH_TRIALS, preview_rows=40),
            "search_wall_seconds": round(result.search_wall_seconds, 1),
            "profile": profile.name,
        },
    )
    yield dg.MaterializeResult(
        asset_key="policy_evaluation",
        metadata={
            **table_metadata(result.comparison, tables.POLICY_EVALUATION, preview_rows=20),
            "test_window_comparison": dg.MetadataValue.md(preview_markdown(test, 20)),
        },
    )
    yield dg.MaterializeResult(
        asset_key="policy_weights",
        metadata={
            **table_metadata(result.weights, tables.POLICY_WEIGHTS, date_column="as_of"),
            "deployed_policy": deployed["policy_id"],
            "deployed_strategy_name": result.strategy,
        },
    )


def _env_data(config, settings, market, windows, splits, ohlcv, features, sentiment, forecasts):
    """The env arrays of the inputs and, for a residual policy, its base strategy's weights
    (blank ``base_strategy``: the backtests' validation choice among the classic strategies)."""
    from portfolio_pipeline.policies.env_data import build_env_data
    from portfolio_pipeline.policies.residual import with_validation_base

    env_data = build_env_data(
        ohlcv,
        features,
        forecasts=forecasts,
        sentiment=sentiment,
        forecast_horizon=config.forecast_horizon if forecasts is not None else None,
        cash_symbol=settings.cash_symbol,
        benchmark_symbol=market.benchmark.symbol,
    )
    if config.residual:
        env_data = with_validation_base(
            env_data,
            ohlcv,
            windows,
            splits.train_start,
            name=config.base_strategy,
            forecasts=forecasts,
            periods_per_year=market.calendar.periods_per_year,
            rebalance=config.base_rebalance,
            cost_bps=config.base_cost_bps,
        )
    return env_data


@dg.multi_asset(
    specs=table_specs(POLICY_OUTPUTS, deps=POLICY_DEPS, kinds={"ray", "pytorch", "duckdb"})
)
def drl_policy(
    context: dg.AssetExecutionContext,
    config: PolicySettings,
    warehouse_resource: WarehouseResource,
    settings: dg.ResourceParam[Settings],
):
    """Search, retrain and deploy a DRL policy (policies.deployment.search_train_deploy): the
    registry (``drl_policy``), the search trials, the comparison with the references and
    the deployed seed's daily target weights, one table each."""
    from portfolio_pipeline.policies.deployment import policy_splits, search_train_deploy

    profile = policy_profile(config, settings.profile)
    ohlcv, features, sentiment, forecasts = _read_inputs(warehouse_resource, config)
    market = market_context(ohlcv, settings)
    windows = windows_from_settings(
        ohlcv.get_column("date").unique().to_list(), settings, launchpad=_launchpad(config)
    )
    splits = policy_splits(
        windows,
        forecasts["as_of"].min() if forecasts is not None else None,
        date.fromisoformat(config.tune_start) if config.tune_start else None,
    )
    env_data = _env_data(
        config, settings, market, windows, splits, ohlcv, features, sentiment, forecasts
    )
    context.log.info(
        f"policy search ({profile.name}: {len(profile.algorithms)} algorithms x "
        f"{profile.samples_per_algorithm} samples x {profile.total_timesteps} timesteps, "
        f"{profile.n_envs} envs, {profile.policy_architecture} policy, "
        f"residual on {env_data.base_strategy or 'nothing'}) on "
        f"{len(env_data.symbols)} assets, fit {splits.fit}, tune {splits.tune}, validation "
        f"{splits.validation}, test {splits.test}, "
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
    _write_outputs(warehouse_resource, result)
    yield from _materialize_results(result, profile, windows, market)
