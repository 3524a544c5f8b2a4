"""The whole graph on an equities universe: 20 S&P 500 stocks (real closes from skfolio,
synthetic open/high/low/volume, see portfolio_pipeline.examples.sp500) on the NYSE business-day
calendar, cash in USD, periods per year inferred (252), windows from the data.

One run ingests 2021-01-04..2022-12-28 through the ``files`` source, a second materializes
everything downstream except the ``drl_policy`` multi-asset (its Ray search is covered by
policies/test_assets.py; the DRL pieces that depend on the calendar are checked below on the
same data), as ``portfolio-pipeline materialize`` does.
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl
import pytest

from portfolio_pipeline import warehouse
from portfolio_pipeline.examples.sp500 import write_files_source
from portfolio_pipeline.market.partitions import month_key
from portfolio_pipeline.policies.assets import POLICY_OUTPUTS
from portfolio_pipeline_tests.helpers import materialize_range

START, END = date(2021, 1, 4), date(2022, 12, 28)
# Two headlines around the close of Friday 2022-12-23 (New York), one on the Monday holiday.
NEWS_CSV = """published_at,title,symbols
2022-12-23T15:30:00-05:00,Apple shares rally on strong demand,AAPL
2022-12-23T16:30:00-05:00,Apple warns of weak iPhone sales,AAPL
2022-12-26T10:00:00-05:00,Apple supplier reports record growth,AAPL
"""
FAST_FORECAST = {
    "horizons": [1, 8],
    "volatility_horizon": 8,
    "retrain_every_days": 120,
    "iterations": 30,
    "depth": 4,
}


@pytest.fixture(scope="module")
def equities_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("equities")
    files = home / "files"
    _, holdings = write_files_source(files, START, END)
    (files / "news").mkdir()
    (files / "news" / "headlines.csv").write_text(NEWS_CSV)
    mp = pytest.MonkeyPatch()
    env = {
        "PORTFOLIO_PIPELINE_HOME": str(home),
        "PORTFOLIO_PIPELINE_WAREHOUSE": str(home / "warehouse.duckdb"),
        "PORTFOLIO_PIPELINE_OHLCV_SOURCE": "files",
        "PORTFOLIO_PIPELINE_NEWS_SOURCE": "files",
        "PORTFOLIO_PIPELINE_FILES_DIR": str(files),
        "PORTFOLIO_PIPELINE_SYMBOLS": ",".join(
            pl.read_parquet(files / "ohlcv" / "sp500.parquet")["symbol"].unique().sort()
        ),
        "PORTFOLIO_PIPELINE_CASH": "USD",
        "PORTFOLIO_PIPELINE_HOLDINGS": str(holdings),
        "PORTFOLIO_PIPELINE_VALIDATION_START": "2022-01-01",
        "PORTFOLIO_PIPELINE_TEST_START": "2022-07-01",
        "PORTFOLIO_PIPELINE_SENTIMENT_MODEL": "lexicon",
        "PORTFOLIO_PIPELINE_MARKET_CLOSE": "16:00",
        "PORTFOLIO_PIPELINE_MARKET_TIMEZONE": "America/New_York",
    }
    for key, value in env.items():
        mp.setenv(key, value)
    mp.delenv("PORTFOLIO_PIPELINE_PERIODS_PER_YEAR", raising=False)
    from portfolio_pipeline.definitions import build_definitions
    from portfolio_pipeline.settings import load_settings

    defs = build_definitions(load_settings())
    graph = defs.resolve_asset_graph()
    instance = dg.DagsterInstance.ephemeral()
    partitioned = [k for k in graph.toposorted_asset_keys if graph.get(k).is_partitioned]
    ingest = materialize_range(
        [defs.get_assets_def(k) for k in partitioned],
        month_key(START),
        month_key(END),
        resources=defs.resources,
    )
    assert ingest.success
    rest = [
        k
        for k in graph.toposorted_asset_keys
        if not graph.get(k).is_partitioned and k.to_user_string() not in POLICY_OUTPUTS
    ]
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=rest,
        instance=instance,
        raise_on_error=False,
        run_config={
            "ops": {
                "forecast_walk_forward": {"config": FAST_FORECAST},
                "return_forecasts": {"config": FAST_FORECAST},
                "volatility_forecasts": {"config": FAST_FORECAST},
                # the daily-rebalance sensitivity re-optimises every session: not needed here
                "backtests": {
                    "config": {
                        "sensitivity_rebalances": ["monthly"],
                        "sensitivity_costs_bps": [0.0],
                    }
                },
            }
        },
    )
    yield home / "warehouse.duckdb", result
    mp.undo()


def _metadata(result, asset: str) -> dict:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_whole_graph_runs_on_equities(equities_run):
    path, result = equities_run
    from portfolio_pipeline.cli.runs import failure_reason

    assert result.success, failure_reason(result)
    features = _metadata(result, "market_features")
    assert features["periods_per_year"] == 252 and features["calendar"] == "business"
    assert features["cash_symbol"] == "USD"
    assert features["benchmark_rule"] == "largest traded value"
    backtest = _metadata(result, "backtest_metrics")
    assert backtest["test_window"] == "2022-07-01..2022-12-28"
    assert backtest["validation_window"] == "2022-01-01..2022-06-30"
    with warehouse.connection(path, read_only=True) as con:
        recs = con.execute("select * from portfolio.recommendations").pl()
        folds = con.execute("select * from ml.forecast_folds").pl()
        backtest_rows = con.execute("select * from ml.forecast_backtest").pl()
        metrics = con.execute("select * from portfolio.backtest_metrics").pl()
        risk = con.execute("select * from portfolio.risk_metrics").pl()
        stress = con.execute("select * from portfolio.stress_tests").pl()
    # recommendations on the last session, cash in USD
    assert recs["as_of"].unique().to_list() == [END]
    assert "USD" in recs["symbol"].to_list() and "USDT" not in recs["symbol"].to_list()
    assert abs(recs["target_weight"].sum() - 1) < 1e-9
    # 8-bar labels exist across weekends: every weekday has out-of-sample H=8 forecasts
    h8 = backtest_rows.filter(pl.col("horizon_days") == 8)
    assert set(h8["as_of"].dt.weekday().unique().to_list()) == {1, 2, 3, 4, 5}
    # the purge in sessions: a training label ends no later than its fold's test start
    assert folds.filter(pl.col("train_label_end") > pl.col("test_start")).is_empty()
    assert (metrics["periods_per_year"] == 252).all()
    assert set(metrics["test_start"].to_list()) == {date(2022, 7, 1)}
    assert {"current", "recommended"} <= set(risk["portfolio"].to_list())
    assert "bear_2022" in stress["scenario"].to_list()
    # news counts from the session that can act on it: after Friday's close and on the
    # Christmas holiday (Monday 2022-12-26), from Tuesday's session
    with warehouse.connection(path, read_only=True) as con:
        aapl = con.execute(
            "select date, news_count from features.daily_sentiment where symbol = 'AAPL' "
            "and news_count > 0 order by date"
        ).fetchall()
    assert aapl == [(date(2022, 12, 23), 1), (date(2022, 12, 27), 2)]


def test_drl_reference_and_splits_follow_the_equity_calendar():
    from portfolio_pipeline.examples.sp500 import sp500_ohlcv
    from portfolio_pipeline.market.context import choose_benchmark
    from portfolio_pipeline.policies.env_data import build_env_data
    from portfolio_pipeline.policies.evaluation import evaluate_fixed_weights
    from portfolio_pipeline.policies.splits import Splits

    ohlcv = sp500_ohlcv(date(2019, 1, 2), END).filter(
        pl.col("symbol").is_in(["AAPL", "JNJ", "MSFT", "XOM"])
    )
    benchmark = choose_benchmark(ohlcv)
    data = build_env_data(ohlcv, None, cash_symbol="USD", benchmark_symbol=benchmark.symbol)
    splits = Splits.from_dates(data.dates)
    # test = the last 2 years up to the last session, validation = the year before
    assert splits.test == (date(2020, 12, 29), date(2022, 12, 29))
    assert splits.validation == (date(2019, 12, 29), date(2020, 12, 29))
    bought = evaluate_fixed_weights(
        data, splits.test, "buy_benchmark", env_kwargs={"lookback": 5}, periods_per_year=252
    )
    closes = ohlcv.filter(
        (pl.col("symbol") == benchmark.symbol)
        & pl.col("date").is_between(*splits.test, closed="left")
    )["close"]
    # buy and hold of the benchmark: one trade, then the stock's own move (cost of 10 bps once)
    held = float(closes[-1] / closes[0])
    assert bought.total_return == pytest.approx(held * (1 - 0.001) - 1, rel=1e-3)
