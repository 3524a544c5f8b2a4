"""Train / fit / tune / validation / test windows of the DRL policies.

Pure (no dagster). Windows are half-open ``[start, end)`` date ranges; the portfolio is held
over the window (decisions at ``start .. end-2`` earn the returns of ``start+1 .. end-1``), so
a policy trained on the training window never sees a validation or test price.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from portfolio_pipeline.market.windows import EvaluationWindows, windows_from_dates, years_before
from portfolio_pipeline.policies.env_data import EnvData

WindowLike = tuple[Any, Any]


@dataclass(frozen=True)
class Splits:
    """Train / validation / test windows, each half-open ``[start, end)``, and the inner split.

    No fixed dates: build them from the data with :meth:`from_dates` (test = the last 2
    years, validation = the year before, see :mod:`portfolio_pipeline.market.windows`) or from
    :class:`~portfolio_pipeline.market.windows.EvaluationWindows` with :meth:`from_windows`.

    ``tune_start`` splits the training window in two so that the DRL is chosen on data the
    pipeline's strategy selection never uses: policies learn on ``fit`` =
    ``[train_start, tune_start)`` and the search picks algorithm, hyperparameters and the
    deployed seed on ``tune`` = ``[tune_start, train_end)``. The validation window, where the
    recommendation strategy is chosen among all strategies (the DRL one included), and the
    test window are then unseen by every DRL choice. :meth:`from_windows` puts it
    ``tune_years`` (1) before the end of training, or halfway through a shorter training
    window. ``tune_start=None`` tunes on the validation window itself (the biased design this
    replaced; kept for comparisons).
    """

    train_start: date
    train_end: date
    val_end: date
    test_end: date
    tune_start: date | None = None

    @classmethod
    def from_windows(cls, windows: EvaluationWindows, *, tune_years: int | None = 1) -> Splits:
        train_start, train_end, val_end, test_end = windows.half_open()
        tune_start = None
        if tune_years:
            halfway = train_start + (train_end - train_start) / 2
            tune_start = max(years_before(train_end, tune_years), halfway)
        return cls(train_start, train_end, val_end, test_end, tune_start)

    @classmethod
    def from_dates(cls, dates: Any, *, tune_years: int | None = 1, **kwargs: Any) -> Splits:
        """Default windows of ``dates`` (any iterable of dates or a datetime64 array)."""
        values = np.asarray(dates).astype("datetime64[D]").tolist()
        return cls.from_windows(windows_from_dates(values, **kwargs), tune_years=tune_years)

    def __post_init__(self) -> None:
        if not self.train_start < self.train_end < self.val_end < self.test_end:
            raise ValueError(
                "splits must satisfy train_start < train_end <= validation < val_end <= test "
                f"< test_end, got {self.train_start}, {self.train_end}, {self.val_end}, "
                f"{self.test_end}"
            )
        if self.tune_start is not None and not self.train_start < self.tune_start < self.train_end:
            raise ValueError(
                "splits must satisfy train_start < tune_start < train_end (the tuning window "
                f"is the end of the training window), got {self.train_start}, "
                f"{self.tune_start}, {self.train_end}"
            )

    @property
    def train(self) -> tuple[date, date]:
        """The whole training window (fit + tune)."""
        return self.train_start, self.train_end

    @property
    def fit(self) -> tuple[date, date]:
        """Where policies learn: the training window before ``tune_start``."""
        return self.train_start, self.tune_start or self.train_end

    @property
    def tune(self) -> tuple[date, date]:
        """Where the DRL search and the seed choice score policies."""
        if self.tune_start is None:
            return self.validation
        return self.tune_start, self.train_end

    @property
    def validation(self) -> tuple[date, date]:
        return self.train_end, self.val_end

    @property
    def test(self) -> tuple[date, date]:
        return self.val_end, self.test_end


def decision_window(window: WindowLike) -> WindowLike:
    """The env window whose net returns are those of the dates ``[start, end)``.

    A backtest over ``[start, end]`` decides first at the close of the day before ``start``
    and books the returns of ``start`` onwards; an env window ``[start, end)`` decides first
    at ``start``. Evaluating policies on ``(start - 1 day, end)`` gives the same booked days
    as the backtest, from the same all-cash start, so the two agree exactly. The extra
    decision uses only data known at the close of ``start - 1 day``.
    """
    start, end = window
    if isinstance(start, date):
        return start - timedelta(days=1), end
    return window


def window_dates(env_data: EnvData, window: WindowLike) -> tuple[date, date]:
    """A window as (first date, exclusive end date) of the panel, for records."""
    first, stop = env_data.window_indices(*window)
    end = env_data.dates[stop - 1] + np.timedelta64(1, "D")
    return env_data.date_at(first), end.astype("datetime64[D]").item()
