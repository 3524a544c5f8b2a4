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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import NormalDist

import numpy as np
import polars as pl

from portfolio_pipeline.portfolio.metrics import (
    Z_10_90,
    historical_cvar,
    historical_var,
    max_drawdown,
)
from portfolio_pipeline.portfolio.strategies import MarketPanel
from portfolio_pipeline.settings import CASH_SYMBOL

PROXY_SYMBOL = "BTCUSDT"  # the crypto default; the pipeline passes the benchmark setting


@dataclass(frozen=True)
class HistoricalScenario:
    name: str
    first_day: date
    last_day: date
    description: str


HISTORICAL_SCENARIOS: tuple[HistoricalScenario, ...] = (
    HistoricalScenario(
        "covid_crash_day", date(2020, 3, 12), date(2020, 3, 12), "COVID crash, 2020-03-12"
    ),
    HistoricalScenario("covid_crash_week", date(2020, 3, 9), date(2020, 3, 15), "COVID crash week"),
    HistoricalScenario(
        "terra_luna", date(2022, 5, 5), date(2022, 5, 12), "Terra/LUNA collapse, May 2022"
    ),
    HistoricalScenario("ftx", date(2022, 11, 6), date(2022, 11, 10), "FTX collapse, Nov 2022"),
)
CRYPTO_SCENARIOS = HISTORICAL_SCENARIOS
EQUITY_SCENARIOS: tuple[HistoricalScenario, ...] = (
    HistoricalScenario(
        "gfc_2008", date(2008, 9, 12), date(2008, 11, 20), "Lehman to the Nov 2008 low"
    ),
    HistoricalScenario(
        "covid_crash", date(2020, 2, 19), date(2020, 3, 23), "COVID crash, peak to trough"
    ),
    HistoricalScenario(
        "covid_crash_day", date(2020, 3, 16), date(2020, 3, 16), "COVID crash, 2020-03-16"
    ),
    HistoricalScenario(
        "bear_2022", date(2022, 1, 3), date(2022, 10, 12), "2022 rate-hike bear market"
    ),
)


class ScenarioError(ValueError):
    """A stress-scenario setting that cannot be parsed (names the item)."""


def scenarios_for(calendar_kind: str) -> tuple[HistoricalScenario, ...]:
    """Default historical scenarios of a market: crypto crises on a 7-day calendar, equity
    crises (2008, 2020-03, 2022) otherwise."""
    return CRYPTO_SCENARIOS if calendar_kind == "7-day" else EQUITY_SCENARIOS


def parse_scenarios(text: str) -> tuple[HistoricalScenario, ...]:
    """``"name:2020-02-19..2020-03-23,other:2022-05-05"`` -> scenarios (one day if no ``..``)."""
    scenarios = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, span = item.partition(":")
        first, _, last = span.partition("..")
        try:
            start = date.fromisoformat(first.strip())
            end = date.fromisoformat(last.strip()) if last.strip() else start
        except ValueError:
            raise ScenarioError(
                f"stress scenario {item!r}: expected name:YYYY-MM-DD[..YYYY-MM-DD]"
            ) from None
        if not name.strip() or end < start:
            raise ScenarioError(f"stress scenario {item!r}: empty name or end before start")
        scenarios.append(HistoricalScenario(name.strip(), start, end, f"user scenario {span}"))
    return tuple(scenarios)


RISK_SCHEMA = {"as_of": pl.Date, "portfolio": pl.Utf8, "metric": pl.Utf8, "value": pl.Float64}
STRESS_SCHEMA = {
    "as_of": pl.Date,
    "portfolio": pl.Utf8,
    "scenario": pl.Utf8,
    "pnl_pct": pl.Float64,
    "proxied_symbols": pl.Utf8,
    "description": pl.Utf8,
}


@dataclass(frozen=True)
class PortfolioHistory:
    """Held risky assets, their weights and window returns, plus the portfolio returns.

    symbols : k held risky symbols; weights : (k,); asset_returns : (n, k);
    portfolio_returns : (n,) ``asset_returns @ weights`` (cash adds 0); dates : (n,).
    """

    symbols: list[str]
    weights: np.ndarray
    asset_returns: np.ndarray
    portfolio_returns: np.ndarray
    dates: np.ndarray


def _weight_map(
    weights: pl.DataFrame, tolerance: float = 1e-6, cash_symbol: str = CASH_SYMBOL
) -> dict[str, float]:
    if not {"symbol", "weight"} <= set(weights.columns):
        raise ValueError("weights frame needs columns symbol, weight")
    mapping: dict[str, float] = {}
    for symbol, weight in weights.select("symbol", "weight").iter_rows():
        if weight is None or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight of {symbol} must be a finite number >= 0, got {weight}")
        mapping[symbol] = mapping.get(symbol, 0.0) + float(weight)
    total = sum(mapping.values())
    if abs(total - 1.0) > tolerance:
        raise ValueError(f"weights must sum to 1 (cash {cash_symbol} included), got {total:.8f}")
    return mapping


