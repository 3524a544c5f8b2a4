from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from portfolio_pipeline.recommendations.blocking_checks import (
    no_buy_of_untradable,
    weights_in_unit_interval,
    weights_sum_to_one,
)
from portfolio_pipeline.recommendations.decision import recommend
from portfolio_pipeline.recommendations.gate import ForecastCalibration
from portfolio_pipeline.recommendations.recommendation_rows import RECOMMENDATION_SCHEMA
from portfolio_pipeline.recommendations.trade_gate import GateSettings

AS_OF = date(2025, 12, 31)
HOLDINGS = pl.DataFrame({"symbol": ["AUSDT", "USDT"], "quantity": [10.0, 1000.0]})  # 1000 + 1000
PRICES = pl.DataFrame(
    {
        "symbol": ["AUSDT", "BUSDT", "CUSDT"],
        "price": [100.0, 20.0, 5.0],
        "trading": [True, True, False],
    }
)
TARGET = pl.DataFrame({"symbol": ["AUSDT", "BUSDT", "USDT"], "weight": [0.25, 0.5, 0.25]})


def _forecasts(a: tuple[float, float, float], b: tuple[float, float, float]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "as_of": [AS_OF, AS_OF],
            "symbol": ["AUSDT", "BUSDT"],
            "horizon_days": [7, 7],
            "q10": [a[0], b[0]],
            "q50": [a[1], b[1]],
            "q90": [a[2], b[2]],
        }
    )


def _calibration(slope: float = 1.0, slope_se: float = 0.01, intercept_se: float = 0.001):
    return ForecastCalibration(
        intercept=0.0,
        slope=slope,
        covariance=np.diag([intercept_se**2, slope_se**2]),
        horizon=7,
        n_rows=1000,
        n_dates=500,
        first_issue=date(2024, 1, 1),
        last_issue=date(2025, 12, 20),
    )


def _run(forecasts, *, calibration=None, confidence: float = 0.9, **overrides) -> pl.DataFrame:
    kwargs = {
        "cost_bps": 10.0,
        "min_notional": 10.0,
        "turnover_cap": None,
        "liquidity": None,
        "as_of": AS_OF,
        "strategy": "hrp",
        "run_id": "run-1",
        "generated_at": datetime(2026, 1, 1, tzinfo=UTC),
        "gate": GateSettings(
            calibration if calibration is not None else _calibration(), confidence
        ),
    }
    kwargs.update(overrides)
    frame = recommend(
        HOLDINGS,
        PRICES,
        overrides.pop("target", TARGET),
        forecasts,
        **{k: v for k, v in kwargs.items() if k != "target"},
    )
    assert weights_sum_to_one(frame) and weights_in_unit_interval(frame)
    assert frame.get_column("reason").drop_nulls().len() == frame.height
    return frame


def _rows(frame: pl.DataFrame) -> dict[str, dict]:
    return {r["symbol"]: r for r in frame.iter_rows(named=True)}


def test_gate_refuses_when_the_expected_advantage_does_not_beat_costs() -> None:
    # Medians 0% (A) and +0.15% (B): the advantage of B over A (0.15%) is below the two
    # 10 bps legs (0.2%) even before any uncertainty, and B over cash (0.15% with a 0.1%
    # intercept error, so a 90% lower bound of about +0.02%) is below one leg.
    frame = _run(_forecasts((-0.05, 0.0, 0.05), (-0.05, 0.0015, 0.05)))
    rows = _rows(frame)
    assert frame.schema == pl.Schema(RECOMMENDATION_SCHEMA)
    assert set(frame.get_column("action")) == {"HOLD"}
    assert rows["AUSDT"]["target_weight"] == pytest.approx(0.5)
    assert rows["BUSDT"]["target_weight"] == 0.0 and rows["BUSDT"]["quantity"] == 0.0
    assert "gate refused the wanted +0.5000" in rows["BUSDT"]["reason"]
    assert "not above costs at 90% confidence" in rows["BUSDT"]["reason"]
    assert rows["BUSDT"]["return_low"] == pytest.approx(math.expm1(-0.05))


def test_gate_passes_trades_that_beat_costs_exactly() -> None:
    # B's median +5% vs A's 0%: advantage 5.1% with a standard error of about 0.05 x 1% on
    # the slope: the 90% lower bound (~5%) clears the 0.2% round trip. Wide outcome
    # intervals (q10..q90 = +-20%) do not matter: the gate bounds the expectation.
    frame = _run(_forecasts((-0.2, 0.0, 0.2), (-0.2, 0.05, 0.2)))
    rows = _rows(frame)
    assert rows["AUSDT"]["action"] == "SELL" and rows["BUSDT"]["action"] == "BUY"
    assert rows["AUSDT"]["notional"] == pytest.approx(500.0)
    assert rows["AUSDT"]["quantity"] == pytest.approx(5.0)
    assert rows["BUSDT"]["notional"] == pytest.approx(1000.0)
    assert rows["BUSDT"]["quantity"] == pytest.approx(50.0)
    # costs 10 bps of 1500 traded = 1.5 USDT, paid from cash: 1000 + 500 - 1000 - 1.5
    total = 2000 - 1.5
    assert rows["USDT"]["target_weight"] == pytest.approx(498.5 / total, abs=1e-12)
    assert rows["AUSDT"]["target_weight"] == pytest.approx(500 / total, abs=1e-12)
    assert rows["BUSDT"]["target_weight"] == pytest.approx(1000 / total, abs=1e-12)
    assert "gate passed" in rows["BUSDT"]["reason"]
    assert rows["BUSDT"]["expected_return"] == pytest.approx(math.expm1(0.05))
    assert rows["BUSDT"]["calibrated_return"] == pytest.approx(math.expm1(0.05))
    assert rows["BUSDT"]["horizon_days"] == 7
    assert rows["BUSDT"]["wanted_turnover"] == pytest.approx(0.75)


