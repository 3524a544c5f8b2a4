"""The strategy contract: :class:`Strategy` (parameters, ``fit``, memoised ``decide``) and
the :class:`Decision` it returns, with the helpers that place weights in a full vector."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Self

import numpy as np
import polars as pl

from portfolio_pipeline.portfolio.strategies.estimation import Estimate, EstimationCache
from portfolio_pipeline.portfolio.strategies.panel import MarketPanel

DEFAULT_LOOKBACK_DAYS = 365
DEFAULT_MIN_HISTORY = 180


@dataclass(frozen=True)
class Decision:
    """Target weights (N+1,), cash LAST, with the reason they were chosen."""

    weights: np.ndarray
    reason: str


def _cash_only(n_assets: int, reason: str) -> Decision:
    weights = np.zeros(n_assets + 1)
    weights[-1] = 1.0
    return Decision(weights, reason)


def _embed(n_assets: int, assets: np.ndarray, asset_weights: np.ndarray, reason: str) -> Decision:
    """Place weights of the selected columns into a full (N+1,) vector; the rest is cash."""
    w = np.asarray(asset_weights, dtype=np.float64)
    # Solver noise (1e-9 weights) would become dust trades: below 1e-6 is zero.
    w = np.where(w < 1e-6, 0.0, w)
    total = w.sum()
    if total > 1.0 + 1e-6:
        w = w / total
    full = np.zeros(n_assets + 1)
    full[assets] = w
    full[-1] = max(0.0, 1.0 - full[:-1].sum())
    full /= full.sum()
    return Decision(full, reason)


def _inverse_vol_weights(volatility: np.ndarray) -> np.ndarray | None:
    if volatility.size == 0 or not np.all(np.isfinite(volatility)) or np.any(volatility <= 0):
        return None
    inv = 1.0 / volatility
    return inv / inv.sum()


class Strategy(ABC):
    """Base class: parameters in ``__init__``, data in :meth:`fit`, one day in :meth:`decide`.

    Parameters
    ----------
    lookback_days : rows in the estimation window ending at the decision day.
    min_history : minimum finite returns in the window for an asset to be eligible.

    Attributes
    ----------
    decisions_ : dict row -> :class:`Decision`, the memo of the panel ``panel_``.
    panel_ : the panel the memo answers for (None before the first decision).
    """

    name: str = "strategy"
    #: False for buy-and-hold: the backtest asks for weights once and then lets them drift.
    rebalances: bool = True
    #: A frequency the strategy always trades at, whatever the backtest's (e.g. ``daily`` for a
    #: DRL policy that acts every day); None = the backtest's frequency.
    rebalance_frequency: str | None = None

    def __init__(
        self, lookback_days: int = DEFAULT_LOOKBACK_DAYS, min_history: int = DEFAULT_MIN_HISTORY
    ) -> None:
        self.lookback_days = lookback_days
        self.min_history = min_history

    def fit(self, data: pl.DataFrame | None = None) -> Self:
        """Validate the parameters, take the strategy's data and start an empty decision memo.

        Parameters
        ----------
        data : the strategy's own input: forecasts for ``forecast_mv``, weights for
            ``external``; None for the classic strategies, which decide from the panel alone.

        Returns
        -------
        self
        """
        self._check_parameters()
        self._fit_data(data)
        self.decisions_: dict[int, Decision] = {}
        self.panel_: MarketPanel | None = None
        self._estimates = EstimationCache()
        return self

    def _check_parameters(self) -> None:
        if self.lookback_days < 2 or self.min_history < 2 or self.min_history > self.lookback_days:
            raise ValueError(
                f"{self.name}: need 2 <= min_history ({self.min_history}) <= lookback_days "
                f"({self.lookback_days})"
            )

    def _fit_data(self, data: pl.DataFrame | None) -> None:
        if data is not None:
            raise ValueError(f"{self.name} decides from prices alone: fit() takes no data")

    def decide(
        self, panel: MarketPanel, row: int, estimates: EstimationCache | None = None
    ) -> Decision:
        """Weights at the close of ``panel.dates[row]`` from rows ``<= row`` only (memoised).

        ``estimates`` shares the moments with the other strategies deciding on ``panel``;
        without it the strategy keeps a cache of its own.
        """
        if not hasattr(self, "decisions_"):
            raise ValueError(f"{self.name} is not fitted: call fit() before decide()")
        if self.panel_ is not panel:
            # The memo answers for one panel; the reference is held, so identity is safe.
            self.panel_, self.decisions_ = panel, {}
            self._estimates = EstimationCache()
        if row not in self.decisions_:
            self.decisions_[row] = self._decide_at(
                panel, row, estimates if estimates is not None else self._estimates
            )
        return self.decisions_[row]

    def remember(self, panel: MarketPanel, decisions: dict[int, Decision]) -> None:
        """Add decisions taken elsewhere (a copy of this fitted strategy deciding in another
        process, :func:`portfolio_pipeline.portfolio.backtest.decide_in_parallel`) to the memo."""
        if not hasattr(self, "decisions_"):
            raise ValueError(f"{self.name} is not fitted: call fit() before remember()")
        if self.panel_ is not panel:
            self.panel_, self.decisions_ = panel, {}
            self._estimates = EstimationCache()
        self.decisions_.update(decisions)

    def _decide_at(self, panel: MarketPanel, row: int, estimates: EstimationCache) -> Decision:
        """The moments of the window, then :meth:`_decide` (all cash when nothing is eligible)."""
        est = estimates.estimate(panel, row, self.lookback_days, self.min_history)
        if est.assets.size == 0:
            return _cash_only(
                panel.n_assets,
                f"no asset trades on {panel.date_at(row)} with {self.min_history} days of "
                f"history in the {self.lookback_days}-day window: all cash",
            )
        return self._decide(panel, row, est)

    @abstractmethod
    def _decide(self, panel: MarketPanel, row: int, est: Estimate) -> Decision: ...

    def _fallback(self, panel: MarketPanel, est: Estimate, why: str) -> Decision:
        inv = _inverse_vol_weights(est.volatility)
        if inv is not None:
            return _embed(
                panel.n_assets, est.assets, inv, f"{why}; fell back to inverse volatility"
            )
        eq = np.full(est.assets.size, 1.0 / est.assets.size)
        return _embed(panel.n_assets, est.assets, eq, f"{why}; fell back to equal weight")
