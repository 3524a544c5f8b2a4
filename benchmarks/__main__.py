"""Run every benchmark module in ``benchmarks/`` (``make bench``), one process each."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))
    failed = []
    for name in names:
        print(f"# benchmarks.{name}", file=sys.stderr, flush=True)
        code = subprocess.call([sys.executable, "-m", f"benchmarks.{name}"], cwd=here.parent)
        if code:
            failed.append(name)
    if failed:
        print(f"failed benchmarks: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
