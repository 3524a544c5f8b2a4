"""The validation rule and its rolling-origin record (issue 22)."""

from __future__ import annotations

import polars as pl

from portfolio_pipeline.recommendations.process_selection import choose_process, rolling_origin
from portfolio_pipeline.recommendations.processes import PROCESSES, band_edge_at, cost_aware_at


def _metrics(window: str, rows: list[tuple[str, float, float, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "process": [r[0] for r in rows],
            "window": [window] * len(rows),
            "sharpe": [r[1] for r in rows],
            "turnover": [r[2] for r in rows],
            "trading_days": [r[3] for r in rows],
            "total_return": [r[1] / 10 for r in rows],
            "max_drawdown": [0.1] * len(rows),
            "cost_paid": [r[2] / 1000 for r in rows],
        }
    )


def test_the_best_sharpe_wins_and_ties_go_to_the_cheaper_process() -> None:
    metrics = _metrics(
        "validation",
        [("target", 1.90, 8.0, 365), ("band_edge_g1", 1.904, 1.5, 20), ("band_5pct", 1.70, 0.6, 3)],
    )
    choice = choose_process(metrics, "validation")
    assert choice.process == "band_edge_g1"  # 1.90 == 1.90 at two decimals: the cheaper one
    assert "lowest turnover" in choice.reason


def test_doing_nothing_must_win_not_tie() -> None:
    tie = _metrics("validation", [("target", 1.77, 8.0, 365), ("never_trade", 1.77, 0.0, 0)])
    assert choose_process(tie, "validation").process == "target"
    win = _metrics("validation", [("target", 1.70, 8.0, 365), ("never_trade", 1.77, 0.0, 0)])
    assert choose_process(win, "validation").process == "never_trade"


def test_nothing_beats_the_target_so_the_target_is_chosen() -> None:
    metrics = _metrics(
        "validation",
        [
            ("target", 1.98, 7.7, 364),
            ("gated_c95", 1.77, 0.0, 0),
            ("cost_aware_g2_k1", 1.80, 2, 50),
        ],
    )
    assert choose_process(metrics, "validation").process == "target"


def test_the_rolling_choice_for_a_year_uses_nothing_from_that_year() -> None:
    specs = {
        "target": PROCESSES["target"],
        "cost_aware_g2_k1": cost_aware_at(2.0, 1.0),
        "band_edge_g1": band_edge_at(1.0),
    }
    years = {
        "2021": [
            ("target", 1.0, 8, 365),
            ("cost_aware_g2_k1", 1.5, 2, 90),
            ("band_edge_g1", 0.9, 1, 9),
        ],
        "2022": [
            ("target", -0.5, 8, 365),
            ("cost_aware_g2_k1", -0.9, 2, 80),
            ("band_edge_g1", 0.2, 1, 9),
        ],
        "2023": [
            ("target", 2.0, 8, 365),
            ("cost_aware_g2_k1", 1.0, 2, 70),
            ("band_edge_g1", 2.5, 1, 9),
        ],
    }
    metrics = pl.concat([_metrics(w, rows) for w, rows in years.items()])
    table = rolling_origin(metrics, [2021, 2022, 2023], specs)
    assert table["year"].to_list() == [2022, 2023]  # 2021 has no previous year replayed
    assert table["process"].to_list() == ["cost_aware_g2_k1", "band_edge_g1"]
    assert table["sharpe"].to_list() == [-0.9, 2.5]  # the chosen process's next-year figure
    assert table["risk_aversion"].to_list() == [2.0, 1.0]
    assert table["sharpe__target"].to_list() == [-0.5, 2.0]
    # the expanding-window reference: best mean Sharpe over every earlier year (2021-22 for 2023)
    assert table["expanding_process"].to_list() == ["cost_aware_g2_k1", "band_edge_g1"]
    assert table["expanding_sharpe"].to_list() == [-0.9, 2.5]
    # poison 2023 completely: the choice for 2023 (made on 2022) does not move
    poisoned = metrics.with_columns(
        pl.when(pl.col("window") == "2023").then(-pl.col("sharpe")).otherwise(pl.col("sharpe"))
    )
    again = rolling_origin(poisoned, [2021, 2022, 2023], specs)
    assert again["process"].to_list() == table["process"].to_list()


def test_a_year_after_one_with_no_defined_sharpe_has_no_row_instead_of_failing() -> None:
    """A strategy without weights in a year (a DRL policy before its training window ends)
    leaves every process's Sharpe undefined there: nothing to choose on, so no row."""
    specs = {"target": PROCESSES["target"], "band_edge_g1": band_edge_at(1.0)}
    nan = float("nan")
    metrics = pl.concat(
        [
            _metrics("2021", [("target", nan, 0, 0), ("band_edge_g1", nan, 0, 0)]),
            _metrics("2022", [("target", 1.0, 8, 365), ("band_edge_g1", 1.2, 1, 9)]),
            _metrics("2023", [("target", 2.0, 8, 365), ("band_edge_g1", 1.5, 1, 9)]),
        ]
    )
    table = rolling_origin(metrics, [2022, 2023], specs)
    assert table["year"].to_list() == [2023]
    assert table["process"].to_list() == ["band_edge_g1"]
