"""Run independent pieces of work (walk-forward folds, backtest decision days) in this
process or as Ray tasks.

Pure (no dagster); Ray is imported only when it is used.

Backend, from ``PORTFOLIO_PIPELINE_PARALLEL`` unless passed explicitly:

- ``ray`` (the default when ``RAY_ADDRESS`` is set, or when this machine has the cores to
  run at least two tasks at once): one Ray task per item, on the cluster at ``RAY_ADDRESS``
  or, without it, on a local Ray using the machine's cores, started for the batch and
  stopped after it (~3 s and ~1 s). The shared argument is put in the object store once;
  results come back in the order of the items, so the caller sees exactly what the
  sequential loop would give.
- ``sequential`` (the default otherwise): a plain loop in this process. On a 2-core machine
  that is the walk-forward's case (each CatBoost fit already uses both cores), not the
  backtests' (one solver thread per decision).

The function must live in the package (Ray workers import it by name; the workers need this
package installed).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

SEQUENTIAL = "sequential"
RAY = "ray"
BACKENDS = (SEQUENTIAL, RAY)
ENV_VAR = "PORTFOLIO_PIPELINE_PARALLEL"

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


def local_cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_backend(backend: str | None = None, cpus_per_task: float = 1.0) -> str:
    """The backend to use: ``backend``, else ``$PORTFOLIO_PIPELINE_PARALLEL``, else ``ray``
    when ``RAY_ADDRESS`` is set or this machine can run two tasks of ``cpus_per_task`` at
    once, else ``sequential``."""
    chosen = backend or os.environ.get(ENV_VAR, "").strip().lower()
    if not chosen:
        parallel_here = local_cpus() >= 2 * cpus_per_task
        chosen = RAY if os.environ.get("RAY_ADDRESS") or parallel_here else SEQUENTIAL
    if chosen not in BACKENDS:
        raise ValueError(f"{ENV_VAR}={chosen!r} is not one of {', '.join(BACKENDS)}")
    return chosen


def _chosen_by_default(backend: str | None) -> bool:
    """True when neither the caller, the environment nor ``RAY_ADDRESS`` asked for Ray."""
    asked = backend or os.environ.get(ENV_VAR, "").strip() or os.environ.get("RAY_ADDRESS")
    return not asked


def _ensure_ray() -> bool:
    """Join the cluster at ``RAY_ADDRESS`` (or start a quiet local Ray) unless connected;
    True when this call connected (the caller then disconnects after its batch)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    else:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    return True


def map_tasks(
    function: Callable[[Any, Item], Result],
    shared: Any,
    items: Sequence[Item],
    *,
    backend: str | None = None,
    cpus_per_task: float = 1.0,
    shared_key: Callable[[Item], Hashable] | None = None,
) -> list[Result]:
    """``[function(shared, item) for item in items]``, sequentially or as Ray tasks.

    With ``shared_key``, ``shared`` is a mapping and each call gets only its part:
    ``function(shared[shared_key(item)], item)``; each part goes to the object store once, so
    a task deserializes what it needs (one horizon's design frame), not the whole mapping.

    Parameters
    ----------
    function : callable
        A module-level function of the package, ``function(shared, item) -> result``; it must
        be deterministic for the two backends to agree.
    shared : object
        The large argument every call needs (sent to the Ray object store once).
    items : sequence
        One task per item.
    backend : {"sequential", "ray"}, optional
        See :func:`resolve_backend`.
    cpus_per_task : float
        CPUs Ray reserves for each task (e.g. CatBoost's ``thread_count``).

    Returns
    -------
    list
        One result per item, in the order of ``items``.
    """

    def part(item: Item) -> Any:
        return shared if shared_key is None else shared[shared_key(item)]

    if resolve_backend(backend, cpus_per_task) == SEQUENTIAL or len(items) == 0:
        return [function(part(item), item) for item in items]
    try:
        import ray

        connected_here = _ensure_ray()
    except Exception as exc:
        if not _chosen_by_default(backend):
            raise  # Ray was asked for: its failure is the caller's to see
        # Parallelism picked only because the cores are there must never fail a run that
        # works in process (e.g. a container whose /dev/shm cannot hold Ray's object store).
        logger.warning("no local Ray (%s): running %d tasks in this process", exc, len(items))
        return [function(part(item), item) for item in items]
    try:
        return _ray_map(function, shared, items, cpus_per_task, shared_key)
    finally:
        if connected_here:  # leave no Ray behind in the caller's process (a Dagster step)
            ray.shutdown()


def _ray_map(
    function: Callable[[Any, Item], Result],
    shared: Any,
    items: Sequence[Item],
    cpus_per_task: float,
    shared_key: Callable[[Item], Hashable] | None,
) -> list[Result]:
    """One Ray task per item on the connected Ray, results in the order of ``items``; each
    shared part goes to the object store once."""
    import ray

    remote = ray.remote(num_cpus=cpus_per_task, max_retries=0)(function)
    if shared_key is None:
        shared_ref = ray.put(shared)
        return ray.get([remote.remote(shared_ref, item) for item in items])
    keys = dict.fromkeys(shared_key(i) for i in items)
    refs = {key: ray.put(shared[key]) for key in keys}
    return ray.get([remote.remote(refs[shared_key(item)], item) for item in items])
