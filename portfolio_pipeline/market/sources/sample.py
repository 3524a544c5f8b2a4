"""The shipped real sample (Binance daily klines, crypto headlines): the offline default."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import cast

import polars as pl

from portfolio_pipeline.market.sources.base import (
    NEWS_SCHEMA,
    OHLCV_SCHEMA,
    NewsSource,
    OhlcvSource,
    SourceError,
    conform,
    with_news_ids,
)


@lru_cache(maxsize=4)
def _read_parquet(path: str, mtime: float) -> pl.DataFrame:  # mtime keys the cache
    return pl.read_parquet(path)


def _load(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise SourceError(f"sample file {path} is missing (it ships with the repository)")
    return _read_parquet(str(path), path.stat().st_mtime)


class SampleOhlcvSource(OhlcvSource):
    name = "sample"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def fetch(self, symbols: Sequence[str], start: date, end: date) -> pl.DataFrame:
        frame = _load(self.path).filter(
            pl.col("symbol").is_in(list(symbols)) & pl.col("date").is_between(start, end)
        )
        return conform(frame, OHLCV_SCHEMA).sort("symbol", "date")


class SampleNewsSource(NewsSource):
    name = "sample"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def fetch(self, start: date, end: date) -> pl.DataFrame:
        frame = _load(self.path)
        frame = frame.with_columns(
            pl.col("published_at").dt.replace_time_zone("UTC")
            if cast(pl.Datetime, frame.schema["published_at"]).time_zone is None
            else pl.col("published_at").dt.convert_time_zone("UTC"),
            pl.lit("sample").alias("provider"),
        ).filter(pl.col("published_at").dt.date().is_between(start, end))
        return conform(with_news_ids(frame), NEWS_SCHEMA).sort("published_at", "id")
