"""Cancel superseded runs: concurrency groups on a shared scheduler, as CI systems have them.

Every run in a group watches the group's Dask Variable, which names the newest run that claimed the group.
A run started with --cancel-in-progress claims it; a run that sees another run's name there is
superseded: it sets its own cancel Event, which its running tasks poll to kill their tools (cancelling a
Dask future does not stop a running task), drops its queued tasks and exits with code 3. Runs in other
groups are untouched; what a superseded run finished and cached stays valid.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from typing import Optional

from fbuild_graph.errors import FbuildError
from fbuild_graph.exitcodes import ExitCode

POLL_SECONDS = 0.25


class Superseded(FbuildError):
    exit_code = ExitCode.SUPERSEDED


def new_run_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def cancel_event_name(run_id: str) -> str:
    return f"fbuild-graph/cancel/{run_id}"


class Watcher:
    """Watches one group for this run; `superseded_by` is set once another run claimed the group."""

    def __init__(self, client, group: str, run_id: str, claim: bool, on_superseded):
        from distributed import Variable

        self.run_id = run_id
        self.group = group
        self.superseded_by: Optional[str] = None
        self._variable = Variable(f"fbuild-graph/group/{group}", client=client)
        self._client = client
        self._on_superseded = on_superseded
        self._stop = threading.Event()
        # Names that do not supersede us: our own, and (unless we claim the group) the claim of a run that
        # was there before us.
        self._ignore = {run_id}
        if claim:
            self._variable.set(run_id)
        else:
            self._ignore.add(self._newest())
        self._thread = threading.Thread(target=self._watch, name="fbuild-graph-supersede", daemon=True)
        self._thread.start()

    def _newest(self) -> Optional[str]:
        try:
            return self._variable.get(timeout=POLL_SECONDS)
        except (TimeoutError, OSError):
            return None  # nobody claimed the group yet, or the scheduler is briefly unreachable

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            newest = self._newest()
            if newest and newest not in self._ignore:
                self.superseded_by = newest
                from distributed import Event

                Event(cancel_event_name(self.run_id), client=self._client).set()
                self._on_superseded()
                return

    def stop(self) -> None:
        self._stop.set()

    def error(self) -> Superseded:
        return Superseded(f"run {self.run_id} was superseded by run {self.superseded_by} in group {self.group!r}; "
                          "it stopped, and what it finished and cached stays valid")
