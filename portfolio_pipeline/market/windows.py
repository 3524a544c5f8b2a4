"""Train / validation / test windows derived from the data's own dates.

Pure (no dagster, no polars needed). Every part of the pipeline that splits history - the
strategy backtests, the recommendation backtest, the DRL search - takes its windows from
:func:`windows_from_dates`, so a live run in 2026 evaluates on 2024-2026 and a history that
ends in 2022 still has a test window.

Defaults (SPEC): the test window is the last ``test_years`` years up to the latest complete
day, validation is the ``validation_years`` before it, training is everything earlier. On
the shipped sample (2017-08-17 .. 2025-12-31) this gives training up to 2022-12-31,
validation 2023 and test 2024-01-01 .. 2025-12-31.

All six bounds are INCLUSIVE calendar dates. Code that works on half-open ranges (the DRL
:class:`~portfolio_pipeline.policies.drl.Splits`) converts with :meth:`EvaluationWindows.half_open`.
Purge and embargo between training labels and the later windows are applied by the code that
builds labels (walk-forward folds, forecast training rows), not here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

WINDOW_FIELDS: tuple[str, ...] = (
    "train_start",
    "train_end",
    "validation_start",
    "validation_end",
    "test_start",
    "test_end",
)
DEFAULT_TEST_YEARS = 2
DEFAULT_VALIDATION_YEARS = 1


class WindowsError(ValueError):
    """The data (or the overrides) cannot give ordered, non-empty windows."""


@dataclass(frozen=True)
class EvaluationWindows:
    """Inclusive train / validation / test windows.

    ``train_start <= train_end < validation_start <= validation_end < test_start <= test_end``.
    ``source`` says where they came from: ``data`` (all derived) or ``data+settings`` (some
    bounds set by the user); it is recorded next to the windows in every table.
    """

    train_start: date
    train_end: date
    validation_start: date
    validation_end: date
    test_start: date
    test_end: date
    source: str = "data"

    def __post_init__(self) -> None:
        bounds = [getattr(self, name) for name in WINDOW_FIELDS]
        for name, value in zip(WINDOW_FIELDS, bounds, strict=True):
            if not isinstance(value, date) or isinstance(value, datetime):
                raise WindowsError(f"window bound {name} must be a date, got {value!r}")
        ordered = (
            self.train_start <= self.train_end < self.validation_start <= self.validation_end
            and self.validation_end < self.test_start <= self.test_end
        )
        if not ordered:
            raise WindowsError(
                "windows must satisfy train_start <= train_end < validation_start <= "
                "validation_end < test_start <= test_end, got "
                + ", ".join(f"{n}={v}" for n, v in zip(WINDOW_FIELDS, bounds, strict=True))
            )

    @property
    def train(self) -> tuple[date, date]:
        return self.train_start, self.train_end

    @property
    def validation(self) -> tuple[date, date]:
        return self.validation_start, self.validation_end

    @property
    def test(self) -> tuple[date, date]:
        return self.test_start, self.test_end

    def window(self, name: str) -> tuple[date, date]:
        """``(start, end)`` of ``train`` | ``validation`` | ``test`` (inclusive)."""
        if name not in ("train", "validation", "test"):
            raise WindowsError(f"window must be train, validation or test, got {name!r}")
        return getattr(self, name)

    def half_open(self) -> tuple[date, date, date, date]:
        """``(train_start, validation_start, test_start, test_end + 1 day)``.

        The boundaries of contiguous half-open ranges ``[train_start, validation_start)``,
        ``[validation_start, test_start)``, ``[test_start, test_end + 1)``: the shape the DRL
        splits use. A gap between ``train_end`` and ``validation_start`` (a purge set by the
        user) is folded into training here, which stays leak-free: it is still before the
        validation window.
        """
        return (
            self.train_start,
            self.validation_start,
            self.test_start,
            self.test_end + timedelta(days=1),
        )

    def as_dict(self) -> dict[str, Any]:
        """The six bounds and ``source``: columns a table records next to its rows."""
        return asdict(self)

    def as_metadata(self) -> dict[str, str]:
        """``{"train_window": "2017-08-17..2022-12-31", ...}`` for asset metadata."""
        return {
            "train_window": f"{self.train_start}..{self.train_end}",
            "validation_window": f"{self.validation_start}..{self.validation_end}",
            "test_window": f"{self.test_start}..{self.test_end}",
            "windows_source": self.source,
        }


def years_before(day: date, years: int) -> date:
    """``day`` moved back ``years`` calendar years (29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _as_date(name: str, value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise WindowsError(f"window override {name}={value!r} is not an ISO date") from exc
    raise WindowsError(f"window override {name}={value!r} is not a date")


def _clean_overrides(overrides: Mapping[str, Any] | None) -> dict[str, date]:
    if not overrides:
        return {}
    unknown = sorted(set(overrides) - set(WINDOW_FIELDS))
    if unknown:
        raise WindowsError(f"unknown window overrides {unknown}; known: {', '.join(WINDOW_FIELDS)}")
    # None / "" mean "not set" so launchpad configs can leave a field blank.
    return {
        name: _as_date(name, value)
        for name, value in overrides.items()
        if value is not None and value != ""
    }


def windows_from_dates(
    dates: Iterable[date],
    *,
    test_years: int = DEFAULT_TEST_YEARS,
    validation_years: int = DEFAULT_VALIDATION_YEARS,
    overrides: Mapping[str, Any] | None = None,
    today: date | None = None,
) -> EvaluationWindows:
    """Windows from the dates of the history at hand.

    Parameters
    ----------
    dates : the bar dates of the data (any order, duplicates allowed; e.g. ``raw_ohlcv.date``).
    test_years, validation_years : lengths of the test and validation windows in years.
    overrides : any subset of :data:`WINDOW_FIELDS` (dates or ISO strings; ``None``/``""``
        = unset). Derived bounds cascade from the set ones: setting ``test_start`` alone moves
        validation and training with it.
    today : the current UTC date, when known. A bar dated ``today`` or later is still
        forming and is not a complete day, so the test window ends before it.

    Returns
    -------
    EvaluationWindows
        ``test_end`` = latest complete day; ``test_start`` = the day after ``test_end`` moved
        back ``test_years`` years; validation = the ``validation_years`` before that;
        training = from the first date to the day before validation.

    Raises
    ------
    WindowsError
        When there are no dates, the lengths are not positive, an override is malformed, or
        the history is too short to leave a training window (names the dates and the setting
        to change).
    """
    if test_years < 1 or validation_years < 1:
        raise WindowsError(
            f"test_years and validation_years must be >= 1, got {test_years}, {validation_years}"
        )
    set_bounds = _clean_overrides(overrides)
    complete = sorted({d for d in dates if today is None or d < today})
    if not complete:
        raise WindowsError(
            "windows: no complete day in the data"
            + (f" before {today}" if today is not None else "")
        )
    first, latest = complete[0], complete[-1]
    windows = _cascade_bounds(set_bounds, first, latest, test_years, validation_years)
    if windows.test_start > latest:
        raise WindowsError(
            f"windows: test window {windows.test_start}..{windows.test_end} starts after the "
            f"latest complete day {latest}"
        )
    return windows


def _cascade_bounds(
    set_bounds: dict[str, date],
    first: date,
    latest: date,
    test_years: int,
    validation_years: int,
) -> EvaluationWindows:
    """The windows from the set bounds, each unset one derived from the next later window
    (test from the latest complete day, validation before test, training before validation);
    raises when no training window is left."""
    test_end = set_bounds.get("test_end", latest)
    test_start = set_bounds.get(
        "test_start", years_before(test_end, test_years) + timedelta(days=1)
    )
    validation_end = set_bounds.get("validation_end", test_start - timedelta(days=1))
    validation_start = set_bounds.get(
        "validation_start", years_before(validation_end, validation_years) + timedelta(days=1)
    )
    train_end = set_bounds.get("train_end", validation_start - timedelta(days=1))
    train_start = set_bounds.get("train_start", first)
    if train_end < train_start:
        raise WindowsError(
            f"windows: the history {first}..{latest} is too short for a training window before "
            f"validation {validation_start}..{validation_end} and test {test_start}..{test_end}; "
            "shorten PORTFOLIO_PIPELINE_TEST_YEARS / PORTFOLIO_PIPELINE_VALIDATION_YEARS or set "
            "the window dates"
        )
    windows = EvaluationWindows(
        train_start=train_start,
        train_end=train_end,
        validation_start=validation_start,
        validation_end=validation_end,
        test_start=test_start,
        test_end=test_end,
        source="data+settings" if set_bounds else "data",
    )
    return windows


def with_overrides(windows: EvaluationWindows, overrides: Mapping[str, Any]) -> EvaluationWindows:
    """A copy of ``windows`` with some bounds replaced (no cascading; checked for order)."""
    set_bounds = _clean_overrides(overrides)
    if not set_bounds:
        return windows
    return replace(windows, **set_bounds, source="data+settings")


def windows_from_settings(
    dates: Iterable[date],
    settings: Any,
    *,
    launchpad: Mapping[str, Any] | None = None,
    today: date | None = None,
) -> EvaluationWindows:
    """:func:`windows_from_dates` with the lengths and bounds of a
    :class:`~portfolio_pipeline.settings.Settings` (``PORTFOLIO_PIPELINE_TEST_YEARS`` …).

    ``launchpad``: bounds set in a run's config; they win over the environment settings.
    ``today``: defaults to the current UTC date for the live ``binance`` source (its newest
    candle may still be forming), and to None (every date is complete) otherwise.
    """
    if today is None and getattr(settings, "ohlcv_source", "") == "binance":
        today = datetime.now(UTC).date()
    return windows_from_dates(
        dates,
        test_years=settings.test_years,
        validation_years=settings.validation_years,
        overrides={**settings.window_overrides, **_clean_overrides(launchpad)},
        today=today,
    )


def with_window_columns(frame: Any, windows: EvaluationWindows) -> Any:
    """``frame`` (polars) plus the six window bounds and ``windows_source`` as columns, so a
    table says which windows its rows were computed with."""
    import polars as pl

    return frame.with_columns(
        *(pl.lit(getattr(windows, name), dtype=pl.Date).alias(name) for name in WINDOW_FIELDS),
        pl.lit(windows.source).alias("windows_source"),
    )


def first_forecast_test_start(
    first_date: date, windows: EvaluationWindows, min_history_years: int = 2
) -> date:
    """Default start of the forecasts' walk-forward: the first 1 January at least
    ``min_history_years`` after ``first_date``, but no later than the validation start, so the
    validation and test windows (strategy choice, DRL) always see out-of-sample forecasts.
    On the shipped sample (from 2017-08-17) this is 2020-01-01."""
    enough = years_before(first_date, -min_history_years)
    january = enough if (enough.month, enough.day) == (1, 1) else date(enough.year + 1, 1, 1)
    return min(january, windows.validation_start)
