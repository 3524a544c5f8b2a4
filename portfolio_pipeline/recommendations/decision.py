"""Rebalancing recommendations: from current holdings towards a strategy's target, gated by
the confidence that each move's *expected* gain beats its costs, a minimum trade size, a
turnover cap and tradability.

Inputs
------
- ``holdings``: ``symbol, quantity`` (cash as ``USDT``).
- ``latest_prices``: ``symbol, price`` and optionally ``trading`` (False = no price on
  ``as_of``, e.g. ``holdings.latest_prices``); a symbol without a row is untradable.
- ``target_weights``: ``symbol, weight`` (optionally ``as_of``/``strategy``, filtered to the
  latest ``as_of <= as_of`` of ``strategy``), summing to 1 with cash.
- ``forecasts``: ``as_of, symbol, horizon_days, q10, q50, q90`` (log returns) or None.
- ``liquidity``: ``symbol, adv_quote`` (e.g. ``risk.compute_liquidity``); symbols with a null
  or zero ``adv_quote`` or absent are untradable. None skips the liquidity check.

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
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import polars as pl

from portfolio_pipeline.recommendations.gate import ForecastCalibration, z_value
from portfolio_pipeline.recommendations.moves import (
    EPS,
    AssetMove,
    buy_scale_for_cash,
    scale_moves,
)
from portfolio_pipeline.recommendations.recommendation_rows import (
    RECOMMENDATION_SCHEMA,
    RowContext,
    recommendation_rows,
)
from portfolio_pipeline.recommendations.rule_decision import RuleContext, apply_rule
from portfolio_pipeline.recommendations.trade_gate import GateSettings, apply_gate
from portfolio_pipeline.settings import CASH_SYMBOL


@dataclass(frozen=True)
class ForecastView:
    bounds: dict[str, tuple[float, float, float]]  # symbol -> (low, mid, high) simple returns
    stale: dict[str, date]  # symbol -> last issue date, older than the allowed age
    horizon: int | None


def latest_forecasts(
    forecasts: pl.DataFrame | None, as_of: date, horizon_days: int | None, max_age_days: int
) -> ForecastView:
    """Per symbol (low, mid, high) simple returns over the horizon from the latest usable rows."""
    if forecasts is None or forecasts.is_empty():
        return ForecastView({}, {}, horizon_days)
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
    return ForecastView(bounds, stale, horizon_days)


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
    rule: RuleContext | None = None,
    band: float | None = None,
) -> pl.DataFrame:
    """Recommended trades -> :data:`RECOMMENDATION_SCHEMA` rows of ``portfolio.recommendations``
    (one per symbol + cash; see the module docstring).

    Parameters
    ----------
    holdings, latest_prices, target_weights, forecasts, liquidity : see *Inputs* above.
    cost_bps, min_notional : proportional cost per traded risky leg (basis points); smallest
        trade in cash units.
    turnover_cap : max one-way risky turnover as a fraction of value (None = no cap).
    horizon_days : forecast horizon to use (default: the shortest available).
    gate : calibration and confidence of the gate; None = no calibration (gate not applied).
    cash_symbol : the cash asset (``PORTFOLIO_PIPELINE_CASH``: ``USDT``, ``USD`` …), priced at 1.
    rule, band : a portfolio-level rule (:mod:`.rule_decision`) in place of the gate; trade
        only when some weight is more than ``band`` from its target (None: neither).
    """
    gate = _validated(cost_bps, min_notional, turnover_cap, gate)
    view = market_view(latest_prices, target_weights, liquidity, strategy, as_of)
    found = latest_forecasts(forecasts, as_of, horizon_days, gate.max_forecast_age_days)
    rows = recommendation_rows_from(
        dict(_columns(holdings, "symbol", "quantity")),
        view,
        found,
        Costs(cost_bps, min_notional, turnover_cap),
        RowLabels(as_of, strategy, run_id, generated_at or datetime.now(UTC)),
        gate=gate,
        cash_symbol=cash_symbol,
        rule=rule,
        band=band,
    )
    return frame_of_rows(rows)


@dataclass(frozen=True)
class MarketView:
    """``recommend``'s frames as lookups, read once (a replayed day shares them across its
    processes): price, trading flag and 30-day traded value per symbol (None: no liquidity
    check) and the strategy's target."""

    prices: dict[str, float]
    trading: dict[str, bool]
    adv: dict[str, float | None] | None
    targets: dict[str, float]


