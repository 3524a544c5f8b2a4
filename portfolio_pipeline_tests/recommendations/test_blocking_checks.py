from __future__ import annotations

import polars as pl

from portfolio_pipeline.recommendations.blocking_checks import (
    no_buy_of_untradable,
    weights_in_unit_interval,
    weights_sum_to_one,
)
from portfolio_pipeline_tests.recommendations.test_decision import _run  # a real recommend() frame


def test_predicates_catch_bad_frames() -> None:
    frame = _run(None)
    broken = frame.with_columns(pl.col("target_weight") * 1.01)
    assert not weights_sum_to_one(broken)
    assert not weights_in_unit_interval(frame.with_columns(pl.lit(-0.1).alias("target_weight")))
    forced_buy = frame.with_columns(pl.lit("BUY").alias("action"))
    outcome = no_buy_of_untradable(forced_buy, ["AUSDT"])
    assert not outcome and "BUSDT" in outcome.detail
