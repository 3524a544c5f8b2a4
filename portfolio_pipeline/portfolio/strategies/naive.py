"""Naive strategies that need no optimiser: equal weight, inverse volatility, buy-and-hold."""

from __future__ import annotations

import numpy as np

from portfolio_pipeline.portfolio.strategies.base import (
    Decision,
    Strategy,
    _embed,
    _inverse_vol_weights,
)
from portfolio_pipeline.portfolio.strategies.estimation import Estimate
from portfolio_pipeline.portfolio.strategies.panel import MarketPanel


class EqualWeight(Strategy):
    name = "equal_weight"

    def _decide(self, panel: MarketPanel, row: int, est: Estimate) -> Decision:
        k = est.assets.size
        return _embed(panel.n_assets, est.assets, np.full(k, 1.0 / k), f"1/{k} over eligible")


class InverseVolatility(Strategy):
    name = "inverse_volatility"

    def _decide(self, panel: MarketPanel, row: int, est: Estimate) -> Decision:
        inv = _inverse_vol_weights(est.volatility)
        if inv is None:
            return self._fallback(panel, est, "degenerate volatilities")
        return _embed(
            panel.n_assets, est.assets, inv, f"1/vol over {est.assets.size} eligible assets"
        )


class BuyAndHold(EqualWeight):
    """Equal weight at the first decision, then no trading at all (weights drift)."""

    name = "buy_and_hold"
    rebalances = False
