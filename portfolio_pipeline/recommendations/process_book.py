"""One simulated process's book: its quantities, how it trades on a day (through
:func:`~portfolio_pipeline.recommendations.decision.recommend`, the function the asset
calls) and how its value carries to the next close."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from polars._typing import PolarsDataType  # polars' own alias for a column dtype

from portfolio_pipeline.portfolio.strategies import MarketPanel
from portfolio_pipeline.recommendations.decision import (
    Costs,
    RowLabels,
    frame_of_rows,
    recommendation_rows_from,
)
from portfolio_pipeline.recommendations.processes import ProcessSpec, SimulationSettings
from portfolio_pipeline.recommendations.replay_inputs import DayInputs, last_close
from portfolio_pipeline.recommendations.rule_decision import RuleContext
from portfolio_pipeline.recommendations.trade_gate import GateSettings
from portfolio_pipeline.settings import CASH_SYMBOL

BACKTEST_SCHEMA: dict[str, PolarsDataType] = {
    "process": pl.Utf8,
    "window": pl.Utf8,
    "date": pl.Date,
    "equity": pl.Float64,
    "value": pl.Float64,
    "daily_return": pl.Float64,
    "trades": pl.Int64,
    "turnover": pl.Float64,
    "cost": pl.Float64,
    "wanted_turnover": pl.Float64,
    "refused_turnover": pl.Float64,
    "decided_at": pl.Date,
}
_GENERATED_AT = datetime(1970, 1, 1, tzinfo=UTC)  # simulated rows need no wall-clock time


@dataclass
class ProcessState:
    """A process's holdings (quantities, cash included), value and daily rows so far."""

    spec: ProcessSpec
    quantities: dict[str, float]
    value: float
    start_value: float
    cash: str
    rows: list[tuple] = field(default_factory=list)  # in BACKTEST_SCHEMA's column order


def starting_quantities(
    weights: dict[str, float], prices: dict[str, float], value: float, cash: str = CASH_SYMBOL
) -> dict[str, float]:
    """Quantities worth ``value`` with ``weights``; weight on an unpriced symbol goes to cash."""
    quantities = {cash: 0.0}
    for symbol, weight in weights.items():
        price = prices.get(symbol)
        if symbol == cash or price is None or not math.isfinite(price):
            quantities[cash] += weight * value
        else:
            quantities[symbol] = weight * value / price
    return quantities


def initial_states(
    panel: MarketPanel,
    row: int,
    specs: Sequence[ProcessSpec],
    start_weights: dict[str, float],
    start_value: float,
    cash: str,
) -> list[ProcessState]:
    prices = dict(zip(panel.symbols, panel.close[row].tolist(), strict=True))
    quantities = starting_quantities(start_weights, prices, start_value, cash)
    return [ProcessState(spec, dict(quantities), start_value, start_value, cash) for spec in specs]


def advance(
    state: ProcessState,
    panel: MarketPanel,
    row: int,
    inputs: DayInputs,
    strategy: str,
    settings: SimulationSettings,
    window: str,
    keep_frame: bool = False,
) -> pl.DataFrame | None:
    """Trade at the close of ``row`` per the process, then carry to ``row + 1``; the day's
    recommendation frame when ``keep_frame`` (else None: the replay needs only its trades)."""
    spec = state.spec
    frame = None
    trades, turnover, cost, wanted = 0, 0.0, 0.0, 0.0
    if spec.trades:
        rows = process_rows(
            spec, state.quantities, inputs, settings, strategy, f"simulated-{window}", _GENERATED_AT
        )
        trades, turnover, cost, wanted = _book(state, rows, settings.cost_bps)
        if keep_frame:
            frame = frame_of_rows(rows)
    next_value = _carry(state, panel, row, inputs.closes)
    previous = state.value
    state.value = next_value
    state.rows.append(
        (
            spec.name,
            window,
            panel.date_at(row + 1),
            next_value / state.start_value,
            next_value,
            next_value / previous - 1.0,
            trades,
            turnover,
            cost,
            wanted,
            max(wanted - turnover, 0.0),
            inputs.as_of,
        )
    )
    return frame


def recommend_for_process(
    spec: ProcessSpec,
    holdings: pl.DataFrame,
    inputs: DayInputs,
    settings: SimulationSettings,
    strategy: str,
    run_id: str,
    generated_at: datetime,
) -> pl.DataFrame:
    """The one code path from a process to its trades, for the replay and the nightly asset:
    :func:`~.decision.recommend` with the process's gate, rule or band, and the same turnover
    cap, minimum notional, costs and liquidity for every process."""
    quantities = dict(
        zip(holdings["symbol"].to_list(), holdings["quantity"].to_list(), strict=True)
    )
    return frame_of_rows(
        process_rows(spec, quantities, inputs, settings, strategy, run_id, generated_at)
    )


