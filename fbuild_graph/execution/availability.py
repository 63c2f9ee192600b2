"""Notice when the remaining work has no worker able to run it, instead of waiting forever.

A Dask task that needs a resource no worker offers waits until one joins: on a cluster whose only framework
worker died for good, that is forever. The scheduler's `no-workers-timeout` would end it, but it is the
scheduler's setting and we join schedulers we did not start. So the client watches: every POLL_SECONDS it
asks which resources the connected workers offer, and once a resource that unfinished steps need has been
missing for the grace period, it stops the build with a line saying which one and how to add a worker.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Optional

from fbuild_graph.errors import FbuildError

GRACE_ENV = "FBUILD_GRAPH_NO_WORKER_TIMEOUT"
DEFAULT_GRACE_SECONDS = 30.0
POLL_SECONDS = 1.0
# Where a worker that left because it cannot run the build's tools says why (scheduler metadata).
LEFT_KEY = ("fbuild-graph", "left")


def grace_seconds() -> float:
    """How long a needed resource may be missing: a restarting worker is back well within the default."""
    text = os.environ.get(GRACE_ENV, "")
    if not text:
        return DEFAULT_GRACE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise FbuildError(f"{GRACE_ENV}={text!r} is not a positive number of seconds; set it to e.g. 30 or unset it")
    return value


def offered(client) -> set[str]:
    """The resources some connected worker offers."""
    found: set[str] = set()
    for worker in client.scheduler_info()["workers"].values():
        found.update(name for name, amount in (worker.get("resources") or {}).items() if amount > 0)
    return found


class Watchdog:
    """Watches, for one run, that some worker offers each resource `needed()` names; `error` (what to say)
    is set, and `on_stranded` called once, when one has been missing for `grace` seconds."""

    def __init__(self, client, needed: Callable[[], set[str]], on_stranded: Callable[[], None], grace: float):
        self.error: Optional[str] = None
        self._client = client
        self._needed = needed
        self._on_stranded = on_stranded
        self._grace = grace
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="fbuild-graph-watchdog", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        missing_since: dict[str, float] = {}
        while not self._stop.wait(POLL_SECONDS):
            try:
                have = offered(self._client)
            except Exception:  # the scheduler is unreachable: the run's futures report that, not us
                continue
            now = time.monotonic()
            for name in sorted(self._needed()):
                if name in have:
                    missing_since.pop(name, None)
                elif now - missing_since.setdefault(name, now) >= self._grace:
                    self.error = self._message(name)
                    self._on_stranded()
                    return

    def _message(self, name: str) -> str:
        address = self._client.scheduler.address
        try:
            left = self._client.get_metadata(list(LEFT_KEY), default={})
        except Exception:  # only an explanation; the message stands without it
            left = {}
        why = "".join(f" (worker {worker} left: {reason})" for worker, reason in sorted(left.items()))
        return (f"no worker offers the {name} resource{why}: the remaining work cannot run; start one with "
                f"`fbuild-graph worker {address}` (or `dask worker {address} --resources {name}=1`)")

    def stop(self) -> None:
        self._stop.set()
