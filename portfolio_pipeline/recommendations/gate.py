"""The confidence gate's statistics: how sure are we that a trade's *expected* gain beats its cost?

Why not the forecast interval
-----------------------------
The CatBoost quantiles (q10/q90) bound the *outcome* of an 8-bar return: on the shipped sample
their median width is ~30% while the median |q50| is ~1%. Requiring ``q10(B) > q90(A)`` asks
the outcome of B to beat the outcome of A with 80%-interval certainty, which no swap ever
does (measured: 0% of days). POptimizer's rule bounds something else: the *estimation error*
of the expected gain. That is what this module estimates.

Calibration
-----------
At a decision date ``d`` we look back at the walk-forward forecasts whose outcome is already
known by ``d`` (issued at ``t`` with ``t + H`` bars ``<= d``) and fit, pooled over symbols and
dates,

    r_i,t  =  a  +  b * m_i,t  +  e_i,t

where ``m`` is the forecast median turned into a simple return over ``H`` bars
(``exp(q50) - 1``) and ``r`` the simple return that followed. ``a + b m`` is then the expected
return *implied by the forecast's own track record*: ``b`` near 0 means the forecasts carry no
usable information and no trade can clear the gate, ``b`` near 1 means they are taken at face
value; a negative slope is floored at 0 (a wrong-way model is ignored, never inverted).
The coefficients' covariance ``V`` is Driscoll-Kraay: robust to the cross-sectional
correlation of one day's errors (every coin moves with the market) and to the overlap of
``H``-bar labels (Newey-West weights up to lag ``H``). Plain OLS errors would be far too
small on such data and make the gate fire on noise.

The gate
--------
Moving weight from ``A`` to ``B`` has expected advantage ``E[r_B - r_A] = (x_B - x_A)' beta``
with ``x = (1, m)`` for a risky asset and ``x = (0, 0)`` for cash (a certain 0). Its standard
error is ``sqrt((x_B - x_A)' V (x_B - x_A))``: the estimation errors of A's and B's expected
returns share the coefficients, so they are correlated, and the difference is what is
bounded (for two risky assets the intercept cancels exactly). The move passes when the lower
one-sided confidence bound ``mean - z(confidence) * se`` exceeds the round-trip cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from statistics import NormalDist

import numpy as np
import polars as pl

DEFAULT_CALIBRATION_LOOKBACK_BARS = 730
DEFAULT_MIN_CALIBRATION_DATES = 120


class GateInputError(ValueError):
    """Forecast history unusable for calibration; the message names the rule and the dates."""


@dataclass(frozen=True)
class ForecastCalibration:
    """Expected simple return over ``horizon`` bars as ``intercept + slope * median forecast``.

    Attributes
    ----------
    intercept, slope : OLS coefficients (pooled over symbols and dates).
    covariance : (2, 2) Driscoll-Kraay covariance of ``(intercept, slope)``.
    horizon : bars of the forecast and the label.
    n_rows, n_dates : observations and distinct issue dates used.
    first_issue, last_issue : issue dates of the oldest and newest observation (the newest one's
        outcome was known by the decision date).
    """

    intercept: float
    slope: float
    covariance: np.ndarray
    horizon: int
    n_rows: int
    n_dates: int
    first_issue: date
    last_issue: date

    @property
    def slope_t(self) -> float:
        """t-statistic of the slope: how much information the forecasts carried so far."""
        se = math.sqrt(max(self.covariance[1, 1], 0.0))
        return self.slope / se if se > 0 else float("nan")

    @property
    def usable_slope(self) -> float:
        """The slope floored at 0: forecasts that have been wrong-way are ignored, not traded
        against (betting on a model's errors is a strategy of its own, not a confidence check)."""
        return max(self.slope, 0.0)

    def expected_advantage(self, buy: float | None, sell: float | None) -> tuple[float, float]:
        """Mean and standard error of ``E[r_buy - r_sell]`` over the horizon.

        ``buy``/``sell`` are forecast medians as simple returns; ``None`` is cash (return 0
        for certain).
        """
        # x = (1, median) for a risky asset, (0, 0) for cash; d = x_buy - x_sell. Scalar
        # arithmetic: this runs for every candidate pair of every simulated day.
        d0 = (buy is not None) - (sell is not None)
        d1 = (buy if buy is not None else 0.0) - (sell if sell is not None else 0.0)
        cov = self.covariance
        mean = d0 * self.intercept + d1 * self.usable_slope
        variance = d0 * d0 * cov[0, 0] + 2.0 * d0 * d1 * cov[0, 1] + d1 * d1 * cov[1, 1]
        return mean, math.sqrt(max(variance, 0.0))

    def pair_advantages(self, buy: np.ndarray, sell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`expected_advantage` of every (buy i, sell j) pair at once: (B, S) arrays.

        ``buy``/``sell`` are forecast medians with NaN for cash. Same arithmetic, in the same
        order, as the scalar method, so every element equals its scalar result to the bit.
        """
        buy_risky, sell_risky = ~np.isnan(buy), ~np.isnan(sell)
        d0 = buy_risky[:, None].astype(np.float64) - sell_risky[None, :].astype(np.float64)
        d1 = np.where(buy_risky, buy, 0.0)[:, None] - np.where(sell_risky, sell, 0.0)[None, :]
        cov = self.covariance
        mean = d0 * self.intercept + d1 * self.usable_slope
        variance = d0 * d0 * cov[0, 0] + 2.0 * d0 * d1 * cov[0, 1] + d1 * d1 * cov[1, 1]
        return mean, np.sqrt(np.maximum(variance, 0.0))

    def describe(self) -> str:
        return (
            f"E[r] = {self.intercept:+.4f} + {self.slope:.3f} x median "
            f"(slope t {self.slope_t:.2f}; {self.n_dates} dates {self.first_issue}..{self.last_issue})"
        )


def z_value(confidence: float) -> float:
    """One-sided standard normal quantile; ``confidence`` in (0, 1) (0.5 gives 0)."""
    if not 0.0 < confidence < 1.0:
        raise GateInputError(f"gate confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(confidence)


def lower_bound_passes(mean: float, se: float, confidence: float, cost: float) -> bool:
    """The gate's rule: ``mean - z(confidence) * se > cost``."""
    return mean - z_value(confidence) * se > cost


def driscoll_kraay(
    x: np.ndarray, y: np.ndarray, date_index: np.ndarray, max_lag: int
) -> tuple[np.ndarray, np.ndarray]:
    """OLS coefficients and their Driscoll-Kraay covariance.

    Parameters
    ----------
    x : (n, k) regressors (include the constant).
    y : (n,) outcomes.
    date_index : (n,) int, 0-based consecutive index of each row's date (T distinct values).
    max_lag : Newey-West (Bartlett) lag for the time dimension.

    Returns
    -------
    beta : (k,) ; covariance : (k, k)
    """
    xtx = x.T @ x
    xtx_inv = np.linalg.pinv(xtx)
    beta = xtx_inv @ (x.T @ y)
    residual = y - x @ beta
    n_dates = int(date_index.max()) + 1
    contributions = x * residual[:, None]
    # Per-date sums of the scores; bincount adds in row order, as np.add.at does, ~10x faster.
    scores = np.column_stack(
        [
            np.bincount(date_index, weights=contributions[:, j], minlength=n_dates)
            for j in range(x.shape[1])
        ]
    )
    meat: np.ndarray = scores.T @ scores  # float64 (k, k); numpy's stubs cannot tell
    for lag in range(1, min(max_lag, n_dates - 1) + 1):
        weight = 1.0 - lag / (max_lag + 1.0)
        gamma = scores[lag:].T @ scores[:-lag]
        meat += weight * (gamma + gamma.T)
    return beta, xtx_inv @ meat @ xtx_inv


@dataclass(frozen=True)
class ForecastHistory:
    """Walk-forward forecasts with known outcomes, as arrays sorted by issue date.

    Build once (:meth:`from_backtest`) and calibrate at many decision dates cheaply.
    ``label_end`` is the date of the bar ``horizon`` bars after the issue date on the market
    calendar: the outcome is known from the close of that day.
    """

    horizon: int
    issue: np.ndarray  # (n,) datetime64[D], sorted
    label_end: np.ndarray  # (n,) datetime64[D], sorted too: the same for every row of a date
    median: np.ndarray  # (n,) simple return
    realized: np.ndarray  # (n,) simple return

    def __post_init__(self) -> None:
        # calibrate() finds the known rows by binary search: both columns must rise.
        for name, values in (("issue date", self.issue), ("label end", self.label_end)):
            falls = np.flatnonzero(np.diff(values) < np.timedelta64(0, "D"))
            if falls.size:
                row = int(falls[0])
                raise GateInputError(
                    f"forecast history must be sorted by issue date and label end: {name} "
                    f"{values[row]} at row {row} is followed by {values[row + 1]}"
                )

    @cached_property
    def _issue_dates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The distinct issue dates, the first row of each and each row's date number."""
        return np.unique(self.issue, return_index=True, return_inverse=True)

    @classmethod
    def from_backtest(
        cls, backtest: pl.DataFrame, calendar: np.ndarray | pl.Series, horizon: int
    ) -> ForecastHistory:
        """From ``ml.forecast_backtest`` rows (``as_of, horizon_days, q50, realized``).

        ``calendar`` holds the market's trading dates; rows without a realized outcome, or
        whose label would end beyond the calendar, are left out (their outcome is unknown).
        """
        missing = {"as_of", "horizon_days", "q50", "realized"} - set(backtest.columns)
        if missing:
            raise GateInputError(f"forecast history lacks columns {sorted(missing)}")
        dates = np.unique(np.asarray(pl.Series(calendar).cast(pl.Date).to_numpy(), "datetime64[D]"))
        rows = backtest.filter(
            (pl.col("horizon_days") == horizon)
            & pl.col("realized").is_not_null()
            & pl.col("realized").is_finite()
            & pl.col("q50").is_finite()
        ).sort("as_of")
        issue = rows.get_column("as_of").to_numpy().astype("datetime64[D]")
        position = np.searchsorted(dates, issue) + horizon
        keep = position < len(dates)
        label_end = dates[np.minimum(position, len(dates) - 1)]
        return cls(
            horizon=horizon,
            issue=issue[keep],
            label_end=label_end[keep],
            median=np.expm1(rows.get_column("q50").to_numpy()[keep]),
            realized=np.expm1(rows.get_column("realized").to_numpy()[keep]),
        )

    def calibrate(
        self,
        as_of: date,
        *,
        lookback_bars: int = DEFAULT_CALIBRATION_LOOKBACK_BARS,
        min_dates: int = DEFAULT_MIN_CALIBRATION_DATES,
    ) -> ForecastCalibration | None:
        """Fit on the rows whose outcome was known at the close of ``as_of``.

        Uses the last ``lookback_bars`` issue dates among those; returns None when fewer than
        ``min_dates`` distinct issue dates qualify (too little track record to bound anything).
        """
        # Rows are sorted by issue date and every row of a date has the same label end, so
        # the known rows are a prefix made of whole dates (a replay calibrates every day:
        # no scan or sort of the whole history per call).
        known = int(np.searchsorted(self.label_end, np.datetime64(as_of, "D"), side="right"))
        if known == 0:
            return None
        distinct, first_row, date_number = self._issue_dates
        n_known_dates = int(date_number[known - 1]) + 1
        if n_known_dates < min_dates:
            return None
        first_date = max(0, n_known_dates - lookback_bars)
        first, start = distinct[first_date], int(first_row[first_date])
        issue = self.issue[start:known]
        median = self.median[start:known]
        realized = self.realized[start:known]
        date_index = date_number[start:known] - first_date
        x = np.column_stack([np.ones_like(median), median])
        beta, covariance = driscoll_kraay(x, realized, date_index, max_lag=self.horizon)
        return ForecastCalibration(
            intercept=float(beta[0]),
            slope=float(beta[1]),
            covariance=covariance,
            horizon=self.horizon,
            n_rows=int(len(realized)),
            n_dates=int(date_index.max()) + 1,
            first_issue=first.astype(date),
            last_issue=issue[-1].astype(date),
        )
