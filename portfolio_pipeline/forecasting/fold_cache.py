"""Content-addressed cache of walk-forward folds: a fold whose inputs are unchanged is not
refitted.

Pure (no dagster). A fold's outputs (its backtest rows and its row of the folds table)
depend only on: the forecast code (``CODE_VERSION``), the model configuration, the horizon
and model kind, the fold's number and (test_start, test_end), which rows it tests
(labelled only, or also the unlabelled ones), the design frame's columns, and the design
frame rows dated on or before ``test_end`` (training rows are dated before ``test_start``;
test rows are dated up to ``test_end``; each row carries its own labels, so a label that
becomes known, or a corrected close anywhere in a row's label window, changes that row).
The key hashes all of them, so:

- a data correction in old history changes every fold that can see the corrected rows;
- new days change the last fold (its ``test_end`` moves and its rows' labels fill in), and
  any fold whose rows' labels reach into the new days;
- rows dated after a fold's ``test_end`` never enter its key (later bars reach it only
  through its own rows' labels, the outcomes it reports), and the fold's model never saw
  anything after ``test_start`` (the purge), so reusing an entry brings in no look-ahead.

The key also covers the source of the fitting code and the versions of CatBoost, numpy and
polars (:func:`code_fingerprint`): an edit of the forecast code refits everything even
without a ``CODE_VERSION`` bump. The per-row hash is polars' ``hash_rows`` with two fixed
seeds, stable within one polars version (hence the version in the key). An entry is one
Parquet file (the backtest rows) and one JSON file (the fold row), each written to a
temporary file and renamed into place; an entry that is missing, unreadable or
inconsistent is a miss (the fold is refitted and the entry rewritten), never an error.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import os
import tempfile
from dataclasses import asdict
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from portfolio_pipeline.forecasting.config import CODE_VERSION
from portfolio_pipeline.forecasting.inputs import ModelInputs

logger = logging.getLogger(__name__)

_DATE_FIELDS = ("train_start", "train_end", "train_label_end", "test_start", "test_end")
# Fixed seeds: the same rows hash the same in every process and run (same polars version);
# two 64-bit hashes per row make a collision between two versions of a row negligible.
_SEEDS = (0x5EED, 0xF01D)


# The modules whose code turns a fold's rows into its outputs (inputs, fit, predict, assemble):
# every module holding fitting or input code must be listed, so that editing it refits.
_CODE_MODULES = (
    "portfolio_pipeline.forecasting.config",
    "portfolio_pipeline.forecasting.inputs",
    "portfolio_pipeline.forecasting.model",
    "portfolio_pipeline.forecasting.volatility",
    "portfolio_pipeline.forecasting.folds",
    "portfolio_pipeline.forecasting.walkforward",
    "portfolio_pipeline.forecasting.fold_cache",
)
_LIBRARIES = ("catboost", "numpy", "polars")


@functools.cache
def code_fingerprint() -> str:
    """sha256 of the source of the fitting code and the versions of the libraries it uses.

    ``CODE_VERSION`` is bumped by hand; hashing the source as well means an edit that
    changes the forecasts without a bump never serves stale folds.
    """
    digest = hashlib.sha256(CODE_VERSION.encode())
    for name in _CODE_MODULES:
        # A module of this package always has a file (``__file__`` is typed Optional).
        digest.update(Path(cast(str, importlib.import_module(name).__file__)).read_bytes())
    for library in _LIBRARIES:
        try:
            digest.update(f"{library}=={metadata.version(library)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library} missing".encode())
    return digest.hexdigest()


class FoldCache:
    """Fold outputs stored under ``directory``, one entry per content key.

    Parameters
    ----------
    directory : str or pathlib.Path
        Created on first write.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0
        # id(frame) -> (frame, per-row hashes): one hash pass per design frame, then
        # each fold hashes a prefix of it (the frame is sorted by date).
        self._row_hashes: dict[int, tuple[pl.DataFrame, np.ndarray]] = {}

    # ---------------------------------------------------------------- keys

    def _hashes(self, frame: pl.DataFrame) -> np.ndarray:
        cached = self._row_hashes.get(id(frame))
        if cached is None or cached[0] is not frame:
            hashes = np.ascontiguousarray(
                np.column_stack([frame.hash_rows(seed=seed).to_numpy() for seed in _SEEDS])
            )
            cached = (frame, hashes)
            self._row_hashes[id(frame)] = cached
        return cached[1]

    def key(
        self,
        inputs: ModelInputs,
        kind: str,
        fold: int,
        test_start: date,
        test_end: date,
        include_unlabelled: bool,
    ) -> str:
        """The content key of one fold (hex sha256); see the module docstring."""
        frame = inputs.frame
        dates = frame["date"]
        if not dates.is_sorted():
            raise ValueError("fold cache: the design frame must be sorted by date")
        n_rows = int(dates.search_sorted(test_end, side="right"))
        digest = hashlib.sha256(self._hashes(frame)[:n_rows].tobytes()).hexdigest()
        payload: dict[str, Any] = {
            "code": code_fingerprint(),
            "kind": kind,
            "horizon_days": inputs.horizon_days,
            "config": {
                k: list(v) if isinstance(v, tuple) else v for k, v in asdict(inputs.config).items()
            },
            "feature_columns": list(inputs.feature_columns),
            "schema": [[name, str(dtype)] for name, dtype in frame.schema.items()],
            "fold": fold,
            "test_start": test_start.isoformat(),
            "test_end": test_end.isoformat(),
            "include_unlabelled": include_unlabelled,
            "n_rows": n_rows,
            "rows": digest,
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    # ---------------------------------------------------------------- entries

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.directory / f"{key}.parquet", self.directory / f"{key}.json"

    def load(
        self, key: str, columns: list[str]
    ) -> tuple[pl.DataFrame, dict[str, Any] | None] | None:
        """(backtest rows, fold row or None for a fold without test rows), or None on a miss.

        A missing, unreadable or inconsistent entry (other columns, another row count) is a
        miss, logged at warning level when the files exist.
        """
        parquet, meta = self._paths(key)
        if not (parquet.exists() and meta.exists()):
            self.misses += 1
            return None
        try:
            info = json.loads(meta.read_text())
            rows = pl.read_parquet(parquet)
            if rows.columns != columns or rows.height != info["n_rows"]:
                raise ValueError(
                    f"columns {rows.columns} / {rows.height} rows, expected {columns} / "
                    f"{info['n_rows']} rows"
                )
            fold_row = info["fold_row"]
            if fold_row is not None:
                fold_row = {
                    k: date.fromisoformat(v) if k in _DATE_FIELDS else v
                    for k, v in fold_row.items()
                }
        except Exception as error:  # noqa: BLE001 - any broken entry is refitted, never fatal
            logger.warning("fold cache: ignoring unreadable entry %s (%s)", parquet, error)
            self.misses += 1
            return None
        self.hits += 1
        return rows, fold_row

    def store(self, key: str, rows: pl.DataFrame, fold_row: dict[str, Any] | None) -> None:
        """Write one entry atomically (temporary file + rename, Parquet before JSON).

        A directory that cannot be written (read-only, full) is logged and skipped: the
        cache only saves time, it never fails the walk-forward.
        """
        parquet, meta = self._paths(key)
        info = {
            "n_rows": rows.height,
            "fold_row": None
            if fold_row is None
            else {k: v.isoformat() if isinstance(v, date) else v for k, v in fold_row.items()},
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._atomic(parquet, lambda handle: rows.write_parquet(handle))
            self._atomic(meta, lambda handle: handle.write(json.dumps(info).encode()))
        except OSError as error:
            logger.warning("fold cache: could not write %s (%s)", parquet, error)

    def _atomic(self, path: Path, write) -> None:
        descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{path.name}.")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                write(handle)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
