from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

from portfolio_pipeline.portfolio.risk import (
    compute_liquidity,
    compute_risk_metrics,
    run_stress_tests,
)

AS_OF = date(2024, 6, 30)
WEIGHTS = pl.DataFrame({"symbol": ["BTCUSDT", "ETHUSDT", "USDT"], "weight": [0.5, 0.3, 0.2]})


@pytest.fixture(scope="module")
def ohlcv(sample_ohlcv: pl.DataFrame) -> pl.DataFrame:
    return sample_ohlcv.filter(
        pl.col("symbol").is_in(["BTCUSDT", "ETHUSDT", "SOLUSDT", "PAXGUSDT"])
        & (pl.col("date") <= date(2024, 12, 31))
    )


def _closes(ohlcv: pl.DataFrame, symbol: str) -> pl.DataFrame:
    return ohlcv.filter(pl.col("symbol") == symbol).select("date", "close").sort("date")


def _portfolio_returns(ohlcv: pl.DataFrame, days: int) -> np.ndarray:
    out = np.zeros(days)
    for symbol, w in (("BTCUSDT", 0.5), ("ETHUSDT", 0.3)):
        c = _closes(ohlcv, symbol).filter(pl.col("date") <= AS_OF).get_column("close").to_numpy()
        out += w * (c[-days:] / c[-days - 1 : -1] - 1)
    return out


def test_risk_metrics_match_direct_numpy(ohlcv: pl.DataFrame) -> None:
    frame = compute_risk_metrics(ohlcv, WEIGHTS, AS_OF, portfolio="target", lookback_days=180)
    assert frame.columns == ["as_of", "portfolio", "metric", "value"]
    got = dict(frame.select("metric", "value").iter_rows())
    r = _portfolio_returns(ohlcv, 180)
    assert got["n_observations"] == 180
    assert got["var_hist_95"] == pytest.approx(-np.quantile(r, 0.05), rel=1e-12)
    assert got["var_hist_99"] == pytest.approx(-np.quantile(r, 0.01), rel=1e-12)
    assert got["cvar_99"] == pytest.approx(-r[r <= np.quantile(r, 0.01)].mean(), rel=1e-12)
    assert got["ann_vol"] == pytest.approx(r.std(ddof=1) * math.sqrt(365), rel=1e-12)
    equity = np.cumprod(1 + r)
    peak, mdd = 1.0, 0.0
    for value in equity:
        peak = max(peak, value)
        mdd = max(mdd, 1 - value / peak)
    assert got["max_drawdown"] == pytest.approx(mdd, rel=1e-12)
    s, k = stats.skew(r), stats.kurtosis(r)  # population skew and EXCESS kurtosis
    for level in (0.95, 0.99):
        z = stats.norm.ppf(1 - level)
        zcf = z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s**2 / 36
        expected = -(r.mean() + zcf * r.std(ddof=1))
        assert got[f"var_cf_{int(level * 100)}"] == pytest.approx(expected, rel=1e-9)


def test_forecast_volatility_from_interval(ohlcv: pl.DataFrame) -> None:
    forecasts = pl.DataFrame(
        {
            "as_of": [AS_OF, AS_OF],
            "symbol": ["BTCUSDT", "ETHUSDT"],
            "horizon_days": [4, 4],
            "q10": [-0.10, -0.2],
            "q50": [0.0, 0.0],
            "q90": [0.10, 0.2],
        }
    )
    got = dict(
        compute_risk_metrics(ohlcv, WEIGHTS, AS_OF, lookback_days=180, forecasts=forecasts)
        .select("metric", "value")
        .iter_rows()
    )
    sb, se = 0.2 / (2 * stats.norm.ppf(0.9)) / 2, 0.4 / (2 * stats.norm.ppf(0.9)) / 2
    rb = _closes(ohlcv, "BTCUSDT").filter(pl.col("date") <= AS_OF).get_column("close").to_numpy()
    re = _closes(ohlcv, "ETHUSDT").filter(pl.col("date") <= AS_OF).get_column("close").to_numpy()
    rho = np.corrcoef(rb[-180:] / rb[-181:-1], re[-180:] / re[-181:-1])[0, 1]
    var = (0.5 * sb) ** 2 + (0.3 * se) ** 2 + 2 * rho * 0.5 * sb * 0.3 * se
    assert got["forecast_ann_vol"] == pytest.approx(math.sqrt(var * 365), rel=1e-9)
    assert got["forecast_coverage"] == 1.0


