"""Recommendations: today's trades toward the selected strategy's target (with their blocking
checks), and the risk, stress and liquidity of the current and recommended portfolios."""

import dataclasses
import uuid
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.market.context import market_context
from portfolio_pipeline.metadata import preview_markdown, table_metadata
from portfolio_pipeline.portfolio.assets import (
    holdings,
    read_ohlcv,
    read_optional_table,
    target_weights,
)
from portfolio_pipeline.portfolio.holdings import latest_prices, value_holdings
from portfolio_pipeline.recommendations.blocking_checks import RECOMMENDATION_CHECKS
from portfolio_pipeline.settings import Settings
from portfolio_pipeline.warehouse.resources import WarehouseResource

if TYPE_CHECKING:
    from portfolio_pipeline.recommendations.processes import ProcessSpec, SimulationSettings
    from portfolio_pipeline.recommendations.replay_inputs import DayInputs


class RecommendationConfig(dg.Config):
    """``strategy``: empty = the best strategy by validation-window Sharpe.
    ``process``: empty = the process chosen on validation by ``recommendation_backtest``
    (``portfolio.recommendation_backtest_metrics``); else ``gated``, ``cost_aware``,
    ``band_edge``, ``target``, ``band_5pct`` or ``never_trade`` (default parameters).
    ``gate_confidence``: one-sided confidence that a trade's expected advantage beats its
    costs; empty = the level chosen on the validation window (``portfolio.gate_validation``)."""

    strategy: str = ""
    cost_bps: float = 10.0
    min_notional: float = 50.0
    turnover_cap: float = 0.5
    forecast_horizon_days: int = 8
    gate_confidence: float | None = None
    max_forecast_age_days: int = 7
    process: str = ""


def selected_strategy(con, config: RecommendationConfig) -> tuple[str, str]:
    if config.strategy:
        return config.strategy, "configured"
    validation = read_optional_table(
        con, tables.STRATEGY_VALIDATION, "where selected_for_recommendations"
    )
    if validation is None:
        return "equal_weight", "no validation results yet: equal weight"
    return str(validation["strategy"][0]), "best validation-window Sharpe"


def _gate_settings(con, config: RecommendationConfig, ohlcv: pl.DataFrame, as_of: date):
    """Calibration of the forecasts up to ``as_of`` and the confidence level to use."""
    from portfolio_pipeline.recommendations.gate import ForecastHistory
    from portfolio_pipeline.recommendations.trade_gate import DEFAULT_GATE_CONFIDENCE, GateSettings

    confidence, chosen_by = config.gate_confidence, "configured"
    if confidence is None:
        chosen = read_optional_table(con, tables.GATE_VALIDATION, "where selected")
        confidence, chosen_by = (
            (float(chosen["confidence"][0]), "best validation Sharpe (gate_validation)")
            if chosen is not None
            else (DEFAULT_GATE_CONFIDENCE, "default (no gate_validation yet)")
        )
    history = read_optional_table(
        con,
        tables.FORECAST_BACKTEST,
        "where horizon_days = ? and as_of <= ?",
        (config.forecast_horizon_days, as_of),
    )
    calibration = (
        ForecastHistory.from_backtest(
            history, ohlcv.get_column("date").unique(), config.forecast_horizon_days
        ).calibrate(as_of)
        if history is not None
        else None
    )
    gate = GateSettings(calibration, confidence, config.max_forecast_age_days)
    return gate, chosen_by


