"""Helpers shared by the benchmarks: JSON-line output and peak memory."""

from __future__ import annotations

import json
import resource
import sys


def emit(benchmark: str, metric: str, value: float, unit: str, **extra: object) -> None:
    """Print one figure as a JSON line."""
    record = {"benchmark": benchmark, "metric": metric, "value": value, "unit": unit, **extra}
    print(json.dumps(record), flush=True)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20
