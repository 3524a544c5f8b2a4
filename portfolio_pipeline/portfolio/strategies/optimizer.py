"""The base of the skfolio strategies: one optimiser on the cached moments, its checks and
its fallback."""

from __future__ import annotations

from typing import Any

import numpy as np

from portfolio_pipeline.portfolio.strategies.base import Decision, Strategy, _embed
from portfolio_pipeline.portfolio.strategies.estimation import Estimate
from portfolio_pipeline.portfolio.strategies.panel import MarketPanel


def _precomputed_prior(mu: np.ndarray, covariance: np.ndarray) -> Any:
    """A skfolio prior that hands the cached moments to an optimiser instead of re-estimating."""
    from skfolio.prior import BasePrior, ReturnDistribution

    class PrecomputedPrior(BasePrior):
        def __init__(self, mu: np.ndarray | None = None, covariance: np.ndarray | None = None):
            self.mu = mu
            self.covariance = covariance

        def fit(self, X: Any, y: Any = None, **fit_params: Any) -> PrecomputedPrior:
            self.return_distribution_ = ReturnDistribution(
                mu=np.asarray(self.mu, dtype=np.float64),
                covariance=np.asarray(self.covariance, dtype=np.float64),
                returns=np.asarray(X, dtype=np.float64),
            )
            return self

    return PrecomputedPrior(mu=mu, covariance=covariance)


class _SkfolioStrategy(Strategy):
    """Runs one skfolio optimiser on the cached moments; falls back on any failure.

    Subclasses name the optimiser (:meth:`_make_optimizer`) and may replace the moments it
    sees (:meth:`_problem`, e.g. forecast-based ones) and how the decision is described.
    """

    #: True when the optimiser's budget is free in [0, 1], the rest staying in cash.
    allows_cash: bool = False

    def _make_optimizer(self, prior: Any) -> Any:  # pragma: no cover - abstract in spirit
        raise NotImplementedError

    def _problem(self, panel: MarketPanel, row: int, est: Estimate) -> tuple[Estimate | None, str]:
        """The moments to optimise on, or ``(None, why)`` to fall back: the window's own here."""
        return est, ""

    def _describe(self, problem: Estimate, weights: np.ndarray) -> str:
        return f"{self.name} (skfolio)"

    def _optimise(self, est: Estimate) -> np.ndarray:
        optimizer = self._make_optimizer(_precomputed_prior(est.mu, est.covariance))
        optimizer.fit(est.window_returns)
        return np.asarray(optimizer.weights_, dtype=np.float64)

    def _decide(self, panel: MarketPanel, row: int, est: Estimate) -> Decision:
        problem, why = self._problem(panel, row, est)
        if problem is None:
            return self._fallback(panel, est, why)
        if not self.allows_cash and problem.assets.size == 1:
            return _embed(panel.n_assets, problem.assets, np.ones(1), "single eligible asset")
        try:
            weights = self._optimise(problem)
        except Exception as exc:  # solver failures must never stop a backtest
            message = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            return self._fallback(panel, est, f"{self.name} failed: {message}")
        if not _valid_simplex(weights, allow_cash=self.allows_cash):
            return self._fallback(panel, est, f"{self.name} returned invalid weights")
        return _embed(panel.n_assets, problem.assets, weights, self._describe(problem, weights))


def _valid_simplex(weights: np.ndarray, allow_cash: bool) -> bool:
    if not np.all(np.isfinite(weights)) or np.any(weights < -1e-6):
        return False
    total = float(np.clip(weights, 0, None).sum())
    return total <= 1.0 + 1e-6 and (allow_cash or total >= 1.0 - 1e-6)
