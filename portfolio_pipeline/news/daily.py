"""Daily, point-in-time sentiment per symbol (table ``features.daily_sentiment``).

Pure (no dagster): the mean score of the articles usable each day and an exponentially
decayed average that carries it across days without news.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import polars as pl

from portfolio_pipeline.news.articles import MARKET_SYMBOL, SentimentInputError
from portfolio_pipeline.news.timing import NewsTiming


def daily_sentiment(
    news_sentiment: pl.DataFrame,
    symbols: Sequence[str],
    start: date,
    end: date,
    half_life_days: float = 3.0,
    timing: NewsTiming | None = None,
) -> pl.DataFrame:
    """Daily, point-in-time sentiment per symbol (table ``features.daily_sentiment``).

    Parameters
    ----------
    news_sentiment : polars.DataFrame
        Output of :func:`~portfolio_pipeline.news.articles.score_news` (id, symbol,
        published_at, score, ...). Articles before ``start`` feed the decayed average; articles after ``end`` are ignored; rows
        for symbols outside ``symbols`` (and not MARKET) are ignored.
    symbols : sequence of str
        Universe; ``"MARKET"`` is always added.
    start, end : datetime.date
        Inclusive date range of the output.
    half_life_days : float
        Half-life of ``sentiment_ewm`` in days.
    timing : NewsTiming, optional
        When an article becomes usable (default: the UTC day it was published, crypto; on
        an exchange, the session it can first act on).

    Returns
    -------
    polars.DataFrame
        One row per (symbol, date) for EVERY symbol (plus MARKET) and EVERY date in
        [start, end]; shape ((len(symbols) + 1) * n_days, 7), sorted by (symbol, date):

        - ``date``: the first day the news is usable = UTC date of ``published_at`` (or the
          first session that can act on it, with an exchange ``timing``).
        - ``sentiment``: mean score of the symbol's articles usable that day; null if none.
        - ``news_count``: number of those articles (0 on days without news).
        - ``sentiment_ewm``: e_d = lambda * e_{d-1} + (1 - lambda) * sentiment_d, with
          sentiment_d := 0 on days without news and lambda = 0.5 ** (1 / half_life_days);
          starts at 0, so it decays toward 0 when news stops and equals s after a long run
          of days whose mean is s. In [-1, 1].
        - ``market_sentiment``, ``market_sentiment_ewm``: the MARKET row's values that day.

        Every value for date d uses only articles published on or before UTC day d.
    """
    _check_daily_inputs(news_sentiment, start, end, half_life_days)
    universe = list(dict.fromkeys([*symbols, MARKET_SYMBOL]))
    daily = _usable_daily_means(news_sentiment, universe, end, timing or NewsTiming())
    frame = _decayed_daily_grid(daily, universe, start, end, decay=0.5 ** (1.0 / half_life_days))
    return _with_market_columns(frame)


def _check_daily_inputs(
    news_sentiment: pl.DataFrame, start: date, end: date, half_life_days: float
) -> None:
    if end < start:
        raise ValueError(f"daily_sentiment: end {end} is before start {start}")
    if half_life_days <= 0:
        raise ValueError(f"half_life_days must be positive, got {half_life_days}")
    required = ("symbol", "published_at", "score")
    missing = [c for c in required if c not in news_sentiment.columns]
    if missing:
        raise SentimentInputError(f"news_sentiment lacks required columns {missing}")


def _with_market_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Every symbol's rows with the MARKET row's sentiment and decayed sentiment that day."""
    market = frame.filter(pl.col("symbol") == MARKET_SYMBOL).select(
        "date",
        pl.col("sentiment").alias("market_sentiment"),
        pl.col("sentiment_ewm").alias("market_sentiment_ewm"),
    )
    return (
        frame.join(market, on="date", how="left")
        .select(
            "symbol",
            "date",
            "sentiment",
            "news_count",
            "sentiment_ewm",
            "market_sentiment",
            "market_sentiment_ewm",
        )
        .sort("symbol", "date")
    )


def _usable_daily_means(
    news_sentiment: pl.DataFrame, universe: list[str], end: date, timing: NewsTiming
) -> pl.DataFrame:
    """(symbol, date, sentiment, news_count) on the days the articles became usable."""
    return (
        timing.with_usable_date(news_sentiment.filter(pl.col("symbol").is_in(universe)))
        .lazy()
        .filter(pl.col("date") <= end)
        .group_by("symbol", "date")
        .agg(
            # Summed in value order: the same articles give the same bits whatever order the
            # warehouse returned them in (downstream fold-cache keys hash these values).
            # (a running sum over the sorted scores: polars may drop a sort before mean())
            (pl.col("score").sort().cum_sum().last() / pl.len()).alias("sentiment"),
            pl.len().cast(pl.Int32).alias("news_count"),
        )
        .collect()
    )


def _decayed_daily_grid(
    daily: pl.DataFrame, universe: list[str], start: date, end: date, decay: float
) -> pl.DataFrame:
    """Every (symbol, day) in [start, end] with the day's news and the decayed average."""
    first_news = daily["date"].min()
    # The recursion starts one day before the earliest day it needs, at 0, so that the first
    # news day contributes (1 - lambda) * s like any other (polars' adjust=False EWM would
    # start at s instead).
    grid_start = min(start, first_news) if isinstance(first_news, date) else start
    grid_start -= timedelta(days=1)
    dates = pl.date_range(grid_start, end, interval="1d", eager=True).alias("date")
    grid = pl.DataFrame({"symbol": universe}).join(dates.to_frame(), how="cross")
    return (
        grid.join(daily, on=["symbol", "date"], how="left")
        .with_columns(pl.col("news_count").fill_null(0))
        .sort("symbol", "date")
        .with_columns(
            pl.when(pl.col("date") == grid_start)
            .then(0.0)
            .otherwise(pl.col("sentiment").fill_null(0.0))
            .ewm_mean(alpha=1.0 - decay, adjust=False)
            .over("symbol")
            .alias("sentiment_ewm")
        )
        .filter(pl.col("date").is_between(start, end))
    )
