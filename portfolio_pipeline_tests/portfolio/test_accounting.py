"""The one portfolio step shared by the environment and the backtests, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from portfolio_pipeline.portfolio import accounting


def test_a_step_by_hand_costs_drift_and_growth() -> None:
    # 50% asset / 50% cash -> 60/40, asset +10% tomorrow, 10 bps on the 0.1 traded.
    result = accounting.step(
        np.array([0.5, 0.5]), np.array([0.6, 0.4]), np.array([1.1]), cost_rate=0.001
    )
    assert result.turnover == pytest.approx(0.1)
    assert result.cost == pytest.approx(0.0001)
    assert result.growth == pytest.approx((1 - 0.0001) * (0.6 * 1.1 + 0.4))
    np.testing.assert_allclose(result.next_weights, [0.66 / 1.06, 0.4 / 1.06])
    assert result.log_return == pytest.approx(np.log(result.growth))


def test_a_holding_delisted_overnight_goes_to_cash_at_its_last_price() -> None:
    today = np.array([10.0, 20.0])
    tomorrow = np.array([11.0, np.nan])  # the second asset stops trading
    relatives = accounting.price_relatives(today, tomorrow)
    assert relatives.tolist() == [1.1, 1.0]
    result = accounting.step(
        np.array([0.25, 0.25, 0.5]),
        np.array([0.25, 0.25, 0.5]),
        relatives,
        cost_rate=0.001,
        delisted_next=~np.isfinite(tomorrow),
    )
    assert result.cost == 0.0
    gross = 0.25 * 1.1 + 0.25 + 0.5
    np.testing.assert_allclose(result.next_weights, [0.275 / gross, 0.0, 0.75 / gross])


def test_untradable_targets_move_to_cash() -> None:
    mask = accounting.tradable_mask(np.array([5.0, np.nan, 0.0]))
    assert mask.tolist() == [True, False, False]
    target = accounting.restrict_to_tradable(np.array([0.2, 0.3, 0.1, 0.4]), mask)
    np.testing.assert_allclose(target, [0.2, 0.0, 0.0, 0.8])
