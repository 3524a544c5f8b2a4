"""Fault injection for the warehouse write path (tests and drills only).

``PORTFOLIO_PIPELINE_FAULT`` holds comma-separated faults ``point[:detail][=action]``:

==========================  ===============================================================
point                       where it fires
==========================  ===============================================================
``copy``                    while the published file is copied to the working copy
``in_write:<table>``        inside the transaction writing ``<table>``, after its DELETE,
                            before its INSERT and COMMIT (a crash in the middle of a write)
``after_write:<table>``     after the write to ``<table>`` committed in the working copy,
                            before the working copy is published
``publish``                 after the working copy is flushed, just before the rename
==========================  ===============================================================

Actions: ``kill`` (default: SIGKILL this process, as an OOM killer or a power cut would) or
``enospc`` (raise ``OSError(ENOSPC)``, as a full disk would). Examples:
``after_write:market.raw_ohlcv``, ``copy=enospc``, ``in_write:portfolio.recommendations``.

Unset (the normal case) costs one dictionary lookup per fault point.
"""

from __future__ import annotations

import errno
import os
import signal

FAULT_ENV = "PORTFOLIO_PIPELINE_FAULT"
ACTIONS = ("kill", "enospc")
POINTS = ("copy", "in_write", "after_write", "publish")


def _parse(text: str) -> list[tuple[str, str, str]]:
    faults = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        spec, _, action = item.partition("=")
        point, _, detail = spec.partition(":")
        action = action or "kill"
        if point not in POINTS or action not in ACTIONS:
            raise ValueError(
                f"{FAULT_ENV}={text!r}: {item!r} is not point[:detail][=action] with point in "
                f"{', '.join(POINTS)} and action in {', '.join(ACTIONS)}"
            )
        faults.append((point, detail, action))
    return faults


def fault_point(point: str, detail: str = "") -> None:
    """Fire the fault configured for ``point`` (and ``detail``, e.g. a table), if any."""
    text = os.environ.get(FAULT_ENV)
    if not text:
        return
    for want_point, want_detail, action in _parse(text):
        if want_point != point or (want_detail and want_detail != detail):
            continue
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError(errno.ENOSPC, f"No space left on device (injected at {point} {detail})")
