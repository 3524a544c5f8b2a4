"""Portfolio construction: strategies that turn the history up to day ``d`` into target weights.

Every strategy answers one question: *given everything known by the close of ``d``, which
long-only weights (risky assets plus cash ``USDT``, summing to 1) should we hold from the close
of ``d``?* It sees the :class:`MarketPanel` rows ``<= d`` only (the panel is indexed by row and
the estimation window ends at that row), so a decision can never use a later price.

Strategies
----------
``equal_weight``        ``1/n`` over the eligible assets.
``inverse_volatility``  ``w_i ∝ 1 / sigma_i`` (sample volatility over the window).
``buy_and_hold``        equal weight at the first decision, then never trades (weights drift).
``max_sharpe``          Markowitz tangency portfolio, skfolio ``MeanRisk`` with
                        ``ObjectiveFunction.MAXIMIZE_RATIO`` (risk-free rate 0).
``min_variance``        skfolio ``MeanRisk`` minimising variance.
``risk_parity``         skfolio ``RiskBudgeting`` (equal variance contributions).
``hrp``                 skfolio ``HierarchicalRiskParity`` (variance).
``forecast_mv``         mean-variance on CatBoost quantile forecasts (see
                        :class:`ForecastMeanVariance` for how the interval width enters).
``external``            weights supplied from outside (the DRL policy): :class:`ExternalWeights`.

Estimator contract
------------------
A strategy follows scikit-learn's (and skfolio's) estimator contract: ``__init__`` stores its
parameters and nothing else; ``fit(data)`` validates them, takes the strategy's own data (the
forecasts of ``forecast_mv``, the weights of ``external``; the classic strategies take none) and
returns ``self``; fitted state ends in ``_``. ``decide(panel, row, estimates)`` then answers
for one day from the panel rows ``<= row``. :func:`build_strategies` returns fitted strategies.

A fitted strategy memoises its decisions per row in ``decisions_``, for the panel it last
decided on (``panel_``, a held reference: a new panel starts a new memo). So a backtest grid
optimises each decision day once, whatever the rebalancing frequency or cost level.

Estimation
----------
The window is the ``lookback_days`` rows ending at ``d``. An asset is *eligible* at ``d`` when
it has a close on ``d`` and at least ``min_history`` finite daily returns in the window. The
moments use the window rows on which every eligible asset has a return (so all assets share one
sample); the covariance is Ledoit-Wolf shrunk (skfolio ``LedoitWolf``), the mean is the sample
mean. One :class:`EstimationCache` (bound to one panel) computes this once per (day, window)
and every strategy of a backtest grid reuses it.

Failures
--------
An optimiser that raises or returns unusable weights never stops a backtest: the strategy falls
back to inverse volatility (or equal weight when volatilities are degenerate) and says so in
the decision's ``reason``.

Modules
-------
``panel``           :class:`MarketPanel`, the dense price matrices.
``estimation``      eligible assets and the window's moments (:class:`EstimationCache`).
``base``            the :class:`Strategy` contract and its :class:`Decision`.
``naive``           equal weight, inverse volatility, buy-and-hold.
``optimizer``       the base of the skfolio strategies (moments in, checks, fallback).
``risk_based``      minimum variance, risk parity, HRP.
``mean_variance``   max Sharpe and ``forecast_mv``.
``external``        weights supplied from outside.
``registry``        :func:`build_strategies`.
``target_weights``  :func:`compute_target_weights` and the table's rows.
"""

from __future__ import annotations

from portfolio_pipeline.portfolio.strategies.base import (
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_MIN_HISTORY,
    Decision,
    Strategy,
)
from portfolio_pipeline.portfolio.strategies.estimation import (
    Estimate,
    EstimationCache,
    eligible_assets,
    estimate_moments,
)
from portfolio_pipeline.portfolio.strategies.external import ExternalWeights
from portfolio_pipeline.portfolio.strategies.mean_variance import ForecastMeanVariance, MaxSharpe
from portfolio_pipeline.portfolio.strategies.naive import BuyAndHold, EqualWeight, InverseVolatility
from portfolio_pipeline.portfolio.strategies.panel import MarketPanel
from portfolio_pipeline.portfolio.strategies.registry import (
    CLASSIC_STRATEGY_NAMES,
    build_strategies,
)
from portfolio_pipeline.portfolio.strategies.risk_based import (
    HierarchicalRiskParity,
    MinVariance,
    RiskParity,
)
from portfolio_pipeline.portfolio.strategies.target_weights import (
    TARGET_WEIGHTS_SCHEMA,
    compute_target_weights,
    decision_frame,
)

__all__ = [
    "BuyAndHold",
    "CLASSIC_STRATEGY_NAMES",
    "DEFAULT_LOOKBACK_DAYS",
    "DEFAULT_MIN_HISTORY",
    "Decision",
    "EqualWeight",
    "Estimate",
    "EstimationCache",
    "ExternalWeights",
    "ForecastMeanVariance",
    "HierarchicalRiskParity",
    "InverseVolatility",
    "MarketPanel",
    "MaxSharpe",
    "MinVariance",
    "RiskParity",
    "Strategy",
    "TARGET_WEIGHTS_SCHEMA",
    "build_strategies",
    "compute_target_weights",
    "decision_frame",
    "eligible_assets",
    "estimate_moments",
]
