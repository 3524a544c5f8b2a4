"""Run independent pieces of work (walk-forward folds) in this process or as Ray tasks.

Pure (no dagster); Ray is imported only when it is used.

Backend, from ``PORTFOLIO_PIPELINE_PARALLEL`` unless passed explicitly:

- ``sequential`` (the default without ``RAY_ADDRESS``): a plain loop in this process. On a
  2-core machine Ray buys nothing here (each CatBoost fit already uses both cores) and costs
  ~3 s to start and ~1 s to stop.
- ``ray`` (the default when ``RAY_ADDRESS`` is set): one Ray task per item, on the cluster
  at ``RAY_ADDRESS`` or, without it, on a local Ray using the machine's cores. The shared
  argument is put in the object store once; results come back in the order of the items, so
  the caller sees exactly what the sequential loop would give.

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

Item = TypeVar("Item")
Result = TypeVar("Result")


def resolve_backend(backend: str | None = None) -> str:
    """The backend to use: ``backend``, else ``$PORTFOLIO_PIPELINE_PARALLEL``, else ``ray``
    when ``RAY_ADDRESS`` is set, else ``sequential``."""
    chosen = backend or os.environ.get(ENV_VAR, "").strip().lower()
    if not chosen:
        chosen = RAY if os.environ.get("RAY_ADDRESS") else SEQUENTIAL
    if chosen not in BACKENDS:
        raise ValueError(f"{ENV_VAR}={chosen!r} is not one of {', '.join(BACKENDS)}")
    return chosen


def _ensure_ray() -> None:
    """Join the cluster at ``RAY_ADDRESS`` (or start a quiet local Ray) unless connected."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    else:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)


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

    if resolve_backend(backend) == SEQUENTIAL or len(items) == 0:
        return [function(part(item), item) for item in items]
    import ray

    _ensure_ray()
    remote = ray.remote(num_cpus=cpus_per_task, max_retries=0)(function)
    if shared_key is None:
        shared_ref = ray.put(shared)
        return ray.get([remote.remote(shared_ref, item) for item in items])
    refs = {key: ray.put(shared[key]) for key in dict.fromkeys(shared_key(i) for i in items)}
    return ray.get([remote.remote(refs[shared_key(item)], item) for item in items])
