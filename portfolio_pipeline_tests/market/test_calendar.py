from datetime import date, timedelta

import polars as pl
import pytest

from portfolio_pipeline.market.calendar import (
    BUSINESS,
    SEVEN_DAY,
    CalendarError,
    gap_free_ahead,
    infer_calendar,
)


def test_crypto_sample_is_a_seven_day_calendar(sample_ohlcv):
    calendar = infer_calendar(sample_ohlcv["date"].to_list())
    assert (calendar.kind, calendar.periods_per_year, calendar.max_normal_gap_days) == (
        SEVEN_DAY,
        365,
        1,
    )
    assert calendar.source == "inferred"


def test_sp500_closes_are_a_business_calendar():
    from skfolio.datasets import load_sp500_dataset

    dates = [d.date() for d in load_sp500_dataset().index]
    calendar = infer_calendar(dates)
    assert (calendar.kind, calendar.periods_per_year, calendar.max_normal_gap_days) == (
        BUSINESS,
        252,
        4,
    )
    assert infer_calendar(dates, periods_per_year=250).source == "setting"


def test_weekly_bars_are_measured():
    dates = [date(2020, 1, 3) + timedelta(weeks=i) for i in range(200)]
    # Fridays only: no weekend dates, but far fewer than 252 a year.
    calendar = infer_calendar(dates)
    assert calendar.kind == "irregular"
    assert calendar.periods_per_year == 52
    assert calendar.max_normal_gap_days == 14


def test_one_date_needs_the_setting():
    with pytest.raises(CalendarError, match="PERIODS_PER_YEAR"):
        infer_calendar([date(2024, 1, 2)])


def test_gap_free_ahead_accepts_weekends_and_rejects_a_missing_week():
    # Mon 2024-01-01 .. Fri 2024-01-12 on business days, then a missing week, then 5 more.
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(12)]
    days = [d for d in days if d.weekday() < 5] + [
        date(2024, 1, 22) + timedelta(i) for i in range(5)
    ]
    frame = pl.DataFrame({"symbol": ["A"] * len(days), "date": days})
    ok = frame.with_columns(gap_free_ahead(2, 4).alias("ok"))["ok"].to_list()
    # Thursday/Friday 2024-01-04/05 reach across the weekend: fine. Thursday/Friday of the
    # second week would reach across the missing week: undefined. The last two rows have no
    # row 2 bars later.
    assert ok == [True, True, True, True, True, True, True, True, False, False,
                  True, True, True, False, False]  # fmt: skip
