"""Rebalancing recommendations: from current holdings towards a strategy's target, gated by
the confidence that each move's *expected* gain beats its costs, a minimum trade size, a
turnover cap and tradability.

Procedure (all weights are fractions of the current portfolio value ``V``)
------------------------------------------------------------------------
1. ``current`` weights from holdings at the latest prices (cash ``USDT`` at 1).
2. ``desired`` = the strategy target. A symbol that cannot be traded (no price on ``as_of``:
   stopped trading; or no volume in the liquidity frame) keeps its current weight: it is
   neither bought nor sold. If that leaves too little cash, buys are scaled down.
3. Confidence gate (POptimizer's idea, see :mod:`.gate`): weight moves from a sold asset ``A``
   to a bought asset ``B`` only when a lower confidence bound of the expected advantage
   ``E[r_B - r_A]`` over the horizon beats the round-trip cost (``cost_bps`` per risky leg;
   cash legs are free and cash returns 0 for certain). The expectation and its standard error
   come from a :class:`~.gate.ForecastCalibration`: the forecasts' own out-of-sample track
   record up to ``as_of``. Buys are matched greedily (highest expected return first) with
   sells (lowest first). An asset without a fresh forecast, while others have one, can be
   neither bought nor sold by the gate, and its row says why (none, or stale since when).
   **No usable forecast or no calibration** (none given, none within ``max_forecast_age_days``,
   or too short a track record): the gate is not applied and trades follow the strategy
   target, every row saying so. We chose pass-through over "hold everything" so the classic
   strategies stay usable before the forecasting stage has run; the reason column makes the
   missing confidence check visible.
4. Turnover cap: if the one-way risky turnover exceeds ``turnover_cap``, every trade is scaled
   by the same factor (which keeps buys and sells balanced).
5. Trades below ``min_notional`` (USDT) are dropped; if dropping a sale (or paying the costs)
   would overdraw cash, buys are scaled down until cash stays >= 0, repeating the minimum
   check.
6. Costs (``cost_bps`` x traded risky notional) are paid from cash; ``target_weight`` is the
   weight AFTER trades and costs (sums to 1, each in [0, 1]); ``strategy_weight`` keeps the raw
   target; ``wanted_turnover`` the one-way risky turnover the target asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl

from portfolio_pipeline.recommendations.gate import ForecastCalibration, z_value
from portfolio_pipeline.settings import CASH_SYMBOL

DEFAULT_GATE_CONFIDENCE = 0.75
DEFAULT_MAX_FORECAST_AGE_DAYS = 7

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
    "calibrated_return": pl.Float64,
    "gate_confidence": pl.Float64,
    "wanted_turnover": pl.Float64,
    "cost_bps": pl.Float64,
    "portfolio_value": pl.Float64,
}
_EPS = 1e-12


@dataclass(frozen=True)
class CheckOutcome:
    """Result of a predicate on a recommendation frame; truthy when it passed."""

    passed: bool
    detail: str

    def __bool__(self) -> bool:
        return self.passed


@dataclass(frozen=True)
class GateSettings:
    """What the confidence gate needs besides the forecasts.

    calibration : the forecasts' track record up to ``as_of`` (None: gate not applied).
    confidence : one-sided level of the lower bound on the expected advantage.
    max_forecast_age_days : a forecast issued longer ago than this is stale.
    """

    calibration: ForecastCalibration | None
    confidence: float = DEFAULT_GATE_CONFIDENCE
    max_forecast_age_days: int = DEFAULT_MAX_FORECAST_AGE_DAYS


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
    expected: float | None = None  # calibrated E[r] over the horizon
    forecast_issue: str = ""  # why there is no usable forecast, when there is none
    desired: float = 0.0
    delta: float = 0.0
    notes: list[str] = field(default_factory=list)
    cash_symbol: str = CASH_SYMBOL

    @property
    def is_cash(self) -> bool:
        return self.symbol == self.cash_symbol


@dataclass(frozen=True)
class _Forecasts:
    bounds: dict[str, tuple[float, float, float]]  # symbol -> (low, mid, high) simple returns
    stale: dict[str, date]  # symbol -> last issue date, older than the allowed age
    horizon: int | None


def _latest_forecasts(
    forecasts: pl.DataFrame | None, as_of: date, horizon_days: int | None, max_age_days: int
) -> _Forecasts:
    """Per symbol (low, mid, high) simple returns over the horizon from the latest usable rows."""
    if forecasts is None or forecasts.is_empty():
        return _Forecasts({}, {}, horizon_days)
    # A plain loop: the frame holds a few days x symbols, where polars' overhead dominates.
    rows = [
        r
        for r in forecasts.select("as_of", "symbol", "horizon_days", "q10", "q50", "q90").rows()
        if r[0] <= as_of
    ]
    if horizon_days is None and rows:
        horizon_days = int(min(r[2] for r in rows))
    latest: dict[str, tuple] = {}
    for row in rows:
        if row[2] == horizon_days and (row[1] not in latest or row[0] > latest[row[1]][0]):
            latest[row[1]] = row
    oldest_fresh = as_of - timedelta(days=max_age_days)
    bounds: dict[str, tuple[float, float, float]] = {}
    stale: dict[str, date] = {}
    for symbol, (issued, _, _, q10, q50, q90) in sorted(latest.items()):
        if issued < oldest_fresh:
            stale[symbol] = issued
            continue
        if None in (q10, q50, q90) or not all(math.isfinite(v) for v in (q10, q50, q90)):
            continue
        bounds[symbol] = (math.expm1(q10), math.expm1(q50), math.expm1(q90))
    return _Forecasts(bounds, stale, horizon_days)


def _columns(frame: pl.DataFrame, *names: str) -> zip:
    """Rows of a few columns as tuples; cheaper than ``select().iter_rows()`` on small frames."""
    return zip(*(frame.get_column(n).to_list() for n in names), strict=True)


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
    for symbol, weight in _columns(frame, "symbol", "weight"):
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


def _scale(assets: list[_Asset], k: float, why: str, *, buys_only: bool = False) -> None:
    for a in assets:
        if a.is_cash or abs(a.delta) <= _EPS or (buys_only and a.delta <= 0):
            continue
        a.delta *= k
        a.notes.append(f"scaled by {k:.3f} {why}")


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
    gate: GateSettings | None = None,
    cash_symbol: str = CASH_SYMBOL,
) -> pl.DataFrame:
    """Recommended trades -> rows of ``portfolio.recommendations`` (one per symbol + cash).

    Parameters
    ----------
    holdings : ``symbol, quantity`` (cash as ``USDT``).
    latest_prices : ``symbol, price`` and optionally ``trading`` (False = no price on
        ``as_of``, e.g. ``holdings.latest_prices``); a symbol without a row is untradable.
    target_weights : ``symbol, weight`` (optionally ``as_of``/``strategy``, filtered to the
        latest ``as_of <= as_of`` of ``strategy``), summing to 1 with cash.
    forecasts : ``as_of, symbol, horizon_days, q10, q50, q90`` (log returns) or None.
    cost_bps : proportional cost per traded risky leg, basis points.
    min_notional : smallest trade in USDT.
    turnover_cap : max one-way risky turnover as a fraction of value (None = no cap).
    liquidity : ``symbol, adv_quote`` (e.g. ``risk.compute_liquidity``); symbols with a null or
        zero ``adv_quote`` or absent are untradable. None skips the liquidity check.
    horizon_days : forecast horizon to use (default: the shortest available).
    gate : calibration and confidence of the gate; None = no calibration (gate not applied).
    cash_symbol : the cash asset (``PORTFOLIO_PIPELINE_CASH``: ``USDT``, ``USD`` …), priced at 1.

    Returns
    -------
    polars.DataFrame with :data:`RECOMMENDATION_SCHEMA` columns; see the module docstring.
    """
    if cost_bps < 0 or min_notional < 0:
        raise ValueError("cost_bps and min_notional must be >= 0")
    if turnover_cap is not None and turnover_cap < 0:
        raise ValueError(f"turnover_cap must be >= 0, got {turnover_cap}")
    gate = gate or GateSettings(calibration=None)
    z_value(gate.confidence)  # validates the level before any work
    cost_rate = cost_bps / 10_000.0
    targets = _target_map(target_weights, strategy, as_of)
    assets, total_value = _build_assets(
        holdings, latest_prices, targets, liquidity, as_of, cash_symbol
    )
    cash = assets[-1]
    _set_desired(assets)
    wanted_turnover = sum(abs(a.delta) for a in assets[:-1])

    found = _latest_forecasts(forecasts, as_of, horizon_days, gate.max_forecast_age_days)
    gate_on = bool(found.bounds) and gate.calibration is not None
    _attach_forecasts(assets, found, gate.calibration)
    if gate_on:
        _apply_gate(assets, cost_rate, gate)

    turnover = sum(abs(a.delta) for a in assets[:-1])
    if turnover_cap is not None and turnover > turnover_cap + _EPS:
        _scale(assets, turnover_cap / turnover, f"to the turnover cap {turnover_cap:.1%}")
    small = _drop_small_trades(assets, cash.current, cost_rate, min_notional / total_value)

    gate_state = _gate_state(found, gate, as_of)
    context = _RowContext(
        as_of=as_of,
        generated_at=generated_at or datetime.now(UTC),
        run_id=run_id,
        strategy=strategy,
        total_value=total_value,
        cost_bps=cost_bps,
        min_notional=min_notional,
        small=small,
        gate_state=gate_state,
        horizon=found.horizon,
        confidence=gate.confidence if gate_on else None,
        wanted_turnover=wanted_turnover,
    )
    rows = _rows(assets, context)
    # Renormalise away floating error so the blocking sum check holds to 1e-9.
    total = sum(r["target_weight"] for r in rows)
    for r in rows:
        r["target_weight"] /= total
    return pl.DataFrame(rows, schema=RECOMMENDATION_SCHEMA)


def _build_assets(
    holdings: pl.DataFrame,
    latest_prices: pl.DataFrame,
    targets: dict[str, float],
    liquidity: pl.DataFrame | None,
    as_of: date,
    cash_symbol: str,
) -> tuple[list[_Asset], float]:
    """One :class:`_Asset` per held or wanted symbol, cash last, with current weights."""
    price_map = {s: float(p) for s, p in _columns(latest_prices, "symbol", "price")}
    trading_map = (
        dict(_columns(latest_prices, "symbol", "trading"))
        if "trading" in latest_prices.columns
        else dict.fromkeys(price_map, True)
    )
    adv_map = dict(_columns(liquidity, "symbol", "adv_quote")) if liquidity is not None else None
    quantities = dict(_columns(holdings, "symbol", "quantity"))
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
    assets = []
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
    return assets, total_value


def _set_desired(assets: list[_Asset]) -> None:
    """Untradable assets stay put; cash absorbs the rest; buys shrink if cash runs short."""
    cash = assets[-1]
    for a in assets[:-1]:
        a.desired = a.raw_target if a.tradable else a.current
        a.delta = a.desired - a.current
    cash.desired = 1.0 - sum(a.desired for a in assets[:-1])
    if cash.desired < 0:
        k = _scale_buys_to_cash(assets, cash.current, 0.0)
        _scale(assets, k, "(untradable holdings leave too little cash)", buys_only=True)


def _attach_forecasts(
    assets: list[_Asset], found: _Forecasts, calibration: ForecastCalibration | None
) -> None:
    for a in assets:
        if a.is_cash:
            a.low = a.mid = a.high = a.expected = 0.0
        elif a.symbol in found.bounds:
            a.low, a.mid, a.high = found.bounds[a.symbol]
            if calibration is not None:
                a.expected, _ = calibration.expected_advantage(a.mid, None)
        elif a.symbol in found.stale:
            a.forecast_issue = f"forecast stale (last issued {found.stale[a.symbol]})"
        else:
            a.forecast_issue = "no forecast for this symbol"


def _apply_gate(assets: list[_Asset], cost_rate: float, gate: GateSettings) -> None:
    """Keep the weight moves whose expected advantage clears the round-trip cost with confidence."""
    wanted = {a.symbol: a.delta for a in assets[:-1]}
    wanted[assets[-1].symbol] = -sum(wanted.values())  # cash is last
    executed, best_bound, partners = _match_moves(assets, wanted, cost_rate, gate)
    for a in assets[:-1]:
        note = _gate_note(a, executed[a.symbol], wanted[a.symbol], best_bound, partners, gate)
        if note:
            a.notes.append(note)
        a.delta = executed[a.symbol]


def _match_moves(
    assets: list[_Asset], wanted: dict[str, float], cost_rate: float, gate: GateSettings
) -> tuple[dict[str, float], dict[str, float], dict[str, list[str]]]:
    """Pairs the most promising buys with the least promising sales while the calibrated
    advantage of the pair clears both legs' costs at the gate's confidence; a sale left
    without a buyer may go to cash when cash beats it with confidence.

    Each buy walks the sales in order (least promising first) until its wanted weight is
    filled, skipping sales already used up; every pair it walks past counts for the best
    bound of both legs. The margins of all pairs are computed at once (a 100-asset day has
    ~2,500 pairs and a replay thousands of days); the walk itself only visits the pairs that
    trade.

    Returns the executed weight change per symbol, the best bound each symbol met (after
    costs) and the counterparts each traded against.
    """
    calibration = gate.calibration
    assert calibration is not None
    z = z_value(gate.confidence)
    cash_symbol = assets[-1].symbol
    by_symbol = {a.symbol: a for a in assets}
    candidates = [by_symbol[s] for s in wanted if by_symbol[s].tradable]
    buys = sorted(
        (a for a in candidates if wanted[a.symbol] > _EPS and a.expected is not None),
        key=lambda a: -(a.expected or 0.0),
    )
    sells = sorted(
        (a for a in candidates if wanted[a.symbol] < -_EPS and a.expected is not None),
        key=lambda a: a.expected or 0.0,
    )
    executed = dict.fromkeys(by_symbol, 0.0)
    best_bound: dict[str, float] = {}
    partners: dict[str, list[str]] = {s: [] for s in by_symbol}
    remaining_sell = np.array([-wanted[a.symbol] for a in sells], dtype=np.float64)
    sell_best = np.full(len(sells), -math.inf)
    if buys and sells:
        mean, se = calibration.pair_advantages(_medians(buys), _medians(sells))
        costs = _leg_costs(buys, cost_rate)[:, None] + _leg_costs(sells, cost_rate)[None, :]
        margins = mean - z * se - costs
        for i, buy in enumerate(buys):
            need = wanted[buy.symbol]
            open_sells = np.flatnonzero(remaining_sell > _EPS)
            walked = open_sells.size
            for position in np.flatnonzero(margins[i, open_sells] > 0):
                sell_index = int(open_sells[position])
                sell = sells[sell_index]
                amount = min(need, float(remaining_sell[sell_index]))
                need -= amount
                remaining_sell[sell_index] -= amount
                executed[buy.symbol] += amount
                executed[sell.symbol] -= amount
                partners[buy.symbol].append(sell.symbol)
                partners[sell.symbol].append(buy.symbol)
                if need <= _EPS:
                    walked = int(position) + 1
                    break
            if walked:
                passed = open_sells[:walked]
                best_bound[buy.symbol] = float(np.max(margins[i, passed]))
                sell_best[passed] = np.maximum(sell_best[passed], margins[i, passed])
    for sell_index, sell in enumerate(sells):
        if sell_best[sell_index] > -math.inf:
            best_bound[sell.symbol] = float(sell_best[sell_index])
    for sell_index, sell in enumerate(sells):
        left = float(remaining_sell[sell_index])
        if sell.is_cash or left <= _EPS:
            continue
        mean, se = calibration.expected_advantage(None, _median(sell))
        margin = mean - z * se - cost_rate
        best_bound[sell.symbol] = max(best_bound.get(sell.symbol, -math.inf), margin)
        if margin > 0:
            executed[sell.symbol] -= left
            partners[sell.symbol].append(cash_symbol)
    return executed, best_bound, partners


def _median(a: _Asset) -> float | None:
    """The asset's forecast median, None for cash (a certain return of 0)."""
    return None if a.is_cash else a.mid


