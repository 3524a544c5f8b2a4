"""Stress tests (``portfolio.stress_tests``): past crises replayed on today's weights, and
synthetic volatility, correlation and market shocks."""

from __future__ import annotations

from datetime import date
from statistics import NormalDist

import numpy as np
import polars as pl

from portfolio_pipeline.portfolio.metrics import (
    historical_var,
)
from portfolio_pipeline.portfolio.risk.history import (
    PortfolioHistory,
    _weight_map,
    portfolio_history,
)
from portfolio_pipeline.portfolio.risk.scenarios import HISTORICAL_SCENARIOS, HistoricalScenario
from portfolio_pipeline.portfolio.strategies import MarketPanel
from portfolio_pipeline.settings import CASH_SYMBOL

PROXY_SYMBOL = "BTCUSDT"  # the crypto default; the pipeline passes the benchmark setting


STRESS_SCHEMA = {
    "as_of": pl.Date,
    "portfolio": pl.Utf8,
    "scenario": pl.Utf8,
    "pnl_pct": pl.Float64,
    "proxied_symbols": pl.Utf8,
    "description": pl.Utf8,
}


def _move(
    panel: MarketPanel, column: int, first_day: date, last_day: date, max_gap_days: int = 4
) -> float | None:
    """``close[last bar <= last_day] / close[last bar < first_day] - 1``, or None when either
    close is missing, no bar falls in the window, or the bar before it is more than
    ``max_gap_days`` (a weekend plus a holiday) before ``first_day``: the asset was not
    trading yet."""
    dates = panel.dates
    i = int(np.searchsorted(dates, np.datetime64(first_day, "D"), side="left")) - 1
    j = int(np.searchsorted(dates, np.datetime64(last_day, "D"), side="right")) - 1
    if i < 0 or j <= i:
        return None
    if np.datetime64(first_day, "D") - dates[i] > np.timedelta64(max_gap_days, "D"):
        return None
    p0, p1 = panel.close[i, column], panel.close[j, column]
    if not (np.isfinite(p0) and np.isfinite(p1)):
        return None
    return float(p1 / p0 - 1.0)


_StressRow = tuple[str, float, str, str]  # scenario, pnl_pct, proxied_symbols, description


def run_stress_tests(
    ohlcv: pl.DataFrame | MarketPanel,
    weights: pl.DataFrame,
    as_of: date,
    *,
    portfolio: str = "current",
    lookback_days: int = 365,
    scenarios: tuple[HistoricalScenario, ...] = HISTORICAL_SCENARIOS,
    shock: float = -0.30,
    proxy_symbol: str = PROXY_SYMBOL,
    cash_symbol: str = CASH_SYMBOL,
) -> pl.DataFrame:
    """Scenario P&L of ``weights`` -> ``portfolio.stress_tests`` rows.

    Steps: the historical scenarios (:func:`_historical_rows`), the volatility and
    correlation stresses of the recent history (:func:`_distribution_rows`), the flat market
    shock, and the benchmark shock through each asset's beta (:func:`_beta_shock_row`).

    Returns ``as_of, portfolio, scenario, pnl_pct, proxied_symbols, description``;
    ``pnl_pct`` is in percent of portfolio value (-12.5 = a 12.5% loss).
    """
    panel = (
        ohlcv
        if isinstance(ohlcv, MarketPanel)
        else MarketPanel.from_ohlcv(ohlcv.filter(pl.col("date") <= as_of))
    )
    mapping = _weight_map(weights, cash_symbol=cash_symbol)
    held = {s: w for s, w in mapping.items() if s != cash_symbol and w > 0}
    rows = _historical_rows(panel, held, as_of, scenarios, proxy_symbol)
    history = portfolio_history(panel, weights, as_of, lookback_days, cash_symbol)
    rows += _distribution_rows(history)
    rows.append(
        (
            f"market_shock_{abs(round(shock * 100))}pct",
            100.0 * shock * float(sum(held.values())),
            "",
            f"every risky asset moves {shock:+.0%}, cash unchanged",
        )
    )
    beta_row = _beta_shock_row(panel, history, as_of, lookback_days, shock, proxy_symbol)
    if beta_row is not None:
        rows.append(beta_row)
    return pl.DataFrame(
        {
            "as_of": [as_of] * len(rows),
            "portfolio": [portfolio] * len(rows),
            "scenario": [r[0] for r in rows],
            "pnl_pct": [r[1] for r in rows],
            "proxied_symbols": [r[2] for r in rows],
            "description": [r[3] for r in rows],
        },
        schema=STRESS_SCHEMA,
    )


