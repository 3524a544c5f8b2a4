"""Asset metadata users read in the Dagster UI instead of writing SQL."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import dagster as dg
import polars as pl


def preview_markdown(frame: pl.DataFrame, rows: int = 10, float_digits: int = 4) -> str:
    """A small markdown table of the first ``rows`` rows."""
    head = frame.head(rows)
    if head.width == 0:
        return "_empty_"
    cols = head.columns

    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.{float_digits}g}"
        text = str(v) if v is not None else ""
        return text.replace("|", "\\|").replace("\n", " ")[:80]

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in head.iter_rows()]
    return "\n".join(lines)


def table_metadata(
    frame: pl.DataFrame,
    table: str,
    *,
    date_column: str | None = None,
    preview_rows: int = 10,
    preview: pl.DataFrame | None = None,
) -> dict[str, dg.MetadataValue]:
    """Row count, table name, date range and a preview table."""
    meta: dict[str, dg.MetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(frame.height),
        "table": dg.MetadataValue.text(table),
        "preview": dg.MetadataValue.md(
            preview_markdown(preview if preview is not None else frame, preview_rows)
        ),
    }
    if date_column and frame.height and date_column in frame.columns:
        meta["first_date"] = dg.MetadataValue.text(str(frame[date_column].min()))
        meta["last_date"] = dg.MetadataValue.text(str(frame[date_column].max()))
    if "symbol" in frame.columns:
        meta["symbols"] = dg.MetadataValue.int(frame["symbol"].n_unique())
    return meta


def png_markdown(png: bytes, alt: str = "plot") -> dg.MetadataValue:
    """Embed a PNG in markdown metadata (the Dagster UI renders data URIs)."""
    encoded = base64.b64encode(png).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")


def columns_schema(
    frame: pl.DataFrame, descriptions: dict[str, str] | None = None
) -> dg.TableSchema:
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=c, type=str(t), description=descriptions.get(c))
            for c, t in frame.schema.items()
        ]
    )


def names(values: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f" (+{len(values) - limit} more)" if len(values) > limit else "")


def table_specs(
    outputs: dict[str, tuple[str, str]], *, deps: Sequence[str], kinds: set[str]
) -> list[dg.AssetSpec]:
    """One spec per table a multi-asset writes, from ``{asset: (table, description)}``."""
    return [
        dg.AssetSpec(
            name,
            deps=list(deps),
            kinds=kinds,
            description=f"{text} Table {table}.",
            metadata={"table": table},
        )
        for name, (table, text) in outputs.items()
    ]
