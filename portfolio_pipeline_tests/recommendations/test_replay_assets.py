"""The recommendation process through Dagster: the simulation equals the asset, the replay and
track-record assets write their tables."""

from datetime import UTC, date, datetime

import dagster as dg
import polars as pl
import pytest

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.definitions import build_definitions
from portfolio_pipeline.portfolio.strategies import build_strategies
from portfolio_pipeline.recommendations import processes
from portfolio_pipeline.recommendations.confidence_grid import select_confidence
from portfolio_pipeline.recommendations.process_selection import choose_process
from portfolio_pipeline.recommendations.replay import simulate_recommendations
from portfolio_pipeline_tests.helpers import settings_for_tests, walk_forward_like_forecasts

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT", "PAXGUSDT", "ADAUSDT", "SOLUSDT", "LINKUSDT"]
DECISION = date(2023, 9, 13)  # a Wednesday: the target was decided on Monday
HORIZON = 8


@pytest.fixture(scope="module")
def market(sample_ohlcv):
    ohlcv = sample_ohlcv.filter(
        pl.col("symbol").is_in(SYMBOLS)
        & pl.col("date").is_between(date(2021, 6, 1), date(2023, 12, 31))
    )
    forecasts = walk_forward_like_forecasts(ohlcv, 0.6, horizon=HORIZON, start=date(2022, 1, 1))
    return ohlcv, forecasts


def _execute(path, selection, run_config=None):
    defs = build_definitions(settings_for_tests(path))
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=[dg.AssetKey(k) for k in selection],
        instance=dg.DagsterInstance.ephemeral(),
        run_config=run_config or {},
    )


@pytest.mark.parametrize(
    "process,configured",
    [
        ("recommended", "gated"),
        ("cost_aware", "cost_aware"),
        ("band_edge", "band_edge"),
        ("target", "target"),
    ],
)
def test_the_simulation_trades_exactly_what_the_recommendations_asset_recommends(
    tmp_path, market, process, configured
):
    ohlcv, forecasts = market
    (hrp,) = build_strategies(("hrp",))
    simulated = simulate_recommendations(
        ohlcv,
        hrp,
        forecasts,
        {"validation": (date(2023, 9, 1), date(2023, 9, 20))},
        start_weights={"BTCUSDT": 0.5, "ETHUSDT": 0.2, "USDT": 0.3},
        start_value=50_000.0,
        settings=processes.SimulationSettings(horizon=HORIZON, gate_confidence=0.75),
        processes=[process],
        keep_trades=True,
    )
    # DECISION, or the last earlier day on which this process traded (a band trades rarely)
    traded = simulated.trades.filter(pl.col("action") != "HOLD")["as_of"].unique().to_list()
    decision = max(d for d in [*traded, date(1970, 1, 1)] if d <= DECISION)
    day = simulated.trades.filter(pl.col("as_of") == decision)
    assert day.height and (day["action"] != "HOLD").any(), "pick a date on which the process trades"
    # The asset's inputs on that day: the simulated holdings before that day's trades, the
    # market up to that day, the forecasts as issued up to then.
    value = day["portfolio_value"][0]
    holdings = day.filter(pl.col("current_weight") > 0).select(
        "symbol",
        pl.when(pl.col("symbol") == "USDT")
        .then(pl.col("current_weight") * value)
        .otherwise(pl.col("current_weight") * value / pl.col("price"))
        .alias("quantity"),
    )
    path = tmp_path / "warehouse.duckdb"
    with warehouse.connection(path) as con:
        warehouse.replace_table(con, tables.RAW_OHLCV, ohlcv.filter(pl.col("date") <= decision))
        warehouse.replace_table(con, tables.HOLDINGS, holdings)
        warehouse.replace_table(con, tables.FORECAST_BACKTEST, forecasts)
        warehouse.replace_table(
            con, tables.RETURN_FORECASTS, forecasts.filter(pl.col("as_of") <= decision)
        )
    config = {
        "strategy": "hrp",
        "gate_confidence": 0.75,
        "forecast_horizon_days": HORIZON,
        "process": configured,
    }
    result = _execute(
        path,
        ["target_weights", "recommendations"],
        {"ops": {"recommendations": {"config": config}}},
    )
    assert result.success
    with warehouse.connection(path, read_only=True) as con:
        issued = con.execute(f"select * from {tables.RECOMMENDATIONS}").pl()
    columns = ["symbol", "action", "quantity", "notional", "target_weight", "calibrated_return"]
    left = issued.select(columns).fill_null(0.0).sort("symbol")
    right = day.select(columns).fill_null(0.0).sort("symbol")
    assert left["symbol"].to_list() == right["symbol"].to_list()
    assert left["action"].to_list() == right["action"].to_list()
    for name in columns[2:]:
        assert left[name].to_list() == pytest.approx(right[name].to_list(), rel=1e-9, abs=1e-9)
    # the rows say which process made them; following the target says so in every asset row
    (made_by,) = issued["process"].unique().to_list()
    assert made_by == ("gated_c75" if process == "recommended" else process)
    assets = issued.filter(pl.col("symbol") != "USDT")["reason"]
    assert assets.str.contains("rebalance to target").all() == (process == "target")


