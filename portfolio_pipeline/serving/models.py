"""The API's response models (pydantic): what each endpoint returns, field by field.

Pure (no dagster). Fractions are fractions (0.05 = 5%) unless a name ends in ``_pct``;
money is in the portfolio's cash currency; dates are UTC days, timestamps UTC.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field


class SourceFreshness(BaseModel):
    dataset: str = Field(description="warehouse table")
    source: str = Field(description="configured source kind (sample, files, binance, ...)")
    live: bool = Field(description="only live sources can be stale; snapshots are exempt")
    newest: datetime | None = Field(description="when the newest stored data became complete")
    age_seconds: float | None
    stale: bool
    description: str


class RunStatus(BaseModel):
    job: str
    status: str = Field(description="Dagster run status (SUCCESS, FAILURE, ...) or UNKNOWN")
    run_id: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    reason: str | None = Field(
        default=None, description="why the status is unknown, or the failure"
    )


class RecommendationRun(BaseModel):
    run_id: str
    as_of: date
    generated_at: datetime
    age_seconds: float
    strategy: str


class Health(BaseModel):
    status: Literal["ok", "stale", "unavailable"]
    reason: str | None = None
    checked_at: datetime
    freshness_limit_seconds: float
    latest_data_day: date | None = None
    data_age_seconds: float | None = Field(default=None, description="since the latest day closed")
    sources: list[SourceFreshness] = []
    latest_recommendation: RecommendationRun | None = None
    last_nightly_run: RunStatus | None = None
    snapshot_published_at: datetime | None = None


class Recommendation(BaseModel):
    symbol: str
    action: str = Field(description="BUY, SELL or HOLD")
    current_weight: float | None
    target_weight: float | None = Field(description="weight after the trades")
    strategy_weight: float | None = Field(description="the strategy's target weight")
    quantity: float | None
    notional: float | None
    price: float | None
    expected_return: float | None = Field(description="forecast median over the horizon")
    return_low: float | None
    return_high: float | None
    calibrated_return: float | None = None
    reason: str | None


class RecommendationSet(BaseModel):
    run_id: str
    as_of: date
    generated_at: datetime
    strategy: str
    process: str = Field(description="the replayed process these rows follow (GET /processes)")
    gate_confidence: float | None = None
    horizon_days: int | None = None
    cost_bps: float | None = None
    portfolio_value: float | None = None
    trades: int = Field(description="rows whose action is not HOLD")
    turnover: float = Field(description="traded notional / portfolio value")
    rows: list[Recommendation]


class TrackRecordRun(BaseModel):
    run_id: str
    as_of: date
    horizon_end: date | None
    trades: int
    hit_rate: float | None
    value_added: float | None
    value_added_pct: float | None
    cumulative_value_added: float | None


class TrackRecord(BaseModel):
    runs: int
    trades: int
    hit_rate: float | None
    value_added: float
    value_added_pct: float
    summary: str
    per_run: list[TrackRecordRun]


class PerformanceMetrics(BaseModel):
    start: date | None
    end: date | None
    total_return: float | None
    cagr: float | None
    ann_vol: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float | None
    calmar: float | None
    turnover: float | None
    var_95: float | None
    cvar_95: float | None


class StrategyBacktest(PerformanceMetrics):
    strategy: str
    window: str = Field(description="validation (selection) or test (out of sample)")
    rebalance: str | None = None
    cost_bps: float | None = None
    selected_for_recommendations: bool | None = None


class ProcessMetrics(PerformanceMetrics):
    process: str
    window: str
    strategy: str | None
    trading_days: int | None
    refused_turnover: float | None
    cost_paid: float | None
    gate_confidence: float | None


class PortfolioRisk(BaseModel):
    portfolio: str = Field(description="current, recommended or target:<strategy>")
    metrics: dict[str, float | None]


class StressResult(BaseModel):
    portfolio: str
    scenario: str
    pnl_pct: float | None
    description: str | None
    proxied_symbols: str | None


class LimitBreach(BaseModel):
    portfolio: str
    metric: str
    value: float
    limit: float
    description: str


class Risk(BaseModel):
    as_of: date
    portfolios: list[PortfolioRisk]
    stress_tests: list[StressResult]
    limits: dict[str, float]
    limited_portfolios: list[str]
    breaches: list[LimitBreach]


class Forecast(BaseModel):
    symbol: str
    horizon_days: int
    q10: float | None
    q50: float | None
    q90: float | None
    model_version: str | None
    vol_forecast: float | None = None


class ForecastSet(BaseModel):
    as_of: date
    rows: list[Forecast]


class Problem(BaseModel):
    """The body of a 401, 404 or 503: what went wrong, in words."""

    detail: str