def market_view(
    latest_prices: pl.DataFrame,
    target_weights: pl.DataFrame,
    liquidity: pl.DataFrame | None,
    strategy: str,
    as_of: date,
) -> MarketView:
    targets = _target_map(target_weights, strategy, as_of)
    prices = {s: float(p) for s, p in _columns(latest_prices, "symbol", "price")}
    trading = (
        dict(_columns(latest_prices, "symbol", "trading"))
        if "trading" in latest_prices.columns
        else dict.fromkeys(prices, True)
    )
    adv = dict(_columns(liquidity, "symbol", "adv_quote")) if liquidity is not None else None
    return MarketView(prices, trading, adv, targets)


@dataclass(frozen=True)
class Costs:
    """Cost per risky leg (bps), the smallest trade (cash units) and the turnover cap."""

    cost_bps: float
    min_notional: float
    turnover_cap: float | None


@dataclass(frozen=True)
class RowLabels:
    """What labels every row of one run."""

    as_of: date
    strategy: str
    run_id: str
    generated_at: datetime


def recommendation_rows_from(
    quantities: dict[str, float],
    view: MarketView,
    found: ForecastView,
    costs: Costs,
    labels: RowLabels,
    *,
    gate: GateSettings | None,
    cash_symbol: str,
    rule: RuleContext | None,
    band: float | None,
) -> list[dict]:
    """:func:`recommend` on inputs already read (:func:`market_view`,
    :func:`latest_forecasts`): the rows, before :func:`frame_of_rows`."""
    cost_bps, min_notional = costs.cost_bps, costs.min_notional
    gate = _validated(cost_bps, min_notional, costs.turnover_cap, gate)
    as_of = labels.as_of
    assets, total_value = _build_assets(quantities, view, as_of, cash_symbol)
    wanted_turnover = _set_desired(assets)
    gate_on = _attach_forecasts(assets, found, gate.calibration) and rule is None
    trading = _Trading(gate if gate_on else None, rule, band, cost_bps / 1e4, costs.turnover_cap)
    small = _trade(assets, trading, min_notional, total_value)
    context = RowContext(
        as_of=as_of,
        generated_at=labels.generated_at,
        run_id=labels.run_id,
        strategy=labels.strategy,
        total_value=total_value,
        cost_bps=cost_bps,
        min_notional=min_notional,
        small=small,
        gate_state=_gate_state(found, gate, as_of) if rule is None else f"{rule.rule.label}",
        horizon=found.horizon,
        confidence=gate.confidence if gate_on else None,
        wanted_turnover=wanted_turnover,
    )
    return recommendation_rows(assets, context)


def _hold_inside_band(assets: list[AssetMove], band: float | None) -> None:
    """A no-trade band: no move at all while every weight is within ``band`` of its target."""
    if band is None or any(abs(a.raw_target - a.current) > band for a in assets):
        return
    for a in assets[:-1]:
        if abs(a.delta) > EPS:
            a.notes.append(f"no weight is more than {band:.0%} from its target: no trade")
        a.delta = 0.0


@dataclass(frozen=True)
class _Trading:
    """How the desired moves become trades: the gate (None: off) or a rule, a no-trade band,
    the cost rate and the turnover cap."""

    gate: GateSettings | None
    rule: RuleContext | None
    band: float | None
    cost_rate: float
    turnover_cap: float | None


def _trade(
    assets: list[AssetMove], how: _Trading, min_notional: float, total_value: float
) -> set[str]:
    """From the desired moves to the trades: the rule or the gate (when on), the band, the
    turnover cap, then the minimum trade size and cash. Returns the symbols dropped for size."""
    if how.rule is not None:
        apply_rule(assets, how.rule, how.cost_rate, total_value)
    if how.gate is not None:
        apply_gate(assets, how.cost_rate, how.gate)
    _hold_inside_band(assets, how.band)
    _cap_turnover(assets, how.turnover_cap)
    return _drop_small_trades(assets, assets[-1].current, how.cost_rate, min_notional / total_value)