def _historical_rows(
    panel: MarketPanel,
    held: dict[str, float],
    as_of: date,
    scenarios: tuple[HistoricalScenario, ...],
    proxy_symbol: str,
) -> list[_StressRow]:
    """Each past crisis replayed on today's weights; assets not trading then take the
    proxy's move, and a scenario nobody (not even the proxy) traded through is skipped."""

    def move_of(symbol: str, scenario: HistoricalScenario) -> float | None:
        if symbol not in panel.symbols:
            return None
        return _move(panel, panel.symbols.index(symbol), scenario.first_day, scenario.last_day)

    rows: list[_StressRow] = []
    for scenario in scenarios:
        if scenario.last_day > as_of:
            continue
        proxy_move = move_of(proxy_symbol, scenario)
        pnl, proxied, missing = 0.0, [], []
        for symbol, weight in held.items():
            move = move_of(symbol, scenario)
            if move is None:
                if proxy_move is None:
                    missing.append(symbol)
                    continue
                move = proxy_move
                proxied.append(symbol)
            pnl += weight * move
        if missing:  # no asset and no proxy data: the scenario cannot be evaluated honestly
            continue
        rows.append(
            (
                scenario.name,
                100.0 * pnl,
                ",".join(sorted(proxied)),
                f"{scenario.description} ({scenario.first_day}..{scenario.last_day}); "
                f"assets not trading then take {proxy_symbol}'s move",
            )
        )
    return rows


def _distribution_rows(history: PortfolioHistory) -> list[_StressRow]:
    """1-day 99% losses with deviations doubled, and with every correlation at 1."""
    r = history.portfolio_returns
    if not history.symbols or r.size < 3:
        return []
    mean = float(r.mean())
    doubled = mean + 2.0 * (r - mean)
    sigma = history.asset_returns.std(axis=0, ddof=1)
    z = NormalDist().inv_cdf(0.01)
    return [
        (
            "vol_doubled_var99",
            -100.0 * historical_var(doubled, 0.99),
            "",
            "1-day 99% historical loss with every return deviation from the mean doubled",
        ),
        (
            "correlations_one_var99",
            100.0 * (mean + z * float(history.weights @ sigma)),
            "",
            "1-day 99% normal loss with all correlations set to 1 (sigma_p = sum w_i sigma_i)",
        ),
    ]


def _beta_shock_row(
    panel: MarketPanel,
    history: PortfolioHistory,
    as_of: date,
    lookback_days: int,
    shock: float,
    proxy_symbol: str,
) -> _StressRow | None:
    """The proxy moves by ``shock``; each held asset moves beta x that (floored at -100%)."""
    if not history.symbols or history.portfolio_returns.size < 3:
        return None
    if proxy_symbol not in panel.symbols:
        return None
    row = panel.row_of(as_of)
    lo = max(0, row - lookback_days + 1)
    btc = panel.returns[lo : row + 1, panel.symbols.index(proxy_symbol)]
    assets = panel.returns[lo : row + 1][:, [panel.symbols.index(s) for s in history.symbols]]
    ok = np.isfinite(btc) & np.isfinite(assets).all(axis=1)
    if ok.sum() < 3 or not np.var(btc[ok]) > 0:
        return None
    b = btc[ok] - btc[ok].mean()
    a = assets[ok] - assets[ok].mean(axis=0)
    betas = (a * b[:, None]).mean(axis=0) / np.mean(b**2)
    moves = np.maximum(betas * shock, -1.0)
    return (
        f"benchmark_shock_{abs(round(shock * 100))}pct_beta",
        100.0 * float(history.weights @ moves),
        "",
        f"{proxy_symbol} {shock:+.0%}, each asset moves beta x that (beta over "
        f"the last {lookback_days} days, floored at -100%)",
    )
