"""The recommendation process as a strategy (replayed on validation and test) and the track
record of the recommendations actually issued."""

from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.market.context import market_context
from portfolio_pipeline.market.windows import (
    EvaluationWindows,
    windows_from_settings,
    with_window_columns,
)
from portfolio_pipeline.metadata import png_markdown, preview_markdown, table_metadata, table_specs
from portfolio_pipeline.portfolio import backtest as bt
from portfolio_pipeline.portfolio.assets import (
    build_backtest_strategies,
    read_ohlcv,
    read_optional_table,
    read_policy_weights,
)
from portfolio_pipeline.portfolio.holdings import latest_prices, value_holdings
from portfolio_pipeline.recommendations.assets import RecommendationConfig, selected_strategy
from portfolio_pipeline.settings import Settings
from portfolio_pipeline.warehouse.resources import WarehouseResource

if TYPE_CHECKING:
    from portfolio_pipeline.portfolio.strategies import Strategy


class RecommendationBacktestConfig(RecommendationConfig):
    """The recommendation settings replayed, plus the windows (blank = from the data, the same
    as the backtests'), the confidence grid searched on
    the validation window, the starting portfolio value (0 = the holdings' value) and
    composition (``target``: the strategy's target on the first day, so that the processes
    differ only in how they follow it; ``holdings``: the current holdings' weights)."""

    validation_start: str = ""
    validation_end: str = ""
    test_start: str = ""
    test_end: str = ""
    confidence_grid: list[float] = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    start_value: float = 0.0
    start_from: str = "target"


SIMULATION_OUTPUTS = {  # asset -> (table, description)
    "recommendation_backtest": (
        tables.RECOMMENDATION_BACKTEST,
        "One row per (process, window, day): the recommendation process replayed day by day "
        "(target -> confidence gate -> turnover cap -> minimum notional -> costs) next to the "
        "ungated target, a 5-point no-trade band and never trading: equity, daily return, "
        "trades, turnover, cost and the wanted turnover that was refused.",
    ),
    "recommendation_backtest_metrics": (
        tables.RECOMMENDATION_BACKTEST_METRICS,
        "One row per (process, window): the metric columns of portfolio.backtest_metrics "
        "(recomputable from the daily rows), the number of trading days and the refused turnover.",
    ),
    "gate_validation": (
        tables.GATE_VALIDATION,
        "One row per gate confidence level: the recommended process's validation-window "
        "metrics; the selected row (best validation Sharpe) sets the recommendations' default.",
    ),
}


@dg.multi_asset(
    specs=table_specs(
        SIMULATION_OUTPUTS,
        deps=[
            "raw_ohlcv",
            "forecast_backtest",
            "strategy_validation",
            "holdings",
            "policy_weights",
        ],
        kinds={"duckdb"},
    )
)
def recommendation_backtest(
    context: dg.AssetExecutionContext,
    config: RecommendationBacktestConfig,
    warehouse_resource: WarehouseResource,
    settings: dg.ResourceParam[Settings],
):
    """Replays the recommendations on the validation and test windows (see the tables)."""
    from portfolio_pipeline.recommendations.confidence_grid import replay_with_confidence_grid

    with warehouse_resource.connect() as con:
        ohlcv = read_ohlcv(con)
        history = read_optional_table(
            con, tables.FORECAST_BACKTEST, "where horizon_days = ?", (config.forecast_horizon_days,)
        )
        policy_weights = read_policy_weights(con)
        strategy_name, chosen_by = selected_strategy(con, config)
        held = warehouse.read_table(con, tables.HOLDINGS)
    strategy = _replayed_strategy(strategy_name, history, policy_weights)
    start_weights, start_value = _replay_start(config, held, ohlcv, settings.cash_symbol)
    market = market_context(ohlcv, settings)
    evaluation = _evaluation_windows(config, ohlcv, settings)
    windows = {"validation": evaluation.validation, "test": evaluation.test}
    replay = replay_with_confidence_grid(
        ohlcv,
        strategy,
        history,
        windows,
        start_weights=start_weights,
        start_value=start_value,
        settings=_simulation_settings(config, market.calendar.periods_per_year, settings),
        levels=config.confidence_grid,
        configured_confidence=config.gate_confidence,
    )
    daily, metrics, gate_table = _stored_tables(replay, strategy_name, evaluation)
    with warehouse_resource.connect() as con:
        warehouse.replace_table(con, tables.RECOMMENDATION_BACKTEST, daily)
        warehouse.replace_table(con, tables.RECOMMENDATION_BACKTEST_METRICS, metrics)
        warehouse.replace_table(con, tables.GATE_VALIDATION, gate_table)
    yield from _describe_replay(
        daily,
        metrics,
        gate_table,
        strategy=strategy_name,
        run_facts={
            "strategy": strategy_name,
            "strategy_chosen_by": chosen_by,
            "gate_confidence": replay.confidence,
            "start_from": config.start_from,
            **evaluation.as_metadata(),
            "periods_per_year": market.calendar.periods_per_year,
            "start_value": start_value,
        },
        windows=list(windows),
        confidence_chosen_by="configured" if config.gate_confidence else "best validation Sharpe",
    )