@dg.asset(
    deps=[
        holdings,
        target_weights,
        "strategy_validation",
        "return_forecasts",
        "forecast_backtest",
        "gate_validation",
        "raw_ohlcv",
    ],
    kinds={"duckdb", "polars"},
    metadata={"table": tables.RECOMMENDATIONS},
    check_specs=[
        dg.AssetCheckSpec(name, asset="recommendations", description=text, blocking=True)
        for name, text in RECOMMENDATION_CHECKS.items()
    ],
)
def recommendations(
    context: dg.AssetExecutionContext,
    config: RecommendationConfig,
    warehouse_resource: WarehouseResource,
    settings: dg.ResourceParam[Settings],
):
    """One row per symbol (and cash) per run: BUY/SELL/HOLD with quantity, notional, price,
    the forecast and a reason in money, moving the current holdings toward the selected
    strategy's target by the process chosen on validation (``recommendation_backtest``: the
    cost-aware optimisation, a cost/risk band, the confidence gate, the target itself …),
    above a minimum notional and under a turnover cap, never buying what stopped trading or
    lacks liquidity. Table ``portfolio.recommendations``; history is kept per as_of and run.

    Read the inputs (:func:`_recommendation_inputs`); call ``process_book.recommend_for_process``
    (the replay's code path); run the blocking checks; append the rows; describe them."""
    from portfolio_pipeline.recommendations import blocking_checks
    from portfolio_pipeline.recommendations.process_book import (
        label_with_process,
        recommend_for_process,
    )

    with warehouse_resource.connect() as con:
        inputs = _recommendation_inputs(con, config, settings)
        frame = recommend_for_process(
            inputs.process,
            inputs.held,
            inputs.day,
            inputs.settings,
            inputs.strategy,
            context.run_id or uuid.uuid4().hex,
            datetime.now(UTC),
        )
        frame = label_with_process(frame, inputs.process)
        outcomes = blocking_checks.check_recommendations(
            frame, blocking_checks.tradable_symbols(inputs.prices, inputs.liquidity)
        )
        for name, outcome in outcomes.items():
            yield dg.AssetCheckResult(
                check_name=name, passed=outcome.passed, description=outcome.detail
            )
        failed = [f"{n}: {o.detail}" for n, o in outcomes.items() if not o.passed]
        if failed:  # nothing is written: yesterday's recommendations stay the latest
            raise dg.Failure(
                f"recommendations {inputs.as_of} ({inputs.strategy}) refused: " + "; ".join(failed)
            )
        warehouse.append_rows(con, tables.RECOMMENDATIONS, frame)
    yield _describe_recommendations(frame, inputs)


@dataclasses.dataclass(frozen=True)
class _RecommendationInputs:
    """What one recommendation run reads: holdings, the day's inputs as the replay sees them
    (prices, target, forecasts, gate, liquidity, the strategy's risk) and the process."""

    as_of: date
    held: pl.DataFrame
    prices: pl.DataFrame
    strategy: str
    strategy_chosen_by: str
    day: "DayInputs"
    confidence_chosen_by: str
    liquidity: pl.DataFrame
    process: "ProcessSpec"
    process_chosen_by: str
    settings: "SimulationSettings"


def _recommendation_inputs(con, config: RecommendationConfig, settings) -> _RecommendationInputs:
    """The latest day's holdings, prices, the selected strategy's targets, the forecasts, the
    gate, the liquidity of the held positions, the strategy's risk model and the process to
    follow (fails when the targets are missing)."""
    from portfolio_pipeline.portfolio.risk import compute_liquidity
    from portfolio_pipeline.recommendations.replay_inputs import DayInputs

    ohlcv = read_ohlcv(con)
    as_of = ohlcv["date"].max()
    held = warehouse.read_table(con, tables.HOLDINGS)
    strategy, why = selected_strategy(con, config)
    targets = warehouse.read_frame(
        con,
        f"select * from {tables.TARGET_WEIGHTS} where as_of = ? and strategy = ?",
        (as_of, strategy),
    )
    if targets.is_empty():
        raise dg.Failure(
            f"no target weights of strategy {strategy!r} on {as_of}: materialize "
            "target_weights, or configure a strategy it produces"
        )
    forecasts = read_optional_table(
        con,
        tables.RETURN_FORECASTS,
        "where horizon_days = ? and as_of <= ?",
        (config.forecast_horizon_days, as_of),
    )
    gate, confidence_chosen_by = _gate_settings(con, config, ohlcv, as_of)
    prices = latest_prices(ohlcv, as_of)
    positions = value_holdings(held, prices, settings.cash_symbol).filter(
        pl.col("symbol") != settings.cash_symbol
    )
    liquidity = compute_liquidity(
        ohlcv, positions.select("symbol", "value"), as_of, cash_symbol=settings.cash_symbol
    )
    process, process_chosen_by = _chosen_process(con, config, gate.confidence)
    replayed = _simulation_settings(config, gate, ohlcv, settings)
    day = DayInputs(
        as_of, prices, targets, forecasts, gate, liquidity,
        *_strategy_risk(con, ohlcv, strategy, replayed),
    )  # fmt: skip
    return _RecommendationInputs(
        as_of, held, prices, strategy, why, day, confidence_chosen_by, liquidity,
        process, process_chosen_by, replayed,
    )  # fmt: skip


