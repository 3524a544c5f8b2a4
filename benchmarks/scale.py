"""The whole graph at N symbols: per-asset seconds, peak memory and growth with N.

For each N, a block-bootstrapped panel of the sample's real daily rows (the generator of
:mod:`benchmarks.features`, ending 2025-12-31, ``--years`` long) is written as a Parquet file
of the ``files`` source into a temporary home (warehouse, models, Dagster home, holdings), and
``portfolio-pipeline materialize --select SELECTION`` runs there in a child process, as
``make run`` would. The first synthetic symbol is named ``BTCUSDT`` so that the market
inputs of the forecasts (``market_symbol``) exist. News comes from the shipped sample (it
mentions none of the synthetic symbols: the sentiment steps run, with few rows).

Usage::

    python -m benchmarks.scale                    # N = 21 only (what `make bench` runs)
    python -m benchmarks.scale --n 21 50 100      # the issue's three sizes (~30+ min here)
    python -m benchmarks.scale --n 21 50 100 --years 5 --fits-only   # one forecast fit per N

Figures (JSON lines): ``asset_seconds`` (asset = the step key) per N, ``raw_seconds`` (the
partitioned backfill run), ``graph_seconds_excluding_raw`` (the run of every unpartitioned
asset), ``graph_cpu_seconds`` (user + system CPU of the child, all runs; steadier than wall
time on a shared machine), ``peak_rss_mb`` (of the materializing process; Ray workers are
separate processes and not counted) and, given two or more N, ``growth_exponent`` per step:
the slope of log(seconds) against log(rows) (1 = linear in rows).

``--runs 2`` materializes twice in the same home: the second run is a rerun on unchanged
data (warehouse and fold cache in place), `run` in every figure; with ``--new-days 1`` the
first run sees the panel without its last day and the second all of it: a nightly run.

``--fits-only`` skips the graph and times one H=8 return-model fit on every labelled row of
each panel, with the forecast settings from before issue 15, the current model without its
row cap and the current defaults (``--fit-configs``): ``forecast_fit_cpu_seconds`` (with
labelled rows, rows fitted after the cap, trees, CPU seconds per 100k labelled rows) and
``forecast_fit_growth_exponent`` per setting (slope in labelled rows).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks._common import emit
from benchmarks.features import SAMPLE_PATH, synthetic_panel

NAME = "scale"
REPO_ROOT = Path(__file__).resolve().parents[1]
PANEL_END = date(2025, 12, 31)
DEFAULT_N = (21,)
STEP_LINE = re.compile(r"^\s{2}(\S+)\s+([0-9.]+)s$")
RUN_LINE = re.compile(r"^run \S+ succeeded in ([0-9.]+)s$")


def scaled_panel(sample: pl.DataFrame, n_symbols: int, years: float) -> pl.DataFrame:
    """Bootstrapped OHLCV panel of ``n_symbols`` ending on :data:`PANEL_END`."""
    n_days = int(round(years * 365.25))
    panel = synthetic_panel(sample, n_symbols, n_days)
    shift = PANEL_END - panel["date"].max()
    names = ["BTCUSDT", *[f"SYN{i:03d}USDT" for i in range(1, n_symbols)]]
    mapping = {f"SYN{i:03d}USDT": name for i, name in enumerate(names)}
    return panel.with_columns(
        pl.col("date") + pl.duration(days=shift.days),
        pl.col("symbol").replace_strict(mapping),
        (pl.col("volume") * pl.col("close")).alias("quote_volume"),
    )


def _prepare_home(home: Path, panel: pl.DataFrame) -> dict[str, str]:
    """Write the panel, holdings and Dagster config under ``home``; return the environment."""
    (home / "files" / "ohlcv").mkdir(parents=True)
    (home / "data").mkdir()
    panel.write_parquet(home / "files" / "ohlcv" / "panel.parquet")
    shutil.copy(REPO_ROOT / "data" / "crypto_news.parquet", home / "data" / "crypto_news.parquet")
    (home / "data" / "holdings.csv").write_text("symbol,quantity\nBTCUSDT,1.0\nUSDT,50000\n")
    dagster_home = home / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    symbols = sorted(panel["symbol"].unique().to_list())
    return {
        **os.environ,
        "PORTFOLIO_PIPELINE_HOME": str(home),
        "PORTFOLIO_PIPELINE_OHLCV_SOURCE": "files",
        "PORTFOLIO_PIPELINE_NEWS_SOURCE": "sample",
        "PORTFOLIO_PIPELINE_FILES_DIR": str(home / "files"),
        "PORTFOLIO_PIPELINE_SYMBOLS": ",".join(symbols),
        "PORTFOLIO_PIPELINE_START": panel["date"].min().isoformat(),
        "DAGSTER_HOME": str(dagster_home),
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }


def materialize(panel: pl.DataFrame, selection: str, env: dict[str, str], home: str) -> dict:
    start, end = panel["date"].min(), panel["date"].max()
    command = [
        sys.executable, "-c", "from portfolio_pipeline.cli import main; raise SystemExit(main())",
        "materialize", "--select", selection, "--partition", f"{start}...{end}",
    ]  # fmt: skip
    started = time.perf_counter()
    child = subprocess.Popen(
        command, env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stdout, stderr = child.communicate()
    wall = time.perf_counter() - started
    if child.returncode:
        raise RuntimeError(
            f"materialize failed (exit {child.returncode}) for {panel['symbol'].n_unique()} "
            f"symbols:\n{stdout[-3000:]}\n{stderr[-3000:]}"
        )
    steps: dict[str, float] = {}
    runs: list[float] = []
    for line in stdout.splitlines():
        if match := STEP_LINE.match(line):
            steps[match.group(1)] = float(match.group(2))
        elif match := RUN_LINE.match(line):
            runs.append(float(match.group(1)))
    return {"steps": steps, "runs": runs, "wall": wall}


def _report_run(panel, args, env: dict[str, str], home: str, run: int, per_step: dict) -> None:
    """Materialize once in ``home`` and emit its figures (``run`` 2+ find the warehouse and
    the walk-forward fold cache of run 1, as a second ``make run`` does)."""
    n_symbols = panel["symbol"].n_unique()
    cpu_before, _ = _child_usage()
    result = materialize(panel, args.select, env, home)
    cpu_after, peak_mb = _child_usage()
    rows = panel.height
    extra = {"n_symbols": n_symbols, "rows": rows, "years": args.years, "run": run}
    if run > 1 and args.new_days:
        extra["new_days"] = args.new_days
    for step, seconds in sorted(result["steps"].items()):
        emit(NAME, "asset_seconds", seconds, "s", asset=step, **extra)
        if run == 1:
            per_step.setdefault(step, []).append((rows, seconds))
    raw, rest = (result["runs"] + [math.nan, math.nan])[:2]
    if len(result["runs"]) == 1:  # a selection without partitioned assets
        raw, rest = math.nan, result["runs"][0]
    if not math.isnan(raw):
        emit(NAME, "raw_seconds", raw, "s", **extra)
    emit(NAME, "graph_seconds_excluding_raw", rest, "s", **extra, goal_s=360)
    emit(NAME, "graph_cpu_seconds", round(cpu_after - cpu_before, 1), "s", **extra)
    # RUSAGE_CHILDREN's maxrss is the largest child so far: exact for the first size,
    # an upper bound for later ones (sizes run in increasing order, so it is theirs).
    emit(NAME, "peak_rss_mb", round(peak_mb, 1), "MiB", **extra, goal_mib=3072)


def _child_usage() -> tuple[float, float]:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


FIT_CONFIGS = {
    # What the forecasts did before issue 15: the symbol one-hot up to 64 values (CatBoost's
    # target statistics above), 200 trees, every row.
    "before": {"one_hot_max_size": 64, "max_fit_rows": 0},
    "uncapped": {"max_fit_rows": 0},  # the current model without the row cap
    "default": {},
}


def fit_cost(panel: pl.DataFrame, settings: dict) -> dict:
    """CPU seconds of one H=8 return-model fit on every labelled row of ``panel``."""
    import resource

    from portfolio_pipeline.forecasting.config import ForecastConfig
    from portfolio_pipeline.forecasting.inputs import build_model_inputs
    from portfolio_pipeline.forecasting.model import fit_model
    from portfolio_pipeline.market.features import compute_market_features

    inputs = build_model_inputs(
        compute_market_features(panel), panel, 8, config=ForecastConfig(**settings)
    )
    before = resource.getrusage(resource.RUSAGE_SELF)
    model = fit_model(inputs)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "cpu": cpu,
        "rows": model.n_train_rows,  # labelled rows: the data's size
        "fit_rows": model.extra["n_fit_rows"],  # what the trees saw (after the cap)
        "trees": model.extra["iterations"],
    }


def growth_exponent(rows: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) on log(rows)."""
    slope, _ = np.polyfit(np.log(rows), np.log(seconds), 1)
    return float(slope)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=list(DEFAULT_N), help="symbols")
    parser.add_argument("--years", type=float, default=10.0, help="panel length (>= 7)")
    parser.add_argument("--select", default="*", help="asset selection (default: all)")
    parser.add_argument(
        "--fit-configs", nargs="+", choices=sorted(FIT_CONFIGS), default=sorted(FIT_CONFIGS),
        help="with --fits-only: which settings to time",
    )  # fmt: skip
    parser.add_argument(
        "--runs", type=int, default=1,
        help="materialize this many times in the same home (run 2+ reuse the fold cache)",
    )  # fmt: skip
    parser.add_argument(
        "--new-days", type=int, default=0,
        help="with --runs 2+: run 1 sees the panel without its last N days, run 2 all of it",
    )  # fmt: skip
    parser.add_argument(
        "--fits-only",
        action="store_true",
        help="only time one forecast fit per N (before/after issue 15), not the graph",
    )
    args = parser.parse_args(argv)
    sample = pl.read_parquet(SAMPLE_PATH)
    sizes = sorted(set(args.n))
    if args.fits_only:
        return _fits_only(sample, sizes, args.years, args.fit_configs)
    if args.years < 7:
        parser.error("--years must be >= 7: the walk-forward tests from 2020-01-01")
    per_step: dict[str, list[tuple[int, float]]] = {}
    for n_symbols in sizes:
        panel = scaled_panel(sample, n_symbols, args.years)
        first = panel.filter(pl.col("date") <= panel["date"].max() - timedelta(args.new_days))
        with tempfile.TemporaryDirectory(prefix="scale_bench_") as tmp:
            env = _prepare_home(Path(tmp), first)
            for run in range(1, max(1, args.runs) + 1):
                if run == 2 and args.new_days:  # the night after: the next day(s) arrived
                    panel.write_parquet(Path(tmp) / "files" / "ohlcv" / "panel.parquet")
                _report_run(first if run == 1 else panel, args, env, tmp, run, per_step)
    if len(sizes) >= 2:
        for step, points in sorted(per_step.items()):
            if len(points) >= 2 and all(s > 0 for _, s in points):
                rows, seconds = zip(*points, strict=True)
                emit(NAME, "growth_exponent", round(growth_exponent(list(rows), list(seconds)), 2),
                     "exponent", asset=step, basis="rows", n_symbols=sizes)  # fmt: skip
    return 0


def _fits_only(sample: pl.DataFrame, sizes: list[int], years: float, configs: list[str]) -> int:
    import catboost  # noqa: F401  (imported before the timings)

    costs: dict[str, list[tuple[int, float]]] = {}
    for n_symbols in sizes:
        panel = scaled_panel(sample, n_symbols, years)
        for label in configs:
            settings = FIT_CONFIGS[label]
            cost = fit_cost(panel, settings)
            costs.setdefault(label, []).append((cost["rows"], cost["cpu"]))
            emit(NAME, "forecast_fit_cpu_seconds", round(cost["cpu"], 2), "s", config=label,
                 n_symbols=n_symbols, rows=cost["rows"], fit_rows=cost["fit_rows"],
                 trees=cost["trees"], years=years,
                 per_100k_rows=round(cost["cpu"] / cost["rows"] * 1e5, 2))  # fmt: skip
    if len(sizes) >= 2:
        for label, points in costs.items():
            rows, seconds = zip(*points, strict=True)
            emit(NAME, "forecast_fit_growth_exponent",
                 round(growth_exponent(list(rows), list(seconds)), 2), "exponent",
                 config=label, basis="rows", n_symbols=sizes)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