def _stored_tables(
    replay, strategy_name: str, evaluation: EvaluationWindows
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The replay's daily rows, metrics and confidence grid, each naming the strategy (and the
    first two the confidence in force; the metrics also the windows' dates)."""
    context_columns = [
        pl.lit(strategy_name).alias("strategy"),
        pl.lit(replay.confidence).alias("gate_confidence"),
    ]
    daily = replay.daily.with_columns(*context_columns)
    metrics = with_window_columns(replay.metrics.with_columns(*context_columns), evaluation)
    gate_table = replay.grid.with_columns(pl.lit(strategy_name).alias("strategy"))
    return daily, metrics, gate_table


def _replayed_strategy(
    name: str, history: pl.DataFrame | None, policy_weights: pl.DataFrame | None
) -> "Strategy":
    """The fitted strategy the recommendations follow (fails on an unknown name)."""
    strategies = {s.name: s for s in build_backtest_strategies(history, policy_weights)}
    if name not in strategies:
        raise dg.Failure(f"recommendation backtest: unknown strategy {name!r}")
    return strategies[name]


def _evaluation_windows(
    config: RecommendationBacktestConfig, ohlcv: pl.DataFrame, settings: Settings
) -> EvaluationWindows:
    """The validation and test windows: the configured dates, else the backtests' (from the data)."""
    return windows_from_settings(
        ohlcv.get_column("date").unique().to_list(),
        settings,
        launchpad={
            name: getattr(config, name)
            for name in ("validation_start", "validation_end", "test_start", "test_end")
        },
    )


def _replay_start(
    config: RecommendationBacktestConfig, held: pl.DataFrame, ohlcv: pl.DataFrame, cash: str
) -> tuple[dict[str, float] | None, float]:
    """The replay's starting composition (None = the strategy's target) and value."""
    if config.start_from not in ("target", "holdings"):
        raise dg.Failure(f"start_from must be 'target' or 'holdings', got {config.start_from!r}")
    valued = value_holdings(held, latest_prices(ohlcv, ohlcv["date"].max()), cash)
    start_weights = (
        dict(valued.select("symbol", "weight").iter_rows())
        if config.start_from == "holdings"
        else None
    )
    return start_weights, config.start_value or float(valued["value"].sum())


def _simulation_settings(
    config: RecommendationBacktestConfig, periods_per_year: float, settings: Settings
):
    from portfolio_pipeline.recommendations.processes import SimulationSettings

    return SimulationSettings(
        cost_bps=config.cost_bps,
        min_notional=config.min_notional,
        turnover_cap=config.turnover_cap,
        horizon=config.forecast_horizon_days,
        max_forecast_age_days=config.max_forecast_age_days,
        periods_per_year=periods_per_year,
        cash_symbol=settings.cash_symbol,
    )


def _describe_replay(
    daily: pl.DataFrame,
    metrics: pl.DataFrame,
    gate_table: pl.DataFrame,
    *,
    strategy: str,
    run_facts: dict,
    windows: list[str],
    confidence_chosen_by: str,
):
    """The three materializations: tables, the test-window plot and the headline figures."""
    from portfolio_pipeline.recommendations.processes import PROCESS_NAMES

    main = metrics.filter(pl.col("process").is_in(PROCESS_NAMES)).sort("window", "process")
    summary = main.select(
        "window", "process", "total_return", "sharpe", "max_drawdown", "turnover",
        "trading_days", "refused_turnover", "cost_paid",
    )  # fmt: skip
    test_curves = daily.filter(
        (pl.col("window") == "test") & pl.col("process").is_in(PROCESS_NAMES)
    ).select(pl.col("process").alias("strategy"), "date", "equity")
    plot = png_markdown(
        bt.plot_equity_curves(test_curves, title=f"Recommendation process, test ({strategy})"),
        "recommendation process",
    )
    recommended = main.filter(pl.col("process") == "recommended")
    trading_days = {
        f"trading_days_{w}": int(recommended.filter(pl.col("window") == w)["trading_days"][0])
        for w in windows
    }
    yield dg.MaterializeResult(
        asset_key="recommendation_backtest",
        metadata={
            **table_metadata(daily, tables.RECOMMENDATION_BACKTEST, date_column="date"),
            "equity_test_window": plot,
            **run_facts,
            **trading_days,
        },
    )
    yield dg.MaterializeResult(
        asset_key="recommendation_backtest_metrics",
        metadata={
            **table_metadata(metrics, tables.RECOMMENDATION_BACKTEST_METRICS),
            "processes": dg.MetadataValue.md(preview_markdown(summary, rows=20)),
            "equity_test_window": plot,
        },
    )
    yield dg.MaterializeResult(
        asset_key="gate_validation",
        metadata={
            **table_metadata(gate_table, tables.GATE_VALIDATION, preview_rows=20),
            "selected_confidence": run_facts["gate_confidence"],
            "chosen_by": confidence_chosen_by,
        },
    )


@dg.asset(
    deps=["recommendations", "raw_ohlcv"],
    kinds={"duckdb", "polars"},
    metadata={"table": tables.RECOMMENDATION_OUTCOMES},
)
def recommendation_outcomes(
    context: dg.AssetExecutionContext,
    config: RecommendationConfig,
    warehouse_resource: WarehouseResource,
):
    """One row per (run, symbol) traded: once a recommendation run's horizon has elapsed, the
    realized return of each BUY and SELL and the value it added against not trading, net of
    costs. Runs are evaluated once and kept (history per run), table
    ``portfolio.recommendation_outcomes``."""
    from portfolio_pipeline.recommendations import track_record

    with warehouse_resource.connect() as con:
        ohlcv = read_ohlcv(con)
        issued = read_optional_table(con, tables.RECOMMENDATIONS)
        done = read_optional_table(con, tables.RECOMMENDATION_OUTCOMES)
        evaluated = set(done["run_id"].to_list()) if done is not None else set()
        new = (
            track_record.evaluate_outcomes(
                issued,
                ohlcv,
                default_horizon=config.forecast_horizon_days,
                skip_runs=evaluated,
            )
            if issued is not None
            else pl.DataFrame(schema=track_record.OUTCOME_SCHEMA)
        )
        warehouse.ensure_table(con, tables.RECOMMENDATION_OUTCOMES, _outcome_ddl())
        if new.height:
            warehouse.append_rows(con, tables.RECOMMENDATION_OUTCOMES, new)
        everything = warehouse.read_table(con, tables.RECOMMENDATION_OUTCOMES)
    pending = (
        issued.filter(~pl.col("run_id").is_in(everything["run_id"].unique().to_list()))[
            "run_id"
        ].n_unique()
        if issued is not None
        else 0
    )
    record = track_record.summarize(everything)
    runs = track_record.per_run(everything)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(everything, tables.RECOMMENDATION_OUTCOMES, date_column="as_of"),
            "track_record": record.describe(),
            "hit_rate": record.hit_rate if record.trades else None,
            "cumulative_value_added": record.value_added,
            "runs_waiting_for_their_horizon": pending,
            "runs_evaluated_now": new["run_id"].n_unique(),
            "per_run": dg.MetadataValue.md(preview_markdown(runs.tail(20), rows=20)),
        }
    )


def _outcome_ddl() -> str:
    from portfolio_pipeline.recommendations.track_record import OUTCOME_SCHEMA

    sql_types = {pl.Utf8: "VARCHAR", pl.Date: "DATE", pl.Int64: "BIGINT", pl.Float64: "DOUBLE"}
    return ", ".join(
        f"{name} {sql_types.get(dtype, 'TIMESTAMPTZ')}" for name, dtype in OUTCOME_SCHEMA.items()
    )
