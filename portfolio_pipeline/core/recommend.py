"""Rebalancing recommendations: from current holdings towards a strategy's target, gated by
forecast confidence, costs, a minimum trade size, a turnover cap and tradability.

Procedure (all weights are fractions of the current portfolio value ``V``)
------------------------------------------------------------------------
1. ``current`` weights from holdings at the latest prices (cash ``USDT`` at 1).
2. ``desired`` = the strategy target. A symbol that cannot be traded (no price on ``as_of``:
   stopped trading; or no volume in the liquidity frame) keeps its current weight: it is
   neither bought nor sold. If that leaves too little cash, buys are scaled down.
3. Confidence gate (in the spirit of POptimizer): weight moves from a sold asset ``A`` to a
   bought asset ``B`` only when ``low_B - high_A > cost_A + cost_B``, where ``low``/``high``
   are the forecast's q10/q90 turned into simple returns over the horizon
   (``exp(q) - 1``) and ``cost`` is ``cost_bps`` per risky leg (cash legs are free). Cash is an
   asset with return 0 and a zero-width interval, so selling ``A`` into cash needs
   ``high_A < -cost_A`` and buying ``B`` from cash needs ``low_B > cost_B``. Buys are matched
   greedily (highest ``low`` first) with sells (lowest ``high`` first). An asset without a
   forecast, while others have one, can be neither bought nor sold by the gate.
   **No usable forecast at all** (none given, or none within ``max_forecast_age_days``): the
   gate is not applied and trades follow the strategy target, every row saying so. We chose
   pass-through over "hold everything" so the classic strategies stay usable before the
   forecasting stage has run; the reason column makes the missing confidence check visible.
4. Turnover cap: if the one-way risky turnover exceeds ``turnover_cap``, every trade is scaled
   by the same factor (which keeps buys and sells balanced).
5. Trades below ``min_notional`` (USDT) are dropped; if dropping a sale (or paying the costs)
   would overdraw cash, buys are scaled down until cash stays >= 0, repeating the minimum
   check.
6. Costs (``cost_bps`` x traded risky notional) are paid from cash; ``target_weight`` is the
   weight AFTER trades and costs (sums to 1, each in [0, 1]); ``strategy_weight`` keeps the raw
   target.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import polars as pl

from portfolio_pipeline.settings import CASH_SYMBOL

RECOMMENDATION_SCHEMA = {
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
}
_EPS = 1e-12


@dataclass(frozen=True)
class CheckOutcome:
    """Result of a predicate on a recommendation frame; truthy when it passed."""

    passed: bool
    detail: str

    def __bool__(self) -> bool:
        return self.passed


@dataclass
class _Asset:
    symbol: str
    price: float
    current: float
    raw_target: float
    tradable: bool
    why_untradable: str
    low: float | None = None
    mid: float | None = None
    high: float | None = None
    desired: float = 0.0
    delta: float = 0.0
    note: str = ""
    cash_symbol: str = CASH_SYMBOL

    @property
    def is_cash(self) -> bool:
        return self.symbol == self.cash_symbol


def _latest_forecasts(
    forecasts: pl.DataFrame | None, as_of: date, horizon_days: int | None, max_age_days: int
) -> tuple[dict[str, tuple[float, float, float]], int | None]:
    """Per symbol (low, mid, high) simple returns over the horizon from the latest usable rows."""
    if forecasts is None or forecasts.is_empty():
        return {}, horizon_days
    usable = forecasts.filter(
        (pl.col("as_of") <= as_of) & (pl.col("as_of") >= as_of - timedelta(days=max_age_days))
    )
    if usable.is_empty():
        return {}, horizon_days
    if horizon_days is None:
        horizon_days = int(usable.get_column("horizon_days").min())
    usable = usable.filter(pl.col("horizon_days") == horizon_days)
    latest = usable.group_by("symbol").agg(pl.all().sort_by("as_of").last())
    out: dict[str, tuple[float, float, float]] = {}
    for symbol, q10, q50, q90 in latest.select("symbol", "q10", "q50", "q90").iter_rows():
        if None in (q10, q50, q90) or not all(math.isfinite(v) for v in (q10, q50, q90)):
            continue
        out[symbol] = (math.expm1(q10), math.expm1(q50), math.expm1(q90))
    return out, horizon_days


def _target_map(target_weights: pl.DataFrame, strategy: str, as_of: date) -> dict[str, float]:
    frame = target_weights
    if "strategy" in frame.columns:
        frame = frame.filter(pl.col("strategy") == strategy)
    if "as_of" in frame.columns:
        frame = frame.filter(pl.col("as_of") <= as_of)
        if frame.height:
            frame = frame.filter(pl.col("as_of") == frame.get_column("as_of").max())
    if frame.is_empty():
        raise ValueError(f"no target weights for strategy {strategy!r} on or before {as_of}")
    mapping: dict[str, float] = {}
    for symbol, weight in frame.select("symbol", "weight").iter_rows():
        if weight is None or not math.isfinite(weight) or weight < -1e-9:
            raise ValueError(f"target weight of {symbol} for {strategy!r} is invalid: {weight}")
        mapping[symbol] = mapping.get(symbol, 0.0) + max(float(weight), 0.0)
    total = sum(mapping.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"target weights of {strategy!r} sum to {total:.8f}, not 1")
    return mapping


def _scale_buys_to_cash(assets: list[_Asset], cash_weight: float, cost_rate: float) -> float:
    """Largest k in [0, 1] so that buys x k keep cash >= 0 after sales and costs."""
    risky = [a for a in assets if not a.is_cash]
    buys = sum(a.delta for a in risky if a.delta > 0)
    sells = -sum(a.delta for a in risky if a.delta < 0)
    if buys <= _EPS:
        return 1.0
    available = cash_weight + sells * (1.0 - cost_rate)
    return max(0.0, min(1.0, available / (buys * (1.0 + cost_rate))))


def recommend(
    holdings: pl.DataFrame,
    latest_prices: pl.DataFrame,
    target_weights: pl.DataFrame,
    forecasts: pl.DataFrame | None,
    *,
    cost_bps: float,
    min_notional: float,
    turnover_cap: float | None,
    liquidity: pl.DataFrame | None,
    as_of: date,
    strategy: str,
    run_id: str,
    generated_at: datetime | None = None,
    horizon_days: int | None = None,
    max_forecast_age_days: int = 7,
    cash_symbol: str = CASH_SYMBOL,
) -> pl.DataFrame:
    """Recommended trades -> rows of ``portfolio.recommendations`` (one per symbol + cash).

    Parameters
    ----------
    holdings : ``symbol, quantity`` (cash as ``cash_symbol``: ``USDT``, ``USD`` …).
    latest_prices : ``symbol, price`` and optionally ``trading`` (False = no price on
        ``as_of``, e.g. ``holdings.latest_prices``); a symbol without a row is untradable.
    target_weights : ``symbol, weight`` (optionally ``as_of``/``strategy``, filtered to the
        latest ``as_of <= as_of`` of ``strategy``), summing to 1 with cash.
    forecasts : ``as_of, symbol, horizon_days, q10, q50, q90`` (log returns) or None.
    cost_bps : proportional cost per traded risky leg, basis points.
    min_notional : smallest trade, in cash units.
    turnover_cap : max one-way risky turnover as a fraction of value (None = no cap).
    liquidity : ``symbol, adv_quote`` (e.g. ``risk.compute_liquidity``); symbols with a null or
        zero ``adv_quote`` or absent are untradable. None skips the liquidity check.
    horizon_days : forecast horizon to use (default: the shortest available).
    cash_symbol : the cash asset (``PORTFOLIO_PIPELINE_CASH``), priced at 1.

    Returns
    -------
    polars.DataFrame with :data:`RECOMMENDATION_SCHEMA` columns; see the module docstring.
    """
    if cost_bps < 0 or min_notional < 0:
        raise ValueError("cost_bps and min_notional must be >= 0")
    if turnover_cap is not None and turnover_cap < 0:
        raise ValueError(f"turnover_cap must be >= 0, got {turnover_cap}")
    cost_rate = cost_bps / 10_000.0
    generated_at = generated_at or datetime.now(UTC)
    targets = _target_map(target_weights, strategy, as_of)
    price_map = {s: float(p) for s, p in latest_prices.select("symbol", "price").iter_rows()}
    trading_map = (
        dict(latest_prices.select("symbol", "trading").iter_rows())
        if "trading" in latest_prices.columns
        else {s: True for s in price_map}
    )
    adv_map = (
        dict(liquidity.select("symbol", "adv_quote").iter_rows()) if liquidity is not None else None
    )
    quantities = dict(holdings.select("symbol", "quantity").iter_rows())
    # Rows: every held symbol, every symbol the strategy wants, and cash.
    relevant = {s for s, q in quantities.items() if q > 0} | {
        s for s, w in targets.items() if w > 0
    }
    symbols = sorted(relevant - {cash_symbol}) + [cash_symbol]
    values: dict[str, float] = {}
    for symbol in symbols:
        quantity = float(quantities.get(symbol, 0.0))
        if symbol == cash_symbol:
            values[symbol] = quantity
        elif quantity > 0 and symbol not in price_map:
            raise ValueError(f"held symbol {symbol} has no price on or before {as_of}")
        else:
            values[symbol] = quantity * price_map.get(symbol, 0.0)
    total_value = sum(values.values())
    if total_value <= 0:
        raise ValueError("holdings are worth nothing at the latest prices")

    assets: list[_Asset] = []
    for symbol in symbols:
        tradable, why = True, ""
        if symbol != cash_symbol:
            if symbol not in price_map or not trading_map.get(symbol, False):
                tradable, why = False, f"no price on {as_of} (stopped trading)"
            elif adv_map is not None and not (adv_map.get(symbol) or 0) > 0:
                tradable, why = False, "no traded volume in the liquidity frame"
        assets.append(
            _Asset(
                symbol=symbol,
                price=1.0 if symbol == cash_symbol else price_map.get(symbol, float("nan")),
                current=values[symbol] / total_value,
                raw_target=targets.get(symbol, 0.0),
                tradable=tradable,
                why_untradable=why,
                cash_symbol=cash_symbol,
            )
        )
    cash = assets[-1]

    # 2. desired weights: untradable assets stay put, cash absorbs the rest.
    for a in assets[:-1]:
        a.desired = a.raw_target if a.tradable else a.current
    cash.desired = 1.0 - sum(a.desired for a in assets[:-1])
    for a in assets[:-1]:
        a.delta = a.desired - a.current
    if cash.desired < 0:
        k = _scale_buys_to_cash(assets, cash.current, 0.0)
        for a in assets[:-1]:
            if a.delta > 0:
                a.delta *= k
                a.note = f"scaled by {k:.3f} (untradable holdings leave too little cash)"

    # 3. confidence gate.
    bounds, horizon = _latest_forecasts(forecasts, as_of, horizon_days, max_forecast_age_days)
    gate_on = bool(bounds)
    for a in assets:
        if a.is_cash:
            a.low = a.mid = a.high = 0.0
        elif a.symbol in bounds:
            a.low, a.mid, a.high = bounds[a.symbol]
    if gate_on:
        _apply_gate(assets, cost_rate)

    # 4. turnover cap.
    turnover = sum(abs(a.delta) for a in assets[:-1])
    if turnover_cap is not None and turnover > turnover_cap + _EPS:
        k = turnover_cap / turnover
        for a in assets[:-1]:
            if abs(a.delta) > _EPS:
                a.delta *= k
                a.note = (a.note + "; " if a.note else "") + (
                    f"scaled by {k:.3f} to the turnover cap {turnover_cap:.1%}"
                )

    # 5. minimum notional and cash feasibility (iterate: scaling can create small trades).
    small: set[str] = set()
    for _ in range(len(assets) + 1):
        for a in assets[:-1]:
            if 0 < abs(a.delta) * total_value < min_notional:
                small.add(a.symbol)
                a.delta = 0.0
        k = _scale_buys_to_cash(assets, cash.current, cost_rate)
        if k >= 1.0 - 1e-12:
            break
        for a in assets[:-1]:
            if a.delta > 0:
                a.delta *= k
                a.note = (a.note + "; " if a.note else "") + (
                    f"scaled by {k:.3f} so cash covers purchases and costs"
                )

    # 6. final weights after trades and costs.
    traded = sum(abs(a.delta) for a in assets[:-1])
    cost = cost_rate * traded
    cash.delta = -sum(a.delta for a in assets[:-1]) - cost
    remaining = 1.0 - cost
    rows = []
    for a in assets:
        final = max(a.current + a.delta, 0.0) / remaining
        notional = abs(a.delta) * total_value
        if a.is_cash:
            action, quantity, notional_out = "HOLD", 0.0, 0.0
            reason = (
                f"cash: {a.delta * total_value:+,.2f} {a.symbol} from trades, of which "
                f"{cost * total_value:,.2f} {a.symbol} costs ({cost_bps:g} bps)"
            )
        else:
            action = "BUY" if a.delta > _EPS else "SELL" if a.delta < -_EPS else "HOLD"
            quantity = notional / a.price if action != "HOLD" else 0.0
            notional_out = notional if action != "HOLD" else 0.0
            reason = _reason(a, action, gate_on, strategy, small, min_notional, as_of)
        rows.append(
            {
                "as_of": as_of,
                "generated_at": generated_at,
                "run_id": run_id,
                "strategy": strategy,
                "symbol": a.symbol,
                "current_weight": a.current,
                "target_weight": final,
                "action": action,
                "quantity": quantity,
                "notional": notional_out,
                "price": a.price,
                "expected_return": a.mid,
                "return_low": a.low,
                "return_high": a.high,
                "reason": reason,
                "strategy_weight": a.raw_target,
                "horizon_days": horizon if (a.mid is not None and not a.is_cash) else None,
            }
        )
    frame = pl.DataFrame(rows, schema=RECOMMENDATION_SCHEMA)
    # Renormalise away floating error so the blocking sum check holds to 1e-9.
    return frame.with_columns(pl.col("target_weight") / pl.col("target_weight").sum())


def _apply_gate(assets: list[_Asset], cost_rate: float) -> None:
    """Keep only the weight moves whose buy's q10 beats the funding sale's q90 net of costs."""

    def leg_cost(a: _Asset) -> float:
        return 0.0 if a.is_cash else cost_rate

    wanted = {a.symbol: a.delta for a in assets[:-1]}
    wanted[assets[-1].symbol] = -sum(wanted.values())  # cash is last
    by_symbol = {a.symbol: a for a in assets}
    buys = sorted(
        (by_symbol[s] for s, d in wanted.items() if d > _EPS and by_symbol[s].tradable),
        key=lambda a: -(a.low if a.low is not None else -math.inf),
    )
    sells = sorted(
        (by_symbol[s] for s, d in wanted.items() if d < -_EPS and by_symbol[s].tradable),
        key=lambda a: a.high if a.high is not None else math.inf,
    )
    remaining_sell = {a.symbol: -wanted[a.symbol] for a in sells}
    executed = dict.fromkeys(by_symbol, 0.0)
    partners: dict[str, list[str]] = {s: [] for s in by_symbol}
    for buy in buys:
        need = wanted[buy.symbol]
        for sell in sells:
            if need <= _EPS:
                break
            if remaining_sell[sell.symbol] <= _EPS:
                continue
            if buy.low is None or sell.high is None:
                continue
            if buy.low - sell.high <= leg_cost(buy) + leg_cost(sell):
                break  # sells are sorted by q90: no later sale can fund this buy either
            amount = min(need, remaining_sell[sell.symbol])
            need -= amount
            remaining_sell[sell.symbol] -= amount
            executed[buy.symbol] += amount
            executed[sell.symbol] -= amount
            partners[buy.symbol].append(sell.symbol)
            partners[sell.symbol].append(buy.symbol)
    for a in assets[:-1]:
        gated = executed[a.symbol]
        if abs(gated - wanted[a.symbol]) > _EPS:
            counterpart = "buyer" if wanted[a.symbol] < 0 else "seller"
            a.note = (
                f"gate passed {gated:+.4f} of the wanted {wanted[a.symbol]:+.4f} "
                f"(no {counterpart} clears q10 > q90 + costs{'' if a.low is not None else '; no forecast'})"
            )
        elif partners[a.symbol]:
            a.note = "gate passed: " + (
                f"q10 {a.low:+.2%} beats q90 of {', '.join(partners[a.symbol])} + costs"
                if gated > 0
                else f"q90 {a.high:+.2%} is beaten by q10 of {', '.join(partners[a.symbol])} + costs"
            )
        a.delta = gated


def _reason(
    a: _Asset,
    action: str,
    gate_on: bool,
    strategy: str,
    small: set[str],
    min_notional: float,
    as_of: date,
) -> str:
    parts: list[str] = []
    wanted = a.raw_target - a.current
    if not a.tradable:
        parts.append(f"cannot trade: {a.why_untradable}; position kept")
    elif a.symbol in small:
        parts.append(f"trade below the minimum notional {min_notional:,.2f} {a.cash_symbol}")
    elif action == "HOLD" and abs(wanted) <= 1e-9:
        parts.append(f"already at the {strategy} target")
    else:
        parts.append(f"{strategy} target {a.raw_target:.2%} vs current {a.current:.2%}")
    if not gate_on:
        parts.append(f"no forecast as of {as_of}: confidence gate not applied")
    if a.note:
        parts.append(a.note)
    return f"{action}: " + "; ".join(parts)


# --------------------------------------------------------------------------------------------
# Predicates for the blocking asset checks
# --------------------------------------------------------------------------------------------
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
