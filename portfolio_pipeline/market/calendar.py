"""The trading calendar of a history, read from its dates: bars per year and normal gaps.

Pure (no dagster). Horizons and look-backs count BARS of an asset's own calendar (a crypto
day, an equity session), so "8 bars ahead" is 8 days on a 7-day market and about a week and a
half on a stock exchange. What is still needed from calendar time is:

- ``periods_per_year`` to annualise (365 for 7-day markets, 252 for business days), inferred
  here when the setting is blank;
- the largest NORMAL gap between two consecutive bars: a weekend or a one-day holiday is
  normal on an exchange, a missing week is not. A label or a return that spans an abnormal
  gap is undefined (the data has a hole there), see :func:`gap_free_ahead`.

Rules (documented because they decide which labels exist):

==============  =====================================  ============  ===================
kind            recognised by                          bars / year   normal gap (days)
==============  =====================================  ============  ===================
``7-day``       >= 20 % Sat/Sun dates, >= 300 a year     365           1
``business``    < 2 % Sat/Sun dates, >= 200 a year       252           4 (weekend + 1 holiday)
``irregular``   anything else (e.g. weekly bars)        measured      2 x the median gap
==============  =====================================  ============  ===================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from statistics import median

import polars as pl

SEVEN_DAY = "7-day"
BUSINESS = "business"
IRREGULAR = "irregular"
SEVEN_DAY_WEEKEND_SHARE = 0.20
BUSINESS_WEEKEND_SHARE = 0.02
# Density floors: a history with holes (or weekly bars) is not a daily calendar.
SEVEN_DAY_MIN_BARS = 300
BUSINESS_MIN_BARS = 200
# Friday -> Tuesday after a Monday holiday (or Thursday -> Monday after Good Friday).
BUSINESS_MAX_NORMAL_GAP_DAYS = 4


class CalendarError(ValueError):
    """Too few dates to tell the calendar, or an invalid calendar setting."""


@dataclass(frozen=True)
class TradingCalendar:
    """What the pipeline needs to know about the data's calendar.

    kind : ``7-day`` | ``business`` | ``irregular``.
    periods_per_year : bars per year used to annualise.
    max_normal_gap_days : the largest gap, in calendar days, between two consecutive bars that
        is still a normal part of the calendar (1 = every day has a bar).
    source : ``inferred`` (from the dates) or ``setting`` (periods_per_year was configured).
    """

    kind: str
    periods_per_year: int
    max_normal_gap_days: int
    source: str = "inferred"

    def __post_init__(self) -> None:
        if self.periods_per_year <= 0:
            raise CalendarError(f"periods_per_year must be positive, got {self.periods_per_year}")
        if self.max_normal_gap_days < 1:
            raise CalendarError(f"max_normal_gap_days must be >= 1, got {self.max_normal_gap_days}")

    def as_metadata(self) -> dict[str, object]:
        return {
            "calendar": self.kind,
            "periods_per_year": self.periods_per_year,
            "periods_per_year_source": self.source,
            "max_normal_gap_days": self.max_normal_gap_days,
        }


SEVEN_DAY_CALENDAR = TradingCalendar(SEVEN_DAY, 365, 1)
BUSINESS_CALENDAR = TradingCalendar(BUSINESS, 252, BUSINESS_MAX_NORMAL_GAP_DAYS)


def infer_calendar(dates: Iterable[date], periods_per_year: int | None = None) -> TradingCalendar:
    """The calendar of ``dates`` (any order, duplicates allowed: e.g. every symbol's rows).

    Parameters
    ----------
    dates : bar dates.
    periods_per_year : the configured value, when set; it wins over the inferred one (the
        kind and the normal gap are still read from the dates) and ``source`` says so.

    Raises
    ------
    CalendarError
        With fewer than 2 distinct dates (nothing to infer from) and no setting.
    """
    distinct = sorted(set(dates))
    if len(distinct) < 2:
        if periods_per_year is None:
            raise CalendarError(
                f"cannot infer the calendar from {len(distinct)} distinct date(s); set "
                "PORTFOLIO_PIPELINE_PERIODS_PER_YEAR"
            )
        kind = SEVEN_DAY if periods_per_year >= 300 else BUSINESS
        base = SEVEN_DAY_CALENDAR if kind == SEVEN_DAY else BUSINESS_CALENDAR
        return TradingCalendar(kind, periods_per_year, base.max_normal_gap_days, "setting")
    weekend_share = sum(d.weekday() >= 5 for d in distinct) / len(distinct)
    span_years = max((distinct[-1] - distinct[0]).days, 1) / 365.25
    measured = (len(distinct) - 1) / span_years
    if weekend_share >= SEVEN_DAY_WEEKEND_SHARE and measured >= SEVEN_DAY_MIN_BARS:
        inferred = SEVEN_DAY_CALENDAR
    elif weekend_share < BUSINESS_WEEKEND_SHARE and measured >= BUSINESS_MIN_BARS:
        inferred = BUSINESS_CALENDAR
    else:
        gaps = [(b - a).days for a, b in zip(distinct, distinct[1:], strict=False)]
        inferred = TradingCalendar(
            IRREGULAR, max(1, round(measured)), max(1, int(2 * median(gaps)))
        )
    if periods_per_year is None:
        return inferred
    return TradingCalendar(inferred.kind, periods_per_year, inferred.max_normal_gap_days, "setting")


def gap_free_ahead(horizon: int, max_gap_days: int, by: str = "symbol") -> pl.Expr:
    """Boolean expression: the row ``horizon`` bars later exists (same ``by`` group) and no
    gap between consecutive bars from here to there exceeds ``max_gap_days``.

    Requires the frame sorted by ``by``, ``date``. A weekend inside an 8-session horizon is
    fine on a business calendar; a missing week is not, and the label there is undefined.
    """
    if horizon < 1:
        raise CalendarError(f"horizon must be a positive number of bars, got {horizon}")
    gap = pl.col("date").diff().dt.total_days()
    abnormal = (gap > max_gap_days).fill_null(False).cast(pl.Int32)
    # Abnormal gaps among the next `horizon` steps = rolling sum over rows t+1..t+horizon.
    ahead = abnormal.rolling_sum(horizon, min_samples=horizon).shift(-horizon)
    return (ahead == 0).fill_null(False).over(by)


def calendar_from_settings(dates: Iterable[date], settings: object) -> TradingCalendar:
    """:func:`infer_calendar` with ``settings.periods_per_year`` (None = infer)."""
    return infer_calendar(dates, getattr(settings, "periods_per_year", None))
