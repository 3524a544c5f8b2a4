"""The inbox: OHLCV or news files a user drops into ``data/inbox/`` to be ingested once.

Pure (no dagster). The Dagster ``inbox_sensor`` calls :func:`pending_files`, then
:func:`inspect_inbox_file` on each; :func:`replace_inbox_rows` is the write its run performs.

Life of a file::

    data/inbox/prices.csv  --accepted-->  data/inbox/processed/<hash16>/prices.csv  (+ one run)
                           --rejected-->  data/inbox/rejected/prices.csv
                                          data/inbox/rejected/prices.csv.reason.txt

* **Kind** is told from the columns: ``published_at`` + ``title`` is news; ``open``, ``high``,
  ``low``, ``close`` make OHLCV (formats of :mod:`portfolio_pipeline.market.sources.files`:
  without a ``symbol`` column the file name is the symbol).
* **Validation** is the same as for every other batch: strict parsing
  (:mod:`~portfolio_pipeline.market.sources.files`) then the blocking Great Expectations rules of
  :mod:`~portfolio_pipeline.market.quality`. OHLCV symbols must belong to the configured universe
  (the rest of the pipeline only knows those).
* **Exactly once**: the SHA-256 of the file's bytes names the processed copy's folder; a file
  whose hash is already in ``processed/`` is a duplicate and is not ingested again (renaming a file does not
  make it new; changing one byte does).
* **The write** replaces exactly the ``(symbol, date)`` rows (OHLCV) or article ids (news) that
  the file contains, in one transaction; every other row is untouched.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import cast

import duckdb
import polars as pl

from portfolio_pipeline import warehouse
from portfolio_pipeline.market import quality
from portfolio_pipeline.market.sources.base import SourceError
from portfolio_pipeline.market.sources.files import parse_news_file, parse_ohlcv_file, read_raw

OHLCV = "ohlcv"
NEWS = "news"
SUFFIXES = (".csv", ".parquet")
PROCESSED = "processed"
REJECTED = "rejected"
HASH_PREFIX_CHARS = 16


class InboxError(ValueError):
    """An inbox file broke a rule; the message names the file, the rule and the rows."""


@dataclass
class InboxVerdict:
    """The outcome of inspecting one inbox file."""

    path: Path
    content_hash: str
    kind: str | None = None
    accepted: bool = False
    reason: str = ""
    frame: pl.DataFrame | None = field(default=None, repr=False)

    @property
    def rows(self) -> int:
        return 0 if self.frame is None else self.frame.height

    def summary(self) -> str:
        if not self.accepted:
            return f"{self.path.name}: rejected: {self.reason}"
        frame = self.frame
        if frame is None:  # accepted files always carry their frame
            raise ValueError(f"{self.path.name}: accepted without a frame")
        if self.kind == OHLCV:
            # polars types min()/max() as any literal; these columns are dates and datetimes
            first_day, last_day = cast(date, frame["date"].min()), cast(date, frame["date"].max())
            span = f"{first_day}..{last_day}, {frame['symbol'].n_unique()} symbol(s)"
        else:
            first = cast(datetime, frame["published_at"].min())
            last = cast(datetime, frame["published_at"].max())
            span = f"{first:%Y-%m-%d}..{last:%Y-%m-%d}"
        return f"{self.path.name}: {self.kind}, {frame.height} row(s), {span}"


def content_hash(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 (hex) of the file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def pending_files(
    inbox_dir: Path, *, settle_seconds: float = 5.0, now: float | None = None
) -> list[Path]:
    """CSV/Parquet files directly in ``inbox_dir``, oldest first.

    Hidden and temporary files (``.name``, ``name~``, ``*.part``) are ignored, and so is a file
    modified less than ``settle_seconds`` ago: it may still be being copied in.
    """
    inbox_dir = Path(inbox_dir)
    if not inbox_dir.is_dir():
        return []
    now = time.time() if now is None else now
    files = []
    for path in inbox_dir.iterdir():
        if not path.is_file() or path.name.startswith(".") or path.name.endswith("~"):
            continue
        if path.suffix.lower() not in SUFFIXES:
            continue
        mtime = path.stat().st_mtime
        if now - mtime < settle_seconds:
            continue
        files.append((mtime, path.name, path))
    return [p for _, _, p in sorted(files)]


def classify(columns: Sequence[str], path: Path) -> str:
    """``ohlcv`` or ``news`` from a file's column names (case and spaces ignored)."""
    names = {c.strip().lower() for c in columns}
    if {"published_at", "title"} <= names:
        return NEWS
    if {"open", "high", "low", "close"} <= names:
        return OHLCV
    raise InboxError(
        f"{path.name}: rule 'recognisable_columns': cannot tell whether this is OHLCV "
        f"(needs open, high, low, close) or news (needs published_at, title); columns: {', '.join(sorted(names)) or 'none'}"
    )