@pytest.fixture(scope="module")
def replayed(tmp_path_factory, market):
    ohlcv, forecasts = market
    path = tmp_path_factory.mktemp("replay") / "warehouse.duckdb"
    with warehouse.connection(path) as con:
        warehouse.replace_table(con, tables.RAW_OHLCV, ohlcv)
        warehouse.replace_table(con, tables.FORECAST_BACKTEST, forecasts)
        warehouse.replace_table(con, tables.RETURN_FORECASTS, forecasts)
        warehouse.replace_table(
            con,
            tables.STRATEGY_VALIDATION,
            pl.DataFrame({"strategy": ["hrp"], "selected_for_recommendations": [True]}),
        )
    config = {
        "validation_start": "2023-07-01",
        "validation_end": "2023-08-31",
        "test_start": "2023-09-01",
        "test_end": "2023-10-31",
        "confidence_grid": [0.6, 0.9],
        "risk_aversion_grid": [2.0],
        "cost_multiplier_grid": [1.0],
        "band_risk_aversion_grid": [1.0],
        "rolling_origin": False,
        "forecast_horizon_days": HORIZON,
    }
    result = _execute(
        path,
        [
            "holdings",
            "recommendation_backtest",
            "recommendation_backtest_metrics",
            "gate_validation",
            "process_selection",
        ],
        {"ops": {"recommendation_backtest": {"config": config}}},
    )
    return path, result


def test_the_replay_writes_every_process_and_picks_the_confidence_on_validation(replayed):
    path, result = replayed
    assert result.success
    with warehouse.connection(path, read_only=True) as con:
        daily = con.execute(f"select * from {tables.RECOMMENDATION_BACKTEST}").pl()
        metrics = con.execute(f"select * from {tables.RECOMMENDATION_BACKTEST_METRICS}").pl()
        grid = con.execute(f"select * from {tables.GATE_VALIDATION}").pl()
    families = {"gated", "cost_aware", "band_edge", "target", "band_5pct", "never_trade"}
    assert families <= set(metrics["family"]) and "recommended" in set(metrics["process"])
    assert set(metrics["window"]) == {"validation", "test"}
    assert {
        "date",
        "equity",
        "daily_return",
        "trades",
        "turnover",
        "cost",
        "refused_turnover",
    } <= set(daily.columns)
    chosen = grid.filter("selected")
    assert chosen.height == 1 and grid["window"].unique().to_list() == ["validation"]
    assert chosen["confidence"][0] == select_confidence(grid)
    recommended = metrics.filter(pl.col("process") == "recommended")
    candidates = metrics.filter(pl.col("process") != "recommended")
    expected = choose_process(candidates, "validation").process
    assert recommended["source_process"].unique().to_list() == [expected]
    same = candidates.filter(pl.col("process") == expected).sort("window")
    assert recommended.sort("window")["sharpe"].to_list() == same["sharpe"].to_list()


def test_recommendations_use_the_validated_confidence_and_outcomes_follow(replayed):
    path, _ = replayed
    result = _execute(path, ["target_weights", "recommendations"])
    assert result.success
    with warehouse.connection(path) as con:
        issued = con.execute(f"select * from {tables.RECOMMENDATIONS}").pl()
        chosen = con.execute(
            f"select confidence from {tables.GATE_VALIDATION} where selected"
        ).fetchone()[0]
        price = con.execute(
            f"select symbol, close as price from {tables.RAW_OHLCV} where date = '2023-12-01'"
        ).pl()
        # a past run, as if issued 30 days before the data's end: its horizon has elapsed
        past = (
            issued.with_columns(
                pl.lit("past-run").alias("run_id"),
                pl.lit(date(2023, 12, 1)).alias("as_of"),
                pl.lit(datetime(2023, 12, 1, 23, tzinfo=UTC)).alias("generated_at"),
                pl.when(pl.col("symbol") == "USDT")
                .then(pl.lit("HOLD"))
                .otherwise(pl.lit("BUY"))
                .alias("action"),
                pl.lit(1000.0).alias("notional"),
            )
            .drop("price")
            .join(price, on="symbol", how="left")
            .with_columns(pl.col("price").fill_null(1.0))
            .select(issued.columns)
        )
        warehouse.append_rows(con, tables.RECOMMENDATIONS, past)
    gated = issued.filter(pl.col("symbol") != "USDT")["gate_confidence"].drop_nulls().unique()
    assert gated.to_list() in ([chosen], [])  # [] when no forecast was fresh on the day
    first = _execute(path, ["recommendation_outcomes"])
    second = _execute(path, ["recommendation_outcomes"])
    assert first.success and second.success
    with warehouse.connection(path, read_only=True) as con:
        outcomes = con.execute(f"select * from {tables.RECOMMENDATION_OUTCOMES}").pl()
        closes = con.execute(
            f"select symbol, date, close from {tables.RAW_OHLCV} where date in ('2023-12-01', '2023-12-09')"
        ).pl()
    assert outcomes["run_id"].unique().to_list() == ["past-run"]  # the live run is pending
    bought = past.filter(pl.col("action") == "BUY").height
    assert outcomes.height == bought  # evaluated once, not duplicated by the rerun
    wide = closes.pivot(on="date", index="symbol", values="close")
    row = outcomes.filter(pl.col("symbol") == "BTCUSDT").row(0, named=True)
    btc = wide.filter(pl.col("symbol") == "BTCUSDT").row(0)
    assert row["horizon_end"] == date(2023, 12, 9)
    assert row["realized_return"] == pytest.approx(btc[2] / btc[1] - 1, rel=1e-12)
    assert row["value_added"] == pytest.approx(1000 * row["realized_return"] - 1.0, rel=1e-9)