def _chosen_process(con, config: RecommendationConfig, confidence: float):
    """The configured process, else the one ``recommendation_backtest`` chose on validation,
    else (no replay yet) the confidence gate."""
    from portfolio_pipeline.recommendations.process_replay import spec_from_row
    from portfolio_pipeline.recommendations.processes import PROCESSES, gated_at

    if config.process:
        name = "recommended" if config.process == "gated" else config.process
        if name not in PROCESSES:
            raise dg.Failure(f"unknown process {config.process!r}")
        spec = PROCESSES[name]
        return (gated_at(confidence) if spec.gate else spec), "configured"
    chosen = read_optional_table(
        con,
        tables.RECOMMENDATION_BACKTEST_METRICS,
        "where process = 'recommended' and \"window\" = 'validation'",
    )
    if chosen is None or "family" not in chosen.columns:
        return gated_at(confidence), "no process replay yet: the confidence gate"
    row = chosen.row(0, named=True)
    spec = spec_from_row(row)
    if spec.gate:  # the gate's level comes from gate_validation or the configuration
        spec = gated_at(confidence)
    return spec, f"chosen on validation: {row['source_process']}"


def _simulation_settings(config: RecommendationConfig, gate, ohlcv, settings: Settings):
    """The replay's settings for this run: the same cap, minimum, costs and horizon."""
    from portfolio_pipeline.recommendations.processes import SimulationSettings

    return SimulationSettings(
        cost_bps=config.cost_bps,
        min_notional=config.min_notional,
        turnover_cap=config.turnover_cap,
        horizon=config.forecast_horizon_days,
        gate_confidence=gate.confidence,
        max_forecast_age_days=config.max_forecast_age_days,
        periods_per_year=market_context(ohlcv, settings).calendar.periods_per_year,
        cash_symbol=settings.cash_symbol,
    )


def _strategy_risk(con, ohlcv: pl.DataFrame, strategy: str, replayed):
    """The strategy's own covariance on the last day, as the replay computes it."""
    from portfolio_pipeline.portfolio.assets import build_backtest_strategies, read_policy_weights
    from portfolio_pipeline.portfolio.strategies import EstimationCache, MarketPanel
    from portfolio_pipeline.recommendations.replay_inputs import risk_inputs

    history = read_optional_table(con, tables.FORECAST_BACKTEST)
    built = {s.name: s for s in build_backtest_strategies(history, read_policy_weights(con))}
    if strategy not in built:
        raise dg.Failure(f"recommendations: no strategy {strategy!r} to estimate its risk")
    panel = MarketPanel.from_ohlcv(ohlcv, cash_symbol=replayed.cash_symbol)
    row = len(panel.dates) - 1
    return risk_inputs(panel, row, built[strategy], EstimationCache(), replayed)


