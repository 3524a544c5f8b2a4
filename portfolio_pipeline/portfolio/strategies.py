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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from typing import Any, Self

import numpy as np
import polars as pl

from portfolio_pipeline.portfolio.metrics import Z_10_90
from portfolio_pipeline.settings import CASH_SYMBOL

DEFAULT_LOOKBACK_DAYS = 365
DEFAULT_MIN_HISTORY = 180
TARGET_WEIGHTS_SCHEMA: dict[str, pl.DataType] = {
    "as_of": pl.Date,
    "strategy": pl.Utf8,
    "symbol": pl.Utf8,
    "weight": pl.Float64,
    "reason": pl.Utf8,
}
CLASSIC_STRATEGY_NAMES: tuple[str, ...] = (
    "equal_weight",
    "inverse_volatility",
    "buy_and_hold",
    "max_sharpe",
    "min_variance",
    "risk_parity",
    "hrp",
)


# --------------------------------------------------------------------------------------------
# Market panel
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MarketPanel:
    """Dense close-price matrix of a ragged universe.

    Attributes
    ----------
    dates : (T,) ``datetime64[D]``, sorted, every date present in the OHLCV frame.
    symbols : tuple of N symbols (column order; cash is NOT a column).
    close : (T, N) closes, NaN where the symbol does not trade (not listed yet / delisted).
    returns : (T, N) simple returns ``close[t] / close[t-1] - 1``, NaN where either is missing.
    quote_volume : (T, N) USDT volume; ``volume * close`` where the source has no quote volume.
    cash_symbol : name of the cash asset in every weight frame built from this panel (the
        ``PORTFOLIO_PIPELINE_CASH`` setting: ``USDT`` for crypto, ``USD``, ``EUR`` …).
    """

    dates: np.ndarray
    symbols: tuple[str, ...]
    close: np.ndarray
    returns: np.ndarray
    quote_volume: np.ndarray
    cash_symbol: str = CASH_SYMBOL

    @classmethod
    def from_ohlcv(
        cls,
        ohlcv: pl.DataFrame,
        symbols: tuple[str, ...] | None = None,
        cash_symbol: str = CASH_SYMBOL,
    ) -> MarketPanel:
        """Pivot a raw OHLCV frame (symbol, date, close, volume, quote_volume) to a panel."""
        missing = {"symbol", "date", "close"} - set(ohlcv.columns)
        if missing:
            raise ValueError(f"OHLCV frame lacks columns {sorted(missing)}")
        frame = ohlcv
        if symbols is not None:
            frame = frame.filter(pl.col("symbol").is_in(list(symbols)))
        if frame.is_empty():
            raise ValueError("OHLCV frame is empty (after the symbol filter)")
        dup = frame.group_by("symbol", "date").len().filter(pl.col("len") > 1)
        if dup.height:
            row = dup.row(0, named=True)
            raise ValueError(
                f"OHLCV has duplicate (symbol, date) rows, e.g. {row['symbol']} on {row['date']}"
            )
        syms = tuple(sorted(frame.get_column("symbol").unique().to_list()))
        dates = frame.get_column("date").unique().sort()
        if "quote_volume" in frame.columns and "volume" in frame.columns:
            qv_expr = pl.coalesce(pl.col("quote_volume"), pl.col("volume") * pl.col("close"))
        elif "volume" in frame.columns:
            qv_expr = pl.col("volume") * pl.col("close")
        else:
            qv_expr = pl.lit(None, dtype=pl.Float64)
        long = frame.select("symbol", "date", "close", qv_expr.alias("qv"))
        base = pl.DataFrame({"date": dates})
        close = base.join(
            long.pivot(on="symbol", index="date", values="close"), on="date", how="left"
        ).sort("date")
        qv = base.join(long.pivot(on="symbol", index="date", values="qv"), on="date", how="left")
        qv = qv.sort("date")
        close_m = close.select(list(syms)).to_numpy().astype(np.float64)
        qv_m = qv.select(list(syms)).to_numpy().astype(np.float64)
        close_m[~(close_m > 0)] = np.nan
        rets = np.full_like(close_m, np.nan)
        rets[1:] = close_m[1:] / close_m[:-1] - 1.0
        return cls(
            dates=dates.to_numpy().astype("datetime64[D]"),
            symbols=syms,
            close=close_m,
            returns=rets,
            quote_volume=qv_m,
            cash_symbol=cash_symbol,
        )

    @property
    def n_assets(self) -> int:
        return len(self.symbols)

    def row_of(self, day: date) -> int:
        """Row of the last panel date ``<= day`` (raises when ``day`` precedes the panel)."""
        pos = int(np.searchsorted(self.dates, np.datetime64(day, "D"), side="right")) - 1
        if pos < 0:
            raise ValueError(f"{day} is before the first date of the panel ({self.dates[0]})")
        return pos

    def date_at(self, row: int) -> date:
        return self.dates[row].astype(object)


