from datetime import date

import dagster as dg
import polars as pl
import pytest

from portfolio_pipeline import warehouse
from portfolio_pipeline.definitions import build_definitions
from portfolio_pipeline.portfolio.metrics import performance_summary
from portfolio_pipeline_tests.helpers import settings_for_tests

PORTFOLIO_ASSETS = [
    "holdings", "backtest_metrics", "backtest_equity", "backtest_sensitivity",
    "strategy_validation", "target_weights", "recommendations", "risk_metrics",
    "stress_tests", "liquidity",
]  # fmt: skip
RUN_CONFIG = {
    "ops": {
        "backtests": {
            "config": {
                "validation_start": "2023-07-01",
                "validation_end": "2023-09-30",
                "test_start": "2023-10-01",
                "test_end": "2024-03-31",
                "sensitivity_rebalances": ["weekly", "monthly"],
                "sensitivity_costs_bps": [0.0, 10.0],
            }
        }
    }
}


@pytest.fixture(scope="module")
def portfolio_run(tmp_path_factory, sample_ohlcv):
    path = tmp_path_factory.mktemp("portfolio") / "warehouse.duckdb"
    with warehouse.connection(
        path
    ) as con:  # raw data seeded directly: ingestion is tested elsewhere
        warehouse.replace_table(
            con, "market.raw_ohlcv", sample_ohlcv.filter(pl.col("date") <= date(2024, 3, 31))
        )
    defs = build_definitions(settings_for_tests(path))
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=[dg.AssetKey(k) for k in PORTFOLIO_ASSETS],
        instance=dg.DagsterInstance.ephemeral(),
        run_config=RUN_CONFIG,
    )
    yield path, result


def test_portfolio_graph_materializes_with_passing_checks(portfolio_run):
    path, result = portfolio_run
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "weights_sum_to_one": True, "weights_in_unit_interval": True,
        "no_buy_of_untradable": True, "target_weights_sum_to_one": True,
    }  # fmt: skip
    with warehouse.connection(path, read_only=True) as con:
        recs = con.execute("select * from portfolio.recommendations").pl()
        selected = con.execute(
            "select strategy from portfolio.strategy_validation where selected_for_recommendations"
        ).fetchall()
        portfolios = {
            r[0]
            for r in con.execute("select distinct portfolio from portfolio.risk_metrics").fetchall()
        }
    assert recs["as_of"].unique().to_list() == [date(2024, 3, 31)]
    assert recs["reason"].null_count() == 0
    assert abs(recs["target_weight"].sum() - 1) < 1e-9
    assert recs["strategy"].unique().to_list() == [selected[0][0]]
    assert {"current", "recommended"} <= portfolios


def test_backtest_metrics_recompute_from_equity(portfolio_run):
    path, _ = portfolio_run
    with warehouse.connection(path, read_only=True) as con:
        equity = con.execute("select * from portfolio.backtest_equity order by strategy, date").pl()
        metrics = con.execute("select * from portfolio.backtest_metrics").pl()
    assert metrics["start"].unique().to_list() == [date(2023, 10, 1)]
    for row in metrics.iter_rows(named=True):
        curve = equity.filter(pl.col("strategy") == row["strategy"])
        again = performance_summary(
            curve.select("date", pl.col("daily_return").alias("return")),
            periods_per_year=365,
            turnover=curve["turnover"].to_numpy(),
        )
        for key in (
            "total_return",
            "cagr",
            "ann_vol",
            "sharpe",
            "sortino",
            "max_drawdown",
            "calmar",
            "var_95",
            "cvar_95",
        ):
            assert again[key] == pytest.approx(row[key], rel=1e-9, abs=1e-12), (
                row["strategy"],
                key,
            )


def test_recommendation_history_is_kept(portfolio_run):
    path, _ = portfolio_run
    defs = build_definitions(settings_for_tests(path))
    again = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=[dg.AssetKey("recommendations")], instance=dg.DagsterInstance.ephemeral()
    )
    assert again.success
    with warehouse.connection(path, read_only=True) as con:
        runs = con.execute(
            "select count(distinct run_id) from portfolio.recommendations"
        ).fetchone()[0]
    assert runs == 2


def test_residual_strategies_are_mapped_to_their_base_through_the_registry():
    import duckdb

    from portfolio_pipeline import tables
    from portfolio_pipeline.portfolio.assets import read_derived_from

    con = duckdb.connect()
    registry = pl.DataFrame(
        {
            "policy_id": ["a2c-s0", "a2c-s1", "ppo-s0"],
            "ensemble_id": ["a2c-ens2", "a2c-ens2", "ppo-ens1"],
            "base_strategy": ["hrp", "hrp", None],
        }
    )
    weights = pl.DataFrame(
        {
            "as_of": [date(2024, 1, 1)] * 2,
            "symbol": ["BTCUSDT"] * 2,
            "weight": [1.0, 1.0],
            "strategy": ["drl_residual_a2c", "drl_ppo"],
            "policy_id": ["a2c-ens2", "ppo-ens1"],
        }
    )
    assert read_derived_from(con, weights) == {}  # no registry yet
    warehouse.replace_table(con, tables.POLICY_REGISTRY, registry)
    assert read_derived_from(con, weights) == {"drl_residual_a2c": "hrp"}
    assert read_derived_from(con, None) == {}
