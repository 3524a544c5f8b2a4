"""When a backtest decides: the rebalancing frequencies, the rebalance days, the window's
panel rows and the decision rows."""

from __future__ import annotations

from datetime import date

import numpy as np

from portfolio_pipeline.portfolio.strategies import (
    MarketPanel,
    Strategy,
)

REBALANCE_FREQUENCIES: tuple[str, ...] = ("daily", "weekly", "monthly")

# Live targets (target_weights) and the recommendation replay refresh on the backtests' cadence.
DEFAULT_TARGET_REFRESH = "weekly"


def is_rebalance_day(day: date, next_day: date, frequency: str) -> bool:
    """True when ``day`` closes a rebalancing period (``next_day`` is the next panel date)."""
    if frequency == "daily":
        return True
    if frequency == "weekly":
        return day.isocalendar()[:2] != next_day.isocalendar()[:2]
    if frequency == "monthly":
        return (day.year, day.month) != (next_day.year, next_day.month)
    raise ValueError(f"rebalance must be one of {REBALANCE_FREQUENCIES}, got {frequency!r}")


def period_start_row(dates: np.ndarray, row: int, frequency: str) -> int:
    """First row of the period (``daily``: the row itself; ISO week; month) containing ``row``.

    This is when a live target is re-decided: on the first trading day of each period, which
    is known on that day (the backtests' *last* day of a period needs tomorrow's date).
    ``dates`` are the panel's sorted ``datetime64[D]`` dates; only rows ``<= row`` are read.
    """
    if frequency not in REBALANCE_FREQUENCIES:
        raise ValueError(
            f"target refresh must be one of {REBALANCE_FREQUENCIES}, got {frequency!r}"
        )
    if frequency == "daily":
        return row

    def period(r: int) -> tuple[int, int]:
        day = dates[r].astype("datetime64[D]").astype(date)
        return day.isocalendar()[:2] if frequency == "weekly" else (day.year, day.month)

    current, start = period(row), row
    while start > 0 and period(start - 1) == current:
        start -= 1
    return start


def window_rows(panel: MarketPanel, start: date, end: date, what: str) -> tuple[int, int]:
    """Panel rows of the first and last day of ``[start, end]``; the row before the first is
    the first decision, so it must exist. ``what`` names the caller in the error."""
    first_row = int(np.searchsorted(panel.dates, np.datetime64(start, "D"), side="left"))
    last_row = int(np.searchsorted(panel.dates, np.datetime64(end, "D"), side="right")) - 1
    if first_row < 1 or first_row > last_row:
        raise ValueError(
            f"{what}: need prices on the day before {start} and within "
            f"[{start}, {end}]; panel covers {panel.dates[0]}..{panel.dates[-1]}"
        )
    return first_row, last_row


def decision_rows(
    panel: MarketPanel, strategy: Strategy, start: date, end: date, rebalance: str
) -> list[int]:
    """The panel rows at which :func:`weight_path` asks ``strategy`` for a decision."""
    first_row, last_row = window_rows(panel, start, end, f"backtest {strategy.name}")
    rebalance = strategy.rebalance_frequency or rebalance
    rows = [first_row - 1]
    if strategy.rebalances:
        rows += [
            row
            for row in range(first_row, last_row)
            if is_rebalance_day(panel.date_at(row), panel.date_at(row + 1), rebalance)
        ]
    return rows