def _validated(
    cost_bps: float, min_notional: float, turnover_cap: float | None, gate: GateSettings | None
) -> GateSettings:
    """The gate settings to use, once the parameters have been checked."""
    if cost_bps < 0 or min_notional < 0:
        raise ValueError("cost_bps and min_notional must be >= 0")
    if turnover_cap is not None and turnover_cap < 0:
        raise ValueError(f"turnover_cap must be >= 0, got {turnover_cap}")
    gate = gate or GateSettings(calibration=None)
    z_value(gate.confidence)  # validates the level before any work
    return gate


def _cap_turnover(assets: list[AssetMove], turnover_cap: float | None) -> None:
    """Scale every trade by one factor (keeping buys and sells balanced) to the cap."""
    turnover = sum(abs(a.delta) for a in assets[:-1])
    if turnover_cap is not None and turnover > turnover_cap + EPS:
        scale_moves(assets, turnover_cap / turnover, f"to the turnover cap {turnover_cap:.1%}")


def frame_of_rows(rows: list[dict]) -> pl.DataFrame:
    # Renormalise away floating error so the blocking sum check holds to 1e-9.
    total = sum(r["target_weight"] for r in rows)
    for r in rows:
        r["target_weight"] /= total
    return pl.DataFrame(rows, schema=RECOMMENDATION_SCHEMA)


def _build_assets(
    quantities: dict[str, float], view: MarketView, as_of: date, cash_symbol: str
) -> tuple[list[AssetMove], float]:
    """One :class:`AssetMove` per held or wanted symbol, cash last, with current weights."""
    price_map, trading_map, adv_map, targets = view.prices, view.trading, view.adv, view.targets
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
            AssetMove(
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


def _set_desired(assets: list[AssetMove]) -> float:
    """Untradable assets stay put; cash absorbs the rest; buys shrink if cash runs short.
    Returns the one-way risky turnover the target asks for."""
    cash = assets[-1]
    for a in assets[:-1]:
        a.desired = a.raw_target if a.tradable else a.current
        a.delta = a.desired - a.current
    cash.desired = 1.0 - sum(a.desired for a in assets[:-1])
    if cash.desired < 0:
        k = buy_scale_for_cash(assets, cash.current, 0.0)
        scale_moves(assets, k, "(untradable holdings leave too little cash)", buys_only=True)
    return sum(abs(a.delta) for a in assets[:-1])


def _attach_forecasts(
    assets: list[AssetMove], found: ForecastView, calibration: ForecastCalibration | None
) -> bool:
    """Each asset's forecast bounds and calibrated expectation, or why it has none. Returns
    whether the gate applies: some forecast is usable and there is a calibration."""
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
    return bool(found.bounds) and calibration is not None


def _drop_small_trades(
    assets: list[AssetMove], cash_weight: float, cost_rate: float, min_weight: float
) -> set[str]:
    """Drop trades under the minimum; shrink buys until cash covers them (repeat: shrinking
    can create new small trades). Returns the symbols dropped for size."""
    small: set[str] = set()
    for _ in range(len(assets) + 1):
        for a in assets[:-1]:
            if 0 < abs(a.delta) < min_weight:
                small.add(a.symbol)
                a.delta = 0.0
        k = buy_scale_for_cash(assets, cash_weight, cost_rate)
        if k >= 1.0 - 1e-12:
            break
        scale_moves(assets, k, "so cash covers purchases and costs", buys_only=True)
    return small


def _gate_state(found: ForecastView, gate: GateSettings, as_of: date) -> str:
    """'' when the gate was applied, else why not (goes into every row's reason)."""
    if not found.bounds:
        stale = f" (stale since {min(found.stale.values())})" if found.stale else ""
        return f"no forecast as of {as_of}{stale}: confidence gate not applied"
    if gate.calibration is None:
        return "no forecast track record to calibrate: confidence gate not applied"
    return ""
