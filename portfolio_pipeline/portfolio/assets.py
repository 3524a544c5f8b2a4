"""Holdings, strategy targets, backtests, risk and rebalancing recommendations."""

import dataclasses
import uuid
from datetime import date
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from portfolio_pipeline import tables
from portfolio_pipeline.core import backtest as bt
from portfolio_pipeline.core import warehouse
from portfolio_pipeline.core.holdings import latest_prices, load_holdings, value_holdings
from portfolio_pipeline.core.market import market_context
from portfolio_pipeline.core.recommend import RECOMMENDATION_CHECKS
from portfolio_pipeline.core.windows import (
    EvaluationWindows,
    windows_from_settings,
)
from portfolio_pipeline.metadata import png_markdown, preview_markdown, table_metadata, table_specs
from portfolio_pipeline.resources import WarehouseResource
from portfolio_pipeline.settings import Settings

if TYPE_CHECKING:
    from portfolio_pipeline.core.recommend import GateSettings


class PortfolioConfig(dg.Config):
    """Backtest and recommendation settings (editable in the Dagster launchpad). Window
    bounds left blank come from the data and the PORTFOLIO_PIPELINE_* window settings
    (core.windows: test = last 2 years, validation = the year before)."""

    rebalance: str = "weekly"
    cost_bps: float = 10.0
    validation_start: str = ""
    validation_end: str = ""
    test_start: str = ""
    test_end: str = ""
    sensitivity_rebalances: list[str] = ["daily", "weekly", "monthly"]
    sensitivity_costs_bps: list[float] = list(bt.DEFAULT_SENSITIVITY_COSTS_BPS)
    forecast_horizon_days: int = 8


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


def _optional_table(con, table: str, where: str = "", params=()) -> pl.DataFrame | None:
    if not warehouse.table_exists(con, table):
        return None
    frame = con.execute(f"select * from {table} {where}", list(params)).pl()
    return frame if frame.height else None


def _ohlcv(con) -> pl.DataFrame:
    return warehouse.read_table(con, tables.RAW_OHLCV).select(
        "symbol", "date", "open", "high", "low", "close", "volume", "quote_volume"
    )


def _strategies(forecasts: pl.DataFrame | None, policy_weights: pl.DataFrame | None):
    from portfolio_pipeline.core.strategies import build_strategies

    external = {}
    if policy_weights is not None:
        for name, frame in policy_weights.partition_by("strategy", as_dict=True).items():
            external[name[0]] = frame.select("as_of", "symbol", "weight")
    # The DRL policy decides every day: its backtest trades daily whatever the run's frequency,
    # so it replays exactly what ml.policy_evaluation scored.
    return build_strategies(
        forecasts=forecasts, external_weights=external, external_rebalance="daily"
    )


def _windows(ohlcv: pl.DataFrame, settings, config: PortfolioConfig) -> EvaluationWindows:
    """Windows from the data; launchpad bounds win over PORTFOLIO_PIPELINE_* settings."""
    launchpad = {
        name: getattr(config, name)
        for name in ("validation_start", "validation_end", "test_start", "test_end")
    }
    return windows_from_settings(
        ohlcv.get_column("date").unique().to_list(), settings, launchpad=launchpad
    )


