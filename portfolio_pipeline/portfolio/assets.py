"""Holdings, strategy targets, backtests, risk and rebalancing recommendations."""

from datetime import date

import dagster as dg
import polars as pl

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.market.context import market_context
from portfolio_pipeline.market.windows import (
    EvaluationWindows,
    windows_from_settings,
)
from portfolio_pipeline.metadata import png_markdown, preview_markdown, table_metadata, table_specs
from portfolio_pipeline.portfolio import backtest as bt
from portfolio_pipeline.portfolio.holdings import load_holdings
from portfolio_pipeline.settings import Settings
from portfolio_pipeline.warehouse.resources import WarehouseResource


class PortfolioConfig(dg.Config):
    """Backtest and recommendation settings (editable in the Dagster launchpad). Window
    bounds left blank come from the data and the PORTFOLIO_PIPELINE_* window settings
    (market.windows: test = last 2 years, validation = the year before)."""

    rebalance: str = "weekly"
    cost_bps: float = 10.0
    validation_start: str = ""
    validation_end: str = ""
    test_start: str = ""
    test_end: str = ""
    sensitivity_rebalances: list[str] = ["daily", "weekly", "monthly"]
    sensitivity_costs_bps: list[float] = list(bt.DEFAULT_SENSITIVITY_COSTS_BPS)
    forecast_horizon_days: int = 8


def read_optional_table(con, table: str, where: str = "", params=()) -> pl.DataFrame | None:
    if not warehouse.table_exists(con, table):
        return None
    frame = con.execute(f"select * from {table} {where}", list(params)).pl()
    return frame if frame.height else None


def read_ohlcv(con) -> pl.DataFrame:
    return warehouse.read_table(con, tables.RAW_OHLCV).select(
        "symbol", "date", "open", "high", "low", "close", "volume", "quote_volume"
    )


def build_backtest_strategies(forecasts: pl.DataFrame | None, policy_weights: pl.DataFrame | None):
    from portfolio_pipeline.portfolio.strategies import build_strategies

    external = {}
    if policy_weights is not None:
        for name, frame in policy_weights.partition_by("strategy", as_dict=True).items():
            external[name[0]] = frame.select("as_of", "symbol", "weight")
    # The DRL policy decides every day: its backtest trades daily whatever the run's frequency,
    # so it replays exactly what ml.policy_evaluation scored.
    return build_strategies(
        forecasts=forecasts, external_weights=external, external_rebalance="daily"
    )


def evaluation_windows(ohlcv: pl.DataFrame, settings, config: PortfolioConfig) -> EvaluationWindows:
    """Windows from the data; launchpad bounds win over PORTFOLIO_PIPELINE_* settings."""
    launchpad = {
        name: getattr(config, name)
        for name in ("validation_start", "validation_end", "test_start", "test_end")
    }
    return windows_from_settings(
        ohlcv.get_column("date").unique().to_list(), settings, launchpad=launchpad
    )


def read_policy_weights(con) -> pl.DataFrame | None:
    return read_optional_table(con, tables.POLICY_WEIGHTS)


def read_derived_from(con, policy_weights: pl.DataFrame | None) -> dict[str, str]:
    """Each residual DRL strategy in ``policy_weights`` -> the base strategy it tilts, from
    the registry rows of its deployed ensemble (``policy_id`` = ``ensemble_id``)."""
    registry = read_optional_table(con, tables.POLICY_REGISTRY)
    if policy_weights is None or registry is None:
        return {}
    if not {"base_strategy", "ensemble_id"} <= set(registry.columns):
        return {}  # a registry from before residual policies: no strategy is built on another
    bases = (
        registry.filter(pl.col("base_strategy").is_not_null())
        .select(pl.col("ensemble_id").alias("policy_id"), "base_strategy")
        .unique()
    )
    pairs = policy_weights.select("strategy", "policy_id").unique().join(bases, on="policy_id")
    return dict(zip(pairs["strategy"].to_list(), pairs["base_strategy"].to_list(), strict=True))


