"""Liquidity: days to sell each position at a share of its average daily volume."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from portfolio_pipeline.settings import CASH_SYMBOL


def compute_liquidity(
    ohlcv: pl.DataFrame,
    positions: pl.DataFrame,
    as_of: date,
    *,
    portfolio: str = "current",
    participation: float = 0.10,
    window_days: int = 30,
    include_universe: bool = True,
    cash_symbol: str = CASH_SYMBOL,
) -> pl.DataFrame:
    """Days to sell each position trading ``participation`` of its average daily USDT volume.

    Parameters
    ----------
    positions : ``symbol, value`` in USDT (e.g. from ``holdings.value_holdings``); cash is
        skipped.
    window_days : the average is over the calendar days ``(as_of - window_days, as_of]``.
    include_universe : also add a row (position_value 0) for every symbol that traded in the
        window, so the frame can gate BUYs of symbols not held yet.

    Returns
    -------
    polars.DataFrame
        ``as_of, portfolio, symbol, position_value, adv_quote, adv_source, days_to_liquidate``.
        ``adv_source`` is ``quote_volume`` when the exchange reported USDT volume on every day,
        ``volume_x_close`` when it reported none (base volume times close used instead: an
        approximation), ``mixed`` otherwise, ``none`` when the symbol did not trade in the
        window (then ``days_to_liquidate`` is null: cannot be sold).
    """
    if not 0 < participation <= 1:
        raise ValueError(f"participation must be in (0, 1], got {participation}")
    first = as_of - timedelta(days=window_days - 1)
    adv = _average_daily_volume(ohlcv.filter(pl.col("date").is_between(first, as_of)))
    held = positions.filter(pl.col("symbol") != cash_symbol).select(
        "symbol", pl.col("value").cast(pl.Float64).alias("position_value")
    )
    if include_universe:  # every symbol seen in the window too, so buys can be checked
        held = held.join(adv.select("symbol"), on="symbol", how="full", coalesce=True)
        held = held.with_columns(pl.col("position_value").fill_null(0.0))
    out = held.join(adv, on="symbol", how="left").with_columns(_adv_source())
    out = out.with_columns(
        pl.when(pl.col("adv_quote") > 0)
        .then(pl.col("position_value") / (participation * pl.col("adv_quote")))
        .otherwise(None)
        .alias("days_to_liquidate")
    )
    return out.select(
        pl.lit(as_of).alias("as_of"),
        pl.lit(portfolio).alias("portfolio"),
        "symbol",
        "position_value",
        "adv_quote",
        "adv_source",
        "days_to_liquidate",
    ).sort("symbol")


def _average_daily_volume(window: pl.DataFrame) -> pl.DataFrame:
    """Per symbol of the window: the mean USDT volume (``adv_quote``; volume x close where the
    quote volume is missing), the days with a quote volume and the days traded."""
    has_quote = "quote_volume" in window.columns
    usd_volume = (
        pl.coalesce(pl.col("quote_volume"), pl.col("volume") * pl.col("close"))
        if has_quote
        else pl.col("volume") * pl.col("close")
    )
    quote_known = pl.col("quote_volume").is_not_null() if has_quote else pl.lit(False)
    return window.group_by("symbol").agg(
        usd_volume.mean().alias("adv_quote"),
        quote_known.sum().alias("n_quote"),
        pl.len().alias("n_days"),
    )


def _adv_source() -> pl.Expr:
    """``adv_source``: where the average volume came from (see :func:`compute_liquidity`)."""
    return (
        pl.when(pl.col("n_days").is_null())
        .then(pl.lit("none"))
        .when(pl.col("n_quote") == pl.col("n_days"))
        .then(pl.lit("quote_volume"))
        .when(pl.col("n_quote") == 0)
        .then(pl.lit("volume_x_close"))
        .otherwise(pl.lit("mixed"))
        .alias("adv_source")
    )
