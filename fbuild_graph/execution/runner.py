"""The only module that speaks Dask: start or join a cluster, submit steps as tasks, stream results.

Each step becomes one task carrying a resource annotation (`framework=1` or `sketch=1`); workers offer
those resources, so the limits hold on any cluster. The default local cluster runs in this process with
one worker per resource class. One worker per class is deliberate: a Dask worker only tries its
top-priority resource-constrained task (distributed#6136), so a worker offering both classes can leave
a sketch slot idle behind a queued framework task. With one class per worker nothing can queue behind a
task of the other class. (LocalCluster gives every worker the same resources, hence its base class,
SpecCluster, with two worker specs.)
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import logging
import sys
import threading
from typing import Callable, Mapping, Optional, Sequence

from fbuild_graph import __version__
from fbuild_graph.execution import availability
from fbuild_graph.execution import supersede, transfer
from fbuild_graph.caches.cache import CacheSpec
from fbuild_graph.errors import FbuildError
from fbuild_graph.execution.execute import CommandRunner, code_version, kill_running, raised, run_steps
from fbuild_graph.execution.fitness import Expectation
from fbuild_graph.model import FRAMEWORK, SKETCH, Step, StepResult
from fbuild_graph.execution.transfer import Shipment

# For the in-process cluster only. Each costs CPU that the compilers on the same cores want and buys nothing
# here: work stealing (one worker per class: nothing to steal), the statistical profiler (samples every
# thread's stack every 10 ms), psutil polling, a 20 ms event-loop health tick.
LOCAL_CLUSTER_CONFIG = {
    "distributed.scheduler.work-stealing": False,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "60s",
    "distributed.admin.tick.interval": "1s",
}


@contextlib.contextmanager
def cluster(framework_jobs: int, sketch_jobs: int, scheduler: Optional[str] = None,
            kept: Optional["LocalClusters"] = None):
    """A connected distributed Client: to `scheduler` if given, else to a fresh in-process cluster, or to
    the one `kept` holds for these limits (the build service's, left running for the next build)."""
    _quiet_logs()
    if scheduler:
        check_address(scheduler, "--scheduler")
        from distributed import Client

        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise FbuildError(f"cannot reach Dask scheduler {scheduler}: {exc}; start it or fix --scheduler") from None
        try:
            _check_task_code(client, scheduler)
            _check_resources(client, scheduler)
            yield client
        finally:
            client.close()
        return
    if kept is not None:
        try:
            yield kept.client(framework_jobs, sketch_jobs)
        finally:
            kill_running()
        return
    spec, client = _local(framework_jobs, sketch_jobs)
    try:
        yield client
    finally:
        kill_running()
        client.close()
        spec.close()


def _quiet_logs() -> None:
    _import_without_numpy("distributed")  # its import sets its loggers' levels: ours must come after

    # Routine cluster chatter (worker joins, closes) is not build output; warnings still show.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    # A task that raises becomes its sketch's or unit's error line (collect.py); the worker's own report of
    # it is that line again, with a traceback.
    logging.getLogger("distributed.worker").setLevel(logging.CRITICAL)


def _import_without_numpy(name: str) -> None:
    """distributed imports numpy when it is installed, only to allocate its receive buffers uninitialized
    (it falls back to bytearray): a fifth of its import's CPU and 12 MB, on every build's critical path, for
    nothing a build sends. numpy stays importable afterwards; one imported already is left alone."""
    if "numpy" in sys.modules:
        importlib.import_module(name)
        return
    sys.modules["numpy"] = None  # `import numpy` raises ImportError, which distributed expects
    try:
        importlib.import_module(name)
    finally:
        if "numpy" in sys.modules and sys.modules["numpy"] is None:
            del sys.modules["numpy"]


def _local(framework_jobs: int, sketch_jobs: int):
    """A new in-process cluster, one worker per resource class, and a client of it."""
    import dask
    from distributed import Client, Scheduler, SpecCluster, Worker

    dask.config.set(LOCAL_CLUSTER_CONFIG)
    # The in-process transport: messages between client, scheduler and workers are not serialized. No
    # memory limit: these workers' memory is this process's, which pausing or spilling their few small
    # results would not relieve, and its monitor polls it every 100 ms (half the idle cluster's CPU).
    workers = {
        name: {"cls": Worker, "options": {"nthreads": jobs, "resources": {name: jobs}, "name": name,
                                          "protocol": "inproc", "memory_limit": 0}}
        for name, jobs in ((FRAMEWORK, framework_jobs), (SKETCH, sketch_jobs))
    }
    spec = SpecCluster(scheduler={"cls": Scheduler, "options": {"dashboard": False, "dashboard_address": ":0",
                                                                 "protocol": "inproc"}},
                       workers=workers, asynchronous=False, name="fbuild-graph")
    return spec, Client(spec)


class LocalClusters:
    """In-process clusters kept between builds by the build service, one per (framework_jobs, sketch_jobs):
    a build reuses the one of its limits and leaves it running. Nothing of one build's tasks reaches the
    next: every task key carries its run's id, and a build releases its futures (see `run`)."""

    def __init__(self) -> None:
        self._held: dict[tuple[int, int], tuple] = {}

    def client(self, framework_jobs: int, sketch_jobs: int):
        key = (framework_jobs, sketch_jobs)
        held = self._held.get(key)
        if held is not None and held[1].status != "running":  # closed under us: start another
            self._close(*held)
            held = None
        if held is None:
            held = self._held[key] = _local(framework_jobs, sketch_jobs)
        return held[1]

    def close(self) -> None:
        for held in self._held.values():
            self._close(*held)
        self._held.clear()

    @staticmethod
    def _close(spec, client) -> None:
        with contextlib.suppress(Exception):
            client.close()
            spec.close()


def check_address(address: str, option: str) -> None:
    """A scheduler address distributed can dial (SCHEME://HOST:PORT, or HOST:PORT for tcp), checked before
    anything connects: distributed itself raises a bare ValueError from deep inside."""
    from distributed.comm.addressing import get_address_host_port, parse_address
    from distributed.comm.registry import get_backend

    try:
        get_backend(parse_address(address)[0])
        get_address_host_port(address)
    except ValueError as exc:
        raise FbuildError(f"{option} {address!r} is not a scheduler address ({exc}); give one like "
                          "tcp://HOST:8786") from None


def slots(client) -> dict[str, int]:
    """Resource class -> how many of its actions the cluster's workers run at once."""
    total = {FRAMEWORK: 0, SKETCH: 0}
    for worker in client.scheduler_info()["workers"].values():
        for name, amount in (worker.get("resources") or {}).items():
            if name in total:
                total[name] += int(amount)
    return total


def _check_task_code(client, scheduler: str) -> None:
    """distributed's scheduler and workers unpickle the tasks they are sent: where fbuild-graph cannot be
    imported, or is another version, the scheduler refuses every task (the client only sees its connection
    close: "lost the scheduler") and a worker closes at its first one. Workers that join later are not asked."""
    try:
        answers = {f"the Dask scheduler at {scheduler}": client.run_on_scheduler(code_version)}
    except ImportError as exc:
        answers = {f"the Dask scheduler at {scheduler}": exc}
    answers.update((f"worker {address}", answer)
                   for address, answer in sorted(client.run(code_version, on_error="return").items()))
    for who, answer in answers.items():
        if isinstance(answer, BaseException):
            raise FbuildError(f"{who} cannot load fbuild-graph's tasks ({answer}); install fbuild-graph "
                              f"{__version__} where it runs, as on the runners")
        if answer != __version__:
            raise FbuildError(f"{who} runs fbuild-graph {answer}, this is {__version__}; install the same version "
                              "where it runs")


def _check_resources(client, scheduler: str) -> None:
    offered = availability.offered(client)
    missing = [name for name in (FRAMEWORK, SKETCH) if name not in offered]
    if missing:
        raise FbuildError(
            f"no worker of {scheduler} offers the {' and '.join(missing)} resource; start one worker per class: "
            f"`dask worker {scheduler} --nthreads 2 --resources framework=2` and the same with sketch=2"
        )


class ClusterFault(FbuildError):
    """The cluster can no longer run the remaining work (its scheduler was lost, or no worker offers a
    resource that work needs). What finished stands; the rest was not built, through no fault of its own."""


# The reason distributed gives the futures it cancels when the client's connection to the scheduler closes.
SCHEDULER_LOST = "scheduler-connection-lost"


def run(client, steps: Sequence[Step], on_result: Callable[[StepResult], bool], cache: Optional[CacheSpec],
        group: Optional[str] = None, claim: bool = False, shipment: Optional[Shipment] = None,
        expected: Optional[Expectation] = None, commands: Optional[CommandRunner] = None,
        finished: Mapping[str, StepResult] = {}, ahead: Optional["_Submission"] = None) -> None:
    """Submit every step, then hand each result to `on_result` as it finishes. `on_result` returns False
    to stop the build: the remaining tasks are cancelled and their running tools killed. Tasks open
    `cache` themselves for the actions they cache by content. In a concurrency `group` (claimed when
    `claim`), a newer run's claim stops this one: Superseded is raised once its tasks are cancelled. A
    `shipment` (workers that share no disk with us) is scattered once and every task mirrors it. With
    `expected` (the client's toolchain), a worker whose toolchain differs or does not work leaves the
    cluster and its tasks run elsewhere (see fitness.py). ClusterFault is raised when the scheduler is lost,
    or when no worker has offered a resource that unfinished steps need for the grace period. `commands`
    replaces the tools' runner on an in-process cluster (tests pass a fake: see execute.spawn). `finished`
    holds the results of steps already run (head_start.py), handed to their dependents as they are; `ahead`
    holds steps submitted before (submit_ahead), whose results are handled as this run's own."""
    from distributed import as_completed

    run_id = supersede.new_run_id()
    stopped = threading.Event()
    waiting: dict[str, object] = {}

    def stop_waiting() -> None:
        # Cancelled futures complete at once, which wakes the loop below to notice it was stopped.
        stopped.set()
        if "done" in waiting:
            client.cancel(list(waiting["done"].futures))

    grace = availability.grace_seconds()
    watcher = supersede.Watcher(client, group, run_id, claim, stop_waiting) if group else None
    # The toolchain the steps sent ahead check is on every worker by now: this run's tasks read it there.
    sent = ahead.options["expected"] if ahead and expected is not None and ahead.expected == expected else None
    options = _task_options(client, cache, supersede.cancel_event_name(run_id) if group else None, shipment,
                            expected, commands, sent)
    submission = _Submission(client, steps, options, run_id, finished, slots(client)[SKETCH],
                             ahead.futures if ahead else {})
    # The resource class of every step not finished yet: what the watchdog needs some worker to offer.
    unfinished = {step.key: step.resource for step in steps if step.key not in finished}
    unfinished_lock = threading.Lock()

    def needed() -> set[str]:
        with unfinished_lock:
            return set(unfinished.values())

    done = waiting["done"] = as_completed(submission.first())
    watchdog = availability.Watchdog(client, needed, stop_waiting, grace)
    if stopped.is_set():
        stop_waiting()
    lost = False
    try:
        for future in done:
            if stopped.is_set():
                break
            batch = submission.batch_of(future)
            results = _results(future, batch)
            if results is None:
                lost = True
                # Its attempts to reconnect would each log a traceback; the one line below says it all.
                for name in ("distributed", "distributed.client"):  # distributed sets the second's level itself
                    logging.getLogger(name).setLevel(logging.CRITICAL)
                break
            with unfinished_lock:
                for step in batch:
                    del unfinished[step.key]
            if not all([on_result(result) for result in results]):  # every result of the batch is kept
                break
            for more in submission.finished(batch):
                done.add(more)
    finally:
        watchdog.stop()
        if watcher:
            watcher.stop()
        pending = list(done.futures)
        if pending and not lost:  # with the scheduler gone there is nobody to tell
            client.cancel(pending)
            kill_running()
    if lost:
        raise ClusterFault(f"lost the scheduler at {client.scheduler.address}; what finished is kept, the rest "
                           "is not built: restart the scheduler and its workers, then build again")
    if watcher and watcher.superseded_by:
        raise watcher.error()
    if watchdog.error:
        raise ClusterFault(watchdog.error)


def submit_ahead(client, steps: Sequence[Step], shipment: Shipment, expected: Optional[Expectation]) -> "_Submission":
    """Stage-1 steps sent before the build's run (build.CoreFirst on runners: the cores' steps, which read
    none of the client's files), each a task, with their dependencies, for run(ahead=...). The submission
    holds their futures (`futures`, by step key) and what they read (_everywhere) until the run has them;
    all is released with the client if the build ends first."""
    submission = _Submission(client, steps, _task_options(client, None, None, shipment, expected, None),
                             supersede.new_run_id(), {}, slots(client)[SKETCH], expected=expected)
    submission.first()
    return submission


def _task_options(client, cache: Optional[CacheSpec], cancel_event: Optional[str], shipment: Optional[Shipment],
                  expected: Optional[Expectation], commands: Optional[CommandRunner], expected_sent=None) -> dict:
    """The keyword arguments of every task of a run (execute.run_step's); `expected_sent`, the future of
    `expected` sent before (by submit_ahead)."""
    remote = {}
    if shipment is not None:
        remote = {"mirror": shipment.mirror, "sources": _everywhere(client, (shipment.sources, shipment.digests))}
    if expected is not None:
        remote["expected"] = expected_sent if expected_sent is not None else _everywhere(client, expected)
    if commands is not None:
        remote["commands"] = commands
    return dict(cache=cache, cancel_event=cancel_event, pure=False, **remote)


def _everywhere(client, value):
    """`value`, which every task of a run reads, as the result of a task that returns it, on every worker.
    Not scattered: scattered data is lost with the last worker holding it (a runner whose toolchain fails
    leaves at its first task, perhaps while data is being copied to it), and every task reading it fails
    ("lost dependencies"); a task's result is computed again. Copied to every worker (replicate) while the
    run's tasks are submitted: held by one worker only it would draw every task to that worker (the
    scheduler counts the transfer a task's data needs); waiting for the copies held the first sketch back
    ~0.3 s on two runners."""
    future = client.submit(transfer.returned, value, pure=False)
    threading.Thread(target=_replicate, args=(client, future), name="fbuild-graph-replicate", daemon=True).start()
    return future


def _replicate(client, future) -> None:
    # Placement only: a worker leaving mid-copy makes replicate raise (a KeyError, a closed comm), as does a
    # client closed first (a short build: asyncio's CancelledError, no Exception), and the value stays
    # computable, fetched by a task wherever it runs. Nothing here may print a thread's traceback.
    try:
        client.replicate([future])
    except BaseException:
        pass


class _Submission:
    """Steps go to the scheduler a window at a time: every stage-1 step at once (few, and their slots must
    never wait behind sketches), sketch steps in plan order while at most WINDOW of them are unfinished.
    distributed assigns a task with resource restrictions to a worker at once, and recomputes a worker's
    occupancy over every task assigned to it, so submitting 10,000 sketches at once made each step cost
    time in proportion to the whole run. Consecutive sketch steps of one priority share a task (a batch,
    see batch_size) while many are left, since each task costs the scheduler and the worker CPU that the
    tools want. A finished task's future is kept until every step that depends on its steps has been
    submitted, then released, so results do not pile up in memory."""

    WINDOW = 256

    def __init__(self, client, steps: Sequence[Step], options: dict, run_id: str,
                 finished: Mapping[str, StepResult], sketch_slots: int, ahead: Mapping[str, object] = {},
                 expected: Optional[Expectation] = None):
        self.client, self.options, self.run_id, self.sketch_slots = client, options, run_id, sketch_slots
        self.expected = expected  # the toolchain its tasks check (options["expected"] its future)
        left = [step for step in steps if step.key not in finished and step.key not in ahead]
        self.stage1 = [step for step in left if step.resource == FRAMEWORK]
        self.rest = collections.deque(step for step in left if step.resource != FRAMEWORK)
        # Step key -> the future of its task, or (a step run before the cluster) its result.
        self.futures: dict[str, object] = {key: (result,) for key, result in finished.items()}
        self.batches: dict[str, tuple[Step, ...]] = {}  # task key -> its steps
        self.holding = collections.Counter()  # task key -> steps of it whose result may still be needed
        sent = [step for step in steps if step.key in ahead]  # one step a task (submit_ahead)
        self.ahead = [ahead[step.key] for step in sent]
        for step in sent:
            future = ahead[step.key]
            self.futures[step.key], self.batches[future.key], self.holding[future.key] = future, (step,), 1
        # Dependents submitted ahead hold their dependencies already.
        self.waiting_dependents = collections.Counter(d for step in steps if step.key not in ahead for d in step.deps)
        self.done: set[str] = set(finished)
        self.open = 0  # sketch steps submitted and not finished

    def first(self) -> list:
        return [*self.ahead, *(self._submit((step,)) for step in self.stage1), *self._more()]

    def batch_of(self, future) -> tuple[Step, ...]:
        return self.batches[future.key]

    def finished(self, batch: Sequence[Step]) -> list:
        """Note the steps of a task finished (their results handled); the steps that may now be submitted,
        submitted."""
        for step in batch:
            self.done.add(step.key)
            self.open -= step.resource != FRAMEWORK
            self._release_if_unneeded(step.key)
        return self._more()

    def _more(self) -> list:
        more = []
        while self.rest and self.open < self.WINDOW:
            batch = [self.rest.popleft()]
            size = batch_size(len(self.rest), self.sketch_slots)
            while self.rest and len(batch) < size and self.rest[0].priority == batch[0].priority:
                batch.append(self.rest.popleft())
            more.append(self._submit(tuple(batch)))
            self.open += len(batch)
        return more

    def _submit(self, batch: tuple[Step, ...]):
        inside = {step.key for step in batch}
        deps = list(dict.fromkeys(d for step in batch for d in step.deps if d not in inside))
        name = batch[0].key if len(batch) == 1 else f"{batch[0].key}+{len(batch) - 1}"
        future = self.client.submit(run_steps, batch, *(self.futures[d] for d in deps),
                                    key=f"{name}#{self.run_id}", resources={batch[0].resource: 1},
                                    priority=max(step.priority for step in batch), **self.options)
        self.batches[future.key] = batch
        self.holding[future.key] = len(batch)
        for step in batch:
            self.futures[step.key] = future
        for dep in deps:
            self.waiting_dependents[dep] -= sum(dep in step.deps for step in batch)
            self._release_if_unneeded(dep)
        return future

    def _release_if_unneeded(self, key: str) -> None:
        if key in self.done and self.waiting_dependents[key] <= 0 and key in self.futures:
            future = self.futures.pop(key)
            if isinstance(future, tuple):  # a result from before the cluster: nothing to release
                return
            self.holding[future.key] -= 1
            if self.holding[future.key] == 0:
                del self.holding[future.key], self.batches[future.key]
                future.release()


# Sketch steps per task: fewer as the queue empties, so that the last tasks are single steps and the slots
# finish together (TAIL tasks a slot are left when batching stops). At most MAX_BATCH on a queue of hundreds
# (a real build's: bigger batches were no faster on 100 real sketches, whose steps take 50-300 ms), growing
# by one for every LONG_QUEUE steps queued up to MAX_LONG_BATCH, where a task's own cost to the scheduler and
# the worker (~5-10 ms of CPU) adds up over thousands of steps.
MAX_BATCH = 4
MAX_LONG_BATCH = 64
LONG_QUEUE = 64
TAIL = 4


def batch_size(queued: int, slots: int) -> int:
    """How many sketch steps the next task takes, with `queued` steps behind it and `slots` sketch slots."""
    most = min(MAX_LONG_BATCH, max(MAX_BATCH, queued // LONG_QUEUE))
    return max(1, min(most, queued // (max(slots, 1) * TAIL)))


def _results(future, batch: Sequence[Step]) -> Optional[tuple[StepResult, ...]]:
    """The task's results, one a step, or None when the scheduler was lost (the client then cancels every
    future)."""
    from distributed.client import FutureCancelledError

    try:
        return future.result()
    except FutureCancelledError as exc:
        if exc.reason == SCHEDULER_LOST:
            return None
        return tuple(raised(step, str(future.key).rsplit("#", 1)[0], exc) for step in batch)
    except Exception as exc:  # a worker lost for good, or a bug in a task: the steps failed, the build goes on
        return tuple(raised(step, str(future.key).rsplit("#", 1)[0], exc) for step in batch)