def test_stress_tests(ohlcv: pl.DataFrame) -> None:
    weights = pl.DataFrame({"symbol": ["BTCUSDT", "SOLUSDT", "USDT"], "weight": [0.5, 0.3, 0.2]})
    frame = run_stress_tests(ohlcv, weights, AS_OF, lookback_days=180)
    rows = {r["scenario"]: r for r in frame.iter_rows(named=True)}

    def move(symbol: str, first: date, last: date) -> float:
        c = dict(_closes(ohlcv, symbol).iter_rows())
        return c[last] / c[first - timedelta(days=1)] - 1

    luna = 0.5 * move("BTCUSDT", date(2022, 5, 5), date(2022, 5, 12)) + 0.3 * move(
        "SOLUSDT", date(2022, 5, 5), date(2022, 5, 12)
    )
    assert rows["terra_luna"]["pnl_pct"] == pytest.approx(100 * luna, rel=1e-12)
    assert rows["terra_luna"]["proxied_symbols"] == ""
    # SOL did not trade in March 2020: BTC's move stands in, and the row says so
    btc_day = move("BTCUSDT", date(2020, 3, 12), date(2020, 3, 12))
    assert rows["covid_crash_day"]["pnl_pct"] == pytest.approx(100 * 0.8 * btc_day, rel=1e-12)
    assert rows["covid_crash_day"]["proxied_symbols"] == "SOLUSDT"
    assert rows["market_shock_30pct"]["pnl_pct"] == pytest.approx(-24.0)
    r = np.zeros(180)
    sig = []
    for symbol, w in (("BTCUSDT", 0.5), ("SOLUSDT", 0.3)):
        c = _closes(ohlcv, symbol).filter(pl.col("date") <= AS_OF).get_column("close").to_numpy()
        ri = c[-180:] / c[-181:-1] - 1
        r += w * ri
        sig.append(ri.std(ddof=1))
    assert rows["correlations_one_var99"]["pnl_pct"] == pytest.approx(
        100 * (r.mean() + stats.norm.ppf(0.01) * (0.5 * sig[0] + 0.3 * sig[1])), rel=1e-9
    )
    doubled = r.mean() + 2 * (r - r.mean())
    assert rows["vol_doubled_var99"]["pnl_pct"] == pytest.approx(
        100 * np.quantile(doubled, 0.01), rel=1e-12
    )
    assert "benchmark_shock_30pct_beta" in rows
    # no look-ahead: scenarios after as_of are not replayed
    early = run_stress_tests(ohlcv, WEIGHTS, date(2021, 6, 30), lookback_days=180)
    assert {"terra_luna", "ftx"}.isdisjoint(early.get_column("scenario").to_list())


def test_liquidity_days_and_volume_fallback(ohlcv: pl.DataFrame) -> None:
    positions = pl.DataFrame({"symbol": ["BTCUSDT", "PAXGUSDT", "USDT"], "value": [1e6, 5e5, 1e5]})
    frame = compute_liquidity(ohlcv, positions, AS_OF, include_universe=False)
    rows = {r["symbol"]: r for r in frame.iter_rows(named=True)}
    assert set(rows) == {"BTCUSDT", "PAXGUSDT"}
    window = ohlcv.filter(pl.col("date").is_between(AS_OF - timedelta(days=29), AS_OF))
    btc = window.filter(pl.col("symbol") == "BTCUSDT").get_column("quote_volume").mean()
    paxg = (
        window.filter(pl.col("symbol") == "PAXGUSDT")
        .select(pl.col("volume") * pl.col("close"))
        .to_series()
        .mean()
    )
    assert rows["BTCUSDT"]["adv_source"] == "quote_volume"
    assert rows["BTCUSDT"]["days_to_liquidate"] == pytest.approx(1e6 / (0.1 * btc))
    assert rows["PAXGUSDT"]["adv_source"] == "volume_x_close"  # PAXG has no quote volume
    assert rows["PAXGUSDT"]["days_to_liquidate"] == pytest.approx(5e5 / (0.1 * paxg))
    universe = compute_liquidity(ohlcv, positions, AS_OF)
    assert set(universe.get_column("symbol")) == {"BTCUSDT", "ETHUSDT", "SOLUSDT", "PAXGUSDT"}


