"""The recommendation strategy, chosen on the validation window only.

A strategy built on top of another (a residual DRL policy tilts its base strategy's weights)
is chosen over the plain strategies only when it beats *its base* on validation by more than
noise: the two return series are ~0.98 correlated, so a Sharpe edge of a few hundredths is what
chance gives, and the base itself was picked on the same window (which makes such an edge
easier to find). The test is Jobson and Korkie's, as corrected by Memmel (2003): the standard
error of the difference of two Sharpe ratios measured on the same days.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from typing import cast

import numpy as np
import polars as pl

#: One-sided level at which a derived strategy must beat its base on validation.
DERIVED_EDGE_SIGNIFICANCE = 0.05


def sharpe_difference_z(returns_a: np.ndarray, returns_b: np.ndarray) -> float:
    """z statistic of ``Sharpe(a) - Sharpe(b)`` on paired per-period returns (Memmel 2003):
    ``V = (2 - 2 rho + (SR_a^2 + SR_b^2 - 2 SR_a SR_b rho^2) / 2) / T`` with per-period
    Sharpe ratios and ``rho`` the correlation of the two series. NaN when either series is
    constant or shorter than 3 periods."""
    a, b = np.asarray(returns_a, dtype=float), np.asarray(returns_b, dtype=float)
    if a.shape != b.shape or a.size < 3:
        return math.nan
    sd_a, sd_b = a.std(ddof=1), b.std(ddof=1)
    if sd_a <= 0 or sd_b <= 0:
        return math.nan
    sr_a, sr_b = a.mean() / sd_a, b.mean() / sd_b
    rho = float(np.corrcoef(a, b)[0, 1])
    variance = (2 - 2 * rho + 0.5 * (sr_a**2 + sr_b**2 - 2 * sr_a * sr_b * rho**2)) / a.size
    if variance <= 0:
        return math.inf if sr_a > sr_b else -math.inf if sr_a < sr_b else math.nan
    return float((sr_a - sr_b) / math.sqrt(variance))


def edges_over_bases(daily_returns: pl.DataFrame, derived_from: Mapping[str, str]) -> pl.DataFrame:
    """One row per derived strategy that has returns: ``strategy, base_strategy,
    edge_over_base_z, edge_over_base_p`` (one-sided p of "no better than its base"), on the
    days both have a return. A base without returns in the window gives NaN: an edge that
    cannot be shown is not granted. ``daily_returns``: ``strategy, date, daily_return``."""
    rows = []
    for strategy, base in sorted(derived_from.items()):
        a = daily_returns.filter(pl.col("strategy") == strategy).select("date", "daily_return")
        b = daily_returns.filter(pl.col("strategy") == base).select("date", "daily_return")
        if a.is_empty():
            continue
        both = a.join(b, on="date", suffix="_base").drop_nulls().sort("date")
        z = sharpe_difference_z(
            both["daily_return"].to_numpy(), both["daily_return_base"].to_numpy()
        )
        p = math.nan if math.isnan(z) else 0.5 * math.erfc(z / math.sqrt(2.0))
        rows.append(
            {
                "strategy": strategy,
                "base_strategy": base,
                "edge_over_base_z": z,
                "edge_over_base_p": p,
            }
        )
    schema = {
        "strategy": pl.Utf8,
        "base_strategy": pl.Utf8,
        "edge_over_base_z": pl.Float64,
        "edge_over_base_p": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def select_default_strategy(
    validation_metrics: pl.DataFrame,
    *,
    metric: str = "sharpe",
    test_start: date | None = None,
    edges: pl.DataFrame | None = None,
    significance: float = DERIVED_EDGE_SIGNIFICANCE,
) -> str:
    """Pick the recommendation strategy by its VALIDATION-window ``metric`` (highest wins).

    ``validation_metrics`` is a metrics frame (``strategy, start, end, sharpe, ...``) computed
    on a window that must end before ``test_start`` when given: choosing on the test window
    would leak the test result into the choice. Ties go to the alphabetically first name;
    strategies with a NaN metric are ignored. ``edges`` (:func:`edges_over_bases`): a derived
    strategy listed there is a candidate only when its edge over its base has a one-sided
    p-value of at most ``significance`` (a NaN p, e.g. a base without returns, excludes it).
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
    if edges is not None and edges.height:
        not_shown = edges.filter(~(pl.col("edge_over_base_p") <= significance).fill_null(False))[
            "strategy"
        ]
        usable = usable.filter(~pl.col("strategy").is_in(not_shown.implode()))
    if usable.is_empty():
        raise ValueError(f"select_default_strategy: every strategy has a NaN {metric}")
    best = usable.sort([metric, "strategy"], descending=[True, False]).row(0, named=True)
    return str(best["strategy"])
