"""Worker side: run one step's actions and report what happened. A failing tool is a result, never an
exception, so one broken sketch cannot take a Dask task (or the build) down with it.

An action whose signature matches is up to date and does not run (see `signature.py`). Otherwise it first
removes its outputs and its signature: a file left by an interrupted or failed run is never mistaken for
this run's. Running compilers are tracked so an interrupted build can kill them.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Optional

from fbuild_graph import __version__
from fbuild_graph.execution import fitness
from fbuild_graph.caches import signature
from fbuild_graph.execution import transfer
from fbuild_graph.caches.cache import Cache, CacheSpec
from fbuild_graph import fileio
from fbuild_graph.fileio import write_atomic
from fbuild_graph.model import FRAMEWORK, OK_STATUSES, ActionStatus, Kind, Action, ActionRecord, Artifact, Preprocessing, Step, StepResult
from fbuild_graph.execution.transfer import Mirror

# A firmware step's link and the objcopy and size actions after it are cached by content: their inputs
# (objects from ccache, archives from the stage-1 cache) are the same bytes in any checkout, and the link is
# what a fresh runner would still spend most of its time on. Compiles have ccache; archives, the stage-1
# cache. The chain is one entry, not one an action: the later actions read what the link wrote, so one key
# covers them all, and an entry costs two folders, a file each and a manifest (~2 ms of file system work
# here, 350 of them on a first build of 100 sketches against 90).
CACHED_KINDS = frozenset({Kind.LINK, Kind.EEP, Kind.HEX, Kind.SIZE})
ACTIONS = "actions"
# How often a running tool's task looks whether its run was superseded (one scheduler round trip).
CANCEL_POLL_SECONDS = 0.25


class CannotStart(Exception):
    """A tool did not start (missing, not executable, no working directory): the host's fault."""


_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()


