"""A small warehouse with known figures, written through a real write session.

Every number the serving tests assert on is set here: two recommendation runs (the newest,
``run-new``, has two trades worth 1,500 on a 10,000 portfolio: turnover 0.15), risk metrics
where the current portfolio's ``var_hist_95`` (0.09) breaches the default 8% limit, replay
equity curves ending 5% below their peak, and outcomes of two evaluated trades.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from portfolio_pipeline import tables, warehouse
from portfolio_pipeline.recommendations.track_record import OUTCOME_SCHEMA

LATEST_DAY = date(2025, 1, 10)
EARLIER_DAY = date(2025, 1, 3)
GENERATED_AT = datetime(2025, 1, 11, 0, 30, tzinfo=UTC)
NEW_RUN, OLD_RUN = "run-new", "run-old"
SYMBOLS = ("AAAUSDT", "BBBUSDT", "CCCUSDT")
EQUITY = (1.0, 1.1, 1.2, 1.08, 1.14)  # ends 5% below its peak of 1.2
METRIC_VALUES = {
    "total_return": 0.14, "cagr": 0.3, "ann_vol": 0.2, "sharpe": 1.5, "sortino": 2.0,
    "max_drawdown": 0.1, "calmar": 3.0, "turnover": 2.0, "var_95": 0.02, "cvar_95": 0.03,
}  # fmt: skip


def _recommendation(run_id, as_of, strategy, symbol, action, cur, tgt, notional, reason, generated):
    return {
        "as_of": as_of, "generated_at": generated, "run_id": run_id, "strategy": strategy,
        "symbol": symbol, "current_weight": cur, "target_weight": tgt,
        "strategy_weight": tgt + 0.05 if symbol != "USDT" else 0.0, "action": action,
        "quantity": notional / 10.0, "notional": notional, "price": 10.0,
        "expected_return": 0.01, "return_low": -0.05, "return_high": 0.06, "reason": reason,
        "horizon_days": 8, "calibrated_return": 0.008, "gate_confidence": 0.95,
        "wanted_turnover": 0.3, "cost_bps": 10.0, "portfolio_value": 10_000.0,
    }  # fmt: skip


def recommendations(generated_at: datetime = GENERATED_AT, run_id: str = NEW_RUN) -> pl.DataFrame:
    new = [
        ("AAAUSDT", "BUY", 0.10, 0.20, 1000.0, "BUY: hrp target above current <b>&"),
        ("BBBUSDT", "SELL", 0.30, 0.25, 500.0, "SELL: hrp target below current"),
        ("CCCUSDT", "HOLD", 0.20, 0.20, 0.0, "HOLD: gate refused"),
        ("USDT", "HOLD", 0.40, 0.35, 0.0, "cash"),
    ]
    rows = [_recommendation(run_id, LATEST_DAY, "hrp", *r, generated_at) for r in new]
    rows.append(
        _recommendation(OLD_RUN, EARLIER_DAY, "min_variance", "AAAUSDT", "BUY", 0.0, 0.1,
                        700.0, "BUY: min_variance", generated_at - timedelta(days=7))
    )  # fmt: skip
    return pl.DataFrame(rows)


def _metrics(**keys) -> dict:
    return {**keys, "start": date(2024, 1, 1), "end": date(2024, 12, 31), **METRIC_VALUES}


def _replay() -> tuple[pl.DataFrame, pl.DataFrame]:
    daily, metrics = [], []
    for process in ("recommended", "target", "recommended_c50"):
        for window, start in (("validation", date(2023, 1, 1)), ("test", date(2024, 1, 1))):
            for i, equity in enumerate(EQUITY):
                daily.append({"process": process, "window": window,
                              "date": start + timedelta(days=i), "equity": equity})  # fmt: skip
            metrics.append(
                _metrics(process=process, window=window, strategy="hrp", trading_days=5,
                         refused_turnover=0.1, cost_paid=3.0, gate_confidence=0.95)
            )  # fmt: skip
    return pl.DataFrame(daily), pl.DataFrame(metrics)


def _risk() -> tuple[pl.DataFrame, pl.DataFrame]:
    values = {
        "current": {"var_hist_95": 0.09, "cvar_95": 0.12, "max_drawdown": 0.3, "ann_vol": float("nan")},
        "recommended": {"var_hist_95": 0.05, "cvar_95": 0.07, "max_drawdown": 0.2},
        "target:hrp": {"var_hist_95": 0.04, "cvar_95": 0.06},
    }  # fmt: skip
    risk = pl.DataFrame(
        [{"as_of": LATEST_DAY, "portfolio": p, "metric": m, "value": v}
         for p, metrics in values.items() for m, v in metrics.items()]
        + [{"as_of": EARLIER_DAY, "portfolio": "current", "metric": "var_hist_95", "value": 0.5}]
    )  # fmt: skip
    stress = pl.DataFrame(
        [{"as_of": LATEST_DAY, "portfolio": p, "scenario": s, "pnl_pct": pnl,
          "proxied_symbols": "", "description": f"{s} scenario"}
         for p, base in (("current", -30.0), ("recommended", -25.0))
         for s, pnl in (("ftx", base), ("terra_luna", base / 2))]
    )  # fmt: skip
    return risk, stress


def _outcomes() -> pl.DataFrame:
    rows = [
        {"run_id": OLD_RUN, "as_of": EARLIER_DAY, "symbol": "AAAUSDT", "action": "BUY",
         "horizon": 8, "horizon_end": LATEST_DAY, "notional": 700.0, "price": 10.0,
         "price_end": 11.0, "realized_return": 0.1, "cost": 0.7, "value_added": 69.3,
         "value_added_pct": 0.00693, "evaluated_at": GENERATED_AT},
        {"run_id": OLD_RUN, "as_of": EARLIER_DAY, "symbol": "BBBUSDT", "action": "SELL",
         "horizon": 8, "horizon_end": LATEST_DAY, "notional": 300.0, "price": 10.0,
         "price_end": 10.5, "realized_return": 0.05, "cost": 0.3, "value_added": -15.3,
         "value_added_pct": -0.00153, "evaluated_at": GENERATED_AT},
    ]  # fmt: skip
    return pl.DataFrame(rows, schema=OUTCOME_SCHEMA)


def _market(last_day: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    ohlcv = pl.DataFrame(
        [{"symbol": s, "date": last_day - timedelta(days=i), "close": 10.0 + i}
         for s in SYMBOLS[:2] for i in range(3)]
    )  # fmt: skip
    news = pl.DataFrame(
        {"id": ["n1"], "published_at": [datetime.combine(last_day, datetime.min.time(), UTC)],
         "title": ["headline"]}
    )  # fmt: skip
    return ohlcv, news


def _forecasts() -> tuple[pl.DataFrame, pl.DataFrame]:
    returns = pl.DataFrame(
        [{"as_of": day, "symbol": s, "horizon_days": h, "q10": -0.05, "q50": 0.01 * h,
          "q90": 0.06, "model_version": "m1", "quantiles_reordered": False}
         for day in (EARLIER_DAY, LATEST_DAY) for s in SYMBOLS[:2] for h in (1, 8)]
    )  # fmt: skip
    vol = pl.DataFrame(
        {"as_of": [LATEST_DAY], "symbol": ["AAAUSDT"], "horizon_days": [8],
         "vol_forecast": [0.4], "trailing_vol": [0.5], "model_version": ["v1"]}
    )  # fmt: skip
    return returns, vol


def build(path: Path, *, last_day: date = LATEST_DAY, skip: tuple[str, ...] = ()) -> Path:
    """Write the tiny warehouse to ``path`` (published atomically); ``skip`` leaves tables out."""
    daily, process_metrics = _replay()
    risk, stress = _risk()
    ohlcv, news = _market(last_day)
    returns, vol = _forecasts()
    strategies = [
        _metrics(strategy=s, rebalance="weekly", cost_bps=10.0) | {"sharpe": sharpe}
        for s, sharpe in (("hrp", 1.4), ("min_variance", 2.0))
    ]
    frames = {
        tables.RECOMMENDATIONS: recommendations(),
        tables.RECOMMENDATION_BACKTEST: daily,
        tables.RECOMMENDATION_BACKTEST_METRICS: process_metrics,
        tables.RISK_METRICS: risk,
        tables.STRESS_TESTS: stress,
        tables.RECOMMENDATION_OUTCOMES: _outcomes(),
        tables.RAW_OHLCV: ohlcv,
        tables.RAW_NEWS: news,
        tables.RETURN_FORECASTS: returns,
        tables.VOLATILITY_FORECASTS: vol,
        tables.BACKTEST_METRICS: pl.DataFrame(strategies),
        tables.STRATEGY_VALIDATION: pl.DataFrame(
            [s | {"selected_for_recommendations": s["strategy"] == "hrp"} for s in strategies]
        ),
    }
    with warehouse.connection(path) as con:
        for table, frame in frames.items():
            if table not in skip:
                warehouse.replace_table(con, table, frame)
    return path


def publish_new_run(path: Path, run_id: str, generated_at: datetime) -> None:
    """A later run publishes new recommendations (a new file renamed over ``path``)."""
    with warehouse.connection(path) as con:
        warehouse.replace_table(con, tables.RECOMMENDATIONS, recommendations(generated_at, run_id))


def drop_column(path: Path, table: str, column: str) -> None:
    """Make ``table`` look like an older schema that lacks ``column``."""
    with warehouse.connection(path) as con:
        con.execute(f'alter table {table} drop column "{column}"')
