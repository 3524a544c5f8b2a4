"""One asset's way through a recommendation: its current weight, the move wanted and the
notes that explain it, and the scalings every step applies to the moves (cash last)."""

from __future__ import annotations

from dataclasses import dataclass, field

from portfolio_pipeline.settings import CASH_SYMBOL

EPS = 1e-12


@dataclass
class AssetMove:
    """A symbol's state during :func:`~.decision.recommend` (weights are fractions of value)."""

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


def buy_scale_for_cash(assets: list[AssetMove], cash_weight: float, cost_rate: float) -> float:
    """Largest k in [0, 1] so that buys x k keep cash >= 0 after sales and costs."""
    risky = [a for a in assets if not a.is_cash]
    buys = sum(a.delta for a in risky if a.delta > 0)
    sells = -sum(a.delta for a in risky if a.delta < 0)
    if buys <= EPS:
        return 1.0
    available = cash_weight + sells * (1.0 - cost_rate)
    return max(0.0, min(1.0, available / (buys * (1.0 + cost_rate))))


def scale_moves(assets: list[AssetMove], k: float, why: str, *, buys_only: bool = False) -> None:
    """Multiply every (or every buying) move by ``k`` and note why on each."""
    for a in assets:
        if a.is_cash or abs(a.delta) <= EPS or (buys_only and a.delta <= 0):
            continue
        a.delta *= k
        a.notes.append(f"scaled by {k:.3f} {why}")