def test_bad_weights_raise(ohlcv: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        compute_risk_metrics(ohlcv, WEIGHTS.with_columns(pl.col("weight") * 2), AS_OF)
    with pytest.raises(ValueError, match="no price history up to 2024-06-30 for DOGEUSDT"):
        compute_risk_metrics(ohlcv, pl.DataFrame({"symbol": ["DOGEUSDT"], "weight": [1.0]}), AS_OF)


def test_forecast_volatility_from_volatility_model(ohlcv: pl.DataFrame) -> None:
    """ml.volatility_forecasts rows (annualised vol_forecast) give the daily sigmas directly."""
    forecasts = pl.DataFrame(
        {
            "as_of": [AS_OF, AS_OF],
            "symbol": ["BTCUSDT", "ETHUSDT"],
            "horizon_days": [8, 8],
            "vol_forecast": [0.50, 0.80],
            "trailing_vol": [0.4, 0.7],
        }
    )
    got = dict(
        compute_risk_metrics(ohlcv, WEIGHTS, AS_OF, lookback_days=180, forecasts=forecasts)
        .select("metric", "value")
        .iter_rows()
    )
    sb, se = 0.50 / math.sqrt(365), 0.80 / math.sqrt(365)
    rb = _closes(ohlcv, "BTCUSDT").filter(pl.col("date") <= AS_OF).get_column("close").to_numpy()
    re = _closes(ohlcv, "ETHUSDT").filter(pl.col("date") <= AS_OF).get_column("close").to_numpy()
    rho = np.corrcoef(rb[-180:] / rb[-181:-1], re[-180:] / re[-181:-1])[0, 1]
    var = (0.5 * sb) ** 2 + (0.3 * se) ** 2 + 2 * rho * 0.5 * sb * 0.3 * se
    assert got["forecast_ann_vol"] == pytest.approx(math.sqrt(var * 365), rel=1e-9)


def test_stress_windows_count_sessions_on_an_equity_calendar() -> None:
    from datetime import date

    from portfolio_pipeline.examples.sp500 import sp500_ohlcv
    from portfolio_pipeline.portfolio.risk import (
        EQUITY_SCENARIOS,
        HistoricalScenario,
        parse_scenarios,
        run_stress_tests,
        scenarios_for,
    )

    ohlcv = sp500_ohlcv(date(2019, 6, 3), date(2020, 6, 30)).filter(
        pl.col("symbol").is_in(["AAPL", "XOM"])
    )
    weights = pl.DataFrame({"symbol": ["AAPL", "XOM", "USD"], "weight": [0.5, 0.3, 0.2]})
    # A week that ends on a Sunday: the move is Friday 2020-03-13 over Friday 2020-03-06.
    week = HistoricalScenario("covid_week", date(2020, 3, 9), date(2020, 3, 15), "week")
    out = run_stress_tests(
        ohlcv, weights, date(2020, 6, 30), scenarios=(week, *EQUITY_SCENARIOS),
        proxy_symbol="AAPL", cash_symbol="USD",
    )  # fmt: skip
    rows = {r["scenario"]: r for r in out.iter_rows(named=True)}

    def move(symbol: str, first: date, last: date) -> float:
        closes = dict(ohlcv.filter(pl.col("symbol") == symbol).select("date", "close").iter_rows())
        return closes[last] / closes[first] - 1

    expected = 0.5 * move("AAPL", date(2020, 3, 6), date(2020, 3, 13)) + 0.3 * move(
        "XOM", date(2020, 3, 6), date(2020, 3, 13)
    )
    assert rows["covid_week"]["pnl_pct"] == pytest.approx(100 * expected, rel=1e-12)
    # equity crises of the data's past are replayed; 2008 predates this history -> skipped
    # (no asset and no proxy data), 2022 is after as_of -> skipped
    assert "covid_crash" in rows and "gfc_2008" not in rows and "bear_2022" not in rows
    assert "benchmark_shock_30pct_beta" in rows
    assert scenarios_for("business") == EQUITY_SCENARIOS
    assert parse_scenarios("svb:2023-03-08..2023-03-13, flash:2010-05-06")[1].last_day == date(
        2010, 5, 6
    )
