"""Mean-variance strategies: the tangency portfolio and mean-variance on quantile forecasts."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from portfolio_pipeline.portfolio.metrics import Z_10_90
from portfolio_pipeline.portfolio.strategies.base import DEFAULT_LOOKBACK_DAYS, DEFAULT_MIN_HISTORY
from portfolio_pipeline.portfolio.strategies.estimation import Estimate
from portfolio_pipeline.portfolio.strategies.optimizer import _SkfolioStrategy
from portfolio_pipeline.portfolio.strategies.panel import MarketPanel


class MaxSharpe(_SkfolioStrategy):
    """Tangency portfolio (rf = 0). Infeasible when every expected return is <= 0."""

    name = "max_sharpe"

    def _make_optimizer(self, prior: Any) -> Any:
        from skfolio.optimization import MeanRisk, ObjectiveFunction

        return MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_RATIO, prior_estimator=prior)


class ForecastMeanVariance(_SkfolioStrategy):
    """Mean-variance on quantile forecasts, with their uncertainty as risk; cash allowed.

    ``fit(forecasts)`` takes the frame ``as_of, symbol, horizon_days, q10, q50, q90`` (the
    walk-forward backtest's or the live forecasts) and keeps ``horizon_days`` of it.
    Expected returns come from the latest forecasts with ``as_of <= d`` (and at most
    ``max_forecast_age_days`` old) for ``horizon_days``; ``q10, q50, q90`` are log returns
    over the horizon. Per asset and per day::

        mu_i    = (q50_i - uncertainty_aversion * (q90_i - q10_i) / 2) / horizon_days
        sigma_i = (q90_i - q10_i) / (2 * 1.2816 * sqrt(horizon_days))
        Sigma   = diag(sigma) . C . diag(sigma)

    where C is the correlation of daily returns over the history window. The interval width
    is the forecast's own uncertainty: a wide band makes an asset riskier, hence smaller in the
    portfolio. ``uncertainty_aversion > 0`` additionally shifts the mean to the worst case of a
    box uncertainty set around the median (Tütüncü & Koenig 2004); it is 0 by default because
    on daily crypto data the band half-width (~1.3 sigma) dwarfs any median forecast, so every
    asset would look like a loss and the strategy would sit in cash forever (measured on the
    sample). The optimiser is skfolio ``MeanRisk`` with ``MAXIMIZE_UTILITY``
    (``mu'w - risk_aversion * w'Sigma w``), ``budget`` free in [0, 1]: the remainder is cash,
    so bearish forecasts mean cash. Assets without a forecast get no weight. With no usable
    forecast at ``d`` it falls back to inverse volatility with the reason recorded.
    """

    name = "forecast_mv"
    allows_cash = True

    def __init__(
        self,
        horizon_days: int | None = None,
        risk_aversion: float = 2.0,
        uncertainty_aversion: float = 0.0,
        max_forecast_age_days: int = 7,
        lookback_days: int = DEFAULT_LOOKBACK_DAYS,
        min_history: int = DEFAULT_MIN_HISTORY,
        name: str | None = None,
    ) -> None:
        super().__init__(lookback_days, min_history)
        self.horizon_days = horizon_days
        self.risk_aversion = risk_aversion
        self.uncertainty_aversion = uncertainty_aversion
        self.max_forecast_age_days = max_forecast_age_days
        if name:
            self.name = name

    def _check_parameters(self) -> None:
        super()._check_parameters()
        if self.risk_aversion <= 0 or self.uncertainty_aversion < 0:
            raise ValueError(
                f"{self.name}: risk_aversion must be > 0 and uncertainty_aversion >= 0 "
                f"(got {self.risk_aversion}, {self.uncertainty_aversion})"
            )

    def _fit_data(self, forecasts: pl.DataFrame | None) -> None:
        """Keep the forecasts of one horizon (``horizon_days``; None = the shortest given)."""
        if forecasts is None:
            raise ValueError(
                f"{self.name}: fit(forecasts) needs a frame as_of, symbol, horizon_days, q10, "
                "q50, q90"
            )
        need = {"as_of", "symbol", "horizon_days", "q10", "q50", "q90"}
        if not need <= set(forecasts.columns):
            raise ValueError(f"forecasts lack columns {sorted(need - set(forecasts.columns))}")
        horizons = sorted(forecasts.get_column("horizon_days").unique().to_list())
        horizon = self.horizon_days
        if horizon is None:
            if not horizons:
                raise ValueError("forecasts frame is empty: no horizon to choose")
            horizon = int(horizons[0])
        elif horizon not in horizons:
            raise ValueError(f"no forecasts for horizon_days={horizon}; have {horizons}")
        self.horizon_days_ = int(horizon)
        self.forecasts_ = (
            forecasts.filter(pl.col("horizon_days") == self.horizon_days_)
            .select("as_of", "symbol", "q10", "q50", "q90")
            .sort("as_of")
        )
        self.issue_dates_ = self.forecasts_.get_column("as_of").to_numpy().astype("datetime64[D]")

    def _latest(self, day: date, symbols: list[str]) -> pl.DataFrame:
        """Each symbol's newest forecast issued in ``[day - max age, day]``."""
        oldest = day - timedelta(days=self.max_forecast_age_days)
        # forecasts_ is sorted by as_of: the usable issue dates are one contiguous slice
        lo = int(np.searchsorted(self.issue_dates_, np.datetime64(oldest, "D"), side="left"))
        hi = int(np.searchsorted(self.issue_dates_, np.datetime64(day, "D"), side="right"))
        usable = self.forecasts_.slice(lo, hi - lo).filter(pl.col("symbol").is_in(symbols))
        return usable.group_by("symbol").agg(pl.all().sort_by("as_of").last())

    def expected_returns(self, day: date, symbols: list[str]) -> dict[str, float]:
        """Daily expected log return per symbol from forecasts known at ``day``."""
        return self._expected_returns(self._latest(day, symbols))

    def forecast_volatility(self, day: date, symbols: list[str]) -> dict[str, float]:
        """Daily volatility per symbol implied by the q10..q90 band known at ``day``."""
        return self._forecast_volatility(self._latest(day, symbols))

    def _expected_returns(self, latest: pl.DataFrame) -> dict[str, float]:
        if latest.is_empty():
            return {}
        half_width = (pl.col("q90") - pl.col("q10")) / 2.0
        mu = (pl.col("q50") - self.uncertainty_aversion * half_width) / self.horizon_days_
        rows = latest.select("symbol", mu.alias("mu")).drop_nulls().iter_rows()
        return {s: float(m) for s, m in rows if np.isfinite(m)}

    def _forecast_volatility(self, latest: pl.DataFrame) -> dict[str, float]:
        if latest.is_empty():
            return {}
        sigma = (pl.col("q90") - pl.col("q10")) / (2 * Z_10_90) / np.sqrt(self.horizon_days_)
        rows = latest.select("symbol", sigma.alias("sigma")).drop_nulls().iter_rows()
        return {s: float(v) for s, v in rows if np.isfinite(v) and v > 0}

    def _make_optimizer(self, prior: Any) -> Any:
        from skfolio.optimization import MeanRisk, ObjectiveFunction

        return MeanRisk(
            objective_function=ObjectiveFunction.MAXIMIZE_UTILITY,
            risk_aversion=self.risk_aversion,
            budget=None,
            min_budget=0.0,
            max_budget=1.0,
            prior_estimator=prior,
        )

    def _problem(self, panel: MarketPanel, row: int, est: Estimate) -> tuple[Estimate | None, str]:
        """Forecast means and forecast-band volatilities, with the window's correlations."""
        day = panel.date_at(row)
        symbols = [panel.symbols[i] for i in est.assets]
        latest = self._latest(day, symbols)
        mu_by_symbol = self._expected_returns(latest)
        if not mu_by_symbol:
            return None, (
                f"no {self.horizon_days_}-day forecast between "
                f"{day - timedelta(days=self.max_forecast_age_days)} and {day}"
            )
        sigma_by_symbol = self._forecast_volatility(latest)
        keep = np.array([s in mu_by_symbol and s in sigma_by_symbol for s in symbols])
        kept = [s for s, k in zip(symbols, keep, strict=True) if k]
        historical = est.covariance[np.ix_(keep, keep)]
        scale = np.sqrt(np.clip(np.diag(historical), 1e-18, None))
        correlation = historical / np.outer(scale, scale)
        sigma = np.array([sigma_by_symbol[s] for s in kept])
        problem = Estimate(
            row=est.row,
            assets=est.assets[keep],
            window_returns=est.window_returns[:, keep],
            mu=np.array([mu_by_symbol[s] for s in kept]),
            covariance=correlation * np.outer(sigma, sigma),
            volatility=sigma,
        )
        return problem, ""

    def _describe(self, problem: Estimate, weights: np.ndarray) -> str:
        invested = float(np.clip(weights, 0, None).sum())
        return (
            f"robust mean-variance on {problem.assets.size} forecasts "
            f"(h={self.horizon_days_}d), {invested:.0%} invested"
        )
