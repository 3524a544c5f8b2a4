"""A folder of the user's own CSV or Parquet files, for any universe (equities included).

Layout (documented in the README)::

    <files_dir>/ohlcv/*.csv | *.parquet   columns: symbol, date, open, high, low, close, volume
                                          optional: quote_volume, num_trades, ... (OHLCV_SCHEMA)
                                          without a ``symbol`` column the file name is the symbol
                                          (``AAPL.csv`` -> ``AAPL``)
    <files_dir>/news/*.csv | *.parquet    columns: published_at (ISO-8601, UTC when no zone), title
                                          optional: summary, source, url, subject,
                                          symbols (list, or ``;``-separated in CSV)

Every value is parsed strictly: a missing column or a value that is not a number or a date
raises :class:`SourceError` naming the file, the column, the symbol and the date.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from portfolio_pipeline.market.sources.base import (
    NEWS_REQUIRED,
    NEWS_SCHEMA,
    OHLCV_REQUIRED,
    OHLCV_SCHEMA,
    NewsSource,
    OhlcvSource,
    SourceError,
    conform,
    empty_news,
    empty_ohlcv,
    with_news_ids,
)


def data_files(folder: Path) -> list[Path]:
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".csv", ".parquet"))


def read_raw(path: Path) -> pl.DataFrame:
    """Read a file with every column as text (CSV) so that parsing errors can be named."""
    try:
        if path.suffix.lower() == ".parquet":
            return pl.read_parquet(path)
        return pl.read_csv(path, infer_schema=False)
    except Exception as exc:  # polars raises several error types for unreadable files
        raise SourceError(f"{path}: cannot be read as {path.suffix[1:]}: {exc}") from exc


def _strict_cast(
    frame: pl.DataFrame, column: str, dtype: pl.DataType, path: Path, key_cols: Sequence[str]
) -> pl.Series:
    original = frame[column]
    if original.dtype == dtype:
        return original
    if dtype == pl.Date() and original.dtype == pl.Utf8:
        cast = original.str.strip_chars().str.to_date(strict=False)
    else:
        source = original.str.strip_chars() if original.dtype == pl.Utf8 else original
        cast = source.cast(dtype, strict=False)
    bad = frame.filter(original.is_not_null() & cast.is_null())
    if bad.height:
        where = ", ".join(
            f"{' '.join(str(row[k]) for k in key_cols if k in bad.columns)} {column}={row[column]!r}"
            for row in bad.head(5).iter_rows(named=True)
        )
        raise SourceError(
            f"{path}: rule 'numeric_and_date_values': column '{column}' has {bad.height} "
            f"value(s) that are not {dtype}: {where}"
        )
    return cast


def parse_ohlcv_file(path: Path) -> pl.DataFrame:
    frame = read_raw(path)
    frame = frame.rename({c: c.strip().lower() for c in frame.columns})
    if "symbol" not in frame.columns:
        frame = frame.with_columns(pl.lit(path.stem.upper()).alias("symbol"))
    missing = [c for c in OHLCV_REQUIRED if c not in frame.columns]
    if missing:
        raise SourceError(
            f"{path}: rule 'required_columns': missing column(s) {', '.join(missing)} "
            f"(required: {', '.join(OHLCV_REQUIRED)})"
        )
    keys = ("symbol", "date")
    frame = frame.with_columns(_strict_cast(frame, "date", pl.Date(), path, ("symbol",)))
    casts = [
        _strict_cast(frame, c, t, path, keys)
        for c, t in OHLCV_SCHEMA.items()
        if c in frame.columns and c not in ("symbol", "date", "source")
    ]
    frame = frame.with_columns(casts)
    if "source" not in frame.columns:
        frame = frame.with_columns(pl.lit(f"files:{path.name}").alias("source"))
    return conform(frame, OHLCV_SCHEMA)


def _parse_timestamp(text: str) -> datetime | None:
    """ISO-8601 with or without a zone; no zone means UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_news_file(path: Path) -> pl.DataFrame:
    frame = read_raw(path)
    frame = frame.rename({c: c.strip().lower() for c in frame.columns})
    missing = [c for c in NEWS_REQUIRED if c not in frame.columns]
    if missing:
        raise SourceError(
            f"{path}: rule 'required_columns': missing column(s) {', '.join(missing)} "
            f"(required: {', '.join(NEWS_REQUIRED)})"
        )
    published = frame["published_at"]
    if published.dtype == pl.Utf8:
        parsed = published.map_elements(_parse_timestamp, return_dtype=pl.Datetime("us", "UTC"))
        bad = frame.filter(published.is_not_null() & parsed.is_null())
        if bad.height:
            raise SourceError(
                f"{path}: rule 'published_at_is_timestamp': {bad.height} value(s) are not "
                f"ISO-8601 timestamps, e.g. {bad['published_at'][0]!r}"
            )
        frame = frame.with_columns(parsed.alias("published_at"))
    elif isinstance(published.dtype, pl.Datetime) and published.dtype.time_zone is None:
        frame = frame.with_columns(pl.col("published_at").dt.replace_time_zone("UTC"))
    if "symbols" in frame.columns and frame.schema["symbols"] == pl.Utf8:
        frame = frame.with_columns(
            pl.col("symbols")
            .str.split(";")
            .list.eval(pl.element().str.strip_chars().str.to_uppercase())
            .list.filter(pl.element() != "")
        )
    frame = frame.with_columns(pl.lit(f"files:{path.name}").alias("provider"))
    if "url" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("url"))
    return conform(with_news_ids(frame), NEWS_SCHEMA)


class FilesOhlcvSource(OhlcvSource):
    name = "files"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder) / "ohlcv"

    def fetch(self, symbols: Sequence[str], start: date, end: date) -> pl.DataFrame:
        frames = [parse_ohlcv_file(p) for p in data_files(self.folder)]
        if not frames:
            return empty_ohlcv()
        frame = pl.concat(frames)
        if symbols:
            frame = frame.filter(pl.col("symbol").is_in(list(symbols)))
        return frame.filter(pl.col("date").is_between(start, end)).sort("symbol", "date")


class FilesNewsSource(NewsSource):
    name = "files"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder) / "news"

    def fetch(self, start: date, end: date) -> pl.DataFrame:
        frames = [parse_news_file(p) for p in data_files(self.folder)]
        if not frames:
            return empty_news()
        return (
            pl.concat(frames)
            .filter(pl.col("published_at").dt.date().is_between(start, end))
            .sort("published_at", "id")
        )
