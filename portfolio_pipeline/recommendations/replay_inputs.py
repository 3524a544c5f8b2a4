"""What the replayed recommendation of day ``d`` may use, all known at the close of ``d``:
prices, the strategy's target, the forecasts issued by ``d``, the gate's calibration from
outcomes known by ``d`` and the 30-day liquidity."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import polars as pl

from portfolio_pipeline.portfolio.backtest import period_start_row
from portfolio_pipeline.portfolio.risk import compute_liquidity
from portfolio_pipeline.portfolio.strategies import (
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_MIN_HISTORY,
    EstimationCache,
    ExternalWeights,
    MarketPanel,
    Strategy,
)
from portfolio_pipeline.recommendations.decision import (
    ForecastView,
    MarketView,
    latest_forecasts,
    market_view,
)
from portfolio_pipeline.recommendations.gate import ForecastHistory
from portfolio_pipeline.recommendations.processes import SimulationSettings
from portfolio_pipeline.recommendations.rebalance_rules import RiskModel
from portfolio_pipeline.recommendations.trade_gate import GateSettings


@dataclass(frozen=True)
class DayInputs:
    """Everything the recommendation of day ``d`` may use (known at the close of ``d``)."""

    as_of: date
    prices: pl.DataFrame  # symbol, price, trading
    target: pl.DataFrame  # symbol, weight
    forecasts: pl.DataFrame | None
    gate: GateSettings
    liquidity: pl.DataFrame
    risk: RiskModel | None = None  # the strategy's own covariance at d (rows <= d)
    risk_failure: str = ""  # why there is no risk model (the rule processes then HOLD)
    closes: np.ndarray | None = None  # the panel's last close per symbol at d (the replay's)
    # what every process of the day reads from the frames above, read once (view, found, adv)
    _read: dict = field(default_factory=dict, compare=False, repr=False)

    def view(self, strategy: str) -> MarketView:
        """The prices, liquidity and ``strategy``'s target as lookups."""
        key = ("view", strategy)
        if key not in self._read:
            self._read[key] = market_view(
                self.prices, self.target, self.liquidity, strategy, self.as_of
            )
        return self._read[key]

    def found(self, uses_forecasts: bool, horizon: int | None, max_age_days: int) -> ForecastView:
        """The latest usable forecast per symbol (none when the process ignores forecasts)."""
        key = ("found", uses_forecasts, horizon, max_age_days)
        if key not in self._read:
            forecasts = self.forecasts if uses_forecasts else None
            self._read[key] = latest_forecasts(forecasts, self.as_of, horizon, max_age_days)
        return self._read[key]

    def adv(self) -> dict[str, float]:
        """The 30-day traded value per symbol with one."""
        if "adv" not in self._read:
            liquidity = self.liquidity
            self._read["adv"] = {
                s: float(v)
                for s, v in zip(
                    liquidity["symbol"].to_list(), liquidity["adv_quote"].to_list(), strict=True
                )
                if v is not None
            }
        return dict(self._read["adv"])

    @property
    def target_map(self) -> dict[str, float]:
        return dict(
            zip(self.target["symbol"].to_list(), self.target["weight"].to_list(), strict=True)
        )


def forecast_history(
    backtest: pl.DataFrame | None, panel: MarketPanel, horizon: int
) -> ForecastHistory | None:
    if backtest is None or backtest.is_empty():
        return None
    calendar = pl.Series(panel.dates.astype("datetime64[D]")).cast(pl.Date)
    return ForecastHistory.from_backtest(backtest, calendar, horizon)


def forecasts_by_issue_date(
    backtest: pl.DataFrame | None, horizon: int
) -> dict[date, pl.DataFrame]:
    if backtest is None or backtest.is_empty():
        return {}
    rows = backtest.filter(pl.col("horizon_days") == horizon).select(
        "as_of", "symbol", "horizon_days", "q10", "q50", "q90"
    )
    return {key[0]: frame for key, frame in rows.partition_by("as_of", as_dict=True).items()}


