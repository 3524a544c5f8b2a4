"""Checks on strategy targets."""

import dagster as dg
import polars as pl

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.portfolio.assets import target_weights
from portfolio_pipeline.warehouse.resources import WarehouseResource


@dg.asset_check(asset=target_weights, blocking=True)
def target_weights_sum_to_one(warehouse_resource: WarehouseResource) -> dg.AssetCheckResult:
    """Each strategy's latest weights are in [0, 1] and sum to 1 (cash included) within 1e-9."""
    with warehouse_resource.connect(read_only=True) as con:
        frame = warehouse.read_frame(
            con,
            f"select * from {tables.TARGET_WEIGHTS} "
            f"where as_of = (select max(as_of) from {tables.TARGET_WEIGHTS})",
        )
    sums = frame.group_by("strategy").agg(
        pl.col("weight").sum().alias("total"),
        pl.col("weight").min().alias("lowest"),
        pl.col("weight").max().alias("highest"),
    )
    bad = sums.filter(
        ((pl.col("total") - 1).abs() > 1e-9) | (pl.col("lowest") < 0) | (pl.col("highest") > 1)
    )
    return dg.AssetCheckResult(
        passed=bad.is_empty() and not frame.is_empty(),
        description=f"{sums.height} strategies checked"
        if bad.is_empty()
        else f"invalid weights: {bad.to_dicts()}",
    )
