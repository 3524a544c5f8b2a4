"""Articles scored once and fanned out to their symbols (table ``features.news_sentiment``).

Pure (no dagster). Every article gets one row per tagged symbol and one market-wide row
(symbol ``MARKET``), all sharing the article's text-level score.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from portfolio_pipeline.news.scoring import SentimentScorer

MARKET_SYMBOL = "MARKET"

NEWS_SENTIMENT_SCHEMA = pl.Schema(
    {
        "id": pl.String(),
        "symbol": pl.String(),
        "published_at": pl.Datetime("us", "UTC"),
        "score": pl.Float64(),
        "p_positive": pl.Float64(),
        "p_neutral": pl.Float64(),
        "p_negative": pl.Float64(),
        "model": pl.String(),
    }
)


class SentimentInputError(ValueError):
    """News input breaks a rule; the message names the rule and the article ids."""


def _validate_news(news: pl.DataFrame, required: Sequence[str]) -> None:
    missing = [c for c in required if c not in news.columns]
    if missing:
        raise SentimentInputError(f"news frame lacks required columns {missing}")
    dtype = news.schema["published_at"]
    if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
        raise SentimentInputError(
            f"news column 'published_at' must be a time-zone-aware Datetime (UTC), got {dtype}: "
            "a naive timestamp cannot be placed on a UTC day"
        )
    null_ids = news.filter(pl.col("id").is_null()).height
    if null_ids:
        raise SentimentInputError(f"{null_ids} news rows have a null id")
    no_time = news.filter(pl.col("published_at").is_null())["id"]
    if no_time.len():
        raise SentimentInputError(
            f"news rows without published_at cannot be placed in time: ids {no_time.head(5).to_list()}"
        )
    duplicated = news.group_by("id").len().filter(pl.col("len") > 1)["id"]
    if duplicated.len():
        raise SentimentInputError(f"duplicate news ids: {duplicated.head(5).to_list()}")


def article_text(news: pl.DataFrame) -> pl.Series:
    """``title + ". " + summary`` per article (either part may be null or empty)."""
    title = pl.col("title").fill_null("").str.strip_chars()
    summary = (
        pl.col("summary").fill_null("").str.strip_chars()
        if "summary" in news.columns
        else pl.lit("")
    )
    return news.select(
        pl.when((title != "") & (summary != ""))
        .then(pl.concat_str(title.str.strip_chars_end(". "), pl.lit(". "), summary))
        .otherwise(pl.concat_str(title, summary))
        .alias("text")
    ).to_series()


def score_news(news: pl.DataFrame, scorer: SentimentScorer) -> pl.DataFrame:
    """Score every article once and fan it out to its symbols (table ``features.news_sentiment``).

    Parameters
    ----------
    news : polars.DataFrame
        Raw news, shape (n_articles, ...): id (unique), published_at (Datetime, tz-aware),
        title, summary, symbols (List[String], may be null/empty).
    scorer : SentimentScorer
        From :func:`~portfolio_pipeline.news.loading.load_sentiment_scorer`.

    Returns
    -------
    polars.DataFrame
        One row per (article, tagged symbol) AND one row per article with symbol
        ``"MARKET"`` (the market-wide reading: every article counts for the market, tagged or
        not). Shape (n_articles + n_tagged_pairs, 8): id, symbol, published_at (UTC), score
        (p_positive - p_negative, in [-1, 1]), p_positive, p_neutral, p_negative, model
        (``scorer.name``). The score is the article's (text-level, not per entity), so all
        rows of an article share it. Sorted by (published_at, id, symbol).
    """
    _validate_news(news, ("id", "published_at", "title"))
    if news.height == 0:
        return pl.DataFrame(schema=NEWS_SENTIMENT_SCHEMA)
    scores = scorer.score_texts(article_text(news).to_list())
    if scores.height != news.height:
        raise RuntimeError(
            f"scorer {scorer.name} returned {scores.height} rows for {news.height} texts"
        )
    symbols = (
        pl.col("symbols").fill_null(pl.lit([], dtype=pl.List(pl.String)))
        if "symbols" in news.columns
        else pl.lit([], dtype=pl.List(pl.String))
    )
    articles = pl.concat(
        [
            news.select(
                pl.col("id").cast(pl.String),
                pl.col("published_at").dt.convert_time_zone("UTC").dt.cast_time_unit("us"),
                symbols.list.unique().list.concat(pl.lit([MARKET_SYMBOL])).alias("symbol"),
            ),
            scores,
        ],
        how="horizontal",
    )
    return (
        articles.explode("symbol")
        .filter(pl.col("symbol").is_not_null() & (pl.col("symbol") != ""))
        .unique(["id", "symbol"], keep="first", maintain_order=True)
        .with_columns(pl.lit(scorer.name).alias("model"))
        .select(list(NEWS_SENTIMENT_SCHEMA))
        .cast(NEWS_SENTIMENT_SCHEMA)
        .sort("published_at", "id", "symbol")
    )
