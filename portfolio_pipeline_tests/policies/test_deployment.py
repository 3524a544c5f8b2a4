from __future__ import annotations

from datetime import date

from portfolio_pipeline.market.windows import windows_from_dates
from portfolio_pipeline.policies.deployment import policy_splits


def test_policy_splits_start_at_the_first_forecast_and_tune_at_the_end_of_training(
    sample_ohlcv,
):
    windows = windows_from_dates(sample_ohlcv["date"].unique().to_list())
    plain = policy_splits(windows, None)
    assert plain.train_start == date(2017, 8, 17)
    assert plain.tune == (date(2022, 1, 1), date(2023, 1, 1))
    with_forecasts = policy_splits(windows, date(2020, 1, 1))
    assert with_forecasts.train_start == date(2020, 1, 1)
    assert with_forecasts.tune == plain.tune  # still the last year of training
    moved = policy_splits(windows, date(2020, 1, 1), tune_start=date(2022, 7, 1))
    assert moved.tune == (date(2022, 7, 1), date(2023, 1, 1))
    assert moved.validation == plain.validation and moved.test == plain.test