def day_inputs(
    panel: MarketPanel,
    row: int,
    strategy: Strategy,
    cache: EstimationCache,
    issued: dict[date, pl.DataFrame],
    history: ForecastHistory | None,
    settings: SimulationSettings,
    ohlcv: pl.DataFrame,
) -> DayInputs:
    day = panel.date_at(row)
    close = panel.close[row]
    priced = np.isfinite(close)
    # latest_prices semantics: the last close per symbol, trading only when priced today
    closes = last_close(panel, row)
    known = [i for i, s in enumerate(panel.symbols) if math.isfinite(closes[i])]
    prices = pl.DataFrame(
        {
            "symbol": [panel.symbols[i] for i in known],
            "price": [float(closes[i]) for i in known],
            "trading": [bool(priced[i]) for i in known],
        }
    )
    decision = strategy.decide(
        panel, period_start_row(panel.dates, row, settings.target_refresh), cache
    )
    target = pl.DataFrame(
        {
            "symbol": [*panel.symbols, settings.cash_symbol],
            "weight": decision.weights.astype(np.float64),
        }
    )
    recent = [
        issued[d]
        for d in _recent_days(day, settings.max_forecast_age_days)
        if d in issued  # forecasts issued on days <= d only
    ]
    calibration = history.calibrate(day) if history is not None else None
    liquidity = compute_liquidity(
        ohlcv, pl.DataFrame(schema={"symbol": pl.Utf8, "value": pl.Float64}), day
    )
    risk, risk_failure = risk_inputs(panel, row, strategy, cache, settings)
    return DayInputs(
        as_of=day,
        prices=prices,
        target=target,
        forecasts=pl.concat(recent) if recent else None,
        gate=GateSettings(calibration, settings.gate_confidence, settings.max_forecast_age_days),
        liquidity=liquidity,
        risk=risk,
        risk_failure=risk_failure,
        closes=closes,
    )


def strategy_risk(
    panel: MarketPanel,
    row: int,
    strategy: Strategy,
    cache: EstimationCache,
    settings: SimulationSettings,
) -> RiskModel:
    """The strategy's own Ledoit-Wolf covariance at ``row`` (its look-back, rows ``<= row``),
    shared through the panel's estimation cache with the strategy's decisions. A strategy that
    estimates nothing itself (external weights: the DRL policies) is given the default window
    of the classic strategies, not its placeholder two-row one."""
    lookback, min_history = strategy.lookback_days, strategy.min_history
    if isinstance(strategy, ExternalWeights):
        lookback, min_history = DEFAULT_LOOKBACK_DAYS, DEFAULT_MIN_HISTORY
    estimate = cache.estimate(panel, row, lookback, min_history)
    return RiskModel(
        symbols=tuple(panel.symbols[int(i)] for i in estimate.assets),
        covariance=estimate.covariance,
        horizon=settings.horizon,
        periods_per_year=settings.periods_per_year,
    )


def risk_inputs(
    panel: MarketPanel,
    row: int,
    strategy: Strategy,
    cache: EstimationCache,
    settings: SimulationSettings,
) -> tuple[RiskModel | None, str]:
    """``risk`` (or None) and ``risk_failure`` for :class:`DayInputs`: an estimate that fails
    (too little history, a zero-variance asset) makes the rule processes HOLD with the reason,
    never a crash."""
    from skfolio.exceptions import SkfolioError  # skfolio estimated the covariance

    try:
        return strategy_risk(panel, row, strategy, cache, settings), ""
    except (ValueError, ArithmeticError, np.linalg.LinAlgError, SkfolioError) as exc:
        day = panel.dates[row]
        return None, f"no risk model for {strategy.name} on {day}: {exc}"


def _recent_days(day: date, max_age_days: int) -> list[date]:
    return [day - timedelta(days=k) for k in range(max_age_days + 1)]


def last_close(panel: MarketPanel, row: int) -> np.ndarray:
    window = panel.close[: row + 1]
    seen = np.isfinite(window)
    last_row = np.where(seen.any(axis=0), row - np.argmax(seen[::-1], axis=0), -1)
    out = np.full(panel.n_assets, np.nan)
    ok = last_row >= 0
    out[ok] = window[last_row[ok], np.nonzero(ok)[0]]
    return out
