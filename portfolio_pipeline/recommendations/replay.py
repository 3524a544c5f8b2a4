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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

from portfolio_pipeline.portfolio.backtest import period_start_row, window_rows
from portfolio_pipeline.portfolio.metrics import METRIC_KEYS, performance_summary
from portfolio_pipeline.portfolio.strategies import EstimationCache, MarketPanel, Strategy
from portfolio_pipeline.recommendations.process_book import (
    BACKTEST_SCHEMA,
    advance,
    initial_states,
)
from portfolio_pipeline.recommendations.processes import (
    PROCESS_NAMES,
    PROCESSES,
    ProcessSpec,
    SimulationSettings,
)
from portfolio_pipeline.recommendations.replay_inputs import (
    day_inputs,
    forecast_history,
    forecasts_by_issue_date,
)


@dataclass(frozen=True)
class SimulationResult:
    """``daily``: rows of ``portfolio.recommendation_backtest``; ``metrics``: one row per
    process and window (columns of ``portfolio.backtest_metrics`` plus process/window);
    ``trades``: the recommendation rows of every simulated day that traded (for the test that
    the simulation equals the asset)."""

    daily: pl.DataFrame
    metrics: pl.DataFrame
    trades: pl.DataFrame


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
    keep_trades : also return every day's recommendation rows of every process (``process``).
    """
    specs = _validated_specs(processes, start_weights, start_value)
    cash = settings.cash_symbol
    panel = MarketPanel.from_ohlcv(ohlcv, cash_symbol=cash)
    history = forecast_history(forecast_backtest, panel, settings.horizon)
    issued = forecasts_by_issue_date(forecast_backtest, settings.horizon)
    cache = EstimationCache()
    daily, metric_rows, trade_frames = [], [], []
    for window, (start, end) in windows.items():
        rows = _window_rows(panel, start, end, window)
        weights = (
            start_weights
            if start_weights is not None
            else _first_target(panel, rows[0], strategy, cache, settings)
        )
        states = initial_states(panel, rows[0], specs, weights, start_value, cash)
        for row in rows:
            inputs = day_inputs(panel, row, strategy, cache, issued, history, settings, ohlcv)
            for state in states:
                frame = advance(
                    state, panel, row, inputs, strategy.name, settings, window, keep_trades
                )
                if keep_trades and frame is not None:
                    trade_frames.append(_labelled(frame, window, state.spec.name))
        for state in states:
            frame = pl.DataFrame(state.rows, schema=BACKTEST_SCHEMA, orient="row")
            daily.append(frame)
            metric_rows.append(_metrics(frame, state.spec.name, window, settings))
    return SimulationResult(
        daily=pl.concat(daily),
        metrics=pl.DataFrame(metric_rows),
        trades=pl.concat(trade_frames) if trade_frames else pl.DataFrame(),
    )


def _labelled(frame: pl.DataFrame, window: str, process: str) -> pl.DataFrame:
    return frame.with_columns(pl.lit(window).alias("window"), pl.lit(process).alias("process"))


def _validated_specs(
    processes: Sequence[str | ProcessSpec],
    start_weights: dict[str, float] | None,
    start_value: float,
) -> list[ProcessSpec]:
    """The processes' specs, once the processes and the starting portfolio are checked."""
    unknown = {p for p in processes if isinstance(p, str) and p not in PROCESSES}
    if unknown:
        raise ValueError(f"unknown process(es) {sorted(unknown)}; known: {list(PROCESSES)}")
    specs = [PROCESSES[p] if isinstance(p, str) else p for p in processes]
    if start_weights is not None and abs(sum(start_weights.values()) - 1.0) > 1e-6:
        raise ValueError(f"start weights sum to {sum(start_weights.values()):.6f}, not 1")
    if start_value <= 0:
        raise ValueError(f"start value must be positive, got {start_value}")
    return specs


def _first_target(
    panel: MarketPanel,
    row: int,
    strategy: Strategy,
    cache: EstimationCache,
    settings: SimulationSettings,
) -> dict[str, float]:
    """The strategy's target on a window's first decision day, cash included."""
    first = strategy.decide(
        panel, period_start_row(panel.dates, row, settings.target_refresh), cache
    )
    return dict(zip([*panel.symbols, settings.cash_symbol], first.weights.tolist(), strict=True))


def _window_rows(panel: MarketPanel, start: date, end: date, window: str) -> range:
    """Decision rows: the day before ``start`` .. the day before ``end``."""
    first, last = window_rows(panel, start, end, f"recommendation backtest {window}")
    return range(first - 1, last)


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
