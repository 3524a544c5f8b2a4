from datetime import date, timedelta

import pytest

from portfolio_pipeline.market.windows import (
    EvaluationWindows,
    WindowsError,
    windows_from_dates,
    windows_from_settings,
)
from portfolio_pipeline.settings import load_settings


def _days(start: date, end: date, weekdays_only: bool = False) -> list[date]:
    out, day = [], start
    while day <= end:
        if not weekdays_only or day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return out


def test_shipped_sample_gives_validation_2023_and_test_2024_2025(sample_ohlcv):
    windows = windows_from_dates(sample_ohlcv["date"].to_list())
    assert windows == EvaluationWindows(
        train_start=date(2017, 8, 17),
        train_end=date(2022, 12, 31),
        validation_start=date(2023, 1, 1),
        validation_end=date(2023, 12, 31),
        test_start=date(2024, 1, 1),
        test_end=date(2025, 12, 31),
    )
    assert windows.half_open() == (
        date(2017, 8, 17),
        date(2023, 1, 1),
        date(2024, 1, 1),
        date(2026, 1, 1),
    )


def test_live_history_moves_the_windows_and_drops_the_forming_day():
    dates = _days(date(2019, 1, 1), date(2026, 11, 30))
    windows = windows_from_dates(dates, today=date(2026, 11, 30))
    assert windows.test == (date(2024, 11, 30), date(2026, 11, 29))
    assert windows.validation == (date(2023, 11, 30), date(2024, 11, 29))
    assert windows.train == (date(2019, 1, 1), date(2023, 11, 29))


def test_equity_history_ending_on_a_friday_in_2022():
    dates = _days(date(2015, 1, 2), date(2022, 12, 30), weekdays_only=True)
    windows = windows_from_dates(dates)
    assert windows.test == (date(2020, 12, 31), date(2022, 12, 30))
    assert windows.validation_end == date(2020, 12, 30)
    assert windows.train_end < windows.validation_start


def test_overrides_cascade_and_are_recorded():
    dates = _days(date(2018, 1, 1), date(2025, 12, 31))
    windows = windows_from_dates(dates, overrides={"test_start": "2025-01-01", "train_end": None})
    assert windows.test == (date(2025, 1, 1), date(2025, 12, 31))
    assert windows.validation == (date(2024, 1, 1), date(2024, 12, 31))
    assert windows.train_end == date(2023, 12, 31)
    assert windows.source == "data+settings"
    assert windows.as_metadata()["test_window"] == "2025-01-01..2025-12-31"


def test_lengths_in_years_are_settable():
    dates = _days(date(2020, 3, 1), date(2024, 2, 29))
    windows = windows_from_dates(dates, test_years=1, validation_years=1)
    # 29 February moved back a year is 28 February.
    assert windows.test == (date(2023, 3, 1), date(2024, 2, 29))
    assert windows.validation == (date(2022, 3, 1), date(2023, 2, 28))


def test_too_short_history_names_dates_and_settings():
    dates = _days(date(2023, 6, 1), date(2025, 12, 31))
    with pytest.raises(WindowsError, match=r"2023-06-01\.\.2025-12-31.*TEST_YEARS"):
        windows_from_dates(dates)


def test_bad_overrides_are_refused():
    dates = _days(date(2018, 1, 1), date(2025, 12, 31))
    with pytest.raises(WindowsError, match="unknown window overrides"):
        windows_from_dates(dates, overrides={"test_begin": "2025-01-01"})
    with pytest.raises(WindowsError, match="not an ISO date"):
        windows_from_dates(dates, overrides={"test_start": "01/01/2025"})
    with pytest.raises(WindowsError, match="train_end <"):
        windows_from_dates(dates, overrides={"train_end": "2024-06-30"})
    with pytest.raises(WindowsError, match="no complete day"):
        windows_from_dates([], today=date(2025, 1, 1))


def test_settings_carry_lengths_and_bounds(monkeypatch):
    monkeypatch.setenv("PORTFOLIO_PIPELINE_TEST_YEARS", "1")
    monkeypatch.setenv("PORTFOLIO_PIPELINE_VALIDATION_START", "2024-03-01")
    dates = _days(date(2018, 1, 1), date(2025, 12, 31))
    windows = windows_from_settings(dates, load_settings())
    assert windows.test == (date(2025, 1, 1), date(2025, 12, 31))
    assert windows.validation == (date(2024, 3, 1), date(2024, 12, 31))
    assert windows.train_end == date(2024, 2, 29)


def test_first_forecast_test_start(sample_ohlcv):
    from portfolio_pipeline.market.windows import first_forecast_test_start

    dates = sample_ohlcv["date"].to_list()
    assert first_forecast_test_start(min(dates), windows_from_dates(dates)) == date(2020, 1, 1)
    # a short equity history: capped at the validation start, so validation is out of sample
    short = _days(date(2021, 1, 4), date(2022, 12, 28), weekdays_only=True)
    windows = windows_from_dates(
        short, overrides={"test_start": "2022-07-01", "validation_start": "2022-01-01"}
    )
    assert first_forecast_test_start(date(2021, 1, 4), windows) == date(2022, 1, 1)