def _medians(assets: list[_Asset]) -> np.ndarray:
    return np.array(
        [math.nan if (m := _median(a)) is None else m for a in assets], dtype=np.float64
    )


def _leg_costs(assets: list[_Asset], cost_rate: float) -> np.ndarray:
    """The cost of one leg: nothing for cash."""
    return np.array([0.0 if a.is_cash else cost_rate for a in assets], dtype=np.float64)


def _gate_note(
    a: _Asset,
    gated: float,
    want: float,
    best_bound: dict[str, float],
    partners: dict[str, list[str]],
    gate: GateSettings,
) -> str | None:
    """Why the gate changed (or passed) an asset's wanted move; None when it had no say."""
    if abs(gated - want) > _EPS:
        if a.expected is None:
            return f"gate refused: {a.forecast_issue or 'no usable forecast'}"
        margin = best_bound.get(a.symbol)
        detail = f"best bound {margin:+.2%} after costs" if margin is not None else "no counterpart"
        verdict = (
            f"gate refused the wanted {want:+.4f}"
            if abs(gated) <= _EPS
            else f"gate passed {gated:+.4f} of the wanted {want:+.4f}"
        )
        return (
            f"{verdict} (expected advantage not above costs at "
            f"{gate.confidence:.0%} confidence; {detail})"
        )
    if partners[a.symbol]:
        side = "bought against" if gated > 0 else "sold for"
        return (
            f"gate passed: {side} {', '.join(partners[a.symbol])}, expected advantage above "
            f"costs at {gate.confidence:.0%} confidence"
        )
    return None