@dg.asset(kinds={"duckdb", "polars"}, metadata={"table": tables.HOLDINGS})
def holdings(warehouse_resource: WarehouseResource, settings: dg.ResourceParam[Settings]):
    """One row per held symbol (cash as ``USDT``): quantity, from ``data/holdings.csv``, table
    ``portfolio.holdings``. Unknown symbols, negative or non-numeric quantities and duplicates
    fail with the file, line and symbol."""
    frame = load_holdings(settings.holdings_path, settings.symbols, settings.cash_symbol)
    with warehouse_resource.connect() as con:
        warehouse.replace_table(con, tables.HOLDINGS, frame)
    return dg.MaterializeResult(
        metadata={**table_metadata(frame, tables.HOLDINGS), "file": str(settings.holdings_path)}
    )


BACKTEST_DEPS = ["raw_ohlcv", "forecast_backtest", "policy_weights"]
BACKTEST_OUTPUTS = {  # asset -> (table, description)
    "backtest_metrics": (
        tables.BACKTEST_METRICS,
        "One row per strategy: return, CAGR, volatility, Sharpe, Sortino, max drawdown, "
        "Calmar, turnover, VaR/CVaR over the held-out test window with costs.",
    ),
    "backtest_equity": (
        tables.BACKTEST_EQUITY,
        "One row per strategy and day of the test window: equity, daily return, turnover, "
        "cost and weights.",
    ),
    "backtest_sensitivity": (
        tables.BACKTEST_SENSITIVITY,
        "One row per strategy x rebalancing frequency x cost level: the same metrics.",
    ),
    "strategy_validation": (
        tables.STRATEGY_VALIDATION,
        "One row per strategy: metrics over the validation window (before the test window); "
        "the best Sharpe here feeds the recommendations, never the test window.",
    ),
}


@dg.multi_asset(specs=table_specs(BACKTEST_OUTPUTS, deps=BACKTEST_DEPS, kinds={"duckdb"}))
def backtests(
    context: dg.AssetExecutionContext,
    config: PortfolioConfig,
    warehouse_resource: WarehouseResource,
    settings: dg.ResourceParam[Settings],
):
    """Walk-forward backtests of every strategy with costs: validation window (strategy
    selection) and held-out test window, plus the frequency x cost sensitivity grid.

    Read the prices, forecasts and policy weights; run ``portfolio.backtest.run_windowed_backtests``;
    write the four tables; describe them."""
    from portfolio_pipeline.portfolio.strategies import MarketPanel

    with warehouse_resource.connect() as con:
        ohlcv = read_ohlcv(con)
        forecasts = read_optional_table(
            con, tables.FORECAST_BACKTEST, "where horizon_days = ?", (config.forecast_horizon_days,)
        )
        policy_weights = read_policy_weights(con)
        strategies = build_backtest_strategies(forecasts, policy_weights)
        derived_from = read_derived_from(con, policy_weights)
    market = market_context(ohlcv, settings)
    windows = evaluation_windows(ohlcv, settings, config)
    # One panel for both windows (strategies only read rows <= their decision day); it
    # carries the cash symbol into every weight frame.
    panel = MarketPanel.from_ohlcv(
        ohlcv.filter(pl.col("date") <= windows.test_end), cash_symbol=settings.cash_symbol
    )
    context.log.info(
        f"backtesting {len(strategies)} strategies: {', '.join(s.name for s in strategies)}; "
        f"windows {windows.as_metadata()}, {market.calendar.periods_per_year} periods/year"
    )
    result = bt.run_windowed_backtests(
        panel,
        strategies,
        windows,
        config.rebalance,
        config.cost_bps,
        sensitivity_rebalances=config.sensitivity_rebalances,
        sensitivity_costs_bps=config.sensitivity_costs_bps,
        periods_per_year=market.calendar.periods_per_year,
        derived_from=derived_from,
    )
    with warehouse_resource.connect() as con:
        warehouse.replace_table(con, tables.BACKTEST_METRICS, result.test.metrics)
        warehouse.replace_table(con, tables.BACKTEST_EQUITY, result.test.equity)
        warehouse.replace_table(con, tables.BACKTEST_SENSITIVITY, result.test.sensitivity)
        warehouse.replace_table(con, tables.STRATEGY_VALIDATION, result.validation_metrics)
    yield from _describe_backtests(result, windows, market)