def process_rows(
    spec: ProcessSpec,
    quantities: dict[str, float],
    inputs: DayInputs,
    settings: SimulationSettings,
    strategy: str,
    run_id: str,
    generated_at: datetime,
) -> list[dict]:
    """:func:`recommend_for_process`'s rows before they become a frame, from the day's inputs
    read once for all its processes (:meth:`DayInputs.view`, :meth:`DayInputs.found`)."""
    uses_forecasts = spec.gate or spec.rule is not None
    rule = None
    if spec.rule is not None:
        calibration = inputs.gate.calibration if inputs.forecasts is not None else None
        failure = inputs.risk_failure or f"process {spec.name} has no risk model"
        rule = RuleContext(spec.rule, inputs.risk, calibration, inputs.adv(), risk_failure=failure)
    gate = _gate_for(spec, inputs.gate)
    max_age = (gate or GateSettings(calibration=None)).max_forecast_age_days
    return recommendation_rows_from(
        quantities,
        inputs.view(strategy),
        inputs.found(uses_forecasts, settings.horizon, max_age),
        Costs(
            settings.cost_bps,
            settings.min_notional if spec.min_notional else 0.0,
            settings.turnover_cap if spec.turnover_cap else None,
        ),
        RowLabels(inputs.as_of, strategy, run_id, generated_at),
        gate=gate,
        cash_symbol=settings.cash_symbol,
        rule=rule,
        band=spec.band,
    )


def _gate_for(spec: ProcessSpec, gate: GateSettings) -> GateSettings | None:
    if spec.rule is not None:
        return gate  # the rule's expected returns come from the gate's calibration
    if not spec.gate:
        return None
    if spec.confidence is None:
        return gate
    return GateSettings(gate.calibration, spec.confidence, gate.max_forecast_age_days)


def _book(
    state: ProcessState, rows: list[dict], cost_bps: float
) -> tuple[int, float, float, float]:
    """Apply a recommendation's rows (:func:`process_rows`) to the simulated quantities."""
    cost_rate = cost_bps / 10_000.0
    trades, traded_value = 0, 0.0
    for r in rows:
        action = r["action"]
        if action == "HOLD":
            continue
        symbol, quantity, notional = r["symbol"], r["quantity"], r["notional"]
        trades += 1
        sign = 1.0 if action == "BUY" else -1.0
        state.quantities[symbol] = max(state.quantities.get(symbol, 0.0) + sign * quantity, 0.0)
        state.quantities[state.cash] -= sign * notional
        traded_value += notional
    cost = cost_rate * traded_value
    state.quantities[state.cash] -= cost
    value = state.value
    wanted = float(rows[0]["wanted_turnover"])
    return trades, traded_value / value, cost / value, wanted


def _carry(
    state: ProcessState, panel: MarketPanel, row: int, closes: np.ndarray | None = None
) -> float:
    """Value at the close of ``row + 1``; positions with no price then are sold at the last one."""
    today = last_close(panel, row) if closes is None else closes
    tomorrow = panel.close[row + 1]
    value = state.quantities.get(state.cash, 0.0)
    for symbol, quantity in list(state.quantities.items()):
        if symbol == state.cash or quantity == 0.0:
            continue
        i = panel.symbols.index(symbol)
        if math.isfinite(tomorrow[i]):
            value += quantity * float(tomorrow[i])
        else:  # delisted overnight: liquidated at its last price
            proceeds = quantity * float(today[i])
            state.quantities[state.cash] += proceeds
            state.quantities[symbol] = 0.0
            value += proceeds
    return value


def label_with_process(frame: pl.DataFrame, spec: ProcessSpec) -> pl.DataFrame:
    """The nightly rows with the process that made them (column ``process``); when that
    process is ``target`` (nothing beat following the target on validation), each asset's
    reason says "rebalance to target", the instruction the rows carry out."""
    labelled = frame.with_columns(pl.lit(spec.name).alias("process"))
    if spec.family != "target":
        return labelled
    return labelled.with_columns(
        pl.col("reason").str.replace(r"^(BUY|SELL|HOLD): ", "${1}: rebalance to target; ")
    )