# --------------------------------------------------------------------------------------------
# Estimation (shared, cached)
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------
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


class MaxSharpe(_SkfolioStrategy):
    """Tangency portfolio (rf = 0). Infeasible when every expected return is <= 0."""

    name = "max_sharpe"

    def _make_optimizer(self, prior: Any) -> Any:
        from skfolio.optimization import MeanRisk, ObjectiveFunction

        return MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_RATIO, prior_estimator=prior)


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


class ExternalWeights(Strategy):
    """Replays target weights computed elsewhere (the DRL policy): ``fit(weights)`` takes the
    frame ``as_of, symbol, weight``.

    At ``d`` the latest ``as_of <= d`` is used (at most ``max_age_days`` old when given).
    ``USDT`` is cash; weights of assets not trading at ``d`` are moved to cash (and named in the
    reason). Before the first supplied date the portfolio stays in cash.
    """

    name = "external"

    def __init__(
        self,
        name: str = "external",
        max_age_days: int | None = None,
        tolerance: float = 1e-6,
        rebalance_frequency: str | None = None,
    ) -> None:
        super().__init__(lookback_days=2, min_history=2)
        self.name = name
        self.max_age_days = max_age_days
        self.tolerance = tolerance
        self.rebalance_frequency = rebalance_frequency

    def _fit_data(self, weights: pl.DataFrame | None) -> None:
        """Check every ``as_of`` sums to 1 with no negative weight; keep them sorted."""
        need = {"as_of", "symbol", "weight"}
        if weights is None:
            raise ValueError(f"external weights '{self.name}': fit(weights) needs a frame {need}")
        if not need <= set(weights.columns):
            raise ValueError(f"external weights lack columns {sorted(need - set(weights.columns))}")
        sums = weights.group_by("as_of").agg(
            pl.col("weight").sum().alias("total"), pl.col("weight").min().alias("lowest")
        )
        bad = sums.filter(((pl.col("total") - 1.0).abs() > self.tolerance) | (pl.col("lowest") < 0))
        if bad.height:
            row = bad.sort("as_of").row(0, named=True)
            raise ValueError(
                f"external weights '{self.name}' on {row['as_of']} must be >= 0 and sum to 1 "
                f"(sum {row['total']:.6f}, min {row['lowest']:.6f})"
            )
        self.weights_ = weights.select("as_of", "symbol", "weight").sort("as_of")
        self.dates_ = np.array(
            self.weights_.get_column("as_of").unique().sort().to_list(), dtype="datetime64[D]"
        )

    def _decide_at(self, panel: MarketPanel, row: int, estimates: EstimationCache) -> Decision:
        """The latest supplied weights (no moments needed)."""
        return self._decide(panel, row, None)

    def _decide(self, panel: MarketPanel, row: int, est: Estimate | None) -> Decision:
        day = panel.date_at(row)
        pos = int(np.searchsorted(self.dates_, np.datetime64(day, "D"), side="right")) - 1
        if pos < 0:
            return _cash_only(panel.n_assets, f"no external weights on or before {day}: cash")
        as_of = self.dates_[pos].astype(object)
        if self.max_age_days is not None and (day - as_of).days > self.max_age_days:
            return _cash_only(
                panel.n_assets,
                f"latest external weights ({as_of}) older than {self.max_age_days} days: cash",
            )
        rows = self.weights_.filter(pl.col("as_of") == as_of)
        full = np.zeros(panel.n_assets + 1)
        index = {s: i for i, s in enumerate(panel.symbols)}
        moved: list[str] = []
        for symbol, weight in rows.select("symbol", "weight").iter_rows():
            if symbol == panel.cash_symbol:
                full[-1] += weight
            elif symbol in index and np.isfinite(panel.close[row, index[symbol]]):
                full[index[symbol]] += weight
            else:
                full[-1] += weight
                if weight > 0:
                    moved.append(symbol)
        reason = f"external weights as of {as_of}"
        if moved:
            reason += f"; not trading on {day}, moved to cash: {', '.join(sorted(moved))}"
        return Decision(full / full.sum(), reason)


