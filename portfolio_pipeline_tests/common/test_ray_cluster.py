"""The policy search runs on a separate Ray cluster named by RAY_ADDRESS (scale-out made real).

A head is started with ``ray start --head --block`` on this machine, the search joins it
through ``RAY_ADDRESS``, and the cluster's own records (its GCS actor table and node list)
show that every trial ran there. Only the processes this test starts are stopped: SIGTERM
to its ``ray start`` process, which drains and stops that head's children (``ray stop``
would stop every Ray on the machine).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from portfolio_pipeline.policies import tuning
from portfolio_pipeline.policies.env_data import EnvData, build_env_data
from portfolio_pipeline.policies.search_space import with_budget
from portfolio_pipeline.policies.splits import Splits

REPO_ROOT = Path(__file__).resolve().parents[2]
SPLITS = Splits(
    train_start=date(2023, 3, 1),
    tune_start=date(2023, 8, 1),
    train_end=date(2023, 10, 1),
    val_end=date(2024, 1, 1),
    test_end=date(2024, 4, 1),
)
TINY = with_budget(
    "quick",
    samples_per_algorithm=1,
    total_timesteps=64,
    report_every=64,
    n_envs=4,
    env_kwargs={"lookback": 5},
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _reset_ray_auth() -> None:
    """Make this process re-read RAY_AUTH_* (Ray caches the mode and token at first use)."""
    from ray._private.authentication_test_utils import reset_auth_token_state

    reset_auth_token_state()


@pytest.fixture(scope="module")
def ray_head():
    import ray

    if ray.is_initialized():  # another module's local Ray must not take the trials
        ray.shutdown()
    port = _free_port()
    # A short path: Ray's unix sockets live under it (107-character limit).
    temp_dir = tempfile.mkdtemp(prefix="rayt")
    # Ray 2.60 clusters started by `ray start` require a token; one per test cluster.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env = {
        **os.environ,
        **auth,
        "RAY_USAGE_STATS_ENABLED": "0",
        # Workers import the trainable from this checkout.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    log = open(Path(temp_dir) / "head.log", "w")  # noqa: SIM115 - closed below
    patch = pytest.MonkeyPatch()
    head = subprocess.Popen(
        [ray_cli, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            if head.poll() is not None:
                raise RuntimeError(f"ray start exited {head.returncode}; see {log.name}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        for name, value in {**auth, "RAY_ADDRESS": f"127.0.0.1:{port}"}.items():
            patch.setenv(name, value)
        _reset_ray_auth()
        yield port
    finally:
        if ray.is_initialized():
            ray.shutdown()
        head.terminate()  # the head process only: it drains, then stops its children
        try:
            head.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)  # its own session: nothing else is in it
            head.wait(timeout=30)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
        patch.undo()
        _reset_ray_auth()


@pytest.fixture(scope="module")
def env_data(sample_ohlcv: pl.DataFrame) -> EnvData:
    ohlcv = sample_ohlcv.filter(
        pl.col("symbol").is_in(["BTCUSDT", "ETHUSDT"]) & (pl.col("date") >= date(2022, 12, 1))
    )
    return build_env_data(ohlcv, None)


@pytest.mark.slow
def test_policy_search_runs_on_the_cluster_named_by_ray_address(ray_head, env_data, tmp_path):
    import ray
    from ray._private import state

    search = tuning.run_policy_search(env_data, tmp_path, TINY, splits=SPLITS, seed=0)
    assert not ray.is_initialized()  # the search joined the cluster and left it
    trials = search.trials
    assert trials.height == 2 and (trials["timesteps"] == 64).all()

    ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False, logging_level=40)
    try:
        assert ray.get_runtime_context().gcs_address.endswith(f":{ray_head}")
        nodes = {node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]}
        # The cluster's GCS actor table (the data behind Ray's state API, whose HTTP server
        # needs the dashboard extra this install leaves out) holds one Tune trial actor per
        # trial, with the pid each trial reported from inside its worker.
        actors = [
            actor
            for actor in state.actors().values()
            if actor.get("ActorClassName") == "ImplicitFunc"
        ]
    finally:
        ray.shutdown()
    assert set(trials["node_ip"]) <= nodes
    assert set(trials["pid"]) <= {int(actor["Pid"]) for actor in actors}
    assert os.getpid() not in set(trials["pid"])