def _describe_recommendations(
    frame: pl.DataFrame, inputs: _RecommendationInputs
) -> dg.MaterializeResult:
    from portfolio_pipeline.recommendations.rule_decision import ex_ante_risk

    counts = frame.group_by("action").len().sort("action")
    gate = inputs.day.gate
    risk = inputs.day.risk
    figures = ex_ante_risk(frame, risk, inputs.settings.cash_symbol) if risk is not None else {}
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                frame.select(
                    "symbol", "action", "current_weight", "target_weight", "notional", "reason"
                ),
                tables.RECOMMENDATIONS,
                preview_rows=30,
            ),
            "as_of": str(inputs.as_of),
            "strategy": inputs.strategy,
            "strategy_chosen_by": inputs.strategy_chosen_by,
            "process": inputs.process.name,
            "process_chosen_by": inputs.process_chosen_by,
            "actions": ", ".join(f"{a}: {n}" for a, n in counts.iter_rows()),
            "forecasts_used": inputs.day.forecasts is not None,
            "gate_confidence": gate.confidence,
            "gate_confidence_chosen_by": inputs.confidence_chosen_by,
            "gate_calibration": (
                gate.calibration.describe() if gate.calibration else "none (no track record)"
            ),
            **{f"ex_ante_{k}": v for k, v in figures.items()},
        }
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "risk_metrics",
            deps=[holdings, recommendations, target_weights, "volatility_forecasts"],
            kinds={"duckdb"},
            description="One row per (as_of, portfolio, metric): historical and Cornish-Fisher "
            "VaR 95/99, CVaR 95/99, volatility, max drawdown, forecast volatility, for the "
            "current holdings, the recommended portfolio and every strategy target, table "
            "portfolio.risk_metrics (history kept).",
            metadata={"table": tables.RISK_METRICS},
        ),
        dg.AssetSpec(
            "stress_tests",
            deps=[holdings, recommendations, target_weights],
            kinds={"duckdb"},
            description="One row per (as_of, portfolio, scenario): P&L in % under historical "
            "crises (2020-03-12, Terra/LUNA, FTX), doubled volatility, correlations at 1 and a "
            "-30% market shock, table portfolio.stress_tests (history kept).",
            metadata={"table": tables.STRESS_TESTS},
        ),
        dg.AssetSpec(
            "liquidity",
            deps=[holdings],
            kinds={"duckdb"},
            description="One row per symbol: days needed to sell the position at 10% of its "
            "30-day average USDT volume, table portfolio.liquidity.",
            metadata={"table": tables.LIQUIDITY},
        ),
    ]
)
def risk_report(
    context: dg.AssetExecutionContext,
    warehouse_resource: WarehouseResource,
    settings: dg.ResourceParam[Settings],
):
    """Risk of the current holdings, the recommended portfolio and each strategy target.

    Read the prices, holdings and the portfolios to assess; compute the risk metrics, stress
    tests and liquidity (portfolio.risk); write the three tables; describe them."""
    from portfolio_pipeline.portfolio.risk import (
        compute_liquidity,
        parse_scenarios,
        scenarios_for,
    )

    cash = settings.cash_symbol
    with warehouse_resource.connect() as con:
        ohlcv = read_ohlcv(con)
        as_of = ohlcv["date"].max()
        valued = value_holdings(
            warehouse.read_table(con, tables.HOLDINGS), latest_prices(ohlcv, as_of), cash
        )
        portfolios = _risk_portfolios(con, valued, as_of)
        vol = read_optional_table(con, tables.VOLATILITY_FORECASTS, "where as_of <= ?", (as_of,))
    market = market_context(ohlcv, settings)
    scenarios = (
        parse_scenarios(settings.stress_scenarios)
        if settings.stress_scenarios
        else scenarios_for(market.calendar.kind)
    )
    risk, stress = _risk_and_stress(ohlcv, portfolios, as_of, vol, market, scenarios, cash)
    positions = valued.filter(pl.col("symbol") != cash).select("symbol", "value")
    liquidity = compute_liquidity(ohlcv, positions, as_of, cash_symbol=cash)
    with warehouse_resource.connect() as con:
        warehouse.replace_rows(con, tables.RISK_METRICS, risk, where="as_of = ?", params=(as_of,))
        warehouse.replace_rows(con, tables.STRESS_TESTS, stress, where="as_of = ?", params=(as_of,))
        warehouse.replace_table(con, tables.LIQUIDITY, liquidity)
    yield from _describe_risk(risk, stress, liquidity, market, scenarios)


