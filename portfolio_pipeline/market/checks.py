"""Checks on the market features: finite after warm-up (blocking)."""

import dagster as dg

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.market.assets import market_features
from portfolio_pipeline.market.feature_audit import audit_features
from portfolio_pipeline.warehouse.resources import WarehouseResource


@dg.asset_check(asset=market_features, blocking=True)
def features_finite_after_warm_up(warehouse_resource: WarehouseResource) -> dg.AssetCheckResult:
    """Every numeric feature is finite once a symbol has 120 bars of history. Non-finite
    values from bad data block the run (ERROR); values undefined for a stated reason (a
    volume that did not change for 20 bars has no z-score) are a WARNING. The description
    names the rule, the column, the symbols and their first dates."""
    with warehouse_resource.connect(read_only=True) as con:
        frame = warehouse.read_table(con, tables.MARKET_FEATURES)
        ohlcv = warehouse.read_frame(
            con, f"select symbol, date, close, volume from {tables.RAW_OHLCV}"
        )
    audit = audit_features(frame, ohlcv)
    return dg.AssetCheckResult(
        passed=not audit.errors and not audit.warnings,
        severity=dg.AssetCheckSeverity.ERROR if audit.errors else dg.AssetCheckSeverity.WARN,
        description=audit.describe(),
        metadata={
            "rows_checked": audit.rows_checked,
            "columns_checked": audit.columns_checked,
            "error_columns": ", ".join(i.column for i in audit.errors) or "none",
            "warning_columns": ", ".join(i.column for i in audit.warnings) or "none",
        },
    )
