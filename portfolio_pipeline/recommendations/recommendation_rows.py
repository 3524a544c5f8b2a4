"""The rows of ``portfolio.recommendations``: each asset's weight after trades and costs, its
action, quantity and notional, and a reason that says why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from polars._typing import PolarsDataType  # polars' own alias for a column dtype

from portfolio_pipeline.recommendations.moves import EPS, AssetMove

RECOMMENDATION_SCHEMA: dict[str, PolarsDataType] = {
    "as_of": pl.Date,
    "generated_at": pl.Datetime("us", "UTC"),
    "run_id": pl.Utf8,
    "strategy": pl.Utf8,
    "symbol": pl.Utf8,
    "current_weight": pl.Float64,
    "target_weight": pl.Float64,
    "action": pl.Utf8,
    "quantity": pl.Float64,
    "notional": pl.Float64,
    "price": pl.Float64,
    "expected_return": pl.Float64,
    "return_low": pl.Float64,
    "return_high": pl.Float64,
    "reason": pl.Utf8,
    "strategy_weight": pl.Float64,
    "horizon_days": pl.Int64,
    "calibrated_return": pl.Float64,
    "gate_confidence": pl.Float64,
    "wanted_turnover": pl.Float64,
    "cost_bps": pl.Float64,
    "portfolio_value": pl.Float64,
}


@dataclass(frozen=True)
class RowContext:
    """What every row of one run shares."""

    as_of: date
    generated_at: datetime
    run_id: str
    strategy: str
    total_value: float
    cost_bps: float
    min_notional: float
    small: set[str]
    gate_state: str
    horizon: int | None
    confidence: float | None
    wanted_turnover: float


def recommendation_rows(assets: list[AssetMove], ctx: RowContext) -> list[dict]:
    """Final weights after trades and costs, one output row per asset."""
    cost_rate = ctx.cost_bps / 10_000.0
    cash = assets[-1]
    traded = sum(abs(a.delta) for a in assets[:-1])
    cost = cost_rate * traded
    cash.delta = -sum(a.delta for a in assets[:-1]) - cost
    remaining = 1.0 - cost
    rows = []
    for a in assets:
        notional = abs(a.delta) * ctx.total_value
        if a.is_cash:
            action, quantity, notional_out = "HOLD", 0.0, 0.0
            reason = (
                # rounded first: a float-noise residue must print +0.00, not -0.00
                f"cash: {round(a.delta * ctx.total_value, 2) + 0.0:+,.2f} {a.symbol} from trades, of which "
                f"{cost * ctx.total_value:,.2f} {a.symbol} costs ({ctx.cost_bps:g} bps)"
            )
        else:
            action = "BUY" if a.delta > EPS else "SELL" if a.delta < -EPS else "HOLD"
            quantity = notional / a.price if action != "HOLD" else 0.0
            notional_out = notional if action != "HOLD" else 0.0
            reason = _reason(a, action, ctx)
        rows.append(
            {
                "as_of": ctx.as_of,
                "generated_at": ctx.generated_at,
                "run_id": ctx.run_id,
                "strategy": ctx.strategy,
                "symbol": a.symbol,
                "current_weight": a.current,
                "target_weight": max(a.current + a.delta, 0.0) / remaining,
                "action": action,
                "quantity": quantity,
                "notional": notional_out,
                "price": a.price,
                "expected_return": a.mid,
                "return_low": a.low,
                "return_high": a.high,
                "reason": reason,
                "strategy_weight": a.raw_target,
                "horizon_days": ctx.horizon if (a.mid is not None and not a.is_cash) else None,
                "calibrated_return": None if a.is_cash else a.expected,
                "gate_confidence": ctx.confidence,
                "wanted_turnover": ctx.wanted_turnover,
                "cost_bps": ctx.cost_bps,
                "portfolio_value": ctx.total_value,
            }
        )
    return rows


def _reason(a: AssetMove, action: str, ctx: RowContext) -> str:
    parts: list[str] = []
    wanted = a.raw_target - a.current
    if not a.tradable:
        parts.append(f"cannot trade: {a.why_untradable}; position kept")
    elif a.symbol in ctx.small:
        parts.append(f"trade below the minimum notional {ctx.min_notional:,.2f} {a.cash_symbol}")
    elif action == "HOLD" and abs(wanted) <= 1e-9:
        parts.append(f"already at the {ctx.strategy} target")
    else:
        parts.append(f"{ctx.strategy} target {a.raw_target:.2%} vs current {a.current:.2%}")
    if ctx.gate_state:
        parts.append(ctx.gate_state)
    elif a.forecast_issue and not any(n.startswith("gate refused") for n in a.notes):
        parts.append(a.forecast_issue)
    parts.extend(a.notes)
    return f"{action}: " + "; ".join(parts)
