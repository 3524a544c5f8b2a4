"""Risk-based strategies (no expected returns): minimum variance, risk parity, HRP."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from portfolio_pipeline.portfolio.strategies.optimizer import _SkfolioStrategy


class MinVariance(_SkfolioStrategy):
    name = "min_variance"

    def _make_optimizer(self, prior: Any) -> Any:
        from skfolio.optimization import MeanRisk

        return MeanRisk(prior_estimator=prior)


class RiskParity(_SkfolioStrategy):
    name = "risk_parity"

    def _make_optimizer(self, prior: Any) -> Any:
        from skfolio.optimization import RiskBudgeting

        return RiskBudgeting(prior_estimator=prior)


class HierarchicalRiskParity(_SkfolioStrategy):
    name = "hrp"

    def _make_optimizer(self, prior: Any) -> Any:
        from skfolio.cluster import HierarchicalClustering
        from skfolio.seriation import HierarchicalSeriation

        # skfolio's default seriation, except that the clustering is not asked for its best
        # number of clusters (a cut_tree search, 40% of the rest of HRP's time at 100
        # assets): HRP reads only the tree's leaf order, which the cut does not change.
        seriation = HierarchicalSeriation(
            hierarchical_clustering_estimator=HierarchicalClustering(max_clusters=1)
        )
        return _variance_hrp_class()(prior_estimator=prior, seriation_estimator=seriation)


@cache
def _variance_hrp_class() -> type:
    """skfolio's HRP (variance), with a cluster's variance computed as ``w @ Sigma @ w.T``.

    skfolio builds a full ``Portfolio`` (returns series, costs, fees) for every cluster of
    the bisection only to call ``variance_from_assets``, which is exactly that product: about
    300 portfolios per decision at 100 assets, 90% of HRP's time. Same arithmetic, so the
    same weights to the last bit (``test_strategies`` compares with skfolio's own class).
    """
    from skfolio.measures import RiskMeasure
    from skfolio.optimization import HierarchicalRiskParity as SkfolioHRP

    class VarianceHRP(SkfolioHRP):
        def _risk(self, weights: np.ndarray, return_distribution: Any) -> float:
            if self.risk_measure != RiskMeasure.VARIANCE:  # pragma: no cover - not used here
                return super()._risk(weights, return_distribution)
            return float(weights @ return_distribution.covariance @ weights.T)

    return VarianceHRP
