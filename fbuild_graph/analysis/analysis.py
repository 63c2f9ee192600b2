"""Where a build's time went, read back from its output folder: phases.tsv, tasks.tsv, results.json. Pure.

The TSV column names are the contract (results.py writes them), so this works on any build's folder,
local or from a cluster, and on a copy taken from a CI artifact. `fbuild-graph report` and the notebooks
in notebooks/ are its readers.
"""

from __future__ import annotations

import bisect
import csv
import json
import os
from typing import Optional, Sequence

from attrs import frozen

from fbuild_graph.errors import FbuildError
from fbuild_graph.model import FRAMEWORK, SKETCH

CLASSES = (FRAMEWORK, SKETCH)
STARTUP = ("import", "discover", "libraries", "plan", "restore", "cluster_start")
CLOCK_SLACK = 0.002  # seconds


@frozen
class Task:
    """One tasks.tsv row. `board` is the board id the action builds for ("" in a folder from before the board
    matrix). `start`/`stop` are seconds since the build began, None for an action that did not run (cached, up
    to date, skipped), and `seconds` its duration as recorded (0 if it did not run; not stop - start, which the
    TSV's rounding would move by up to 0.1 ms); `after` are the actions it waited for."""

    key: str
    kind: str
    sketch: str
    board: str
    resource: str
    worker: str
    status: str
    start: Optional[float]
    stop: Optional[float]
    seconds: float
    after: tuple[str, ...]

    @property
    def ran(self) -> bool:
        return self.start is not None and self.stop is not None


@frozen
class PhaseRow:
    """One phases.tsv row. `board` is the board id of a phase recorded once per board (discover, libraries,
    plan), "" for a phase of the whole run and in a folder from before the board matrix."""

    name: str
    board: str
    start: float
    stop: float
    cache: str

    @property
    def seconds(self) -> float:
        return self.stop - self.start

    @property
    def label(self) -> str:
        """The phase's name, with its board when it has one: a board matrix records `discover` once per board."""
        return f"{self.name} {self.board}" if self.board else self.name


@frozen
class Build:
    """One build's record. `slots`: resource class -> actions that could run at once; `sketch_seconds`:
    target -> its time from results.json; `statuses`: target -> ok / failed / skipped / ... A target is
    (board id, sketch id): a board matrix builds one sketch id once per board (board id "" in a folder from
    before it)."""

    folder: str
    phases: tuple[PhaseRow, ...]
    tasks: tuple[Task, ...]
    slots: dict[str, int]
    sketch_seconds: dict[tuple[str, str], float]
    statuses: dict[tuple[str, str], str]

    @property
    def wall(self) -> float:
        return next(p.stop for p in self.phases if p.name == "total")

    @property
    def ran(self) -> list[Task]:
        return [t for t in self.tasks if t.ran]

    @property
    def startup(self) -> float:
        """When the fixed start-up ended (an up-to-date build starts no cluster: then with discovery). A board
        matrix records discover, libraries and plan once per board: start-up ends with the last of them to
        stop, whichever board's it is."""
        return max((p.stop for p in self.phases if p.name in STARTUP), default=0.0)


@frozen
class SlotUse:
    """How busy one resource class's slots were. `span` runs from its first action's start to its last's
    stop; `idle_in_span` is the share of slot-seconds in that span with nothing running, `idle_in_build` the
    same over the whole build (framework slots sit idle through stage 2 by design)."""

    resource: str
    slots: int
    busy: float
    span: float
    wall: float

    @property
    def idle_in_span(self) -> float:
        return _idle(self.busy, self.slots * self.span)

    @property
    def idle_in_build(self) -> float:
        return _idle(self.busy, self.slots * self.wall)


def _idle(busy: float, capacity: float) -> float:
    return max(0.0, 1.0 - busy / capacity) if capacity > 0 else 0.0


def read_tsv(path: str) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    except OSError:
        raise FbuildError(f"{path} not found: pass the --out folder of a compile-many run") from None


