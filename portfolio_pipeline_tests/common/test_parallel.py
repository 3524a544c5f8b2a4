"""Walk-forward folds and horizons as Ray tasks give exactly the sequential results."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from portfolio_pipeline.common import parallel
from portfolio_pipeline.forecasting.config import ForecastConfig
from portfolio_pipeline.forecasting.volatility import fit_volatility_model
from portfolio_pipeline.forecasting.walkforward import (
    walk_forward_horizons,
    walk_forward_volatility_and_model,
)
from portfolio_pipeline.market.features import compute_market_features

FAST = ForecastConfig(iterations=30, depth=4, calibration_days=60, early_stopping_days=90)


def test_backend_comes_from_the_argument_the_environment_ray_address_or_the_cores(monkeypatch):
    monkeypatch.delenv(parallel.ENV_VAR, raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(parallel, "local_cpus", lambda: 2)
    assert parallel.resolve_backend(cpus_per_task=2) == "sequential"  # one 2-thread fit at a time
    assert parallel.resolve_backend(cpus_per_task=1) == "ray"  # two 1-thread tasks at once
    monkeypatch.setattr(parallel, "local_cpus", lambda: 1)
    assert parallel.resolve_backend() == "sequential"
    monkeypatch.setattr(parallel, "local_cpus", lambda: 8)
    assert parallel.resolve_backend(cpus_per_task=2) == "ray"
    monkeypatch.setattr(parallel, "local_cpus", lambda: 1)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert parallel.resolve_backend() == "ray"
    monkeypatch.setenv(parallel.ENV_VAR, "sequential")
    assert parallel.resolve_backend() == "sequential"
    assert parallel.resolve_backend("ray") == "ray"
    monkeypatch.setenv(parallel.ENV_VAR, "dask")
    with pytest.raises(ValueError, match="PORTFOLIO_PIPELINE_PARALLEL='dask' is not one of"):
        parallel.resolve_backend()


def test_a_local_ray_that_cannot_start_falls_back_to_this_process_unless_asked_for(
    monkeypatch, caplog
):
    monkeypatch.delenv(parallel.ENV_VAR, raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(parallel, "local_cpus", lambda: 4)

    def no_ray():
        raise RuntimeError("object store: /dev/shm is full")

    monkeypatch.setattr(parallel, "_ensure_ray", no_ray)
    with caplog.at_level("WARNING", logger=parallel.__name__):
        assert parallel.map_tasks(lambda shared, x: shared + x, 10, [1, 2]) == [11, 12]
    assert "no local Ray (object store: /dev/shm is full): running 2 tasks" in caplog.text
    with pytest.raises(RuntimeError, match="/dev/shm"):
        parallel.map_tasks(lambda shared, x: shared + x, 10, [1, 2], backend="ray")
    monkeypatch.setenv(parallel.ENV_VAR, "ray")
    with pytest.raises(RuntimeError, match="/dev/shm"):
        parallel.map_tasks(lambda shared, x: shared + x, 10, [1, 2])


def test_each_task_gets_only_its_part_of_a_keyed_shared_argument():
    shared = {1: "one", 8: "eight"}
    calls = parallel.map_tasks(
        lambda part, item: (part, item),
        shared,
        [(8, "a"), (1, "b"), (8, "c")],
        backend="sequential",
        shared_key=lambda item: item[0],
    )
    assert calls == [("eight", (8, "a")), ("one", (1, "b")), ("eight", (8, "c"))]


@pytest.mark.slow
def test_folds_and_horizons_on_a_ray_cluster_equal_the_sequential_path(
    sample_ohlcv, ray_cluster_client, monkeypatch
):
    ohlcv = sample_ohlcv.filter(
        pl.col("symbol").is_in(["BTCUSDT", "ETHUSDT", "XRPUSDT"])
        & pl.col("date").is_between(date(2019, 1, 1), date(2021, 12, 31))
    )
    features = compute_market_features(ohlcv)
    window = dict(
        config=FAST,
        first_test_start=date(2021, 1, 1),
        retrain_every_days=120,
        last_test_date=date(2021, 12, 1),
    )
    # Both horizons' folds are one batch of tasks; the volatility folds and its final model
    # another.
    sequential = walk_forward_horizons(features, ohlcv, [1, 8], backend="sequential", **window)
    volatility = walk_forward_volatility_and_model(
        features, ohlcv, 8, backend="sequential", **window
    )
    import ray

    joined, real_init = [], ray.init
    monkeypatch.setattr(
        ray, "init", lambda **kw: joined.append(kw.get("address")) or real_init(**kw)
    )
    on_ray = walk_forward_horizons(features, ohlcv, [1, 8], backend="ray", **window)
    volatility_on_ray = walk_forward_volatility_and_model(
        features, ohlcv, 8, backend="ray", **window
    )
    assert (
        joined == [ray_cluster_client.address] * 2
    )  # each batch joined the cluster at RAY_ADDRESS
    assert not ray.is_initialized()  # and left no connection behind in this process
    assert sequential[1].height == 6 and sorted(set(sequential[1]["horizon_days"])) == [1, 8]
    assert on_ray[0].equals(sequential[0]) and on_ray[1].equals(sequential[1])
    assert volatility_on_ray[0].equals(volatility[0])
    assert volatility_on_ray[1].equals(volatility[1])
    final, final_on_ray = volatility[2], volatility_on_ray[2]
    assert final_on_ray.model_version == final.model_version
    # The batch's final model is the one fit_volatility_model gives (every labelled row).
    assert (
        final.model_version == fit_volatility_model(features, ohlcv, 8, config=FAST).model_version
    )
