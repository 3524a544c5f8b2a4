"""Portfolio-level rebalancing rules (issue 22): which trades to make from the current weights
``w0`` toward the strategy's target ``w*``, decided for the whole portfolio at once.

``cost_aware`` (single-period optimisation, as cvxportfolio's ``SinglePeriodOptimization``)
    maximise over long-only weights ``w`` (risky part ``x``, cash ``1 - sum(x) >= 0``)::

        mu' x  -  gamma * (x - x*)' Sigma_H (x - x*)  -  kappa * (c' |x - x0| + a' |x - x0|^(3/2))

    - ``mu``: the calibrated expected return of each asset over the forecast horizon
      (:class:`~.gate.ForecastCalibration`, the forecasts' own out-of-sample track record),
      shrunk toward 0 by ``z(confidence)`` standard errors (``sign(m) max(|m| - z se, 0)``):
      a forecast whose expected gain is within its noise adds nothing; 0 where the forecasts
      have no track record.
    - ``Sigma_H = H * Sigma``: the strategy's own daily Ledoit-Wolf covariance at the date
      (rows ``<= as_of``, its look-back), over the ``H``-bar horizon. The tracking risk to the
      target is what a risk-based target exists to keep small, so a trade that lowers it is
      credited for that even with no expected return.
    - costs: ``c`` linear (``cost_bps`` per risky leg; cash legs free) and the market-impact
      term of cvxportfolio / Almgren-Chriss, ``sigma_i (|t_i| V / ADV_i)^(1/2)`` per unit
      traded (``V`` the portfolio value, ``ADV`` the 30-day average traded value), so a cost
      ``a_i |t_i|^(3/2)`` with ``a_i = sigma_i sqrt(V / ADV_i)``; ``kappa`` the cost multiplier.
    Untradable assets keep their weight. A position far from target moves part of the way when
    the full move costs more than the risk it removes is worth.

``band_edge`` (the classic rule under proportional costs)
    no trade while ``|w_i - w*_i| <= h_i``; outside, trade to the nearest edge of the band,
    not to the target. Half-width from costs and risk, the leading-order optimal band of
    Janecek & Shreve (2004) / Rogers (2004) for a position whose deviation from target has the
    variance rate of ``w*_i (1 - w*_i)`` times its return: ``h_i = (3 c (w*_i (1 - w*_i))^2 /
    (4 gamma))^(1/3)``. (Its volatility cancels: the tracking variance a deviation adds and the
    speed at which the deviation grows both scale with ``sigma_i^2``.)

Both work on the weights only; the turnover cap, the minimum notional and the cash check that
follow in :func:`~.decision.recommend` apply to them as to every process.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from portfolio_pipeline.recommendations.gate import ForecastCalibration, z_value
from portfolio_pipeline.recommendations.moves import AssetMove

DEFAULT_RISK_AVERSION = 2.0
DEFAULT_COST_MULTIPLIER = 1.0
DEFAULT_RULE_CONFIDENCE = 0.9
_SOLVER_NOISE = 1e-7  # trades smaller than this are solver noise, not decisions


@dataclass(frozen=True)
class RiskModel:
    """The strategy's own risk estimate at the decision date.

    symbols : the assets with an estimate, in the order of ``covariance``.
    covariance : (k, k) daily Ledoit-Wolf covariance of simple returns (rows ``<= as_of``).
    horizon : bars the decision looks ahead (the forecast horizon); risk is scaled to it.
    periods_per_year : to annualise the reported volatilities.
    """

    symbols: tuple[str, ...]
    covariance: np.ndarray
    horizon: int
    periods_per_year: float = 365.0

    def matrix(self, symbols: list[str]) -> np.ndarray:
        """Daily covariance of ``symbols``: a symbol without an estimate (too short a history)
        gets the largest estimated variance and no correlation, a cautious stand-in."""
        index = {s: i for i, s in enumerate(self.symbols)}
        variances = np.diag(self.covariance)
        fallback = float(variances.max()) if variances.size else 0.0
        out = np.diag(np.full(len(symbols), fallback))
        known = [(k, index[s]) for k, s in enumerate(symbols) if s in index]
        for a, i in known:
            for b, j in known:
                out[a, b] = self.covariance[i, j]
        return out


@dataclass(frozen=True)
class CostAware:
    """Parameters of the ``cost_aware`` rule (see the module docstring)."""

    risk_aversion: float = DEFAULT_RISK_AVERSION
    cost_multiplier: float = DEFAULT_COST_MULTIPLIER
    confidence: float = DEFAULT_RULE_CONFIDENCE
    impact: bool = False  # the 3/2-power term costs a power cone: ~8x the solve time

    @property
    def label(self) -> str:
        return (
            f"cost_aware (risk aversion {self.risk_aversion:g}, cost x{self.cost_multiplier:g}, "
            f"{self.confidence:.0%} confidence)"
        )


@dataclass(frozen=True)
class BandEdge:
    """Parameters of the ``band_edge`` rule (see the module docstring)."""

    risk_aversion: float = DEFAULT_RISK_AVERSION

    @property
    def label(self) -> str:
        return f"band_edge (risk aversion {self.risk_aversion:g})"


RebalanceRule = CostAware | BandEdge


@dataclass(frozen=True)
class RuleOutcome:
    """What a rule decided: ``weights`` (risky, in the assets' order) or None when it could
    not decide (``failure`` says why; the day is a HOLD); the portfolio's ex-ante volatility
    and tracking error to the target before and after, annualised."""

    weights: np.ndarray | None
    failure: str = ""
    volatility_before: float = math.nan
    volatility_after: float = math.nan
    tracking_error_before: float = math.nan
    tracking_error_after: float = math.nan


@dataclass(frozen=True)
class DayProblem:
    """One day's inputs to a rule, as arrays over the risky assets (cash excluded).

    current, target : weights ``x0`` and ``x*`` (the target after untradable positions kept).
    tradable : (n,) bool. covariance : (n, n) daily. expected, expected_se : calibrated
    expected simple return over the horizon and its standard error (0 and inf without a usable
    forecast). cost_rate : linear cost per unit traded. impact : ``a_i`` of the impact term
    (0 without liquidity). horizon : bars.
    """

    current: np.ndarray
    target: np.ndarray
    tradable: np.ndarray
    covariance: np.ndarray
    expected: np.ndarray
    expected_se: np.ndarray
    cost_rate: float
    impact: np.ndarray
    horizon: int
    periods_per_year: float


def day_problem(
    assets: list[AssetMove],
    risk: RiskModel,
    calibration: ForecastCalibration | None,
    cost_rate: float,
    adv: dict[str, float] | None,
    total_value: float,
) -> DayProblem:
    """The rule inputs from the assets of :func:`~.decision.recommend` (cash last); the target
    is the desired weight (the strategy's, with untradable positions kept)."""
    risky = assets[:-1]
    symbols = [a.symbol for a in risky]
    covariance = risk.matrix(symbols)
    expected = np.zeros(len(risky))
    expected_se = np.full(len(risky), math.inf)
    for i, a in enumerate(risky):
        if calibration is not None and a.mid is not None:
            expected[i], expected_se[i] = calibration.expected_advantage(a.mid, None)
    sigma = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    impact = np.zeros(len(risky))
    for i, a in enumerate(risky):
        volume = (adv or {}).get(a.symbol) or 0.0
        if volume > 0:
            impact[i] = sigma[i] * math.sqrt(total_value / volume)
    return DayProblem(
        current=np.array([a.current for a in risky]),
        target=np.array([a.current + a.delta for a in risky]),
        tradable=np.array([a.tradable for a in risky], dtype=bool),
        covariance=covariance,
        expected=expected,
        expected_se=expected_se,
        cost_rate=cost_rate,
        impact=impact,
        horizon=risk.horizon,
        periods_per_year=risk.periods_per_year,
    )


def shrunk_expected(problem: DayProblem, confidence: float) -> np.ndarray:
    """``sign(m) max(|m| - z se, 0)``: the part of each expected return beyond its noise."""
    z = z_value(confidence)
    with np.errstate(invalid="ignore"):
        excess = np.abs(problem.expected) - z * problem.expected_se
    return np.sign(problem.expected) * np.where(np.isfinite(excess), np.maximum(excess, 0.0), 0.0)


def decide(problem: DayProblem, rule: RebalanceRule) -> RuleOutcome:
    """New risky weights under ``rule``; a failure of the solver is an outcome, not a crash."""
    if isinstance(rule, BandEdge):
        weights: np.ndarray | None = band_edge_weights(problem, rule)
        failure = ""
    else:
        weights, failure = cost_aware_weights(problem, rule)
    after = weights if weights is not None else problem.current
    return RuleOutcome(
        weights=weights,
        failure=failure,
        volatility_before=_annualised(problem, problem.current, None),
        volatility_after=_annualised(problem, after, None),
        tracking_error_before=_annualised(problem, problem.current, problem.target),
        tracking_error_after=_annualised(problem, after, problem.target),
    )


def band_edge_weights(problem: DayProblem, rule: BandEdge) -> np.ndarray:
    """Each tradable weight outside its band moves to the band's nearest edge."""
    if rule.risk_aversion <= 0:
        raise ValueError(f"band_edge: risk aversion must be > 0, got {rule.risk_aversion}")
    half_width = band_half_width(problem.target, problem.cost_rate, rule.risk_aversion)
    low, high = problem.target - half_width, problem.target + half_width
    moved = np.clip(problem.current, low, high)
    return np.where(problem.tradable, moved, problem.current)


def band_half_width(target: np.ndarray, cost_rate: float, risk_aversion: float) -> np.ndarray:
    """``(3 c (w* (1 - w*))^2 / (4 gamma))^(1/3)`` per asset (see the module docstring)."""
    spread = (target * (1.0 - target)) ** 2
    return np.cbrt(3.0 * cost_rate * spread / (4.0 * risk_aversion))


def cost_aware_weights(problem: DayProblem, rule: CostAware) -> tuple[np.ndarray | None, str]:
    """Solve the single-period problem (cvxpy + Clarabel); (None, why) when it fails."""
    if rule.risk_aversion < 0 or rule.cost_multiplier < 0:
        raise ValueError("cost_aware: risk aversion and cost multiplier must be >= 0")
    n = problem.current.size
    if n == 0:
        return problem.current.copy(), ""
    try:
        solved = _solve(problem, rule)
    except Exception as error:  # a solver error is a HOLD with its reason, never a crash
        return None, f"optimiser failed ({type(error).__name__}: {error})"
    if solved is None:
        return None, "optimiser found no solution (infeasible or inaccurate)"
    trades = np.where(
        np.abs(solved - problem.current) < _SOLVER_NOISE, 0.0, solved - problem.current
    )
    return np.where(problem.tradable, problem.current + trades, problem.current), ""


_PROBLEMS: dict[tuple[int, bool], Any] = {}


def _solve(problem: DayProblem, rule: CostAware) -> np.ndarray | None:
    """Without the impact term the problem is a QP, handed to Clarabel directly (cvxpy's
    compilation cost ~6x the solve itself, per day and process); with it, the cached
    parametrised cvxpy problem (a power cone)."""
    impact = rule.impact and bool(np.any(problem.impact > 0))
    if not impact:
        return _solve_qp(problem, rule)
    return _solve_cvxpy(problem, rule, impact=True)


def _solve_qp(problem: DayProblem, rule: CostAware) -> np.ndarray | None:
    """``min 1/2 z' P z + q' z`` over ``z = (x, buy, sell)`` with ``x - buy + sell = x0``,
    ``low <= x <= high``, ``sum(x) <= 1``, ``buy, sell >= 0``: the linear-cost problem of the
    module docstring with ``|x - x0| = buy + sell``, in basis points of value."""
    import clarabel
    from scipy import sparse

    n = problem.current.size
    scale = 1e4
    sigma = problem.covariance * problem.horizon
    sigma = (sigma + sigma.T) / 2.0
    quadratic = 2.0 * scale * rule.risk_aversion * sigma
    cost = np.full(n, scale * rule.cost_multiplier * problem.cost_rate)
    mu = scale * shrunk_expected(problem, rule.confidence)
    fixed = ~problem.tradable
    low = np.where(fixed, problem.current, 0.0)
    high = np.where(fixed, problem.current, 1.0)
    # the upper triangle of diag(quadratic, 0, 0), built as its CSC arrays
    upper = sparse.triu(quadratic, format="csc")
    indptr = np.concatenate([upper.indptr, np.full(2 * n, upper.indptr[-1], upper.indptr.dtype)])
    p_matrix = sparse.csc_matrix((upper.data, upper.indices, indptr), shape=(3 * n, 3 * n))
    q = np.concatenate([-mu - quadratic @ problem.target, cost, cost])
    a_matrix = _constraint_matrix(n).copy()
    b = np.concatenate([problem.current, -low, high, [1.0], np.zeros(2 * n)])
    cones = [clarabel.ZeroConeT(n), clarabel.NonnegativeConeT(4 * n + 1)]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    solution = clarabel.DefaultSolver(p_matrix, q, a_matrix, b, cones, settings).solve()
    if str(solution.status) not in ("Solved", "AlmostSolved"):
        return None
    return np.asarray(solution.x[:n], dtype=np.float64)


@functools.cache
def _constraint_matrix(n: int) -> Any:
    """The QP's constraint matrix for ``n`` assets: the same every day (built once per size;
    each solve gets a copy)."""
    from scipy import sparse

    zero, eye = sparse.csc_matrix((n, n)), sparse.identity(n, format="csc")
    return sparse.vstack(
        [
            sparse.hstack([eye, -eye, eye]),  # x - buy + sell = x0
            sparse.hstack([-eye, zero, zero]),  # x >= low
            sparse.hstack([eye, zero, zero]),  # x <= high
            sparse.hstack([sparse.csc_matrix(np.ones((1, n))), sparse.csc_matrix((1, 2 * n))]),
            sparse.hstack([zero, -eye, zero]),  # buy >= 0
            sparse.hstack([zero, zero, -eye]),  # sell >= 0
        ],
        format="csc",
    )


def _solve_cvxpy(problem: DayProblem, rule: CostAware, *, impact: bool) -> np.ndarray | None:
    """The cached parametrised problem for this size, filled with the day's numbers."""
    import cvxpy as cp

    n = problem.current.size
    key = (n, impact)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = _build_problem(n, impact)
    prob, params, x = _PROBLEMS[key]
    # In basis points of value: the solver's tolerances then sit well below a decision's size.
    scale = 1e4
    factor = _risk_factor(problem.covariance * problem.horizon) * math.sqrt(
        scale * rule.risk_aversion
    )
    fixed = ~problem.tradable
    params["mu"].value = scale * shrunk_expected(problem, rule.confidence)
    params["factor"].value = factor
    params["factor_target"].value = factor @ problem.target
    params["current"].value = problem.current
    params["cost"].value = np.full(n, scale * rule.cost_multiplier * problem.cost_rate)
    params["low"].value = np.where(fixed, problem.current, 0.0)
    params["high"].value = np.where(fixed, problem.current, 1.0)
    if impact:
        params["impact"].value = scale * rule.cost_multiplier * problem.impact
    prob.solve(solver=cp.CLARABEL)
    if prob.status not in ("optimal", "optimal_inaccurate") or x.value is None:
        return None
    return np.asarray(x.value, dtype=np.float64)


def _build_problem(n: int, impact: bool) -> tuple[Any, dict[str, Any], Any]:
    """The parametrised problem (DPP: parameters enter only affinely, so cvxpy compiles it
    once per size and each day only fills in numbers)."""
    import cvxpy as cp

    x, trade = cp.Variable(n), cp.Variable(n)
    params = {
        "mu": cp.Parameter(n),
        "factor": cp.Parameter((n, n)),  # sqrt(gamma) F with F'F = Sigma_H
        "factor_target": cp.Parameter(n),
        "current": cp.Parameter(n),
        "cost": cp.Parameter(n, nonneg=True),
        "low": cp.Parameter(n),
        "high": cp.Parameter(n),
    }
    objective = (
        params["mu"] @ x
        - cp.sum_squares(params["factor"] @ x - params["factor_target"])
        - params["cost"] @ cp.abs(trade)
    )
    if impact:
        params["impact"] = cp.Parameter(n, nonneg=True)
        objective -= params["impact"] @ cp.power(cp.abs(trade), 1.5)
    constraints = [
        trade == x - params["current"],
        x >= params["low"],
        x <= params["high"],
        cp.sum(x) <= 1.0,
    ]
    return cp.Problem(cp.Maximize(objective), constraints), params, x


def _risk_factor(covariance: np.ndarray) -> np.ndarray:
    """``F`` with ``F' F = covariance`` (eigen square root; robust to a singular estimate)."""
    values, vectors = np.linalg.eigh((covariance + covariance.T) / 2.0)
    return (vectors * np.sqrt(np.maximum(values, 0.0))).T


def _annualised(problem: DayProblem, weights: np.ndarray, target: np.ndarray | None) -> float:
    """Annualised volatility of ``weights`` (or of their deviation from ``target``)."""
    deviation = weights if target is None else weights - target
    variance = float(deviation @ problem.covariance @ deviation)
    return math.sqrt(max(variance, 0.0) * problem.periods_per_year)