def portfolio_history(
    ohlcv: pl.DataFrame | MarketPanel,
    weights: pl.DataFrame,
    as_of: date,
    lookback_days: int,
    cash_symbol: str = CASH_SYMBOL,
) -> PortfolioHistory:
    """Historical per-bar returns of today's weights over the ``lookback_days`` BARS (rows)
    ending at ``as_of``."""
    panel = (
        ohlcv
        if isinstance(ohlcv, MarketPanel)
        else MarketPanel.from_ohlcv(ohlcv.filter(pl.col("date") <= as_of))
    )
    mapping = _weight_map(weights, cash_symbol=cash_symbol)
    held = [s for s, w in mapping.items() if s != cash_symbol and w > 0]
    unknown = [s for s in held if s not in panel.symbols]
    if unknown:
        raise ValueError(f"no price history up to {as_of} for {', '.join(unknown)}")
    row = panel.row_of(as_of)
    lo = max(0, row - lookback_days + 1)
    columns = [panel.symbols.index(s) for s in held]
    returns = panel.returns[lo : row + 1][:, columns]
    dates = panel.dates[lo : row + 1]
    complete = np.isfinite(returns).all(axis=1)
    returns, dates = returns[complete], dates[complete]
    w = np.array([mapping[s] for s in held])
    return PortfolioHistory(held, w, returns, returns @ w, dates)


def cornish_fisher_var(returns: np.ndarray, level: float) -> float:
    """Cornish-Fisher (modified) VaR at ``level`` as a positive loss fraction."""
    if returns.size < 3:
        return float("nan")
    mean = float(returns.mean())
    std = float(returns.std(ddof=1))
    centred = returns - mean
    pop_std = float(np.sqrt(np.mean(centred**2)))
    if pop_std == 0:
        return float(-mean)
    skew = float(np.mean(centred**3) / pop_std**3)
    excess_kurt = float(np.mean(centred**4) / pop_std**4 - 3.0)
    z = NormalDist().inv_cdf(1.0 - level)
    z_cf = (
        z
        + (z**2 - 1) * skew / 6
        + (z**3 - 3 * z) * excess_kurt / 24
        - (2 * z**3 - 5 * z) * skew**2 / 36
    )
    return float(-(mean + z_cf * std))


def _forecast_sigmas(
    forecasts: pl.DataFrame,
    symbols: list[str],
    as_of: date,
    horizon_days: int | None,
    periods_per_year: int = 365,
) -> dict[str, float]:
    """Daily volatility per symbol from the latest forecasts known at ``as_of``: either a
    volatility forecast (``vol_forecast``, annualised) or a return-quantile band (q10..q90 of
    the H-day log return, read as a normal band)."""
    known = forecasts.filter((pl.col("as_of") <= as_of) & pl.col("symbol").is_in(symbols))
    if horizon_days is None and known.height:
        horizon_days = int(known.get_column("horizon_days").min())
    known = known.filter(pl.col("horizon_days") == horizon_days)
    if known.is_empty():
        return {}
    latest = known.group_by("symbol").agg(pl.all().sort_by("as_of").last())
    if "vol_forecast" in latest.columns:
        sigma = pl.col("vol_forecast") / math.sqrt(periods_per_year)
    else:
        sigma = (pl.col("q90") - pl.col("q10")) / (2 * Z_10_90) / math.sqrt(horizon_days)
    return {
        s: float(v)
        for s, v in latest.select("symbol", sigma.alias("s")).iter_rows()
        if v is not None and math.isfinite(v) and v >= 0
    }


