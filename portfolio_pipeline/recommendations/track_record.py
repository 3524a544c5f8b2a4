"""Track record of past recommendations: once a run's horizon has elapsed, what did its
trades earn against not trading?

For each BUY or SELL of a run issued at the close of ``as_of`` with horizon ``H`` bars:

- ``horizon_end`` is the date ``H`` bars after ``as_of`` on the market calendar; a run is
  evaluated only once prices exist up to that date (never earlier: no look-ahead);
- ``realized_return`` is ``close[horizon_end] / price - 1`` with ``price`` the close the run
  priced the trade at (a symbol that stopped trading before ``horizon_end`` is valued at its
  last close, which is what a holder would have got);
- ``value_added`` (cash units) is what the trade added over the horizon against not trading,
  net of its cost: ``notional * realized_return - cost`` for a BUY and
  ``-notional * realized_return - cost`` for a SELL (the sale's proceeds sit in cash at 0).
  ``value_added_pct`` divides by the run's portfolio value.

The hit rate is the share of trades with ``value_added > 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from polars._typing import PolarsDataType  # polars' own alias for a column dtype

OUTCOME_SCHEMA: dict[str, PolarsDataType] = {
    "run_id": pl.Utf8,
    "as_of": pl.Date,
    "symbol": pl.Utf8,
    "action": pl.Utf8,
    "horizon": pl.Int64,
    "horizon_end": pl.Date,
    "notional": pl.Float64,
    "price": pl.Float64,
    "price_end": pl.Float64,
    "realized_return": pl.Float64,
    "cost": pl.Float64,
    "value_added": pl.Float64,
    "value_added_pct": pl.Float64,
    "evaluated_at": pl.Datetime("us", "UTC"),
}


@dataclass(frozen=True)
class TrackRecord:
    """Summary of evaluated trades: what users read first."""

    runs: int
    trades: int
    hit_rate: float
    value_added: float
    value_added_pct: float

    def describe(self) -> str:
        if not self.trades:
            return f"{self.runs} evaluated run(s), no trades yet"
        return (
            f"{self.runs} evaluated run(s), {self.trades} trades, hit rate {self.hit_rate:.0%}, "
            f"value added {self.value_added:+,.2f} ({self.value_added_pct:+.2%} of value, summed)"
        )


def evaluate_outcomes(
    recommendations: pl.DataFrame,
    ohlcv: pl.DataFrame,
    *,
    default_horizon: int,
    evaluated_at: datetime | None = None,
    skip_runs: set[str] | frozenset[str] = frozenset(),
) -> pl.DataFrame:
    """Outcome rows (:data:`OUTCOME_SCHEMA`) of every BUY/SELL whose horizon has elapsed.

    Parameters
    ----------
    recommendations : rows of ``portfolio.recommendations`` (``run_id, as_of, symbol, action,
        notional, price, horizon_days, cost_bps, portfolio_value``; the last two may be absent
        in runs written before they existed: cost then 0, pct null).
    ohlcv : ``symbol, date, close`` (the market calendar is its set of dates).
    default_horizon : bars used for rows without a forecast horizon.
    skip_runs : runs already evaluated (their rows are kept as first written).
    """
    evaluated_at = evaluated_at or datetime.now(UTC)
    trades = recommendations.filter(
        pl.col("action").is_in(["BUY", "SELL"]) & ~pl.col("run_id").is_in(list(skip_runs))
    )
    if trades.is_empty():
        return pl.DataFrame(schema=OUTCOME_SCHEMA)
    trades = _with_elapsed_horizon_ends(trades, ohlcv, default_horizon)
    # every row of a run shares as_of and horizon: a run is evaluated whole or not at all
    if trades.is_empty():
        return pl.DataFrame(schema=OUTCOME_SCHEMA)
    closes = ohlcv.select("symbol", "date", "close").sort("symbol", "date")
    ended = trades.sort("horizon_end").join_asof(
        closes.rename({"date": "horizon_end", "close": "price_end"}).sort("horizon_end"),
        on="horizon_end",
        by="symbol",
        strategy="backward",
        check_sortedness=False,  # both sides are sorted by date; polars cannot verify per group
    )
    out = _with_value_added(ended, evaluated_at)
    return (
        out.select(list(OUTCOME_SCHEMA))
        .cast(pl.Schema(OUTCOME_SCHEMA))
        .sort("as_of", "run_id", "symbol")
    )


def _with_elapsed_horizon_ends(
    trades: pl.DataFrame, ohlcv: pl.DataFrame, default_horizon: int
) -> pl.DataFrame:
    """The trades whose run's horizon has elapsed on the market calendar, with ``horizon`` and
    ``horizon_end`` (``H`` bars after ``as_of``)."""
    calendar = ohlcv.get_column("date").unique().sort().to_numpy().astype("datetime64[D]")
    run_horizon = trades.group_by("run_id").agg(
        pl.col("horizon_days").max().fill_null(default_horizon).alias("horizon")
    )
    trades = trades.join(run_horizon, on="run_id")
    position = (
        np.searchsorted(calendar, trades.get_column("as_of").to_numpy())
        + trades.get_column("horizon").to_numpy()
    )
    known = position < len(calendar)
    ends = np.where(known, calendar[np.minimum(position, len(calendar) - 1)], np.datetime64("NaT"))
    return trades.with_columns(pl.Series("horizon_end", ends).cast(pl.Date)).filter(
        pl.col("horizon_end").is_not_null()
    )


def _with_value_added(ended: pl.DataFrame, evaluated_at: datetime) -> pl.DataFrame:
    """Realized return, cost and value added against not trading (see the module docstring)."""
    cost_rate = (pl.col("cost_bps") if "cost_bps" in ended.columns else pl.lit(0.0)) / 10_000.0
    value = pl.col("portfolio_value") if "portfolio_value" in ended.columns else pl.lit(None)
    sign = pl.when(pl.col("action") == "BUY").then(1.0).otherwise(-1.0)
    out = ended.with_columns(
        (pl.col("price_end") / pl.col("price") - 1.0).alias("realized_return"),
        (pl.col("notional") * cost_rate.fill_null(0.0)).alias("cost"),
    ).with_columns(
        (sign * pl.col("notional") * pl.col("realized_return") - pl.col("cost")).alias(
            "value_added"
        ),
    )
    return out.with_columns(
        (pl.col("value_added") / value.cast(pl.Float64)).alias("value_added_pct"),
        pl.lit(evaluated_at).cast(pl.Datetime("us", "UTC")).alias("evaluated_at"),
        pl.col("horizon").cast(pl.Int64),
    )


def summarize(outcomes: pl.DataFrame) -> TrackRecord:
    """Hit rate and cumulative value added over every evaluated trade."""
    if outcomes.is_empty():
        return TrackRecord(0, 0, float("nan"), 0.0, 0.0)
    return TrackRecord(
        runs=outcomes.get_column("run_id").n_unique(),
        trades=outcomes.height,
        # the mean of a non-empty boolean column is a float; polars types it as any scalar
        hit_rate=float(cast(float, (outcomes.get_column("value_added") > 0).mean())),
        value_added=float(outcomes.get_column("value_added").sum()),
        value_added_pct=float(outcomes.get_column("value_added_pct").fill_null(0.0).sum()),
    )


def per_run(outcomes: pl.DataFrame) -> pl.DataFrame:
    """One row per evaluated run: trades, hit rate, value added and its running total."""
    if outcomes.is_empty():
        return pl.DataFrame(
            schema={
                "run_id": pl.Utf8,
                "as_of": pl.Date,
                "horizon_end": pl.Date,
                "trades": pl.UInt32,
                "hit_rate": pl.Float64,
                "value_added": pl.Float64,
                "value_added_pct": pl.Float64,
                "cumulative_value_added": pl.Float64,
            }
        )
    return (
        outcomes.group_by("run_id", "as_of")
        .agg(
            pl.col("horizon_end").max(),
            pl.len().alias("trades"),
            (pl.col("value_added") > 0).mean().alias("hit_rate"),
            pl.col("value_added").sum(),
            pl.col("value_added_pct").sum(),
        )
        .sort("as_of", "run_id")
        .with_columns(pl.col("value_added").cum_sum().alias("cumulative_value_added"))
    )