def _describe_backtests(result: bt.WindowedBacktests, windows: EvaluationWindows, market):
    """One MaterializeResult per backtest table: previews, the equity plot, the choice."""
    test = result.test
    plot = png_markdown(bt.plot_equity_curves(test.equity, title="Test window"), "equity")
    yield dg.MaterializeResult(
        asset_key="backtest_metrics",
        metadata={
            **table_metadata(
                test.metrics.sort("sharpe", descending=True),
                tables.BACKTEST_METRICS,
                preview_rows=20,
            ),
            "equity_and_drawdown": plot,
            "selected_strategy": result.selected,
            **windows.as_metadata(),
            **market.as_metadata(),
        },
    )
    yield dg.MaterializeResult(
        asset_key="backtest_equity",
        metadata={
            **table_metadata(
                test.equity.drop("weights"), tables.BACKTEST_EQUITY, date_column="date"
            ),
            "equity_and_drawdown": plot,
        },
    )
    summary = ("strategy", "rebalance", "cost_bps", "total_return", "sharpe", "max_drawdown")
    yield dg.MaterializeResult(
        asset_key="backtest_sensitivity",
        metadata=table_metadata(
            test.sensitivity.select(*summary, "turnover"),
            tables.BACKTEST_SENSITIVITY,
            preview_rows=40,
        ),
    )
    yield dg.MaterializeResult(
        asset_key="strategy_validation",
        metadata={
            **table_metadata(
                result.validation_metrics.sort("sharpe", descending=True),
                tables.STRATEGY_VALIDATION,
                preview_rows=20,
            ),
            "selected_strategy": result.selected,
        },
    )


@dg.asset(
    deps=["raw_ohlcv", "return_forecasts", "policy_weights"],
    kinds={"duckdb", "polars"},
    metadata={"table": tables.TARGET_WEIGHTS},
)
def target_weights(
    context: dg.AssetExecutionContext,
    warehouse_resource: WarehouseResource,
    settings: dg.ResourceParam[Settings],
):
    """One row per (as_of, strategy, symbol): each strategy's target weights (cash ``USDT``
    included, summing to 1) for the latest market day ``as_of``, decided at ``decided_at``:
    the first trading day of the current week (targets are refreshed weekly, like the
    backtests), from data up to that day only. Table ``portfolio.target_weights``. History
    is kept: a re-run replaces only its own as_of."""
    from portfolio_pipeline.portfolio.strategies import compute_target_weights

    with warehouse_resource.connect() as con:
        ohlcv = read_ohlcv(con)
        as_of = ohlcv["date"].max()
        # the same horizon as the backtests' forecast_mv, so the live weights are the ones tested
        forecasts = read_optional_table(
            con,
            tables.RETURN_FORECASTS,
            "where as_of <= ? and horizon_days = ?",
            (as_of, PortfolioConfig().forecast_horizon_days),
        )
        policy_weights = read_policy_weights(con)
        strategies = build_backtest_strategies(forecasts, policy_weights)
        # re-decided on the first trading day of each period (weekly), exactly as the
        # recommendation backtest replays it; later days of the period keep that target
        dates = ohlcv.get_column("date").unique().sort().to_numpy().astype("datetime64[D]")
        refresh_row = bt.period_start_row(dates, len(dates) - 1, bt.DEFAULT_TARGET_REFRESH)
        decided_at = dates[refresh_row].astype(date)
        frame = compute_target_weights(
            ohlcv, strategies, decided_at, cash_symbol=settings.cash_symbol
        ).with_columns(pl.lit(as_of).alias("as_of"), pl.lit(decided_at).alias("decided_at"))
        warehouse.replace_rows(
            con, tables.TARGET_WEIGHTS, frame, where="as_of = ?", params=(as_of,)
        )
    wide = (
        frame.filter(pl.col("weight") > 1e-4)
        .pivot(on="strategy", index="symbol", values="weight")
        .sort("symbol")
    )
    return dg.MaterializeResult(
        metadata={
            **table_metadata(frame, tables.TARGET_WEIGHTS, date_column="as_of"),
            "as_of": str(as_of),
            "decided_at": str(decided_at),
            "weights_by_strategy": dg.MetadataValue.md(preview_markdown(wide, rows=40)),
        }
    )
