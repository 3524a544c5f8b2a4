"""The recommendation strategy, chosen on the validation window only."""

from __future__ import annotations

from datetime import date
from typing import cast

import polars as pl


def select_default_strategy(
    validation_metrics: pl.DataFrame,
    *,
    metric: str = "sharpe",
    test_start: date | None = None,
) -> str:
    """Pick the recommendation strategy by its VALIDATION-window ``metric`` (highest wins).

    ``validation_metrics`` is a metrics frame (``strategy, start, end, sharpe, ...``) computed
    on a window that must end before ``test_start`` when given: choosing on the test window
    would leak the test result into the choice. Ties go to the alphabetically first name;
    strategies with a NaN metric are ignored.
    """
    if validation_metrics.is_empty():
        raise ValueError("select_default_strategy: validation metrics are empty")
    if metric not in validation_metrics.columns:
        raise ValueError(f"select_default_strategy: no column {metric!r}")
    if test_start is not None and "end" in validation_metrics.columns:
        # polars types max() as any literal; ``end`` is a date column
        latest = cast(date | None, validation_metrics.get_column("end").max())
        if latest is not None and latest >= test_start:
            raise ValueError(
                f"select_default_strategy: validation window ends {latest}, not before the "
                f"test window starts ({test_start}); choosing there would leak the test"
            )
    usable = validation_metrics.filter(pl.col(metric).is_not_nan() & pl.col(metric).is_not_null())
    if usable.is_empty():
        raise ValueError(f"select_default_strategy: every strategy has a NaN {metric}")
    best = usable.sort([metric, "strategy"], descending=[True, False]).row(0, named=True)
    return str(best["strategy"])
