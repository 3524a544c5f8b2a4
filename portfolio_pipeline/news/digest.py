"""The daily news digest: per symbol and usable day, the most opinionated headlines.

Pure (no dagster).
"""

from __future__ import annotations

import polars as pl

from portfolio_pipeline.news.timing import NewsTiming


def news_digest(
    news: pl.DataFrame,
    news_sentiment: pl.DataFrame,
    top_n: int = 3,
    timing: NewsTiming | None = None,
) -> pl.DataFrame:
    """The ``top_n`` most opinionated headlines per symbol and usable day.

    Parameters
    ----------
    news : polars.DataFrame
        Raw news (id, title, url, source ...).
    news_sentiment : polars.DataFrame
        Output of :func:`~portfolio_pipeline.news.articles.score_news`.
    top_n : int
        Headlines kept per (symbol, date), by |score| descending (ties: latest first).

    Returns
    -------
    polars.DataFrame
        Columns symbol, date (UTC day published = first usable day), rank (1 = strongest),
        id, published_at, title, score, url, source; sorted by (symbol, date, rank). MARKET
        digests cover all articles.
    """
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    text_columns = [c for c in ("title", "url", "source") if c in news.columns]
    articles = news.select(
        pl.col("id").cast(pl.String),
        *text_columns,
        *[
            pl.lit(None, dtype=pl.String).alias(c)
            for c in ("title", "url", "source")
            if c not in news.columns
        ],
    )
    scored = news_sentiment.select("id", "symbol", "published_at", "score")
    return (
        (timing or NewsTiming())
        .with_usable_date(scored.join(articles, on="id", how="left"))
        .filter(pl.col("date").is_not_null())
        .sort(
            [pl.col("score").abs(), "published_at", "id"],
            descending=[True, True, False],
        )
        .with_columns(
            pl.int_range(1, pl.len() + 1).over("symbol", "date").cast(pl.Int32).alias("rank")
        )
        .filter(pl.col("rank") <= top_n)
        .select("symbol", "date", "rank", "id", "published_at", "title", "score", "url", "source")
        .sort("symbol", "date", "rank")
    )