def test_gate_refuses_the_same_trade_when_the_forecasts_error_is_large() -> None:
    # Same forecasts as above, but the calibration says the slope is 1 +- 2 (no evidence that
    # the forecasts carry information): the 90% lower bound of B - A is negative.
    frame = _run(
        _forecasts((-0.2, 0.0, 0.2), (-0.2, 0.05, 0.2)), calibration=_calibration(slope_se=2.0)
    )
    assert set(frame.get_column("action")) == {"HOLD"}
    # ... and a lower confidence level lets it through again.
    loose = _run(
        _forecasts((-0.2, 0.0, 0.2), (-0.2, 0.05, 0.2)),
        calibration=_calibration(slope_se=2.0),
        confidence=0.55,
    )
    assert _rows(loose)["BUSDT"]["action"] == "BUY"


def test_gate_passes_only_the_confident_leg() -> None:
    # A's median (+4%) beats B's (+3%): selling A for B is refused; B is still bought with
    # the cash the target releases (0.25 of value), since +3% beats cash plus one leg.
    rows = _rows(_run(_forecasts((-0.2, 0.04, 0.2), (-0.2, 0.03, 0.2))))
    assert rows["AUSDT"]["action"] == "HOLD"
    assert rows["BUSDT"]["action"] == "BUY"
    assert rows["BUSDT"]["notional"] == pytest.approx(500.0)
    assert rows["USDT"]["target_weight"] == pytest.approx(499.5 / 1999.5, abs=1e-12)
    assert rows["AUSDT"]["target_weight"] == pytest.approx(1000 / 1999.5, abs=1e-12)


def test_missing_and_stale_forecasts_say_so() -> None:
    stale = pl.DataFrame(
        {
            "as_of": [AS_OF, AS_OF - timedelta(days=30)],
            "symbol": ["AUSDT", "BUSDT"],
            "horizon_days": [7, 7],
            "q10": [-0.2, -0.2],
            "q50": [-0.05, 0.05],
            "q90": [0.2, 0.2],
        }
    )
    rows = _rows(_run(stale))
    assert rows["BUSDT"]["action"] == "HOLD"
    assert "forecast stale (last issued 2025-12-01)" in rows["BUSDT"]["reason"]
    missing = _rows(_run(stale.filter(pl.col("symbol") == "AUSDT")))
    assert missing["BUSDT"]["action"] == "HOLD"
    assert "no forecast for this symbol" in missing["BUSDT"]["reason"]
    # A (median -5%) may still be sold into cash: the gate judges it on its own forecast.
    assert missing["AUSDT"]["action"] == "SELL"
    # all stale: the gate is off and every row says why
    all_stale = _run(stale.with_columns(pl.lit(AS_OF - timedelta(days=30)).alias("as_of")))
    risky = all_stale.filter(pl.col("symbol") != "USDT")
    assert all("stale since 2025-12-01" in r for r in risky.get_column("reason"))
    no_track_record = recommend(
        HOLDINGS, PRICES, TARGET, stale, cost_bps=10, min_notional=0, turnover_cap=None,
        liquidity=None, as_of=AS_OF, strategy="hrp", run_id="r",
    )  # fmt: skip
    assert all(
        "no forecast track record" in r
        for r in no_track_record.filter(pl.col("symbol") != "USDT").get_column("reason")
    )


def test_turnover_cap_and_min_notional() -> None:
    forecasts = _forecasts((-0.2, 0.0, 0.2), (-0.2, 0.05, 0.2))
    capped = _rows(_run(forecasts, turnover_cap=0.25))
    traded = (capped["AUSDT"]["notional"] + capped["BUSDT"]["notional"]) / 2000
    assert traded == pytest.approx(0.25)
    assert "turnover cap" in capped["BUSDT"]["reason"]
    tiny = _run(forecasts, min_notional=5000.0)
    assert set(tiny.get_column("action")) == {"HOLD"}
    assert "below the minimum notional" in _rows(tiny)["AUSDT"]["reason"]


def test_never_buys_untradable_and_no_forecast_passes_through() -> None:
    target = pl.DataFrame(
        {"symbol": ["AUSDT", "BUSDT", "CUSDT", "USDT"], "weight": [0.25, 0.25, 0.25, 0.25]}
    )
    frame = _run(None, target=target)
    rows = _rows(frame)
    assert rows["CUSDT"]["action"] == "HOLD" and "stopped trading" in rows["CUSDT"]["reason"]
    assert rows["BUSDT"]["action"] == "BUY"
    assert "confidence gate not applied" in rows["BUSDT"]["reason"]
    tradable = PRICES.filter("trading").get_column("symbol")
    assert no_buy_of_untradable(frame, tradable)
    # no liquidity for B: cannot be bought either
    illiquid = _run(
        None,
        target=target,
        liquidity=pl.DataFrame({"symbol": ["AUSDT", "BUSDT"], "adv_quote": [1e6, 0.0]}),
    )
    assert _rows(illiquid)["BUSDT"]["action"] == "HOLD"


def test_invalid_target_raises() -> None:
    with pytest.raises(ValueError, match="sum to 1.5"):
        recommend(
            HOLDINGS,
            PRICES,
            TARGET.with_columns(pl.col("weight") * 1.5),
            None,
            cost_bps=10,
            min_notional=0,
            turnover_cap=None,
            liquidity=None,
            as_of=AS_OF,
            strategy="hrp",
            run_id="r",
        )