def _drop_small_trades(
    assets: list[_Asset], cash_weight: float, cost_rate: float, min_weight: float
) -> set[str]:
    """Drop trades under the minimum; shrink buys until cash covers them (repeat: shrinking
    can create new small trades). Returns the symbols dropped for size."""
    small: set[str] = set()
    for _ in range(len(assets) + 1):
        for a in assets[:-1]:
            if 0 < abs(a.delta) < min_weight:
                small.add(a.symbol)
                a.delta = 0.0
        k = _scale_buys_to_cash(assets, cash_weight, cost_rate)
        if k >= 1.0 - 1e-12:
            break
        _scale(assets, k, "so cash covers purchases and costs", buys_only=True)
    return small


def _gate_state(found: _Forecasts, gate: GateSettings, as_of: date) -> str:
    """'' when the gate was applied, else why not (goes into every row's reason)."""
    if not found.bounds:
        stale = f" (stale since {min(found.stale.values())})" if found.stale else ""
        return f"no forecast as of {as_of}{stale}: confidence gate not applied"
    if gate.calibration is None:
        return "no forecast track record to calibrate: confidence gate not applied"
    return ""


@dataclass(frozen=True)
class _RowContext:
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


def _rows(assets: list[_Asset], ctx: _RowContext) -> list[dict]:
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
                f"cash: {a.delta * ctx.total_value:+,.2f} {a.symbol} from trades, of which "
                f"{cost * ctx.total_value:,.2f} {a.symbol} costs ({ctx.cost_bps:g} bps)"
            )
        else:
            action = "BUY" if a.delta > _EPS else "SELL" if a.delta < -_EPS else "HOLD"
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


def _reason(a: _Asset, action: str, ctx: _RowContext) -> str:
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
