"""Predicates of the blocking checks on a recommendation run: the post-trade weights sum to
one and lie in [0, 1], and nothing untradable is bought."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class CheckOutcome:
    """Result of a predicate on a recommendation frame; truthy when it passed."""

    passed: bool
    detail: str

    def __bool__(self) -> bool:
        return self.passed


def _groups(frame: pl.DataFrame) -> list[str]:
    return [c for c in ("as_of", "run_id", "strategy") if c in frame.columns]


def weights_sum_to_one(
    frame: pl.DataFrame, column: str = "target_weight", tolerance: float = 1e-9
) -> CheckOutcome:
    """Each (as_of, run_id, strategy) group's ``column`` sums to 1 within ``tolerance``."""
    if frame.is_empty():
        return CheckOutcome(False, "no rows")
    keys = _groups(frame)
    sums = (
        frame.group_by(keys).agg(pl.col(column).sum().alias("total"))
        if keys
        else frame.select(pl.col(column).sum().alias("total"))
    )
    bad = sums.filter(((pl.col("total") - 1.0).abs() > tolerance) | pl.col("total").is_nan())
    if bad.height:
        return CheckOutcome(
            False, f"{bad.height} group(s) do not sum to 1: {bad.head(3).to_dicts()}"
        )
    return CheckOutcome(True, f"{sums.height} group(s) sum to 1 within {tolerance:g}")


def weights_in_unit_interval(frame: pl.DataFrame, column: str = "target_weight") -> CheckOutcome:
    """Every ``column`` value is finite and within [0, 1]."""
    bad = frame.filter(
        pl.col(column).is_null()
        | pl.col(column).is_nan()
        | (pl.col(column) < 0)
        | (pl.col(column) > 1)
    )
    if bad.height:
        rows = bad.select("symbol", column).head(5).to_dicts()
        return CheckOutcome(False, f"{bad.height} weight(s) outside [0, 1]: {rows}")
    return CheckOutcome(True, f"{frame.height} weights in [0, 1]")


def no_buy_of_untradable(frame: pl.DataFrame, tradable: Iterable[str]) -> CheckOutcome:
    """No BUY row for a symbol outside ``tradable`` (stopped trading or no liquidity)."""
    allowed = set(tradable)
    bad = frame.filter((pl.col("action") == "BUY") & ~pl.col("symbol").is_in(list(allowed)))
    if bad.height:
        return CheckOutcome(
            False, f"BUY of untradable symbol(s): {sorted(bad.get_column('symbol').to_list())}"
        )
    return CheckOutcome(True, "no BUY of an untradable symbol")


def tradable_symbols(latest_prices: pl.DataFrame, liquidity: pl.DataFrame) -> list[str]:
    """Symbols that may be bought at ``as_of``: priced that day (``trading``) and with a
    positive average traded value (``adv_quote``) -- the universe of :func:`no_buy_of_untradable`."""
    liquid = liquidity.filter(pl.col("adv_quote") > 0).select("symbol")
    return latest_prices.filter(pl.col("trading")).join(liquid, on="symbol")["symbol"].to_list()


RECOMMENDATION_CHECKS: dict[str, str] = {
    "weights_sum_to_one": "post-trade target weights (cash included) sum to 1 within 1e-9",
    "weights_in_unit_interval": "every post-trade target weight is in [0, 1]",
    "no_buy_of_untradable": "no BUY of a symbol that stopped trading or lacks liquidity",
}


def check_recommendations(frame: pl.DataFrame, tradable: Iterable[str]) -> dict[str, CheckOutcome]:
    """Every blocking check of :data:`RECOMMENDATION_CHECKS` on one run's rows."""
    return {
        "weights_sum_to_one": weights_sum_to_one(frame),
        "weights_in_unit_interval": weights_in_unit_interval(frame),
        "no_buy_of_untradable": no_buy_of_untradable(frame, tradable),
    }
