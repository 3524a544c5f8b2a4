"""The recommendation process as a strategy: replay, day by day, what the nightly
``recommendations`` asset would have told a user to do, and what following it would have earned.

Every simulated day ``d`` goes through :func:`~portfolio_pipeline.recommendations.decision.recommend`,
the very function the asset calls, with what was known at the close of ``d``:

- the selected strategy's target from the prices ``<= d``: the strategy object the asset
  uses, re-deciding on the first trading day of each period (``target_refresh``: weekly by
  default, like the backtests; the ``target_weights`` asset does the same);
- the walk-forward forecasts *as issued* on ``d`` (out of sample: each was made by a model
  trained on data that ended, purged, before ``d``), stale after ``max_forecast_age_days``;
- the gate's calibration from forecasts whose outcome was known by ``d``;
- the 30-day liquidity from :func:`~portfolio_pipeline.portfolio.risk.compute_liquidity`;
- the simulated holdings (quantities) carried from the day before.

The trades are booked at the close of ``d`` (costs paid from cash) and the portfolio earns
``close[d+1] / close[d]``; a symbol with no price on ``d + 1`` is sold at its last price, as
in :mod:`~portfolio_pipeline.portfolio.accounting`.

``equity`` starts at 1 on the day before the window; ``value`` is the same in cash units.

Processes (``portfolio.recommendation_backtest.process``)
--------------------------------------------------------
``recommended``  target -> gate -> turnover cap -> minimum notional -> costs: what the
                 recommendations say.
``ungated``      the same without the gate (isolates what the gate adds).
``target``       follows the strategy target every day, no gate, cap or minimum.
``band_5pct``    a classic no-trade band: trade fully to the target only when some weight has
                 drifted more than 5 points from it.
``never_trade``  holds the starting portfolio.

All start from the same portfolio at ``start_value`` (the asset's default: the holdings'
value) on the day before the window: by default the strategy's target of that day, so the
processes differ only in how they follow the target afterwards (``never_trade`` then holds
the first target as it drifts); or given starting weights, e.g. the holdings'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np
import polars as pl

from portfolio_pipeline.portfolio.backtest import (
    DEFAULT_TARGET_REFRESH,
    period_start_row,
    window_rows,
)
from portfolio_pipeline.portfolio.metrics import METRIC_KEYS, performance_summary
from portfolio_pipeline.portfolio.risk import compute_liquidity
from portfolio_pipeline.portfolio.strategies import EstimationCache, MarketPanel, Strategy
from portfolio_pipeline.recommendations.decision import (
    DEFAULT_GATE_CONFIDENCE,
    DEFAULT_MAX_FORECAST_AGE_DAYS,
    GateSettings,
    recommend,
)
from portfolio_pipeline.recommendations.gate import ForecastHistory
from portfolio_pipeline.settings import CASH_SYMBOL

PROCESS_NAMES: tuple[str, ...] = ("recommended", "ungated", "target", "band_5pct", "never_trade")
BACKTEST_SCHEMA = {
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


@dataclass(frozen=True)
class ProcessSpec:
    """How one simulated process turns the day's target into trades.

    ``confidence`` overrides the settings' gate confidence (for a validation grid).
    """

    name: str
    gate: bool = False
    turnover_cap: bool = False
    min_notional: bool = False
    band: float | None = None
    trades: bool = True
    confidence: float | None = None


PROCESSES: dict[str, ProcessSpec] = {
    "recommended": ProcessSpec("recommended", gate=True, turnover_cap=True, min_notional=True),
    "ungated": ProcessSpec("ungated", turnover_cap=True, min_notional=True),
    "target": ProcessSpec("target"),
    "band_5pct": ProcessSpec("band_5pct", min_notional=True, band=0.05),
    "never_trade": ProcessSpec("never_trade", trades=False),
}
DEFAULT_CONFIDENCE_GRID: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def gated_at(confidence: float) -> ProcessSpec:
    """The ``recommended`` process at another gate confidence (``recommended_c80``)."""
    return ProcessSpec(
        f"recommended_c{round(confidence * 100):d}",
        gate=True,
        turnover_cap=True,
        min_notional=True,
        confidence=confidence,
    )


@dataclass(frozen=True)
class SimulationSettings:
    """The recommendation settings the simulation replays (the asset's config)."""

    cost_bps: float = 10.0
    min_notional: float = 50.0
    turnover_cap: float | None = 0.5
    horizon: int = 8
    gate_confidence: float = DEFAULT_GATE_CONFIDENCE
    max_forecast_age_days: int = DEFAULT_MAX_FORECAST_AGE_DAYS
    periods_per_year: int = 365
    target_refresh: str = DEFAULT_TARGET_REFRESH
    cash_symbol: str = CASH_SYMBOL


@dataclass(frozen=True)
class SimulationResult:
    """``daily``: rows of ``portfolio.recommendation_backtest``; ``metrics``: one row per
    process and window (columns of ``portfolio.backtest_metrics`` plus process/window);
    ``trades``: the recommendation rows of every simulated day that traded (for the test that
    the simulation equals the asset)."""

    daily: pl.DataFrame
    metrics: pl.DataFrame
    trades: pl.DataFrame


@dataclass
class _State:
    spec: ProcessSpec
    quantities: dict[str, float]
    value: float
    start_value: float
    cash: str
    rows: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class DayInputs:
    """Everything the recommendation of day ``d`` may use (known at the close of ``d``)."""

    as_of: date
    prices: pl.DataFrame  # symbol, price, trading
    target: pl.DataFrame  # symbol, weight
    forecasts: pl.DataFrame | None
    gate: GateSettings
    liquidity: pl.DataFrame

    @property
    def target_map(self) -> dict[str, float]:
        return dict(
            zip(self.target["symbol"].to_list(), self.target["weight"].to_list(), strict=True)
        )


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


def simulate_recommendations(
    ohlcv: pl.DataFrame,
    strategy: Strategy,
    forecast_backtest: pl.DataFrame | None,
    windows: dict[str, tuple[date, date]],
    *,
    start_weights: dict[str, float] | None,
    start_value: float,
    settings: SimulationSettings = SimulationSettings(),
    processes: Sequence[str | ProcessSpec] = PROCESS_NAMES,
    keep_trades: bool = False,
) -> SimulationResult:
    """Replay the recommendation process over each window (see the module docstring).

    Parameters
    ----------
    ohlcv : raw OHLCV (``symbol, date, close, volume, quote_volume``).
    strategy : the strategy whose target the recommendations follow.
    forecast_backtest : out-of-sample walk-forward forecasts (``ml.forecast_backtest``:
        ``as_of, symbol, horizon_days, q10, q50, q90, realized``) or None (no gate).
    windows : name -> (first day whose return is booked, last day), e.g. validation, test.
    start_weights : symbol -> weight (cash ``USDT`` included, summing to 1) of the starting
        portfolio, or None to start each window at the strategy's target of its first
        decision day (so the processes differ only in how they follow it afterwards);
        start_value : its value in cash units.
    processes : names from :data:`PROCESSES` or :class:`ProcessSpec` objects.
    keep_trades : also return every day's recommendation rows of ``recommended``.
    """
    unknown = {p for p in processes if isinstance(p, str) and p not in PROCESSES}
    if unknown:
        raise ValueError(f"unknown process(es) {sorted(unknown)}; known: {list(PROCESSES)}")
    specs = [PROCESSES[p] if isinstance(p, str) else p for p in processes]
    if start_weights is not None and abs(sum(start_weights.values()) - 1.0) > 1e-6:
        raise ValueError(f"start weights sum to {sum(start_weights.values()):.6f}, not 1")
    if start_value <= 0:
        raise ValueError(f"start value must be positive, got {start_value}")
    cash = settings.cash_symbol
    panel = MarketPanel.from_ohlcv(ohlcv, cash_symbol=cash)
    history = _forecast_history(forecast_backtest, panel, settings.horizon)
    issued = _forecasts_by_issue_date(forecast_backtest, settings.horizon)
    cache = EstimationCache()
    daily, metric_rows, trade_frames = [], [], []
    for window, (start, end) in windows.items():
        rows = _window_rows(panel, start, end, window)
        weights = start_weights
        if weights is None:
            first = strategy.decide(
                panel, period_start_row(panel.dates, rows[0], settings.target_refresh), cache
            )
            weights = dict(zip([*panel.symbols, cash], first.weights.tolist(), strict=True))
        states = _initial_states(panel, rows[0], specs, weights, start_value, cash)
        for row in rows:
            inputs = _day_inputs(panel, row, strategy, cache, issued, history, settings, ohlcv)
            for state in states:
                frame = _advance(state, panel, row, inputs, strategy.name, settings, window)
                if keep_trades and frame is not None and state.spec.name == "recommended":
                    trade_frames.append(frame.with_columns(pl.lit(window).alias("window")))
        for state in states:
            frame = pl.DataFrame(state.rows, schema=BACKTEST_SCHEMA, orient="row")
            daily.append(frame)
            metric_rows.append(_metrics(frame, state.spec.name, window, settings))
    return SimulationResult(
        daily=pl.concat(daily),
        metrics=pl.DataFrame(metric_rows),
        trades=pl.concat(trade_frames) if trade_frames else pl.DataFrame(),
    )


def _forecast_history(
    backtest: pl.DataFrame | None, panel: MarketPanel, horizon: int
) -> ForecastHistory | None:
    if backtest is None or backtest.is_empty():
        return None
    calendar = pl.Series(panel.dates.astype("datetime64[D]")).cast(pl.Date)
    return ForecastHistory.from_backtest(backtest, calendar, horizon)


def _forecasts_by_issue_date(
    backtest: pl.DataFrame | None, horizon: int
) -> dict[date, pl.DataFrame]:
    if backtest is None or backtest.is_empty():
        return {}
    rows = backtest.filter(pl.col("horizon_days") == horizon).select(
        "as_of", "symbol", "horizon_days", "q10", "q50", "q90"
    )
    return {key[0]: frame for key, frame in rows.partition_by("as_of", as_dict=True).items()}


def _window_rows(panel: MarketPanel, start: date, end: date, window: str) -> range:
    """Decision rows: the day before ``start`` .. the day before ``end``."""
    first, last = window_rows(panel, start, end, f"recommendation backtest {window}")
    return range(first - 1, last)


def _initial_states(
    panel: MarketPanel,
    row: int,
    specs: Sequence[ProcessSpec],
    start_weights: dict[str, float],
    start_value: float,
    cash: str,
) -> list[_State]:
    prices = dict(zip(panel.symbols, panel.close[row].tolist(), strict=True))
    quantities = starting_quantities(start_weights, prices, start_value, cash)
    return [_State(spec, dict(quantities), start_value, start_value, cash) for spec in specs]


def _day_inputs(
    panel: MarketPanel,
    row: int,
    strategy: Strategy,
    cache: EstimationCache,
    issued: dict[date, pl.DataFrame],
    history: ForecastHistory | None,
    settings: SimulationSettings,
    ohlcv: pl.DataFrame,
) -> DayInputs:
    day = panel.date_at(row)
    close = panel.close[row]
    priced = np.isfinite(close)
    # latest_prices semantics: the last close per symbol, trading only when priced today
    last_close = _last_close(panel, row)
    known = [i for i, s in enumerate(panel.symbols) if math.isfinite(last_close[i])]
    prices = pl.DataFrame(
        {
            "symbol": [panel.symbols[i] for i in known],
            "price": [float(last_close[i]) for i in known],
            "trading": [bool(priced[i]) for i in known],
        }
    )
    decision = strategy.decide(
        panel, period_start_row(panel.dates, row, settings.target_refresh), cache
    )
    target = pl.DataFrame(
        {
            "symbol": [*panel.symbols, settings.cash_symbol],
            "weight": decision.weights.astype(np.float64),
        }
    )
    recent = [
        issued[d]
        for d in _recent_days(day, settings.max_forecast_age_days)
        if d in issued  # forecasts issued on days <= d only
    ]
    calibration = history.calibrate(day) if history is not None else None
    liquidity = compute_liquidity(
        ohlcv, pl.DataFrame(schema={"symbol": pl.Utf8, "value": pl.Float64}), day
    )
    return DayInputs(
        as_of=day,
        prices=prices,
        target=target,
        forecasts=pl.concat(recent) if recent else None,
        gate=GateSettings(calibration, settings.gate_confidence, settings.max_forecast_age_days),
        liquidity=liquidity,
    )


def _recent_days(day: date, max_age_days: int) -> list[date]:
    from datetime import timedelta

    return [day - timedelta(days=k) for k in range(max_age_days + 1)]


def _last_close(panel: MarketPanel, row: int) -> np.ndarray:
    window = panel.close[: row + 1]
    seen = np.isfinite(window)
    last_row = np.where(seen.any(axis=0), row - np.argmax(seen[::-1], axis=0), -1)
    out = np.full(panel.n_assets, np.nan)
    ok = last_row >= 0
    out[ok] = window[last_row[ok], np.nonzero(ok)[0]]
    return out


def _advance(
    state: _State,
    panel: MarketPanel,
    row: int,
    inputs: DayInputs,
    strategy: str,
    settings: SimulationSettings,
    window: str,
) -> pl.DataFrame | None:
    """Trade at the close of ``row`` per the process, then carry to ``row + 1``."""
    spec = state.spec
    frame = None
    trades, turnover, cost, wanted = 0, 0.0, 0.0, 0.0
    if spec.trades and _band_triggered(spec, state, inputs):
        holdings = pl.DataFrame(
            {"symbol": list(state.quantities), "quantity": list(state.quantities.values())}
        )
        frame = recommend(
            holdings,
            inputs.prices,
            inputs.target,
            inputs.forecasts if spec.gate else None,
            cost_bps=settings.cost_bps,
            min_notional=settings.min_notional if spec.min_notional else 0.0,
            turnover_cap=settings.turnover_cap if spec.turnover_cap else None,
            liquidity=inputs.liquidity,
            as_of=inputs.as_of,
            strategy=strategy,
            run_id=f"simulated-{window}",
            generated_at=_GENERATED_AT,
            horizon_days=settings.horizon,
            gate=_gate_for(spec, inputs.gate),
            cash_symbol=state.cash,
        )
        trades, turnover, cost, wanted = _book(state, frame, settings.cost_bps)
    elif spec.trades:
        wanted = _wanted_turnover(state, inputs)
    next_value = _carry(state, panel, row)
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


def _gate_for(spec: ProcessSpec, gate: GateSettings) -> GateSettings | None:
    if not spec.gate:
        return None
    if spec.confidence is None:
        return gate
    return GateSettings(gate.calibration, spec.confidence, gate.max_forecast_age_days)


def _weights(state: _State, prices: dict[str, float]) -> dict[str, float]:
    values = {
        s: q * (1.0 if s == state.cash else prices.get(s, 0.0)) for s, q in state.quantities.items()
    }
    total = sum(values.values())
    return {s: v / total for s, v in values.items()}


def _price_map(inputs: DayInputs) -> dict[str, float]:
    return dict(
        zip(inputs.prices["symbol"].to_list(), inputs.prices["price"].to_list(), strict=True)
    )


def _wanted_turnover(state: _State, inputs: DayInputs) -> float:
    current = _weights(state, _price_map(inputs))
    target = inputs.target_map
    symbols = (set(current) | set(target)) - {state.cash}
    return float(sum(abs(target.get(s, 0.0) - current.get(s, 0.0)) for s in symbols))


def _band_triggered(spec: ProcessSpec, state: _State, inputs: DayInputs) -> bool:
    if spec.band is None:
        return True
    current = _weights(state, _price_map(inputs))
    target = inputs.target_map
    return any(
        abs(target.get(s, 0.0) - current.get(s, 0.0)) > spec.band
        for s in set(current) | set(target)
    )


def _book(state: _State, frame: pl.DataFrame, cost_bps: float) -> tuple[int, float, float, float]:
    """Apply a recommendation frame's trades to the simulated quantities."""
    cost_rate = cost_bps / 10_000.0
    trades, traded_value = 0, 0.0
    for symbol, action, quantity, notional in zip(
        *(frame[c].to_list() for c in ("symbol", "action", "quantity", "notional")), strict=True
    ):
        if action == "HOLD":
            continue
        trades += 1
        sign = 1.0 if action == "BUY" else -1.0
        state.quantities[symbol] = max(state.quantities.get(symbol, 0.0) + sign * quantity, 0.0)
        state.quantities[state.cash] -= sign * notional
        traded_value += notional
    cost = cost_rate * traded_value
    state.quantities[state.cash] -= cost
    value = state.value
    wanted = float(frame.get_column("wanted_turnover")[0])
    return trades, traded_value / value, cost / value, wanted


def _carry(state: _State, panel: MarketPanel, row: int) -> float:
    """Value at the close of ``row + 1``; positions with no price then are sold at the last one."""
    today, tomorrow = _last_close(panel, row), panel.close[row + 1]
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


def _metrics(frame: pl.DataFrame, process: str, window: str, settings: SimulationSettings) -> dict:
    summary = performance_summary(
        frame.select("date", "daily_return"),
        settings.periods_per_year,
        turnover=frame.get_column("turnover"),
    )
    return {
        "process": process,
        "window": window,
        "periods_per_year": settings.periods_per_year,
        **{k: summary.get(k) for k in METRIC_KEYS},
        "trading_days": int((frame.get_column("trades") > 0).sum()),
        "refused_turnover": float(frame.get_column("refused_turnover").sum()),
        "cost_paid": float(frame.get_column("cost").sum()),
    }


def confidence_grid_table(metrics: pl.DataFrame, levels: Sequence[float]) -> pl.DataFrame:
    """Validation-window metrics of the recommended process at each gate confidence level."""
    names = {gated_at(c).name: c for c in levels}
    rows = metrics.filter((pl.col("window") == "validation") & pl.col("process").is_in(list(names)))
    return rows.with_columns(
        pl.col("process").replace_strict(names, return_dtype=pl.Float64).alias("confidence")
    ).sort("confidence")


def select_confidence(grid: pl.DataFrame, metric: str = "sharpe") -> float:
    """The level with the best validation ``metric``; ties go to the higher (stricter) level."""
    usable = grid.filter(pl.col(metric).is_not_null() & pl.col(metric).is_not_nan())
    if usable.is_empty():
        raise ValueError(f"gate confidence: every level has an undefined validation {metric}")
    best = usable.sort([metric, "confidence"], descending=[True, True]).row(0, named=True)
    return float(best["confidence"])


def name_recommended(
    result: SimulationResult, confidence: float
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Copy the grid process at ``confidence`` under the name ``recommended`` (daily, metrics)."""
    source = gated_at(confidence).name

    def with_copy(frame: pl.DataFrame) -> pl.DataFrame:
        chosen = frame.filter(pl.col("process") == source)
        if chosen.is_empty():
            raise ValueError(f"no simulated process {source!r} to name 'recommended'")
        return pl.concat([chosen.with_columns(pl.lit("recommended").alias("process")), frame])

    return with_copy(result.daily), with_copy(result.metrics)


@dataclass(frozen=True)
class ConfidenceReplay:
    """The replay as the asset stores it: ``daily`` and ``metrics`` with the chosen level's
    process named ``recommended`` (grid levels kept as ``recommended_cNN``), the validation
    ``grid`` (one row per level, ``selected``) and the ``confidence`` in force."""

    daily: pl.DataFrame
    metrics: pl.DataFrame
    grid: pl.DataFrame
    confidence: float


def replay_with_confidence_grid(
    ohlcv: pl.DataFrame,
    strategy: Strategy,
    forecast_backtest: pl.DataFrame | None,
    windows: dict[str, tuple[date, date]],
    *,
    start_weights: dict[str, float] | None,
    start_value: float,
    settings: SimulationSettings,
    levels: Sequence[float] = DEFAULT_CONFIDENCE_GRID,
    configured_confidence: float | None = None,
) -> ConfidenceReplay:
    """Replay every comparison process and the gated one at each confidence level, in one
    pass, then choose the level on the ``validation`` window (best Sharpe, ties to the
    stricter level) unless ``configured_confidence`` is given."""
    levels = sorted({*levels, *([configured_confidence] if configured_confidence else [])})
    others = [name for name in PROCESS_NAMES if name != "recommended"]
    result = simulate_recommendations(
        ohlcv,
        strategy,
        forecast_backtest,
        windows,
        start_weights=start_weights,
        start_value=start_value,
        settings=settings,
        processes=[*(gated_at(c) for c in levels), *others],
    )
    grid = confidence_grid_table(result.metrics, levels)
    confidence = configured_confidence or select_confidence(grid)
    daily, metrics = name_recommended(result, confidence)
    grid = grid.with_columns((pl.col("confidence") == confidence).alias("selected"))
    return ConfidenceReplay(daily, metrics, grid, confidence)