# --------------------------------------------------------------------------------------------
# Builders and table output
# --------------------------------------------------------------------------------------------
def build_strategies(
    names: tuple[str, ...] | list[str] = CLASSIC_STRATEGY_NAMES,
    *,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    min_history: int = DEFAULT_MIN_HISTORY,
    forecasts: pl.DataFrame | None = None,
    external_weights: dict[str, pl.DataFrame] | None = None,
    forecast_options: dict[str, Any] | None = None,
    external_rebalance: str | None = None,
) -> list[Strategy]:
    """Fitted strategies by name; ``forecast_mv`` is added (fitted on ``forecasts``) when
    forecasts are given, and one :class:`ExternalWeights` per entry of ``external_weights``
    (name -> frame, fitted on it), trading at ``external_rebalance`` (None: the backtest's
    frequency)."""
    classes: dict[str, type[Strategy]] = {
        cls.name: cls
        for cls in (
            EqualWeight,
            InverseVolatility,
            BuyAndHold,
            MaxSharpe,
            MinVariance,
            RiskParity,
            HierarchicalRiskParity,
        )
    }
    out: list[Strategy] = []
    for name in names:
        if name == ForecastMeanVariance.name:
            continue
        if name not in classes:
            raise ValueError(f"unknown strategy {name!r}; known: {sorted(classes)}")
        out.append(classes[name](lookback_days=lookback_days, min_history=min_history).fit())
    if forecasts is not None and not forecasts.is_empty():
        forecast_mv = ForecastMeanVariance(
            lookback_days=lookback_days, min_history=min_history, **(forecast_options or {})
        )
        out.append(forecast_mv.fit(forecasts))
    for name, frame in (external_weights or {}).items():
        external = ExternalWeights(name=name, rebalance_frequency=external_rebalance)
        out.append(external.fit(frame))
    return out


def decision_frame(
    panel: MarketPanel, decision: Decision, as_of: date, strategy: str
) -> pl.DataFrame:
    """One decision as rows ``as_of, strategy, symbol, weight, reason`` (cash as
    ``panel.cash_symbol``)."""
    symbols = [*panel.symbols, panel.cash_symbol]
    return pl.DataFrame(
        {
            "as_of": [as_of] * len(symbols),
            "strategy": [strategy] * len(symbols),
            "symbol": symbols,
            "weight": decision.weights.astype(np.float64),
            "reason": [decision.reason] * len(symbols),
        },
        schema=TARGET_WEIGHTS_SCHEMA,
    )


def compute_target_weights(
    ohlcv: pl.DataFrame,
    strategies: list[Strategy],
    as_of: date,
    *,
    drop_zero: bool = False,
    cash_symbol: str = CASH_SYMBOL,
) -> pl.DataFrame:
    """Target weights of each strategy at the close of ``as_of`` -> ``portfolio.target_weights``.

    Only OHLCV rows dated ``<= as_of`` are used (later rows are dropped before anything is
    computed). Returns columns ``as_of, strategy, symbol, weight, reason``; the weights of
    each strategy (cash ``USDT`` included) sum to 1.
    """
    known = ohlcv.filter(pl.col("date") <= as_of)
    if known.is_empty():
        raise ValueError(f"no OHLCV rows on or before {as_of}")
    panel = MarketPanel.from_ohlcv(known, cash_symbol=cash_symbol)
    row = panel.row_of(as_of)
    if panel.date_at(row) != as_of:
        raise ValueError(f"no OHLCV rows on {as_of} (latest is {panel.date_at(row)})")
    cache = EstimationCache()
    frames = [decision_frame(panel, s.decide(panel, row, cache), as_of, s.name) for s in strategies]
    out = pl.concat(frames)
    if drop_zero:
        out = out.filter(pl.col("weight") > 0)
    return out
