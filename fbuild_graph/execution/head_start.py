"""The first steps, run in this process's threads while the local Dask cluster starts.

Importing distributed and starting the in-process cluster takes ~0.35 s, in which the tools could already
be running. So while it starts, a thread per slot (the run's framework and sketch limits) runs ready steps in
plan order, exactly as a worker would: `execute.run_step` with the results of the step's dependencies.
Each result goes to `on_result` as it comes, as the cluster's do; when it says to stop (--max-failures),
no more steps start. When the cluster is up, `stop` lets the steps under way finish and returns every
result, and the cluster takes the rest: a slot is never used twice at once, before, during or after the
hand-over. A head start may begin earlier still, with the cores' steps and framework slots only, while
libraries are detected and the rest is planned (build.CoreFirst); `take` then hands it the whole plan.
"""

from __future__ import annotations

import threading
from typing import Callable, Mapping, Optional, Sequence

from attrs import evolve

from fbuild_graph.execution.execute import kill_running, raised
from fbuild_graph.model import Step, StepResult

LOOKAHEAD = 256
RunStep = Callable[..., StepResult]  # (step, *dependency results) -> its result


class HeadStart:
    """Runs `steps` (in plan order) on `slots` threads per resource class until `stop`. Records name the
    worker of their class, as the cluster's own do (runner.cluster), so tasks.tsv reads the same."""

    def __init__(self, steps: Sequence[Step], slots: dict[str, int], run_step: RunStep,
                 on_result: Callable[[StepResult], bool], given: Mapping[str, StepResult] = {}) -> None:
        self._run_step, self._on_result = run_step, on_result
        self._reporting = threading.Lock()  # on_result sees one result at a time
        self.go_on = True  # False once on_result said to stop
        self._waiting = {resource: [s for s in steps if s.resource == resource] for resource in slots}
        self._taken = {s.key for s in steps}
        self._served = set(slots)  # the resource classes it has threads for
        self._results: dict[str, StepResult] = dict(given)  # `given`: steps done before, for their dependents
        self._stopping = False
        # Interrupted: what finishes from now on is not reported (a killed tool is no outcome of its sketch;
        # the build reports what did not finish as interrupted), as the cluster's results are not.
        self._abandoned = False
        self._error: Optional[BaseException] = None
        self._changed = threading.Condition()
        self._threads = self._new_threads(slots)

    def _new_threads(self, slots: dict[str, int]) -> list[threading.Thread]:
        return [threading.Thread(target=self._serve, args=(resource,), daemon=True,
                                 name=f"fbuild-graph-head-start-{resource}")
                for resource, count in slots.items() for _ in range(count)]

    def __enter__(self) -> "HeadStart":
        for thread in self._threads:
            thread.start()
        return self

    def take(self, steps: Sequence[Step], slots: dict[str, int], given: Mapping[str, StepResult]) -> None:
        """The rest of the plan: the `steps` (in plan order) not given before, the results of steps done
        elsewhere (`given`), and threads for the resource classes of `slots` it has none for yet."""
        with self._changed:
            self._results.update((key, result) for key, result in given.items() if key not in self._results)
            for step in steps:
                if step.key not in self._taken and step.key not in self._results:
                    self._taken.add(step.key)
                    self._waiting.setdefault(step.resource, []).append(step)
            added = self._new_threads({r: n for r, n in slots.items() if r not in self._served})
            self._served.update(slots)
            self._changed.notify_all()
        for thread in added:
            thread.start()
        self._threads += added

    def __exit__(self, kind, value, traceback) -> None:
        with self._changed:  # no step starts from now on, whether or not `stop` was called
            self._stopping = True
            if kind is not None:  # interrupted while the cluster started: no tool may outlive the build
                self._abandoned = True
            self._changed.notify_all()
        if kind is not None:
            kill_running()
        self._join()

    def halt(self) -> None:
        """As when on_result says to stop: no step starts from now on, and `go_on` is False."""
        with self._changed:  # re-entrant: a Condition's lock is an RLock
            self.go_on, self._stopping = False, True
            self._changed.notify_all()

    def stop(self) -> dict[str, StepResult]:
        """No step starts from now on; the results of every step run (each already given to on_result) and
        of the steps given, by step key, once the steps under way have finished."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._join()
        if self._error is not None:
            raise self._error
        return dict(self._results)

    def _join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _serve(self, resource: str) -> None:
        try:
            self._serve_steps(resource)
        except BaseException as exc:  # a bug, not a tool's failure (that is a result): the build must hear of it
            with self._changed:
                self._error = self._error or exc
                self._stopping = True
                self._changed.notify_all()

    def _serve_steps(self, resource: str) -> None:
        while True:
            with self._changed:
                step = self._next(resource)
                while step is None and not self._stopping:
                    self._changed.wait()
                    step = self._next(resource)
                if step is None:
                    return
            try:
                result = self._run_step(step, *(self._results[d] for d in step.deps))
            except Exception as exc:  # as on a worker: the step fails, the build goes on
                result = raised(step, step.key, exc)
            result = evolve(result, records=tuple(evolve(r, worker=resource) for r in result.records))
            if self._abandoned:  # read after the step: a tool killed by the interruption ran before it was set
                return
            with self._reporting:
                go_on = self._on_result(result)
            with self._changed:
                self._results[step.key] = result
                if not go_on:
                    self.halt()
                self._changed.notify_all()

    def _next(self, resource: str):
        """The first waiting step of `resource` whose dependencies have all finished, taken off the list.
        Only the first LOOKAHEAD are looked at: the cluster is up long before a head start gets deeper."""
        if self._stopping:
            return None
        waiting = self._waiting[resource]
        for i, step in enumerate(waiting[:LOOKAHEAD]):
            if all(d in self._results for d in step.deps):
                return waiting.pop(i)
        return None


class Relay:
    """The `on_result` of a head start that begins before the build's collector exists: results are held
    until `attach` hands them over in order; every later one goes straight through."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: list[StepResult] = []
        self._to: Optional[Callable[[StepResult], bool]] = None

    def __call__(self, result: StepResult) -> bool:
        with self._lock:
            if self._to is None:
                self._held.append(result)
                return True
            return self._to(result)

    def attach(self, on_result: Callable[[StepResult], bool]) -> bool:
        """False when `on_result` said to stop on one of the results held."""
        go_on = True
        with self._lock:
            self._to = on_result
            for result in self._held:
                go_on = on_result(result) and go_on
            self._held = []
        return go_on
