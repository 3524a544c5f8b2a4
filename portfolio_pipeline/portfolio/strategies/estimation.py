"""Estimation shared by every strategy: eligible assets and the window's moments, cached per panel.

The window is the ``lookback_days`` rows ending at ``d``; an asset is eligible when it trades on
``d`` and has ``min_history`` finite returns in it. The covariance is Ledoit-Wolf shrunk
(skfolio ``LedoitWolf``), the mean is the sample mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from portfolio_pipeline.portfolio.strategies.panel import MarketPanel


@dataclass(frozen=True)
class Estimate:
    """Moments of the eligible assets at one decision row.

    ``assets`` are column indices into the panel; ``window_returns`` is (n_obs, k),
    ``mu`` (k,), ``covariance`` (k, k) Ledoit-Wolf, ``volatility`` (k,) sample std.
    """

    row: int
    assets: np.ndarray
    window_returns: np.ndarray
    mu: np.ndarray
    covariance: np.ndarray
    volatility: np.ndarray


@dataclass
class EstimationCache:
    """Memo of :class:`Estimate` per (row, lookback, min_history) over ONE panel.

    One cache is shared by every strategy and every run of a grid over the same panel, so the
    covariance of a rebalance day is estimated once for all the strategies that use the same
    window. The cache keeps the panel it serves (``panel``, set on first use) and refuses
    another: a row number means nothing across panels.
    """

    estimates: dict[tuple[int, int, int], Estimate] = field(default_factory=dict)
    panel: MarketPanel | None = None

    def estimate(self, panel: MarketPanel, row: int, lookback: int, min_history: int) -> Estimate:
        if self.panel is None:
            self.panel = panel
        elif self.panel is not panel:
            raise ValueError(
                "EstimationCache: this cache serves another MarketPanel "
                f"({self.panel.dates[0]}..{self.panel.dates[-1]}, {self.panel.n_assets} assets);"
                " use one cache per panel"
            )
        key = (row, lookback, min_history)
        if key not in self.estimates:
            self.estimates[key] = estimate_moments(panel, row, lookback, min_history)
        return self.estimates[key]


def eligible_assets(panel: MarketPanel, row: int, lookback: int, min_history: int) -> np.ndarray:
    """Column indices trading at ``row`` with ``>= min_history`` returns in the window."""
    lo = max(0, row - lookback + 1)
    window = panel.returns[lo : row + 1]
    counts = np.isfinite(window).sum(axis=0)
    trading = np.isfinite(panel.close[row])
    return np.flatnonzero(trading & (counts >= min_history))


def estimate_moments(panel: MarketPanel, row: int, lookback: int, min_history: int) -> Estimate:
    """Sample mean, Ledoit-Wolf covariance and volatility over the window ending at ``row``."""
    assets = eligible_assets(panel, row, lookback, min_history)
    lo = max(0, row - lookback + 1)
    window = panel.returns[lo : row + 1][:, assets]
    if assets.size:
        window = window[np.isfinite(window).all(axis=1)]
    k = assets.size
    if k == 0 or window.shape[0] < 2:
        return Estimate(row, assets[:0], window[:, :0], np.zeros(0), np.zeros((0, 0)), np.zeros(0))
    covariance = _ledoit_wolf_class()().fit(window).covariance_
    return Estimate(
        row=row,
        assets=assets,
        window_returns=window,
        mu=window.mean(axis=0),
        covariance=np.asarray(covariance, dtype=np.float64),
        volatility=window.std(axis=0, ddof=1),
    )


@cache
def _ledoit_wolf_class() -> type:
    """skfolio's ``LedoitWolf`` (Ledoit-Wolf shrinkage, then the nearest positive-definite
    check), with that check run once instead of twice.

    skfolio's ``fit`` runs scikit-learn's, whose ``_set_covariance`` is skfolio's check and
    repair, and then runs the same check again on its own result. The second pass returns
    its input unchanged (a matrix the first pass accepted or repaired passes the test), but
    it costs two eigen-decompositions, half of the estimate's time at 100 assets.
    ``test_strategies`` checks the covariances equal skfolio's to the last bit.
    """
    import sklearn.covariance as skc
    from skfolio.moments import LedoitWolf

    class OneCheckLedoitWolf(LedoitWolf):
        def fit(self, X: Any, y: Any = None, **fit_params: Any) -> OneCheckLedoitWolf:
            skc.LedoitWolf.fit(self, X)
            return self

    return OneCheckLedoitWolf
