"""Compare every table of two warehouses, bit for bit, except run ids and timestamps.

    python scripts/compare_warehouses.py BEFORE.duckdb AFTER.duckdb [--ignore col ...]

Used to show that a refactor leaves a ``make run`` unchanged. Rows are compared as sets of
exact values (floats bit-identical, no tolerance) after dropping the columns that differ by
nature between two runs: run ids, timestamps of the run, and paths under the checkout.
Prints one line per table and exits 1 if any table differs.
"""

from __future__ import annotations

import argparse
import sys

import duckdb
import polars as pl

VOLATILE = {
    "run_id",
    "generated_at",
    "ingested_at",
    "trained_at",
    "evaluated_at",
    "created_at",
    "updated_at",
    "artifact_path",
    "started_at",
    "finished_at",
    "pid",  # the training process
    "trial_id",  # Ray Tune's random trial and search ids
    "search_id",
}
# Wall-clock timings differ on every run; ids that embed the training time keep their stem.
VOLATILE_SUFFIXES = ("_seconds",)
STAMP = r"-\d{8}T\d{6}$"


def tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "select table_schema || '.' || table_name from information_schema.tables "
        "where table_schema not in ('information_schema', 'pg_catalog') order by 1"
    ).fetchall()
    return [r[0] for r in rows]


def normalised(con: duckdb.DuckDBPyConnection, table: str, ignore: set[str]) -> pl.DataFrame:
    frame = con.execute(f"select * from {table}").pl()
    keep = [c for c in frame.columns if c not in ignore and not c.endswith(VOLATILE_SUFFIXES)]
    frame = frame.select(keep)
    # Nested columns compare through their Python form; strings lose a trailing time stamp
    # (policy ids: algorithm-config-seed-YYYYMMDDTHHMMSS); every other value exactly.
    for c in frame.columns:
        if isinstance(frame.schema[c], pl.List | pl.Struct | pl.Array | pl.Object):
            frame = frame.with_columns(pl.Series(c, [repr(v) for v in frame[c].to_list()]))
        elif frame.schema[c] == pl.String:
            frame = frame.with_columns(pl.col(c).str.replace(STAMP, ""))
    return frame.sort(frame.columns, nulls_last=True) if frame.columns else frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--ignore", nargs="*", default=[], help="more columns to leave out")
    args = parser.parse_args(argv)
    ignore = VOLATILE | set(args.ignore)
    a = duckdb.connect(args.before, read_only=True)
    b = duckdb.connect(args.after, read_only=True)
    names_a, names_b = set(tables(a)), set(tables(b))
    failed = False
    for name in sorted(names_a - names_b):
        print(f"MISSING after: {name}")
        failed = True
    for name in sorted(names_b - names_a):
        print(f"NEW after: {name}")
        failed = True
    for name in sorted(names_a & names_b):
        fa, fb = normalised(a, name, ignore), normalised(b, name, ignore)
        if fa.columns != fb.columns:
            print(f"DIFFERENT columns {name}: {fa.columns} vs {fb.columns}")
            failed = True
        elif fa.height != fb.height:
            print(f"DIFFERENT rows {name}: {fa.height} vs {fb.height}")
            failed = True
        elif not fa.equals(fb, null_equal=True):
            cols = [c for c in fa.columns if not fa[c].equals(fb[c], null_equal=True)]
            print(f"DIFFERENT values {name}: columns {cols}")
            failed = True
        else:
            dropped = sorted(ignore & set(a.execute(f"select * from {name} limit 0").pl().columns))
            print(
                f"identical {name}: {fa.height} rows" + (f" (ignored {dropped})" if dropped else "")
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