def processed_path(inbox_dir: Path, content_hash_hex: str, original_name: str) -> Path:
    """``processed/<hash16>/<name>``: the name is kept (it may carry the symbol: ``AAPL.csv``)."""
    return Path(inbox_dir) / PROCESSED / content_hash_hex[:HASH_PREFIX_CHARS] / original_name


def already_ingested(inbox_dir: Path, content_hash_hex: str) -> Path | None:
    """The processed copy of a file with this content, if one exists."""
    folder = Path(inbox_dir) / PROCESSED / content_hash_hex[:HASH_PREFIX_CHARS]
    if not folder.is_dir():
        return None
    return next(iter(sorted(p for p in folder.iterdir() if p.is_file())), None)


def inspect_inbox_file(
    path: Path,
    *,
    universe: Sequence[str] | None,
    today: date | None = None,
    now: datetime | None = None,
) -> InboxVerdict:
    """Parse and validate one inbox file; never raises for bad content (the verdict says why)."""
    path = Path(path)
    verdict = InboxVerdict(path=path, content_hash=content_hash(path))
    try:
        verdict.kind, verdict.frame = _parse_and_validate(path, universe, today, now)
        verdict.accepted = True
    except (InboxError, SourceError) as exc:
        verdict.reason = str(exc)
    return verdict


def _parse_and_validate(path, universe, today, now) -> tuple[str, pl.DataFrame]:
    raw = read_raw(path)
    kind = classify(raw.columns, path)
    if raw.height == 0:
        raise InboxError(f"{path.name}: rule 'not_empty': the file has a header but no rows")
    if kind == OHLCV:
        frame = parse_ohlcv_file(path)
        if universe:
            outside = sorted(set(frame["symbol"].unique().to_list()) - set(universe))
            if outside:
                raise InboxError(
                    f"{path.name}: rule 'symbols_in_universe': {', '.join(outside[:10])} "
                    f"{'is' if len(outside) == 1 else 'are'} not in the configured universe "
                    f"(PORTFOLIO_PIPELINE_SYMBOLS)"
                )
        report = quality.validate_ohlcv(frame, today=today)
    else:
        frame = parse_news_file(path)
        report = quality.validate_news(frame, now=now)
    if not report.ok:
        raise InboxError(f"{path.name}: " + report.failure_message())
    return kind, frame


def move_accepted(verdict: InboxVerdict, inbox_dir: Path) -> Path:
    """Move an accepted file to ``processed/<hash16>/<name>`` and return the new path."""
    target = processed_path(inbox_dir, verdict.content_hash, verdict.path.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(verdict.path), target)
    return target


def move_rejected(path: Path, inbox_dir: Path, reason: str, *, now: datetime | None = None) -> Path:
    """Move a rejected file to ``rejected/<name>`` with ``rejected/<name>.reason.txt``."""
    folder = Path(inbox_dir) / REJECTED
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(path).name
    shutil.move(str(path), target)
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (folder / f"{target.name}.reason.txt").write_text(
        f"rejected at {stamp}\n{reason}\n", encoding="utf-8"
    )
    return target


def replace_inbox_rows(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    frame: pl.DataFrame,
    *,
    table: str,
    ddl_columns: str | None = None,
) -> int:
    """Replace exactly the rows the file carries, in one transaction; returns rows replaced.

    OHLCV: the ``(symbol, date)`` pairs of ``frame``; news: its article ``id`` values. The
    frame must carry ``ingested_at`` if the table has one (the caller stamps it).
    """
    if kind == OHLCV:
        keys = (frame["symbol"] + "|" + frame["date"].cast(pl.Utf8)).unique().to_list()
        # A hash semi-join on the unnested keys: linear, where list_contains would be n x m.
        where = "symbol || '|' || cast(date as varchar) in (select unnest(?::varchar[]))"
    elif kind == NEWS:
        keys = frame["id"].unique().to_list()
        where = "id in (select unnest(?::varchar[]))"
    else:
        raise InboxError(f"unknown inbox file kind {kind!r}: expected {OHLCV} or {NEWS}")
    return warehouse.replace_rows(
        con, table, frame, where=where, params=(keys,), ddl_columns=ddl_columns
    )
