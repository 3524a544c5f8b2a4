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

from dataclasses import dataclass, field

from portfolio_pipeline.portfolio.backtest import DEFAULT_TARGET_REFRESH
from portfolio_pipeline.recommendations.rebalance_rules import (
    DEFAULT_RULE_CONFIDENCE,
    BandEdge,
    CostAware,
    RebalanceRule,
)
from portfolio_pipeline.recommendations.trade_gate import (
    DEFAULT_GATE_CONFIDENCE,
    DEFAULT_MAX_FORECAST_AGE_DAYS,
)
from portfolio_pipeline.settings import CASH_SYMBOL

PROCESS_NAMES: tuple[str, ...] = (
    "recommended",
    "cost_aware",
    "band_edge",
    "target",
    "band_5pct",
    "never_trade",
)


@dataclass(frozen=True)
class ProcessSpec:
    """How one simulated process turns the day's target into trades.

    ``confidence`` overrides the settings' gate confidence (for a validation grid); ``rule``
    replaces the gate by a portfolio-level rule (:mod:`.rebalance_rules`). Every trading
    process goes through the same turnover cap, minimum notional, costs and liquidity.
    """

    name: str
    gate: bool = False
    turnover_cap: bool = True  # the same cap, minimum notional and costs for every process
    min_notional: bool = True
    band: float | None = None
    trades: bool = True
    confidence: float | None = None
    rule: RebalanceRule | None = field(default=None)

    @property
    def family(self) -> str:
        """The process without its parameters (``gated``, ``cost_aware`` …)."""
        if self.rule is not None:
            return "cost_aware" if isinstance(self.rule, CostAware) else "band_edge"
        return "gated" if self.gate else self.name

    def parameters(self) -> dict[str, float | None]:
        """Risk aversion, cost multiplier, confidence and band width (None: not used)."""
        rule = self.rule
        return {
            "risk_aversion": rule.risk_aversion if rule is not None else None,
            "cost_multiplier": rule.cost_multiplier if isinstance(rule, CostAware) else None,
            "confidence": (rule.confidence if isinstance(rule, CostAware) else self.confidence),
            "band": self.band,
        }


PROCESSES: dict[str, ProcessSpec] = {
    "recommended": ProcessSpec("recommended", gate=True),
    "cost_aware": ProcessSpec("cost_aware", rule=CostAware()),
    "band_edge": ProcessSpec("band_edge", rule=BandEdge()),
    "ungated": ProcessSpec("ungated"),
    "target": ProcessSpec("target"),
    "band_5pct": ProcessSpec("band_5pct", band=0.05),
    "never_trade": ProcessSpec("never_trade", trades=False),
}
DEFAULT_CONFIDENCE_GRID: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
# The candidates' grids are kept small: every point is a replay of ~3,300 days (validation,
# test and each calendar year for the rolling origin), and the replay must stay fast.
CANDIDATE_CONFIDENCE_GRID: tuple[float, ...] = (0.5, 0.7, 0.9)
DEFAULT_RISK_AVERSION_GRID: tuple[float, ...] = (0.5, 4.0)
DEFAULT_COST_MULTIPLIER_GRID: tuple[float, ...] = (1.0, 3.0)
DEFAULT_BAND_RISK_AVERSION_GRID: tuple[float, ...] = (0.1, 1.0, 10.0)


def gated_at(confidence: float) -> ProcessSpec:
    """The gated process at a gate confidence (``gated_c80``)."""
    return ProcessSpec(f"gated_c{round(confidence * 100):d}", gate=True, confidence=confidence)


def cost_aware_at(
    risk_aversion: float, cost_multiplier: float, confidence: float = DEFAULT_RULE_CONFIDENCE
) -> ProcessSpec:
    """The ``cost_aware`` process with these parameters (``cost_aware_g2_k1``)."""
    rule = CostAware(risk_aversion, cost_multiplier, confidence)
    name = f"cost_aware_g{risk_aversion:g}_k{cost_multiplier:g}"
    return ProcessSpec(name, rule=rule)


def band_edge_at(risk_aversion: float) -> ProcessSpec:
    """The ``band_edge`` process at a risk aversion (``band_edge_g1``)."""
    return ProcessSpec(f"band_edge_g{risk_aversion:g}", rule=BandEdge(risk_aversion))


def candidate_processes(
    confidence_grid: tuple[float, ...] = CANDIDATE_CONFIDENCE_GRID,
    risk_aversion_grid: tuple[float, ...] = DEFAULT_RISK_AVERSION_GRID,
    cost_multiplier_grid: tuple[float, ...] = DEFAULT_COST_MULTIPLIER_GRID,
    band_risk_aversion_grid: tuple[float, ...] = DEFAULT_BAND_RISK_AVERSION_GRID,
) -> list[ProcessSpec]:
    """Every process and parameter set the validation choice may pick from."""
    return [
        *(gated_at(c) for c in confidence_grid),
        *(cost_aware_at(g, k) for g in risk_aversion_grid for k in cost_multiplier_grid),
        *(band_edge_at(g) for g in band_risk_aversion_grid),
        PROCESSES["target"],
        PROCESSES["band_5pct"],
        PROCESSES["never_trade"],
    ]


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
