"""Risk of a portfolio (current holdings or a target): VaR/CVaR, volatility, stress tests, liquidity.

Inputs are a weight frame ``symbol, weight`` (cash ``USDT`` included, summing to 1) and the raw
OHLCV history. Only rows dated ``<= as_of`` are used.

Return history
--------------
The portfolio's historical daily returns are ``r_p,t = sum_i w_i r_i,t`` (today's weights held
constant, i.e. rebalanced daily, the usual convention for the risk of CURRENT weights) over the
``lookback_days`` rows ending at ``as_of``, restricted to the days on which every held asset
has a return. Cash earns 0.

Metrics (``portfolio.risk_metrics``; one-day horizon, positive loss fractions)
-----------------------------------------------------------------------------
- ``var_hist_95/99``: ``-quantile(r_p, 1 - level)`` (numpy linear interpolation).
- ``var_cf_95/99``: Cornish-Fisher VaR ``-(mean + z_cf * std)``, ``std`` with ``ddof=1``,
  ``z_cf = z + (z^2-1) S/6 + (z^3-3z) K/24 - (2z^3-5z) S^2/36`` with ``z`` the normal quantile
  of ``1 - level``, ``S`` the skewness and ``K`` the EXCESS kurtosis (population moments).
- ``cvar_95/99``: ``-mean(r_p | r_p <= quantile(r_p, 1 - level))``.
- ``ann_vol``: ``std(r_p, ddof=1) * sqrt(periods_per_year)``.
- ``max_drawdown``: of the equity compounded from ``r_p`` (positive fraction).
- ``forecast_ann_vol`` (when forecasts are given): per-asset daily sigma from the forecast
  interval, ``(q90 - q10) / (2 * 1.28155) / sqrt(horizon_days)`` (the 10-90% range of a normal
  is 2 x 1.28155 sigma), combined with the historical correlation matrix, annualised;
  assets without a forecast use their historical volatility and ``forecast_coverage`` reports
  the share of risky weight that had one.
- ``n_observations``: days in the sample; ``periods_per_year``: the annualisation used.

Stress tests (``portfolio.stress_tests``; ``pnl_pct`` in PERCENT of portfolio value)
-----------------------------------------------------------------------------------
Historical windows replay each asset's move ``close[last bar <= last] / close[last bar before
first] - 1`` on today's weights (a buy-and-hold P&L, exact for a static holding); bars, so a
window that ends on a weekend works on an exchange calendar. The windows are per market
(:func:`scenarios_for`): for crypto ``covid_crash_day`` 2020-03-12, ``covid_crash_week``
2020-03-09..2020-03-15, ``terra_luna`` 2022-05-05..2022-05-12, ``ftx`` 2022-11-06..2022-11-10;
for equities ``gfc_2008`` 2008-09-12..2008-11-20, ``covid_crash`` 2020-02-19..2020-03-23,
``covid_crash_day`` 2020-03-16, ``bear_2022`` 2022-01-03..2022-10-12; or set
(``PORTFOLIO_PIPELINE_STRESS_SCENARIOS``, :func:`parse_scenarios`). An asset that did not
trade then takes the benchmark's move as a proxy (BTCUSDT for crypto; see
:mod:`portfolio_pipeline.market.context`) and is listed in ``proxied_symbols``. Windows ending
after ``as_of`` are skipped (no look-ahead).
Synthetic: ``vol_doubled_var99`` (1-day 99% historical loss with every return deviation from
the mean doubled), ``correlations_one_var99`` (1-day 99% normal loss with all correlations 1:
``sigma_p = sum w_i sigma_i``), ``market_shock_30pct`` (every risky asset -30%) and
``benchmark_shock_30pct_beta`` (every asset moves ``beta_i x -30%``, beta to the benchmark
over the window, floored at -100%).

Modules
-------
``history``    the return history of today's weights.
``measures``   VaR/CVaR, volatility, drawdown (:func:`compute_risk_metrics`).
``scenarios``  historical stress scenarios per market.
``stress``     the stress tests (:func:`run_stress_tests`).
``liquidity``  days to liquidate (:func:`compute_liquidity`).
"""

from __future__ import annotations

from portfolio_pipeline.portfolio.risk.history import PortfolioHistory, portfolio_history
from portfolio_pipeline.portfolio.risk.liquidity import compute_liquidity
from portfolio_pipeline.portfolio.risk.measures import (
    RISK_SCHEMA,
    compute_risk_metrics,
    cornish_fisher_var,
)
from portfolio_pipeline.portfolio.risk.scenarios import (
    CRYPTO_SCENARIOS,
    EQUITY_SCENARIOS,
    HISTORICAL_SCENARIOS,
    HistoricalScenario,
    ScenarioError,
    parse_scenarios,
    scenarios_for,
)
from portfolio_pipeline.portfolio.risk.stress import PROXY_SYMBOL, STRESS_SCHEMA, run_stress_tests

__all__ = [
    "CRYPTO_SCENARIOS",
    "EQUITY_SCENARIOS",
    "HISTORICAL_SCENARIOS",
    "HistoricalScenario",
    "PROXY_SYMBOL",
    "PortfolioHistory",
    "RISK_SCHEMA",
    "STRESS_SCHEMA",
    "ScenarioError",
    "compute_liquidity",
    "compute_risk_metrics",
    "cornish_fisher_var",
    "parse_scenarios",
    "portfolio_history",
    "run_stress_tests",
    "scenarios_for",
]
