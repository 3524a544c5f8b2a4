import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "ray", "great_expectations", "catboost", "stable_baselines3")


def test_loading_definitions_imports_no_heavy_library():
    code = (
        "import sys, json; from portfolio_pipeline.definitions import defs; "
        "defs.resolve_asset_graph(); "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_module_entry_point_matches_workspace():
    from pathlib import Path

    import yaml

    workspace = yaml.safe_load((Path(__file__).resolve().parents[1] / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]
    assert (
        module["module_name"] == "portfolio_pipeline.definitions" and module["attribute"] == "defs"
    )


def test_package_exposes_defs_lazily_and_core_stays_dagster_free():
    code = (
        "import sys, json; import portfolio_pipeline.market.features, portfolio_pipeline.policies.env; "
        "before = 'dagster' in sys.modules; import portfolio_pipeline, dagster; "
        "ok = isinstance(portfolio_pipeline.defs, dagster.Definitions); "
        "print(json.dumps([before, ok, 'defs' in dir(portfolio_pipeline)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, True, True]