def spawn(action: Action, cancelled: Callable[[], bool]) -> tuple[Optional[int], str]:
    """The command runner: run the action's tool; (exit code, output); exit code None when the run was
    cancelled and the tool killed. Tests pass another (ninja's FakeCommandRunner is the model)."""
    try:
        proc = subprocess.Popen((*action.launcher, *action.argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=action.cwd)
    except OSError as exc:
        raise CannotStart(f"cannot run {action.argv[0]}: {exc.strerror}") from None
    with _running_lock:
        _running.add(proc)
    try:
        while True:
            try:
                out, _ = proc.communicate(timeout=CANCEL_POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if cancelled():
                    _kill(proc)
                    out, _ = proc.communicate()
                    return None, out.decode("utf-8", "replace") + "# killed: the run was superseded\n"
    finally:
        with _running_lock:
            _running.discard(proc)
    return proc.returncode, out.decode("utf-8", "replace")


CommandRunner = Callable[[Action, Callable[[], bool]], tuple[Optional[int], str]]


def run_step(step: Step, *deps: StepResult, cache: Optional[CacheSpec] = None, cancel_event: Optional[str] = None,
             mirror: Optional[Mirror] = None,
             sources: Optional[tuple[dict[str, bytes], dict[str, str]]] = None,
             expected: Optional[fitness.Expectation] = None, commands: CommandRunner = spawn) -> StepResult:
    """`cancel_event` names the Dask Event that says this run was superseded: while it is set, no action
    starts and a running tool is killed. With a `mirror` (a worker that shares no disk with the client),
    the sources and the dependencies' outputs are materialized under it first, the actions run there,
    and the outputs' bytes travel back in the result. With `expected` (the client's toolchain), a worker
    with another toolchain, or one that cannot start a tool, leaves the cluster and the step runs elsewhere:
    the host's fault is never charged to a sketch."""
    if expected is not None:
        unfit = fitness.mismatch(expected)
        if unfit:
            fitness.leave(unfit)
    cancelled = _event_poller(cancel_event)
    blocked = next((d for d in deps if not d.ok), None)
    if blocked is not None:
        why = blocked.blocked_by or blocked.owner
        return StepResult(step=step.key, owner=step.owner, ok=False, blocked_by=why,
                          records=tuple(_record(a, ActionStatus.SKIPPED) for a in step.actions))
    actions = step.actions
    base = ""
    if mirror is not None:
        base = mirror.base()
        files, digests = sources or ({}, {})
        transfer.materialize(files, base, digests)
        for dep in deps:
            transfer.materialize(dep.files, base, {a.path: a.sha256 for a in dep.artifacts})
        actions = tuple(mirror.localize(a, base) for a in actions)
    store = _open(cache) if cache is not None else None
    chain = _cached_chain(actions) if store is not None else slice(0)
    key: Optional[str] = None
    records: list[ActionRecord] = []
    for i, action in enumerate(actions):
        if i < len(records):  # taken from the content cache with the chain it starts
            continue
        if records and records[-1].status not in OK_STATUSES:
            records.append(_record(action, ActionStatus.SKIPPED))
            continue
        if cancelled():
            records.append(_record(action, ActionStatus.CANCELLED))
            continue
        if i == chain.start and chain.stop > i and not signature.up_to_date(action, action.command_line):
            key = _chain_key(actions[chain])
            records += _from_content_cache(actions[chain], key, store)
            if i < len(records):
                key = None  # nothing new to store
                continue
        try:
            records.append(run_action(action, cancelled, commands))
        except CannotStart as exc:
            if expected is not None:
                fitness.leave(str(exc))
            records.append(_record(action, ActionStatus.FAILED, returncode=127, output=f"{exc}\n"))
    ok = all(r.status in OK_STATUSES for r in records)
    if key and all(r.status in OK_STATUSES for r in records[chain]):
        _store_chain(actions[chain], key, store)
    if mirror is None:  # a local build: consumers read the outputs where they are
        return _local_result(step, records)
    # Depfiles travel back too: the client's stage-1 cache keys a unit on what its compiles read.
    outputs = [p for a in actions for p in (*a.outputs, a.stdout_path, signature.depfile(a), signature.output_path(a))
               if p and ok and os.path.isfile(p)]
    artifacts = tuple(Artifact(path=p[len(base):], sha256=fileio.digest(p)) for p in outputs)
    return StepResult(step=step.key, owner=step.owner, ok=ok, records=tuple(records), artifacts=artifacts,
                      files=transfer.collect(outputs, base))


def run_steps(steps: tuple[Step, ...], *deps: tuple[StepResult, ...], **options) -> tuple[StepResult, ...]:
    """One task's steps, one after another (runner.py batches them): `deps` are the results of the tasks
    they depend on, a tuple a task; a step of the batch may depend on an earlier one. `options` go to
    run_step."""
    results = {result.step: result for batch in deps for result in batch}
    for step in steps:
        results[step.key] = run_step(step, *(results[d] for d in step.deps), **options)
    return tuple(results[step.key] for step in steps)


def code_version() -> str:
    """Which fbuild-graph runs where this module was loaded (the scheduler and workers runner.cluster asks)."""
    return __version__


def raised(step: Step, task: str, exc: BaseException) -> StepResult:
    """The result of a step whose task raised (a bug, or a worker lost for good): failed, with the error
    as its output, so its target fails alone and the build goes on."""
    record = ActionRecord(key=step.key, kind="task", owner=step.owner, resource="", status=ActionStatus.FAILED,
                          output=f"task {task} raised {type(exc).__name__}: {exc}\n")
    return StepResult(step=step.key, owner=step.owner, ok=False, records=(record,))


def _local_result(step: Step, records: list[ActionRecord]) -> StepResult:
    """A step's result on the client's own disk. The stage-1 cache stores a unit's files only as they were
    when its tools exited (see Cache.put): their digests travel with the result."""
    ok = all(r.status in OK_STATUSES for r in records)
    produced = [p for a in step.actions for p in (*a.outputs, signature.output_path(a))
                if p and ok and a.resource == FRAMEWORK and os.path.isfile(p)]
    return StepResult(step=step.key, owner=step.owner, ok=ok, records=tuple(records),
                      artifacts=tuple(Artifact(path=p, sha256=fileio.digest(p)) for p in produced))


def answer(step: Step) -> Optional[StepResult]:
    """The result run_step would give a step whose every action is up to date, each signature checked once;
    None at the first action that is not (nothing is touched then: the step is for a cluster to run)."""
    records = []
    for action in step.actions:
        start = time.time()
        command = action.command_line
        if not signature.up_to_date(action, command):
            return None
        records.append(_up_to_date(action, start, command))
    return _local_result(step, records)


def run_action(action: Action, cancelled: Callable[[], bool] = lambda: False,
               commands: CommandRunner = spawn) -> ActionRecord:
    command = action.command_line
    start = time.time()
    if signature.up_to_date(action, command):
        return _up_to_date(action, start, command)
    _clear(action)
    if action.preprocessing:
        returncode, output = _preprocess(action.preprocessing)
    else:
        returncode, output = commands(action, cancelled)
    status = ActionStatus.OK if returncode == 0 else ActionStatus.CANCELLED if returncode is None else ActionStatus.FAILED
    if status == ActionStatus.OK:
        if action.stdout_path:
            write_atomic(action.stdout_path, output)
        signature.record(action, command, output)
    return _record(action, status, start=start, stop=time.time(), returncode=returncode, output=output,
                   command=command)


def _clear(action: Action) -> None:
    """Before an action runs or is taken from the cache: no signature, no output of an earlier run (a depfile
    left by one never passes for this one's), and the output folders there."""
    signature.forget(action)
    outputs = _outputs(action)
    for path in (*outputs, signature.depfile(action)):
        if path:
            _remove(path)
    for folder in {os.path.dirname(p) for p in outputs}:
        if not os.path.isdir(folder):  # one stat; makedirs on a folder that exists costs a failing mkdir too
            os.makedirs(folder, exist_ok=True)


def _outputs(action: Action) -> tuple[str, ...]:
    return (*action.outputs, *([action.stdout_path] if action.stdout_path else []))


def _cached_chain(actions: tuple[Action, ...]) -> slice:
    """The step's first run of consecutive actions cached by content, in one working directory (an entry's
    paths are relative to it); empty when there is none."""
    start = next((i for i, a in enumerate(actions) if a.kind in CACHED_KINDS and a.cwd), len(actions))
    stop = start
    while stop < len(actions) and actions[stop].kind in CACHED_KINDS and actions[stop].cwd == actions[start].cwd:
        stop += 1
    return slice(start, stop)


def _chain_key(chain: tuple[Action, ...]) -> Optional[str]:
    return signature.content_key(chain, [a.command_line for a in chain])


def _from_content_cache(chain: tuple[Action, ...], key: Optional[str], store: Cache) -> list[ActionRecord]:
    """The chain's records when the content cache holds its outputs, now in place; else []."""
    if key is None:
        return []
    start = time.time()
    for action in chain:
        _clear(action)
    if not store.get(ACTIONS, key, chain[0].cwd):
        return []
    records: list[ActionRecord] = []
    for action in chain:
        command = action.command_line
        output = _stdout(action) or signature.recorded_output(action)  # the entry holds what its tool said
        signature.record(action, command)
        # One after another, as if run: tasks.tsv's spans of one slot never overlap.
        records.append(_record(action, ActionStatus.CACHED, start=records[-1].stop if records else start,
                               stop=time.time(), returncode=0, output=output, command=command))
    return records


def _store_chain(chain: tuple[Action, ...], key: str, store: Cache) -> None:
    """Stored off the step's slot: the next step need not wait for the copy. The digests taken now are what
    the copy must match (Cache.put), as the stage-1 cache does."""
    cwd = chain[0].cwd
    kept = [signature.output_path(a) for a in chain]  # what a tool said, when it said anything
    files = {os.path.relpath(p, cwd): p for a in chain for p in _outputs(a)}
    files.update((os.path.relpath(p, cwd), p) for p in kept if p and os.path.isfile(p))
    _STORING.submit(store.put, ACTIONS, key, files, {rel: fileio.digest(p) for rel, p in files.items()})


def _up_to_date(action: Action, start: float, command: str) -> ActionRecord:
    return _record(action, ActionStatus.UP_TO_DATE, start=start, stop=time.time(), returncode=0,
                   output=_stdout(action) or signature.recorded_output(action), command=command)


def finish_storing() -> None:
    """Wait for the content-cache entries still being stored (a build's last step has reported)."""
    global _STORING
    done, _STORING = _STORING, concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fbuild-graph-store")
    done.shutdown(wait=True)


_STORING = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fbuild-graph-store")


@functools.lru_cache(maxsize=None)
def _open(spec: CacheSpec) -> Cache:
    """One Cache per worker process and spec; its layers are folders (Cache.spec: the client unpacked the bundles)."""
    return spec.open()


def _stdout(action: Action) -> str:
    return _read(action.stdout_path) if action.stdout_path else ""


def _preprocess(job: Preprocessing) -> tuple[int, str]:
    # In-process: a Python start-up per sketch would cost more than the preprocessing itself. Imported
    # here, not at the top, to keep the C++ parser off the client's start-up path.
    from fbuild_graph.arduino.preprocess import preprocess

    try:
        preprocess(job.main, job.dest)
        return 0, ""
    except (OSError, UnicodeError, ValueError) as exc:
        return 1, f"preprocessing {job.main} failed: {exc}\n"


def _event_poller(name: Optional[str]) -> Callable[[], bool]:
    if name is None:
        return lambda: False
    from distributed import Event

    event = Event(name)
    return event.is_set


def kill_running() -> int:
    """Kill every tool this process started and is still waiting for (their whole process groups)."""
    with _running_lock:
        procs = list(_running)
    for proc in procs:
        _kill(proc)
    return len(procs)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _record(action: Action, status: str, *, start: float = 0.0, stop: float = 0.0,
            returncode: Optional[int] = None, output: str = "", command: Optional[str] = None) -> ActionRecord:
    """`command`: the action's command line when the caller has it already (quoting every argv word again
    costs as much as the rest of the record)."""
    return ActionRecord(key=action.key, kind=action.kind, owner=action.owner, resource=action.resource, status=status,
                        worker=_worker_name(), start=start, stop=stop, returncode=returncode,
                        command=action.command_line if command is None else command, output=output)


def _worker_name() -> str:
    # Only a task on a Dask worker has a worker name; importing distributed to find out would cost an
    # up-to-date build run inline most of its time. A head start runs while another thread imports it.
    get_worker = getattr(sys.modules.get("distributed"), "get_worker", None)
    if get_worker is None:
        return "local"
    try:
        return str(get_worker().name)
    except ValueError:
        return "local"


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


