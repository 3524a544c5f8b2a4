"""Recommendations: today's trades toward the selected strategy's target (with their blocking
checks), and the risk, stress and liquidity of the current and recommended portfolios."""

import dataclasses
import uuid
from datetime import date
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
    from portfolio_pipeline.recommendations.trade_gate import GateSettings


class RecommendationConfig(dg.Config):
    """``strategy``: empty = the best strategy by validation-window Sharpe.
    ``gate_confidence``: one-sided confidence that a trade's expected advantage beats its
    costs; empty = the level chosen on the validation window (``portfolio.gate_validation``)."""

    strategy: str = ""
    cost_bps: float = 10.0
    min_notional: float = 50.0
    turnover_cap: float = 0.5
    forecast_horizon_days: int = 8
    gate_confidence: float | None = None
    max_forecast_age_days: int = 7


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
    the forecast and a reason, moving the current holdings toward the selected strategy's
    targets only where a lower confidence bound of the trade's expected advantage (from the
    forecasts' own out-of-sample track record) beats its round-trip costs, above a minimum
    notional and under a turnover cap, never buying what stopped trading or lacks liquidity.
    Table ``portfolio.recommendations``; history is kept per as_of and run.

    Read the inputs (:func:`_recommendation_inputs`); call ``recommendations.decision.recommend``;
    run the blocking checks (``recommendations.blocking_checks.check_recommendations``); append
    the rows; describe them."""
    from portfolio_pipeline.recommendations import blocking_checks
    from portfolio_pipeline.recommendations import decision as rec

    with warehouse_resource.connect() as con:
        inputs = _recommendation_inputs(con, config, settings)
        frame = rec.recommend(
            inputs.held,
            inputs.prices,
            inputs.targets,
            inputs.forecasts,
            cost_bps=config.cost_bps,
            min_notional=config.min_notional,
            turnover_cap=config.turnover_cap,
            liquidity=inputs.liquidity,
            as_of=inputs.as_of,
            strategy=inputs.strategy,
            run_id=context.run_id or uuid.uuid4().hex,
            horizon_days=config.forecast_horizon_days if inputs.forecasts is not None else None,
            gate=inputs.gate,
            cash_symbol=settings.cash_symbol,
        )
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
    """What one recommendation run reads: holdings, prices, targets, forecasts and the gate."""

    as_of: date
    held: pl.DataFrame
    prices: pl.DataFrame
    strategy: str
    strategy_chosen_by: str
    targets: pl.DataFrame
    forecasts: pl.DataFrame | None
    gate: "GateSettings"
    confidence_chosen_by: str
    liquidity: pl.DataFrame


def _recommendation_inputs(con, config: RecommendationConfig, settings) -> _RecommendationInputs:
    """The latest day's holdings, prices, the selected strategy's targets, the forecasts, the
    gate and the liquidity of the held positions (fails when the targets are missing)."""
    from portfolio_pipeline.portfolio.risk import compute_liquidity

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
    return _RecommendationInputs(
        as_of=as_of,
        held=held,
        prices=prices,
        strategy=strategy,
        strategy_chosen_by=why,
        targets=targets,
        forecasts=forecasts,
        gate=gate,
        confidence_chosen_by=confidence_chosen_by,
        liquidity=liquidity,
    )


def _describe_recommendations(
    frame: pl.DataFrame, inputs: _RecommendationInputs
) -> dg.MaterializeResult:
    counts = frame.group_by("action").len().sort("action")
    gate = inputs.gate
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
            "actions": ", ".join(f"{a}: {n}" for a, n in counts.iter_rows()),
            "forecasts_used": inputs.forecasts is not None,
            "gate_confidence": gate.confidence,
            "gate_confidence_chosen_by": inputs.confidence_chosen_by,
            "gate_calibration": (
                gate.calibration.describe() if gate.calibration else "none (gate not applied)"
            ),
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
