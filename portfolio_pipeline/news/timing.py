"""When an article becomes usable: the UTC day it was published (24/7 markets) or the first
exchange session that can act on it.

Pure (no dagster). Point in time: an article published during UTC day ``d`` is usable from
date ``d`` on (known by the close of ``d``), never earlier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, time
from typing import Any

import polars as pl

from portfolio_pipeline.news.articles import SentimentInputError


def usable_date(published_at: pl.Expr) -> pl.Expr:
    """The first date an article may be used: the UTC calendar day it was published."""
    return published_at.dt.convert_time_zone("UTC").dt.date()


@dataclass(frozen=True)
class NewsTiming:
    """When an article becomes usable: on a 24/7 market the UTC day it was published
    (``close`` None, crypto); on an exchange the session it can first act on.

    close : the market's close in ``timezone`` (e.g. 16:00 America/New_York). An article
        published before the close of session ``d`` counts on ``d`` (known by its close); one
        published at or after the close, or on a day without a session (weekend, holiday),
        counts from the NEXT session.
    sessions : the exchange's session dates (the dates of the OHLCV data). An article after
        the last known session has no usable date yet and is left out.
    """

    close: time | None = None
    timezone: str = "UTC"
    sessions: tuple[date, ...] = ()

    @classmethod
    def from_settings(cls, settings: Any, sessions: Sequence[date] = ()) -> NewsTiming:
        """``PORTFOLIO_PIPELINE_MARKET_CLOSE`` (``HH:MM``, blank = crypto) and
        ``PORTFOLIO_PIPELINE_MARKET_TIMEZONE``."""
        text = getattr(settings, "market_close", None)
        if not text:
            return cls()
        try:
            close = time.fromisoformat(text)
        except ValueError:
            raise SentimentInputError(
                f"PORTFOLIO_PIPELINE_MARKET_CLOSE={text!r} is not a time (HH:MM)"
            ) from None
        return cls(close, getattr(settings, "market_timezone", "UTC"), tuple(sorted(sessions)))

    def with_usable_date(self, frame: pl.DataFrame, column: str = "date") -> pl.DataFrame:
        """``frame`` (with ``published_at``) plus ``column``: the first date it may be used."""
        if self.close is None:
            return frame.with_columns(usable_date(pl.col("published_at")).alias(column))
        if not self.sessions:
            raise SentimentInputError("news timing on an exchange needs its session dates")
        local = pl.col("published_at").dt.convert_time_zone(self.timezone)
        candidate = local.dt.date() + pl.when(local.dt.time() >= self.close).then(
            pl.duration(days=1)
        ).otherwise(pl.duration(days=0))
        sessions = pl.DataFrame({"_session": list(self.sessions)}, schema={"_session": pl.Date})
        return (
            frame.with_columns(candidate.alias("_candidate"), pl.int_range(pl.len()).alias("_i"))
            .sort("_candidate")
            .join_asof(sessions, left_on="_candidate", right_on="_session", strategy="forward")
            .sort("_i")
            .rename({"_session": column})
            .drop("_candidate", "_i")
        )
