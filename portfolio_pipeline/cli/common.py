"""What every command shares: the error type, DAGSTER_HOME, printing frames, the read-only warehouse."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import polars as pl

from portfolio_pipeline.settings import REPO_ROOT, Settings


class CliError(RuntimeError):
    pass


def ensure_dagster_home(settings: Settings) -> Path:
    """Use ``$DAGSTER_HOME`` if set, else ``data/dagster_home`` with the repo's dagster.yaml."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = settings.data_dir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    source = REPO_ROOT / "dagster.yaml"
    target = home / "dagster.yaml"
    if source.exists() and (not target.exists() or target.read_bytes() != source.read_bytes()):
        shutil.copyfile(source, target)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def print_frame(frame: pl.DataFrame, fmt: str = "table") -> None:
    if fmt == "csv":
        sys.stdout.write(frame.write_csv())
    elif fmt == "json":
        sys.stdout.write(json.dumps(frame.to_dicts(), default=str, indent=1) + "\n")
    else:
        with pl.Config(
            tbl_rows=max(frame.height, 1),
            tbl_cols=-1,
            tbl_width_chars=220,
            fmt_str_lengths=110,
            tbl_hide_dataframe_shape=True,
            float_precision=6,
        ):
            print(frame)


# --------------------------------------------------------------------------- queries
def read_only_warehouse(settings: Settings):
    from portfolio_pipeline.warehouse import connect

    return connect(settings.warehouse_path, read_only=True)
