"""The recommendation processes the replay compares, and the settings they all replay.

``recommended``  target -> gate -> turnover cap -> minimum notional -> costs: what the
                 recommendations say.
``ungated``      the same without the gate (isolates what the gate adds).
``target``       follows the strategy target every day, no gate, cap or minimum.
``band_5pct``    a classic no-trade band: trade fully to the target only when some weight has
                 drifted more than 5 points from it.
``never_trade``  holds the starting portfolio.
"""

from __future__ import annotations

from dataclasses import dataclass

from portfolio_pipeline.portfolio.backtest import DEFAULT_TARGET_REFRESH
from portfolio_pipeline.recommendations.trade_gate import (
    DEFAULT_GATE_CONFIDENCE,
    DEFAULT_MAX_FORECAST_AGE_DAYS,
)
from portfolio_pipeline.settings import CASH_SYMBOL

PROCESS_NAMES: tuple[str, ...] = ("recommended", "ungated", "target", "band_5pct", "never_trade")


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
