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
    confidence_grid: list[float] = [0.5, 0.7, 0.9]
    risk_aversion_grid: list[float] = [0.5, 4.0]
    cost_multiplier_grid: list[float] = [1.0, 3.0]
    band_risk_aversion_grid: list[float] = [0.1, 1.0, 10.0]
    rolling_origin: bool = True
    start_value: float = 0.0
    start_from: str = "target"


SIMULATION_OUTPUTS = {  # asset -> (table, description)
    "recommendation_backtest": (
        tables.RECOMMENDATION_BACKTEST,
        "One row per (process, window, day) on validation and test: every candidate process "
        "(the confidence gate per level, the cost-aware optimisation and the cost/risk band "
        "per parameter set, the target, a 5-point band, never trading) replayed day by day "
        "through the same recommend() with the same cap, minimum notional, costs and "
        "liquidity; 'recommended' is the one chosen on validation: equity, daily return, "
        "trades, turnover, cost and the wanted turnover that was refused.",
    ),
    "recommendation_backtest_metrics": (
        tables.RECOMMENDATION_BACKTEST_METRICS,
        "One row per (process, window): the metric columns of portfolio.backtest_metrics "
        "(recomputable from the daily rows), trading days, refused turnover, cost paid, the "
        "process family and parameters; windows are validation, test and each calendar year.",
    ),
    "process_selection": (
        tables.PROCESS_SELECTION,
        "One row per year Y: the process the validation rule picks on year Y-1 alone, its "
        "parameters, and its and every other process's figures in year Y (rolling origin).",
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
    from portfolio_pipeline.recommendations.process_replay import replay_and_choose

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
    replay = replay_and_choose(
        ohlcv,
        strategy,
        history,
        windows,
        start_weights=start_weights,
        start_value=start_value,
        settings=_simulation_settings(config, market.calendar.periods_per_year, settings),
        candidates=_candidates(config),
        confidence_levels=config.confidence_grid,
        years=config.rolling_origin,
    )
    daily, metrics, gate_table = _stored_tables(replay, strategy_name, evaluation)
    with warehouse_resource.connect() as con:
        warehouse.replace_table(con, tables.RECOMMENDATION_BACKTEST, daily)
        warehouse.replace_table(con, tables.RECOMMENDATION_BACKTEST_METRICS, metrics)
        warehouse.replace_table(con, tables.GATE_VALIDATION, gate_table)
        if replay.rolling.height:
            warehouse.replace_table(con, tables.PROCESS_SELECTION, replay.rolling)
    yield from _describe_replay(
        daily,
        metrics,
        gate_table,
        replay.rolling,
        strategy=strategy_name,
        run_facts={
            "strategy": strategy_name,
            "strategy_chosen_by": chosen_by,
            "recommended_process": replay.choice.process,
            "recommended_process_chosen_by": replay.choice.reason,
            "start_from": config.start_from,
            **evaluation.as_metadata(),
            "periods_per_year": market.calendar.periods_per_year,
            "start_value": start_value,
        },
        windows=list(windows),
    )


def _candidates(config: RecommendationBacktestConfig):
    from portfolio_pipeline.recommendations.processes import candidate_processes

    return candidate_processes(
        tuple(config.confidence_grid),
        tuple(config.risk_aversion_grid),
        tuple(config.cost_multiplier_grid),
        tuple(config.band_risk_aversion_grid),
    )


def _stored_tables(
    replay, strategy_name: str, evaluation: EvaluationWindows
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The replay's daily rows, metrics and confidence grid, each naming the strategy (the
    metrics also the windows' dates); the grid's ``selected`` level is the best gated one."""
    from portfolio_pipeline.recommendations.confidence_grid import select_confidence

    strategy = pl.lit(strategy_name).alias("strategy")
    daily = replay.daily.with_columns(strategy)
    metrics = with_window_columns(replay.metrics.with_columns(strategy), evaluation)
    best_level = select_confidence(replay.grid)
    gate_table = replay.grid.with_columns(
        strategy, (pl.col("confidence") == best_level).alias("selected")
    )
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
    rolling: pl.DataFrame,
    *,
    strategy: str,
    run_facts: dict,
    windows: list[str],
):
    """The four materializations: tables, the test-window plot and the headline figures."""
    shown = _shown_processes(metrics)
    main = metrics.filter(pl.col("process").is_in(shown) & pl.col("window").is_in(windows)).sort(
        "window", "process"
    )
    summary = main.select(
        "window", "process", "total_return", "sharpe", "max_drawdown", "turnover",
        "trading_days", "cost_paid",
    )  # fmt: skip
    test_curves = daily.filter(
        (pl.col("window") == "test") & pl.col("process").is_in(shown)
    ).select(pl.col("process").alias("strategy"), "date", "equity")
    plot = png_markdown(
        bt.plot_equity_curves(test_curves, title=f"Recommendation processes, test ({strategy})"),
        "recommendation processes",
    )
    trading_days = _recommended_trading_days(main, windows)
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
            "processes": dg.MetadataValue.md(preview_markdown(summary, rows=40)),
            "equity_test_window": plot,
        },
    )
    yield dg.MaterializeResult(
        asset_key="gate_validation",
        metadata=table_metadata(gate_table, tables.GATE_VALIDATION, preview_rows=20),
    )
    yield dg.MaterializeResult(
        asset_key="process_selection",
        metadata={
            **(
                table_metadata(rolling, tables.PROCESS_SELECTION, preview_rows=20)
                if rolling.height
                else {"rows": 0}
            ),
            "rule": "best validation Sharpe (2 decimals); ties to lower turnover; a process "
            "that never traded only when strictly best",
        },
    )


def _recommended_trading_days(main: pl.DataFrame, windows: list[str]) -> dict[str, int]:
    recommended = main.filter(pl.col("process") == "recommended")
    return {
        f"trading_days_{w}": int(recommended.filter(pl.col("window") == w)["trading_days"][0])
        for w in windows
    }


def _shown_processes(metrics: pl.DataFrame) -> list[str]:
    """``recommended``, the plain comparisons and the best parameter set of each family on
    validation (the full grid stays in the table)."""
    validation = metrics.filter(pl.col("window") == "validation").sort("sharpe", descending=True)
    best = validation.unique("family", keep="first", maintain_order=True)["process"].to_list()
    return sorted({"recommended", "target", "band_5pct", "never_trade", *best})


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