def load(folder: str) -> Build:
    folder = str(folder)
    """A build's output folder; one written before the board matrix (no board columns) reads with board ""."""
    folder = str(folder)
    phases = tuple(PhaseRow(p["phase"], p.get("board", ""), float(p["start"]), float(p["stop"]), p.get("cache", ""))
                   for p in read_tsv(os.path.join(folder, "phases.tsv")))
    tasks = tuple(Task(key=t["key"], kind=t["kind"], sketch=t["sketch"], board=t.get("board", ""),
                       resource=t["resource"], worker=t["worker"], status=t["status"], start=_float(t["start"]),
                       stop=_float(t["stop"]), seconds=_float(t["seconds"]) or 0.0,
                       after=tuple(k for k in t.get("after", "").split("|") if k))
                  for t in read_tsv(os.path.join(folder, "tasks.tsv")))
    report = _results(os.path.join(folder, "results.json"))
    sketches = report.get("sketches", [])
    return Build(folder=folder, phases=phases, tasks=tasks, slots=dict(report.get("slots") or {}),
                 sketch_seconds={_target(s): s["seconds"] for s in sketches},
                 statuses={_target(s): s["status"] for s in sketches})


def _target(sketch: dict) -> tuple[str, str]:
    return sketch.get("board_id", ""), sketch["id"]


def _float(cell: str) -> Optional[float]:
    return float(cell) if cell else None


def _results(path: str) -> dict:
    """results.json is optional: the TSVs alone answer everything but per-sketch times and slots."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def critical_path(build: Build) -> list[Task]:
    """The chain of actions that decided the wall time, first to last. From the action that finished last,
    step back to whatever it waited for that finished last: one of its inputs' actions (tasks.tsv `after`)
    or the action that freed its slot (the latest to stop on the same worker before it started), until an
    action waited for neither. Gaps left between links are the scheduler's own time."""
    ran = build.ran
    if not ran:
        return []
    by_key = {t.key: t for t in ran}
    by_worker: dict[str, list[Task]] = {}
    for t in sorted(ran, key=lambda t: t.stop):
        by_worker.setdefault(t.worker, []).append(t)
    stops = {worker: [t.stop for t in tasks] for worker, tasks in by_worker.items()}
    path = [max(ran, key=lambda t: t.stop)]
    while True:
        task = path[-1]
        inputs = [by_key[k] for k in task.after if k in by_key and by_key[k].stop <= task.start + CLOCK_SLACK]
        latest_input = max(inputs, key=lambda t: t.stop, default=None)
        # tasks.tsv rounds to 0.1 ms, and the freeing action's stop and the next start are taken apart.
        i = bisect.bisect_right(stops[task.worker], task.start + CLOCK_SLACK) - 1
        freed = by_worker[task.worker][i] if i >= 0 and by_worker[task.worker][i] is not task else None
        # On a tie the input explains the wait: another slot of the worker may have come free at that moment.
        if latest_input is not None and (freed is None or latest_input.stop >= freed.stop - CLOCK_SLACK):
            path.append(latest_input)
        elif freed is not None:
            path.append(freed)
        else:
            return path[::-1]


def path_shares(build: Build, path: Sequence[Task]) -> dict[str, float]:
    """Share of the wall time the critical path spent: in start-up (the phases in STARTUP),
    running each resource class's actions, in gaps between its links (`scheduling`), and after its last
    action (writing results)."""
    wall = build.wall
    shares = {name: 0.0 for name in ("start-up", *CLASSES, "scheduling", "finish")}
    if not path or wall <= 0:
        return shares
    startup = build.startup
    shares["start-up"] = min(startup, path[0].start) / wall
    shares["scheduling"] = max(0.0, path[0].start - startup) / wall
    for prev, task in zip([None, *path], path):
        shares[task.resource] = shares.get(task.resource, 0.0) + task.seconds / wall
        if prev is not None:
            shares["scheduling"] += max(0.0, task.start - prev.stop) / wall
    shares["finish"] = max(0.0, wall - path[-1].stop) / wall
    return shares


def stage_shares(build: Build) -> dict[str, float]:
    """Share of the wall time each phase of phases.tsv held (stages may overlap, so shares need not add to 1)."""
    wall = build.wall
    return {p.label: p.seconds / wall for p in build.phases if p.name != "total" and wall > 0}