def compute_risk_metrics(
    ohlcv: pl.DataFrame | MarketPanel,
    weights: pl.DataFrame,
    as_of: date,
    *,
    portfolio: str = "current",
    periods_per_year: int = 365,
    lookback_days: int = 365,
    forecasts: pl.DataFrame | None = None,
    forecast_horizon_days: int | None = None,
    cash_symbol: str = CASH_SYMBOL,
) -> pl.DataFrame:
    """Risk metrics of ``weights`` at ``as_of`` -> ``portfolio.risk_metrics`` rows.

    ``lookback_days`` counts bars (pass ``periods_per_year`` for one year of sessions).
    Returns columns ``as_of, portfolio, metric, value`` (definitions in the module docstring).
    """
    history = portfolio_history(ohlcv, weights, as_of, lookback_days, cash_symbol)
    r = history.portfolio_returns
    # The annualisation used by ann_vol / forecast_ann_vol, recorded next to them.
    values: dict[str, float] = {
        "n_observations": float(r.size),
        "periods_per_year": float(periods_per_year),
    }
    if history.symbols and r.size >= 2:
        for level, tag in ((0.95, "95"), (0.99, "99")):
            values[f"var_hist_{tag}"] = historical_var(r, level)
            values[f"var_cf_{tag}"] = cornish_fisher_var(r, level)
            values[f"cvar_{tag}"] = historical_cvar(r, level)
        values["ann_vol"] = float(r.std(ddof=1) * math.sqrt(periods_per_year))
        values["max_drawdown"] = max_drawdown(r)
    else:  # all cash (or no common history): no risk measurable from returns
        for key in ("var_hist_95", "var_cf_95", "cvar_95", "var_hist_99", "var_cf_99", "cvar_99"):
            values[key] = 0.0 if not history.symbols else float("nan")
        values["ann_vol"] = 0.0 if not history.symbols else float("nan")
        values["max_drawdown"] = 0.0 if not history.symbols else float("nan")
    if forecasts is not None and history.symbols and r.size >= 2:
        sigmas = _forecast_sigmas(
            forecasts, history.symbols, as_of, forecast_horizon_days, periods_per_year
        )
        hist_sigma = history.asset_returns.std(axis=0, ddof=1)
        sigma = np.array(
            [sigmas.get(s, hist_sigma[i]) for i, s in enumerate(history.symbols)], dtype=float
        )
        if history.asset_returns.shape[1] > 1:
            correlation = np.corrcoef(history.asset_returns, rowvar=False)
        else:
            correlation = np.ones((1, 1))
        correlation = np.nan_to_num(correlation, nan=0.0)
        np.fill_diagonal(correlation, 1.0)
        ws = history.weights * sigma
        values["forecast_ann_vol"] = float(
            math.sqrt(max(ws @ correlation @ ws, 0.0)) * math.sqrt(periods_per_year)
        )
        covered = sum(
            w for s, w in zip(history.symbols, history.weights, strict=True) if s in sigmas
        )
        values["forecast_coverage"] = float(covered / history.weights.sum())
    return pl.DataFrame(
        {
            "as_of": [as_of] * len(values),
            "portfolio": [portfolio] * len(values),
            "metric": list(values),
            "value": list(values.values()),
        },
        schema=RISK_SCHEMA,
    )


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


def compute_liquidity(
    ohlcv: pl.DataFrame,
    positions: pl.DataFrame,
    as_of: date,
    *,
    portfolio: str = "current",
    participation: float = 0.10,
    window_days: int = 30,
    include_universe: bool = True,
    cash_symbol: str = CASH_SYMBOL,
) -> pl.DataFrame:
    """Days to sell each position trading ``participation`` of its average daily USDT volume.

    Parameters
    ----------
    positions : ``symbol, value`` in USDT (e.g. from ``holdings.value_holdings``); cash is
        skipped.
    window_days : the average is over the calendar days ``(as_of - window_days, as_of]``.
    include_universe : also add a row (position_value 0) for every symbol that traded in the
        window, so the frame can gate BUYs of symbols not held yet.

    Returns
    -------
    polars.DataFrame
        ``as_of, portfolio, symbol, position_value, adv_quote, adv_source, days_to_liquidate``.
        ``adv_source`` is ``quote_volume`` when the exchange reported USDT volume on every day,
        ``volume_x_close`` when it reported none (base volume times close used instead: an
        approximation), ``mixed`` otherwise, ``none`` when the symbol did not trade in the
        window (then ``days_to_liquidate`` is null: cannot be sold).
    """
    if not 0 < participation <= 1:
        raise ValueError(f"participation must be in (0, 1], got {participation}")
    first = as_of - timedelta(days=window_days - 1)
    window = ohlcv.filter(pl.col("date").is_between(first, as_of))
    has_quote = "quote_volume" in window.columns
    usd_volume = (
        pl.coalesce(pl.col("quote_volume"), pl.col("volume") * pl.col("close"))
        if has_quote
        else pl.col("volume") * pl.col("close")
    )
    quote_known = pl.col("quote_volume").is_not_null() if has_quote else pl.lit(False)
    adv = window.group_by("symbol").agg(
        usd_volume.mean().alias("adv_quote"),
        quote_known.sum().alias("n_quote"),
        pl.len().alias("n_days"),
    )
    held = positions.filter(pl.col("symbol") != cash_symbol).select(
        "symbol", pl.col("value").cast(pl.Float64).alias("position_value")
    )
    if include_universe:  # every symbol seen in the window too, so buys can be checked
        held = held.join(adv.select("symbol"), on="symbol", how="full", coalesce=True)
        held = held.with_columns(pl.col("position_value").fill_null(0.0))
    out = held.join(adv, on="symbol", how="left").with_columns(
        pl.when(pl.col("n_days").is_null())
        .then(pl.lit("none"))
        .when(pl.col("n_quote") == pl.col("n_days"))
        .then(pl.lit("quote_volume"))
        .when(pl.col("n_quote") == 0)
        .then(pl.lit("volume_x_close"))
        .otherwise(pl.lit("mixed"))
        .alias("adv_source"),
    )
    out = out.with_columns(
        pl.when(pl.col("adv_quote") > 0)
        .then(pl.col("position_value") / (participation * pl.col("adv_quote")))
        .otherwise(None)
        .alias("days_to_liquidate")
    )
    return out.select(
        pl.lit(as_of).alias("as_of"),
        pl.lit(portfolio).alias("portfolio"),
        "symbol",
        "position_value",
        "adv_quote",
        "adv_source",
        "days_to_liquidate",
    ).sort("symbol")