def _policy_weights(con) -> pl.DataFrame | None:
    return _optional_table(con, tables.POLICY_WEIGHTS)


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

    Read the prices, forecasts and policy weights; run ``core.backtest.run_windowed_backtests``;
    write the four tables; describe them."""
    from portfolio_pipeline.core.strategies import MarketPanel

    with warehouse_resource.connect() as con:
        ohlcv = _ohlcv(con)
        forecasts = _optional_table(
            con, tables.FORECAST_BACKTEST, "where horizon_days = ?", (config.forecast_horizon_days,)
        )
        strategies = _strategies(forecasts, _policy_weights(con))
    market = market_context(ohlcv, settings)
    windows = _windows(ohlcv, settings, config)
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
    from portfolio_pipeline.core.recommendation_backtest import DEFAULT_TARGET_REFRESH
    from portfolio_pipeline.core.strategies import compute_target_weights

    with warehouse_resource.connect() as con:
        ohlcv = _ohlcv(con)
        as_of = ohlcv["date"].max()
        # the same horizon as the backtests' forecast_mv, so the live weights are the ones tested
        forecasts = _optional_table(
            con,
            tables.RETURN_FORECASTS,
            "where as_of <= ? and horizon_days = ?",
            (as_of, PortfolioConfig().forecast_horizon_days),
        )
        policy_weights = _policy_weights(con)
        strategies = _strategies(forecasts, policy_weights)
        # re-decided on the first trading day of each period (weekly), exactly as the
        # recommendation backtest replays it; later days of the period keep that target
        dates = ohlcv.get_column("date").unique().sort().to_numpy().astype("datetime64[D]")
        refresh_row = bt.period_start_row(dates, len(dates) - 1, DEFAULT_TARGET_REFRESH)
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


def _selected_strategy(con, config: RecommendationConfig) -> tuple[str, str]:
    if config.strategy:
        return config.strategy, "configured"
    validation = _optional_table(
        con, tables.STRATEGY_VALIDATION, "where selected_for_recommendations"
    )
    if validation is None:
        return "equal_weight", "no validation results yet: equal weight"
    return str(validation["strategy"][0]), "best validation-window Sharpe"


def _gate_settings(con, config: RecommendationConfig, ohlcv: pl.DataFrame, as_of: date):
    """Calibration of the forecasts up to ``as_of`` and the confidence level to use."""
    from portfolio_pipeline.core.gate import ForecastHistory
    from portfolio_pipeline.core.recommend import DEFAULT_GATE_CONFIDENCE, GateSettings

    confidence, chosen_by = config.gate_confidence, "configured"
    if confidence is None:
        chosen = _optional_table(con, tables.GATE_VALIDATION, "where selected")
        confidence, chosen_by = (
            (float(chosen["confidence"][0]), "best validation Sharpe (gate_validation)")
            if chosen is not None
            else (DEFAULT_GATE_CONFIDENCE, "default (no gate_validation yet)")
        )
    history = _optional_table(
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

    Read the inputs (:func:`_recommendation_inputs`); call ``core.recommend.recommend``; run
    the blocking checks (``core.recommend.check_recommendations``); append the rows;
    describe them."""
    from portfolio_pipeline.core import recommend as rec

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
        outcomes = rec.check_recommendations(
            frame, rec.tradable_symbols(inputs.prices, inputs.liquidity)
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
    from portfolio_pipeline.core.risk import compute_liquidity

    ohlcv = _ohlcv(con)
    as_of = ohlcv["date"].max()
    held = warehouse.read_table(con, tables.HOLDINGS)
    strategy, why = _selected_strategy(con, config)
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
    forecasts = _optional_table(
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
    tests and liquidity (core.risk); write the three tables; describe them."""
    from portfolio_pipeline.core.risk import (
        compute_liquidity,
        compute_risk_metrics,
        parse_scenarios,
        run_stress_tests,
        scenarios_for,
    )

    cash = settings.cash_symbol
    with warehouse_resource.connect() as con:
        ohlcv = _ohlcv(con)
        as_of = ohlcv["date"].max()
        valued = value_holdings(
            warehouse.read_table(con, tables.HOLDINGS), latest_prices(ohlcv, as_of), cash
        )
        portfolios = _risk_portfolios(con, valued, as_of)
        vol = _optional_table(con, tables.VOLATILITY_FORECASTS, "where as_of <= ?", (as_of,))
    market = market_context(ohlcv, settings)
    periods = market.calendar.periods_per_year
    scenarios = (
        parse_scenarios(settings.stress_scenarios)
        if settings.stress_scenarios
        else scenarios_for(market.calendar.kind)
    )
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
    positions = valued.filter(pl.col("symbol") != cash).select("symbol", "value")
    liquidity = compute_liquidity(ohlcv, positions, as_of, cash_symbol=cash)
    with warehouse_resource.connect() as con:
        warehouse.replace_rows(con, tables.RISK_METRICS, risk, where="as_of = ?", params=(as_of,))
        warehouse.replace_rows(con, tables.STRESS_TESTS, stress, where="as_of = ?", params=(as_of,))
        warehouse.replace_table(con, tables.LIQUIDITY, liquidity)
    yield from _describe_risk(risk, stress, liquidity, market, scenarios)


def _risk_portfolios(con, valued: pl.DataFrame, as_of: date) -> dict[str, pl.DataFrame]:
    """``symbol, weight`` of the current holdings, the latest recommended portfolio and every
    strategy target of ``as_of`` (those that exist)."""
    portfolios = {"current": valued.select("symbol", "weight")}
    latest_run = _optional_table(
        con,
        tables.RECOMMENDATIONS,
        f"where run_id = (select run_id from {tables.RECOMMENDATIONS} "
        "order by generated_at desc limit 1)",
    )
    if latest_run is not None:
        portfolios["recommended"] = latest_run.select(
            "symbol", pl.col("target_weight").alias("weight")
        )
    targets = _optional_table(con, tables.TARGET_WEIGHTS, "where as_of = ?", (as_of,))
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
