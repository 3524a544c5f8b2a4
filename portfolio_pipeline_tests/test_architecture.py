"""The architecture holds: import-linter's contracts (pyproject.toml) and the module rules."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "portfolio_pipeline"
# Modules whose role is Dagster wiring; every other module of a stage must be pure.
DAGSTER_ROLES = {"assets", "checks", "resources", "partitions", "replay_assets", "brief_assets"}
DAGSTER_MODULES = {
    "portfolio_pipeline.definitions",
    "portfolio_pipeline.metadata",
    "portfolio_pipeline.sqlite_tuning",
    "portfolio_pipeline.cli",
    "portfolio_pipeline.operations.alerts",
    "portfolio_pipeline.operations.checks",
    "portfolio_pipeline.operations.definitions",
    "portfolio_pipeline.operations.jobs",
    "portfolio_pipeline.operations.schedules",
    "portfolio_pipeline.operations.sensors",
    "portfolio_pipeline.serving.dagster_runs",
}
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__")
        found.append((name, path))
    return found


def test_import_linter_contracts_are_kept():
    """Stages import only downward, pure modules never import dagster, nothing imports the
    CLI. The failure message is import-linter's report: it names the import that broke."""
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(linter)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_stage_module_is_classified_pure_or_dagster():
    """A new module is either Dagster wiring (by its role name) or listed in the pure
    contract, so the no-dagster contract cannot silently miss it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (pure,) = [c for c in config["contracts"] if c["id"] == "pure-modules-without-dagster"]
    listed = tuple(pure["source_modules"])
    unclassified = [
        name
        for name, _ in _modules()
        if name.count(".") >= 1
        and name.rsplit(".", 1)[-1] not in DAGSTER_ROLES
        and not any(name == d or name.startswith(d + ".") for d in DAGSTER_MODULES)
        and not any(name == m or name.startswith(m + ".") for m in listed)
        and name.rsplit(".", 1)[-1] not in {"__main__"}
        and name not in {f"portfolio_pipeline.{s}" for s in _stage_packages()}
        and name != "portfolio_pipeline.__main__"
        and not name.startswith("portfolio_pipeline.examples")
    ]
    assert not unclassified, f"add these to the pure contract or name their role: {unclassified}"


def _stage_packages() -> set[str]:
    return {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}


@pytest.mark.parametrize("name,path", _modules(), ids=[m for m, _ in _modules()])
def test_modules_and_functions_stay_readable(name, path):
    """No module over ~500 lines and no function over 60: split by what the code is."""
    text = path.read_text()
    too_long = len(text.splitlines()) > MAX_MODULE_LINES
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, l.{node.lineno})"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not too_long, f"{name}: {len(text.splitlines())} lines (limit {MAX_MODULE_LINES})"
    assert not long, f"{name}: functions over {MAX_FUNCTION_LINES} lines: {long}"
