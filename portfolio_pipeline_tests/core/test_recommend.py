from __future__ import annotations

import math
from datetime import UTC, date, datetime

import polars as pl
import pytest

from portfolio_pipeline.core.recommend import (
    RECOMMENDATION_SCHEMA,
    no_buy_of_untradable,
    recommend,
    weights_in_unit_interval,
    weights_sum_to_one,
)

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


def _run(forecasts, **overrides) -> pl.DataFrame:
    kwargs = {
        "cost_bps": 10.0,
        "min_notional": 10.0,
        "turnover_cap": None,
        "liquidity": None,
        "as_of": AS_OF,
        "strategy": "hrp",
        "run_id": "run-1",
        "generated_at": datetime(2026, 1, 1, tzinfo=UTC),
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


def test_gate_blocks_trades_that_cannot_beat_costs() -> None:
    # B's q10 (+0.05%) does not cover even one 10 bps leg; A's q90 (+5%) beats B's q10.
    frame = _run(_forecasts((-0.05, 0.0, 0.05), (0.0005, 0.01, 0.02)))
    rows = _rows(frame)
    assert frame.schema == pl.Schema(RECOMMENDATION_SCHEMA)
    assert set(frame.get_column("action")) == {"HOLD"}
    assert rows["AUSDT"]["target_weight"] == pytest.approx(0.5)
    assert rows["BUSDT"]["target_weight"] == 0.0 and rows["BUSDT"]["quantity"] == 0.0
    assert "gate passed +0.0000 of the wanted +0.5000" in rows["BUSDT"]["reason"]
    assert rows["BUSDT"]["return_low"] == pytest.approx(math.expm1(0.0005))


def test_gate_passes_trades_that_beat_costs_exactly() -> None:
    # B q10 +3% beats A's q90 +1% by far more than two 10 bps legs, and beats cash + one leg.
    frame = _run(_forecasts((-0.02, 0.0, 0.01), (0.03, 0.05, 0.07)))
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
    assert rows["BUSDT"]["horizon_days"] == 7


def test_gate_passes_only_the_confident_leg() -> None:
    # A's q90 (+5%) beats B's q10 (+3%): A is kept; B is still bought with the cash the target
    # releases (0.25 of value), since its q10 beats cash (0) plus one 10 bps leg.
    rows = _rows(_run(_forecasts((-0.05, 0.0, 0.05), (0.03, 0.05, 0.07))))
    assert rows["AUSDT"]["action"] == "HOLD"
    assert rows["BUSDT"]["action"] == "BUY"
    assert rows["BUSDT"]["notional"] == pytest.approx(500.0)
    assert rows["USDT"]["target_weight"] == pytest.approx(499.5 / 1999.5, abs=1e-12)
    assert rows["AUSDT"]["target_weight"] == pytest.approx(1000 / 1999.5, abs=1e-12)


def test_turnover_cap_and_min_notional() -> None:
    forecasts = _forecasts((-0.02, 0.0, 0.01), (0.03, 0.05, 0.07))
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


def test_predicates_catch_bad_frames() -> None:
    frame = _run(None)
    broken = frame.with_columns(pl.col("target_weight") * 1.01)
    assert not weights_sum_to_one(broken)
    assert not weights_in_unit_interval(frame.with_columns(pl.lit(-0.1).alias("target_weight")))
    forced_buy = frame.with_columns(pl.lit("BUY").alias("action"))
    outcome = no_buy_of_untradable(forced_buy, ["AUSDT"])
    assert not outcome and "BUSDT" in outcome.detail


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
