"""`dagster dev` (webserver + daemon) on a free port: the UI shows every asset, check, schedule
and sensor, and a run launched through its GraphQL API materializes a raw partition."""

from __future__ import annotations

import os
import shutil
import time

import pytest
import requests

from portfolio_pipeline import warehouse
from portfolio_pipeline_tests.conftest import DATA_DIR
from portfolio_pipeline_tests.operations.servers import (
    REPO_ROOT,
    free_port,
    process_group,
    tool,
    wait_for,
)

pytestmark = pytest.mark.slow
PARTITION = "2024-01"  # one month: 21 symbols x 31 days

WORKSPACE_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

GRAPH_QUERY = """{
  assetNodes { assetKey { path } groupName isPartitioned
    assetChecksOrError { __typename ... on AssetChecks { checks { name } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes { name location { name }
    jobs { name }
    schedules { name cronSchedule executionTimezone scheduleState { status } }
    sensors { name sensorState { status } } } } }
}"""

LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }"""

RUN_QUERY = """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""

# What the UI's "Materialize" over a partition range sends: an asset backfill.
LAUNCH_BACKFILL = """mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on InvalidSubsetError { message } } }"""

BACKFILL_QUERY = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status runs { runId status } } } }"""
BACKFILL_MONTHS = ["2023-11", "2023-12"]


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    reply = requests.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
    )
    reply.raise_for_status()
    body = reply.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def _get(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _location_loaded(url: str):
    entries = _graphql(url, WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
    for entry in entries:
        error = entry["locationOrLoadError"] or {}
        if error.get("__typename") == "PythonError":
            raise AssertionError(f"code location failed to load: {error['message'][:2000]}")
    return all(e["loadStatus"] == "LOADED" for e in entries) and entries


def test_dagster_dev_serves_the_graph_and_runs_a_partition(tmp_path):
    from portfolio_pipeline.definitions import defs

    dagster = tool("dagster")
    assert dagster, "the dagster CLI is not installed in this environment"
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    for name in ("crypto_ohlcv_daily.parquet", "crypto_news.parquet"):
        (home / "data" / name).symlink_to(DATA_DIR / name)
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    store = home / "data" / "warehouse.duckdb"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "PORTFOLIO_PIPELINE_HOME": str(home),
        "PORTFOLIO_PIPELINE_WAREHOUSE": str(store),
    }
    for name in ("PORTFOLIO_PIPELINE_SCHEDULES_RUNNING", "PORTFOLIO_PIPELINE_SENSORS_RUNNING"):
        env.pop(name, None)  # the defaults are what a user sees
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with process_group(
        [
            dagster,
            "dev",
            "-w",
            str(REPO_ROOT / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        log_path=tmp_path / "dagster_dev.log",
    ) as proc:
        try:
            wait_for(lambda: _get(f"{url}/server_info"), 60, "dagster dev to answer /server_info")
            wait_for(lambda: _location_loaded(url), 60, "the code location to load")
        except TimeoutError:
            assert proc.poll() is None, "dagster dev exited"
            raise AssertionError((tmp_path / "dagster_dev.log").read_text()[-4000:]) from None

        data = _graphql(url, GRAPH_QUERY)
        graph = defs.resolve_asset_graph()
        expected_assets = {k.to_user_string() for k in graph.get_all_asset_keys()}
        expected_checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
        nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
        assert set(nodes) == expected_assets
        shown_checks = {
            (key, check["name"])
            for key, node in nodes.items()
            if node["assetChecksOrError"]["__typename"] == "AssetChecks"
            for check in node["assetChecksOrError"]["checks"]
        }
        assert shown_checks == expected_checks
        assert nodes["raw_ohlcv"]["isPartitioned"] and nodes["raw_ohlcv"]["groupName"] == "market"
        [repo] = data["repositoriesOrError"]["nodes"]
        schedules = {s["name"]: s for s in repo["schedules"]}
        sensors = {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]}
        assert schedules["nightly_refresh_schedule"]["cronSchedule"] == "30 0 * * *"
        assert schedules["nightly_refresh_schedule"]["executionTimezone"] == "UTC"
        assert {s["scheduleState"]["status"] for s in schedules.values()} == {"STOPPED"}
        assert set(schedules) == {s.name for s in defs.schedules}
        assert sensors == {s.name: "RUNNING" for s in defs.sensors}
        assert {
            "daily_refresh_job",
            "policy_retraining_job",
            "full_backfill_job",
            "inbox_ingest_job",
        } <= {j["name"] for j in repo["jobs"]}

        params = {
            "selector": {
                "repositoryLocationName": repo["location"]["name"],
                "repositoryName": repo["name"],
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": ["raw_ohlcv"]}],
            },
            "runConfigData": {},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": PARTITION}]},
        }
        launched = _graphql(url, LAUNCH, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        finished = wait_for(
            lambda: (
                _graphql(url, RUN_QUERY, {"id": run_id})["runOrError"]["status"]
                in ("SUCCESS", "FAILURE", "CANCELED")
            ),
            60,
            f"run {run_id} to finish",
        )
        status = _graphql(url, RUN_QUERY, {"id": run_id})["runOrError"]["status"]
        assert finished and status == "SUCCESS", (tmp_path / "dagster_dev.log").read_text()[-4000:]

        # An asset backfill of two months: one run (BackfillPolicy.single_run()), run by the
        # daemon that `dagster dev` starts.
        backfill_params = {
            "assetSelection": [{"path": ["raw_ohlcv"]}],
            "partitionNames": BACKFILL_MONTHS,
        }
        launched = _graphql(url, LAUNCH_BACKFILL, {"params": backfill_params})
        launched = launched["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]

        def backfill():
            return _graphql(url, BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]

        wait_for(
            lambda: (
                backfill()["status"]
                in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED")
            ),
            180,
            f"backfill {backfill_id} to finish",
        )
        done = backfill()
        assert done["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), (
            done,
            (tmp_path / "dagster_dev.log").read_text()[-4000:],
        )
        assert [r["status"] for r in done["runs"]] == ["SUCCESS"]  # one run for both months
    assert proc.returncode is not None  # stopped, with its process group
    print(f"dagster dev test took {time.monotonic() - started:.1f}s")
    with warehouse.connection(store, read_only=True) as con:
        rows = con.execute("select count(*), min(date), max(date) from market.raw_ohlcv").fetchone()
    # January 2024 from the run, November and December 2023 from the backfill.
    assert rows[0] == 21 * (31 + 30 + 31)
    assert (str(rows[1]), str(rows[2])) == ("2023-11-01", "2024-01-31")
