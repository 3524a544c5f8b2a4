"""Strategies by name: :func:`build_strategies` returns them fitted."""

from __future__ import annotations

from typing import Any

import polars as pl

from portfolio_pipeline.portfolio.strategies.base import (
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_MIN_HISTORY,
    Strategy,
)
from portfolio_pipeline.portfolio.strategies.external import ExternalWeights
from portfolio_pipeline.portfolio.strategies.mean_variance import ForecastMeanVariance, MaxSharpe
from portfolio_pipeline.portfolio.strategies.naive import BuyAndHold, EqualWeight, InverseVolatility
from portfolio_pipeline.portfolio.strategies.risk_based import (
    HierarchicalRiskParity,
    MinVariance,
    RiskParity,
)

CLASSIC_STRATEGY_NAMES: tuple[str, ...] = (
    "equal_weight",
    "inverse_volatility",
    "buy_and_hold",
    "max_sharpe",
    "min_variance",
    "risk_parity",
    "hrp",
)


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