def slot_use(build: Build) -> list[SlotUse]:
    uses = []
    for resource in CLASSES:
        ran = [t for t in build.ran if t.resource == resource]
        span = max((t.stop for t in ran), default=0.0) - min((t.start for t in ran), default=0.0)
        uses.append(SlotUse(resource, build.slots.get(resource, 0), sum(t.seconds for t in ran), span, build.wall))
    return uses


def lanes(tasks: Sequence[Task]) -> dict[str, tuple[str, int]]:
    """Action key -> (worker, slot). tasks.tsv does not record a worker's thread, so each action takes the
    first slot of its worker that is free when it starts, which shows the slots' concurrency as rows."""
    free_at: dict[str, list[float]] = {}
    rows = {}
    for t in sorted((t for t in tasks if t.ran), key=lambda t: t.start):
        slots = free_at.setdefault(t.worker, [])
        lane = next((n for n, free in enumerate(slots) if free <= t.start), len(slots))
        if lane == len(slots):
            slots.append(t.stop)
        slots[lane] = t.stop
        rows[t.key] = (t.worker, lane)
    return rows


def sketch_work(build: Build) -> dict[tuple[str, str], float]:
    """Target (board id, sketch id) -> seconds its own actions ran (preprocess, compiles, link, objcopy, size)."""
    work: dict[tuple[str, str], float] = {}
    for t in build.ran:
        if t.sketch:
            work[t.board, t.sketch] = work.get((t.board, t.sketch), 0.0) + t.seconds
    return work


@frozen
class BoardWork:
    """One board of a build. `failed` counts every target neither ok nor skipped (failed, not built,
    cancelled, interrupted): none of them left a firmware. `stage1`/`stage2` are the seconds its framework and
    sketch actions ran; `start`/`stop` the first start and last stop of its actions (None if none ran);
    `share` its part of the seconds all actions of the build ran, which says which board the slots spent
    their time on."""

    board: str
    targets: int
    ok: int
    failed: int
    skipped: int
    stage1: float
    stage2: float
    start: Optional[float]
    stop: Optional[float]
    share: float

    @property
    def span(self) -> float:
        return self.stop - self.start if self.start is not None else 0.0


def per_board(build: Build) -> list[BoardWork]:
    """One record per board, in order of first appearance (tasks.tsv, then results.json for a board none of
    whose actions were recorded); a folder from before the board matrix gives one, board ""."""
    ran = build.ran
    total = sum(t.seconds for t in ran)
    boards = dict.fromkeys([*(t.board for t in build.tasks), *(board for board, _ in build.statuses)])
    return [_board_work(board, [t for t in ran if t.board == board],
                        [s for (b, _), s in build.statuses.items() if b == board], total) for board in boards]


def _board_work(board: str, ran: Sequence[Task], statuses: Sequence[str], total: float) -> BoardWork:
    ok, skipped = statuses.count("ok"), statuses.count("skipped")
    return BoardWork(board=board, targets=len(statuses), ok=ok, failed=len(statuses) - ok - skipped,
                     skipped=skipped, stage1=sum(t.seconds for t in ran if t.resource == FRAMEWORK),
                     stage2=sum(t.seconds for t in ran if t.resource == SKETCH),
                     start=min((t.start for t in ran), default=None), stop=max((t.stop for t in ran), default=None),
                     share=sum(t.seconds for t in ran) / total if total > 0 else 0.0)


def slowest(build: Build, n: int) -> list[Task]:
    return sorted(build.ran, key=lambda t: t.seconds, reverse=True)[:n]


def ideal_wall(framework_work: float, sketch_work: float, framework_jobs: int, sketch_jobs: int,
               startup: float = 0.0) -> float:
    """The wall time perfect scaling would give at these job limits, from the work measured where slots
    contend least: the fixed start-up (no slot shares it) plus the largest of the total work over all slots
    and each class's work over its own slots, since no schedule beats any of the three. Dependencies (links
    wait for archives) and cores fewer than slots are what keep a real build above it."""
    return startup + max((framework_work + sketch_work) / (framework_jobs + sketch_jobs),
                         framework_work / framework_jobs, sketch_work / sketch_jobs)
