"""Audit of ``features.market_features`` after warm-up: what is missing, where, and why.

Pure (no dagster). The blocking check ``features_finite_after_warm_up`` calls
:func:`audit_features` and shows its text in the CLI, the run-failure alert and the UI: the
rule, the column, the symbols and the first dates, so nobody has to query the table to find
the culprit.

Two kinds of finding:

- **error** (rule ``finite_after_warm_up``, blocking): a value is NaN, infinite, or null
  without a reason the data explains. That is bad input (or a bug) and must stop the run.
- **warning** (rule ``defined_after_warm_up``, not blocking): a value is null for a
  legitimate reason stated in :data:`LEGITIMATELY_UNDEFINED`, e.g. a volume that did not
  change for 20 bars has no z-score. The run goes on; the check shows the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import cast

import polars as pl

from portfolio_pipeline.market.features import BOLLINGER_WINDOW, VOLUME_Z_WINDOW

WARM_UP_ROWS = 120  # the longest look-back (ret_120d), in bars
ERROR_RULE = "finite_after_warm_up"
WARNING_RULE = "defined_after_warm_up"
MAX_SYMBOLS_SHOWN = 5

_FLAT_VOLUME = "_flat_volume"
_FLAT_CLOSE = "_flat_close"
# column -> (condition on the raw OHLCV that makes a null legitimate, the reason shown)
LEGITIMATELY_UNDEFINED: dict[str, tuple[str, str]] = {
    f"volume_z_{VOLUME_Z_WINDOW}": (
        _FLAT_VOLUME,
        f"volume did not change over the last {VOLUME_Z_WINDOW} bars: its z-score is undefined",
    ),
    f"volume_z_{VOLUME_Z_WINDOW}_xs_rank": (
        _FLAT_VOLUME,
        f"ranks volume_z_{VOLUME_Z_WINDOW}, undefined where volume did not change for "
        f"{VOLUME_Z_WINDOW} bars",
    ),
    f"bb_pct_b_{BOLLINGER_WINDOW}": (
        _FLAT_CLOSE,
        f"close did not change over the last {BOLLINGER_WINDOW} bars: the Bollinger bands collapse",
    ),
}


@dataclass(frozen=True)
class FeatureIssue:
    """Non-finite or undefined values of one column after warm-up."""

    rule: str
    column: str
    n_rows: int
    symbols: tuple[str, ...]  # every symbol affected, ordered by its first bad date
    first_dates: tuple[date, ...]  # first bad date of each symbol, same order
    last_date: date
    reason: str

    def describe(self) -> str:
        shown = ", ".join(
            f"{s} from {d}"
            for s, d in zip(
                self.symbols[:MAX_SYMBOLS_SHOWN], self.first_dates[:MAX_SYMBOLS_SHOWN], strict=True
            )
        )
        more = (
            f" and {len(self.symbols) - MAX_SYMBOLS_SHOWN} more symbols"
            if len(self.symbols) > MAX_SYMBOLS_SHOWN
            else ""
        )
        return (
            f"rule {self.rule}: column {self.column}: {self.n_rows} rows ({self.reason}); "
            f"symbols {shown}{more}; last {self.last_date}"
        )


@dataclass(frozen=True)
class FeatureAudit:
    errors: tuple[FeatureIssue, ...]
    warnings: tuple[FeatureIssue, ...]
    rows_checked: int
    columns_checked: int

    @property
    def ok(self) -> bool:
        """No error (warnings do not block)."""
        return not self.errors

    def describe(self) -> str:
        if not self.errors and not self.warnings:
            return (
                f"all {self.columns_checked} features finite after {WARM_UP_ROWS} bars of warm-up "
                f"({self.rows_checked} rows)"
            )
        parts = [f"ERROR {i.describe()}" for i in self.errors]
        parts += [f"WARNING {i.describe()}" for i in self.warnings]
        return "; ".join(parts)


def _raw_conditions(ohlcv: pl.DataFrame) -> pl.DataFrame:
    # Same rolling statistics as market.features, so "flat" here is exactly "null" there.
    return (
        ohlcv.select(
            pl.col("symbol").cast(pl.String),
            "date",
            pl.col("close").cast(pl.Float64),
            pl.col("volume").cast(pl.Float64),
        )
        .sort("symbol", "date")
        .with_columns(
            (pl.col("volume").rolling_std(VOLUME_Z_WINDOW, min_samples=VOLUME_Z_WINDOW) <= 0)
            .over("symbol")
            .fill_null(False)
            .alias(_FLAT_VOLUME),
            (
                pl.col("close").rolling_std(BOLLINGER_WINDOW, min_samples=BOLLINGER_WINDOW, ddof=0)
                <= 0
            )
            .over("symbol")
            .fill_null(False)
            .alias(_FLAT_CLOSE),
        )
        .select("symbol", "date", _FLAT_VOLUME, _FLAT_CLOSE)
    )


def _issue(rows: pl.DataFrame, rule: str, column: str, reason: str) -> FeatureIssue:
    firsts = rows.group_by("symbol").agg(pl.col("date").min()).sort("date", "symbol")
    return FeatureIssue(
        rule=rule,
        column=column,
        n_rows=rows.height,
        symbols=tuple(firsts["symbol"].to_list()),
        first_dates=tuple(firsts["date"].to_list()),
        last_date=cast(date, rows["date"].max()),
        reason=reason,
    )


def audit_features(
    features: pl.DataFrame, ohlcv: pl.DataFrame, warm_up_rows: int = WARM_UP_ROWS
) -> FeatureAudit:
    """Every float column of ``features`` on the rows after each symbol's first
    ``warm_up_rows`` bars: errors (non-finite from bad data) and warnings (legitimately
    undefined, :data:`LEGITIMATELY_UNDEFINED`), each naming column, symbols and dates."""
    numeric = [c for c, t in features.schema.items() if t.is_float()]
    warm = (
        features.sort("symbol", "date")
        .filter(pl.int_range(pl.len()).over("symbol") >= warm_up_rows)
        .join(_raw_conditions(ohlcv), on=["symbol", "date"], how="left")
        .with_columns(pl.col(_FLAT_VOLUME, _FLAT_CLOSE).fill_null(False))
    )
    errors, warnings = [], []
    for column in numeric:
        bad = ~pl.col(column).is_finite().fill_null(False)
        condition, reason = LEGITIMATELY_UNDEFINED.get(column, (None, ""))
        legit = pl.col(column).is_null() & pl.col(condition) if condition else pl.lit(False)
        flagged = warm.filter(bad).select("symbol", "date", column, legit.alias("_legit"))
        if flagged.is_empty():
            continue
        hard = flagged.filter(~pl.col("_legit"))
        soft = flagged.filter(pl.col("_legit"))
        if hard.height:
            n_nan = hard.filter(pl.col(column).is_nan()).height
            n_null = hard.filter(pl.col(column).is_null()).height
            kinds = f"{n_nan} NaN, {n_null} null, {hard.height - n_nan - n_null} infinite"
            errors.append(_issue(hard, ERROR_RULE, column, f"non-finite: {kinds}"))
        if soft.height:
            warnings.append(_issue(soft, WARNING_RULE, column, reason))
    return FeatureAudit(tuple(errors), tuple(warnings), warm.height, len(numeric))