def _risk_and_stress(
    ohlcv: pl.DataFrame,
    portfolios: dict[str, pl.DataFrame],
    as_of: date,
    vol: pl.DataFrame | None,
    market,
    scenarios,
    cash: str,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The risk metrics and stress tests of every portfolio, over one year of bars."""
    from portfolio_pipeline.portfolio.risk import compute_risk_metrics, run_stress_tests

    periods = market.calendar.periods_per_year
    risk = pl.concat(
        [
            compute_risk_metrics(
                ohlcv,
                w,
                as_of,
                portfolio=name,
                periods_per_year=periods,
                lookback_days=periods,
                forecasts=vol,
                cash_symbol=cash,
            )
            for name, w in portfolios.items()
        ],
        how="diagonal_relaxed",
    )
    stress = pl.concat(
        [
            run_stress_tests(
                ohlcv,
                w,
                as_of,
                portfolio=name,
                lookback_days=periods,
                scenarios=scenarios,
                proxy_symbol=market.benchmark.symbol,
                cash_symbol=cash,
            )
            for name, w in portfolios.items()
        ],
        how="diagonal_relaxed",
    )
    return risk, stress


def _risk_portfolios(con, valued: pl.DataFrame, as_of: date) -> dict[str, pl.DataFrame]:
    """``symbol, weight`` of the current holdings, the latest recommended portfolio and every
    strategy target of ``as_of`` (those that exist)."""
    portfolios = {"current": valued.select("symbol", "weight")}
    latest_run = read_optional_table(
        con,
        tables.RECOMMENDATIONS,
        f"where run_id = (select run_id from {tables.RECOMMENDATIONS} "
        "order by generated_at desc limit 1)",
    )
    if latest_run is not None:
        portfolios["recommended"] = latest_run.select(
            "symbol", pl.col("target_weight").alias("weight")
        )
    targets = read_optional_table(con, tables.TARGET_WEIGHTS, "where as_of = ?", (as_of,))
    if targets is not None:
        for (name,), frame in targets.partition_by("strategy", as_dict=True).items():
            portfolios[f"target:{name}"] = frame.select("symbol", "weight")
    return portfolios


def _describe_risk(risk, stress, liquidity, market, scenarios):
    """One MaterializeResult per risk table; current vs recommended side by side."""
    main = ["current", "recommended"]
    wide_risk = risk.filter(pl.col("portfolio").is_in(main)).pivot(
        on="portfolio", index="metric", values="value"
    )
    wide_stress = stress.filter(pl.col("portfolio").is_in(main)).pivot(
        on="portfolio", index="scenario", values="pnl_pct"
    )
    yield dg.MaterializeResult(
        asset_key="risk_metrics",
        metadata={
            **table_metadata(risk, tables.RISK_METRICS, date_column="as_of"),
            "current_vs_recommended": dg.MetadataValue.md(preview_markdown(wide_risk, rows=40)),
            **market.as_metadata(),
        },
    )
    yield dg.MaterializeResult(
        asset_key="stress_tests",
        metadata={
            **table_metadata(stress, tables.STRESS_TESTS, date_column="as_of"),
            "stress_proxy": market.benchmark.symbol,
            "scenarios": ", ".join(s.name for s in scenarios),
            "current_vs_recommended_pnl_pct": dg.MetadataValue.md(
                preview_markdown(wide_stress, rows=40)
            ),
        },
    )
    yield dg.MaterializeResult(
        asset_key="liquidity",
        metadata=table_metadata(liquidity, tables.LIQUIDITY, preview_rows=25),
    )
