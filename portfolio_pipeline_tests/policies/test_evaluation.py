"""Evaluation through the env: the Sharpe convention and the fixed-weight references."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl
import pytest

from portfolio_pipeline.policies.env_data import EnvData, build_env_data
from portfolio_pipeline.policies.evaluation import annualised_sharpe, evaluate_fixed_weights
from portfolio_pipeline.policies.splits import Splits

UNIVERSE = ("BTCUSDT", "ETHUSDT", "XMRUSDT")
SPLITS = Splits(
    train_start=date(2023, 3, 1),
    tune_start=date(2023, 8, 1),
    train_end=date(2023, 10, 1),
    val_end=date(2024, 1, 1),
    test_end=date(2024, 4, 1),
)


@pytest.fixture(scope="module")
def env_data(sample_ohlcv: pl.DataFrame) -> EnvData:
    ohlcv = sample_ohlcv.filter(
        pl.col("symbol").is_in(UNIVERSE) & (pl.col("date") >= date(2022, 12, 1))
    )
    return build_env_data(ohlcv, None)


def test_annualised_sharpe():
    returns = np.array([0.01, -0.005, 0.02, 0.0])
    expected = returns.mean() / returns.std(ddof=1) * math.sqrt(252)
    assert annualised_sharpe(returns, 252) == pytest.approx(expected)
    assert annualised_sharpe(np.zeros(10), 365) == 0.0


def test_buy_benchmark_reference_matches_prices(env_data: EnvData):
    result = evaluate_fixed_weights(env_data, SPLITS.test, "buy_benchmark", cost_rate=0.002)
    btc = env_data.symbols.index("BTCUSDT")
    first, stop = env_data.window_indices(*SPLITS.test)
    prices = env_data.prices[first:stop, btc]
    # One purchase of 100% at the first close (0.2% cost), then held without trading.
    assert result.total_return == pytest.approx(0.998 * prices[-1] / prices[0] - 1, rel=1e-9)
    expected_daily = prices[1:] / prices[:-1] - 1
    expected_daily[0] = 0.998 * (1 + expected_daily[0]) - 1
    np.testing.assert_allclose(result.net_returns, expected_daily, rtol=1e-9, atol=1e-12)
    assert result.sharpe == pytest.approx(annualised_sharpe(expected_daily, 365))
    assert result.dates[0] == date(2024, 1, 2) and result.dates[-1] == date(2024, 3, 31)


def test_equal_weight_skips_untradable_assets(env_data: EnvData):
    # XMR stops trading after 2024-02-20: equal weight is 1/3 before, 1/2 after.
    result = evaluate_fixed_weights(env_data, SPLITS.test, "equal_weight")
    weights = result.weights_frame
    before = weights.filter(pl.col("as_of") == date(2024, 2, 19))
    after = weights.filter(pl.col("as_of") == date(2024, 2, 22))
    assert before.filter(pl.col("symbol") != "USDT")["weight"].to_list() == pytest.approx(
        [1 / 3] * 3
    )
    assert dict(after.select("symbol", "weight").iter_rows()) == pytest.approx(
        {"BTCUSDT": 0.5, "ETHUSDT": 0.5, "XMRUSDT": 0.0, "USDT": 0.0}
    )
    with pytest.raises(ValueError, match="DOGEUSDT is not in the universe"):
        evaluate_fixed_weights(env_data, SPLITS.test, "DOGEUSDT")
