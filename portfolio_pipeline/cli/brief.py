"""``portfolio-pipeline brief``: the market brief of the latest (or a given) recommendation run."""

from __future__ import annotations

import json

from portfolio_pipeline.cli.common import CliError, read_only_warehouse
from portfolio_pipeline.recommendations.brief import read_latest_brief
from portfolio_pipeline.settings import Settings


def brief(settings: Settings, run_id: str | None = None, fmt: str = "text") -> int:
    """Print the brief: its text and who wrote it (``--format json``: the whole row)."""
    if not settings.warehouse_path.exists():
        raise CliError(f"no warehouse at {settings.warehouse_path}: run materialize first")
    with read_only_warehouse(settings) as con:
        row = read_latest_brief(con, run_id)
    if row is None:
        raise CliError(
            "no market brief yet: materialize market_brief"
            + (f" (run {run_id} has none)" if run_id else "")
        )
    if fmt == "json":
        print(json.dumps(row, default=str, indent=1))
        return 0
    written_by = (
        row["writer"] if row["writer"] == row["model"] else f"{row['writer']} ({row['model']})"
    )
    print(f"Market brief, run {row['run_id']} as of {row['as_of']}, written by {written_by}")
    if row["rejected_reason"]:
        print(f"(template used: {row['rejected_reason']})")
    print()
    print(row["brief"])
    return 0
