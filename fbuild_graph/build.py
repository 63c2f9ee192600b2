"""compile-many: the top-level build, read as its list of phases.

resolve board -> check toolchain -> find sketches -> discover libraries -> plan the DAG -> run it on
Dask (stage 1 and stage 2 overlap; only links wait for archives) -> write results.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import hashlib
import os
import resource
import tempfile
import sys
import time
from typing import Callable, Mapping, Optional, Sequence, TypeVar

from attrs import evolve, field, frozen

from fbuild_graph.arduino import board as boards
from fbuild_graph.caches import ccache
from fbuild_graph.arduino import detection
from fbuild_graph.execution import execute
from fbuild_graph import fileio
from fbuild_graph.memo import Stamped
from fbuild_graph.caches import fingerprint
from fbuild_graph.caches import signature
from fbuild_graph.execution import fitness
from fbuild_graph.execution import head_start
from fbuild_graph.arduino import include_probe
from fbuild_graph.arduino import include_scan
from fbuild_graph.arduino import installs
from fbuild_graph.arduino import libraries
from fbuild_graph.arduino import properties
from fbuild_graph.arduino import macro_use
from fbuild_graph.planning import matrix
from fbuild_graph.planning import targets
from fbuild_graph.outputs import lock
from fbuild_graph.planning import plan
from fbuild_graph.outputs import results
from fbuild_graph.execution import runner
from fbuild_graph.caches import stage1
from fbuild_graph.execution import supersede
from fbuild_graph.arduino import toolchain
from fbuild_graph.caches import tools
from fbuild_graph.execution import transfer
from fbuild_graph.planning import graph as graphs
from fbuild_graph.arduino import sketch as sketches
from fbuild_graph.outputs import progress as progress_views
from fbuild_graph.outputs.collect import Collector
from fbuild_graph.errors import FbuildError
from fbuild_graph.exitcodes import ExitCode
from fbuild_graph.planning.layout import Layout
from fbuild_graph.caches.bundles import DEFAULT_MAX_BUNDLE_BYTES
from fbuild_graph.caches.cache import Cache, CacheSpec
from fbuild_graph.model import (FRAMEWORK, SKETCH, ActionRecord, ActionStatus, Board, BuildReport, Owner, Phase, SketchStatus,
                                Step, StepResult, WarningLevel)
from fbuild_graph.arduino.preprocess import merge
from fbuild_graph.arduino.sketch import SOURCE_EXTENSIONS, compile_order

T = TypeVar("T")



@frozen
class Config:
    boards: tuple[str, ...]
    sketches: tuple[str, ...]
    out: Optional[str] = None
    hardware: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    library_dirs: tuple[str, ...] = ()
    build_properties: dict[str, str] = field(factory=dict)
    framework_jobs: int = field(factory=lambda: min(os.cpu_count() or 1, 2))
    sketch_jobs: int = field(factory=lambda: os.cpu_count() or 1)
    scheduler: Optional[str] = None
    cache_dir: Optional[str] = None
    cache_mode: str = "rw"
    cache_layers: tuple[str, ...] = ()
    cache_trust: tuple[str, ...] = ()  # public key files: every bundle layer must be signed by one
    max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES
    ccache: bool = True
    group: Optional[str] = None
    cancel_in_progress: bool = False
    wait: bool = False
    excludes: tuple[str, ...] = ()  # --exclude BOARD:GLOB
    warnings: str = WarningLevel.NONE  # --warnings: which compiler.warning_flags.LEVEL the compiles take
    warnings_as_errors: bool = False
    max_failures: Optional[int] = None
    shard: Optional[tuple[int, int]] = None  # (K, N): the K-th of N shards, from 1
    durations: Optional[str] = None  # a tasks.tsv whose times balance the shards
    only_failed: Optional[str] = None  # an earlier --out: only its targets that did not build


class PhaseClock:
    """The spans of one run, in seconds since `t0` (when the process began importing us): every phase the
    build reports in phases.tsv is recorded here, in the order the build went through them."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.phases: list[Phase] = []

    def record(self, name: str, start: float, stop: float, **fields: str) -> None:
        """A span given in time.time() seconds; `fields`: the Phase's cache and board."""
        self.phases.append(Phase(name, start - self.t0, stop - self.t0, **fields))

    @contextlib.contextmanager
    def phase(self, name: str, **fields: str):
        start = time.time()
        yield
        self.record(name, start, time.time(), **fields)

    def since_start(self) -> float:
        return time.time() - self.t0


class Warm:
    """What the build service keeps between builds, in one place: the in-process clusters (one per pair of
    limits) and what was worked out from files that have not changed since (`memo.Stamped`: the compiler's
    answers to the probes). A build in a process of its own has none. Content digests are never kept from
    one build to the next: every build's signatures hash what is on disk now."""

    def __init__(self) -> None:
        self.clusters = runner.LocalClusters()
        self.memo = Stamped()

    def begin(self) -> None:
        fileio.forget_digests()

    def close(self) -> None:
        self.clusters.close()


@frozen
class Run:
    """What running a prepared build needs, in one record: the plan, the caches and where progress goes."""

    config: "Config"
    prepared: "Prepared"
    steps: tuple[Step, ...]
    store: Cache
    restored: Mapping[str, str]
    progress: Callable[[str], None]
    view: object
    warm: Optional[Warm] = None
    core_first: Optional["CoreFirst"] = None


@frozen
class Outcome:
    """What a run ended with: the collector's results, the exit code so far and the cluster's slots per
    resource class (empty when nothing ran on a cluster)."""

    collector: Collector
    exit_code: int
    slots: dict[str, int]


# In the output folder: what a build learnt of its tools, for the next one (see tools.Tools), and the
# toolchain probes' answers (see memo.Stamped).
TOOLS_MEMO = "tools.cache"
PROBES_MEMO = "probes.cache"


def default_cache_dir() -> str:
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fbuild-graph")


@frozen
class BoardBuild:
    """One board of the run, as planned: `board_id` names it in this run, `namespace` prefixes its owners and
    keys (empty in a single-board build), `layout` says where its files go (OUT, or OUT/BOARD when the run
    has several boards). `identity` is its toolchain's (toolchain.identity: a process and a read of the
    compiler, once). `answers` holds its library detection's preprocessor answers, to be saved by whoever
    holds the output folder's lock."""

    board: Board
    identity: str
    board_id: str
    namespace: str
    layout: Layout
    discovery: detection.Discovery
    answers: include_probe.AnswerCache


@frozen
class Prepared:
    """Everything known before anything runs: the inputs to `run` and to `graph --format ninja`. `targets`
    are every sketch for every board, board after board, skipped ones included; `notes` are for the caller
    to say once preparation has succeeded, so bad input gets exactly one line."""

    out: str
    boards: tuple[BoardBuild, ...]
    targets: tuple[targets.Target, ...]
    graph: object
    units: tuple[fingerprint.Unit, ...]
    notes: tuple[str, ...]
    tools: tools.Tools

    def save_memos(self) -> None:
        """What planning learnt (preprocessor answers, tool files and digests), for the next build: called
        by whoever holds the output folder's lock."""
        for built in self.boards:
            built.answers.save()
        self.tools.save()


@frozen
class Batch:
    """What every board of a run shares: the sketches with their marker files, the exclusions, the libraries
    on offer (by board and core platform: indexing them reads every library's files, once) and the tools'
    identities."""

    sketches: tuple[sketches.Sketch, ...]
    markers: Mapping[str, Mapping[str, set[str]]]
    exclusions: tuple[targets.Exclusion, ...]
    offered: Mapping[tuple[str, str], Sequence[libraries.Library]]
    tool: tools.Tools
    chosen: frozenset[tuple[str, str]]  # (board id, sketch id) of the targets this run builds or skips
    memo: Stamped


@frozen
class Discovered:
    """What is known once discovery is done, before library detection: the output folder, every board
    (board, id, namespace, layout), the compile launcher and what the boards share."""

    out: str
    boards: tuple[tuple[Board, str, str, Layout], ...]
    launcher: tuple[str, ...]
    batch: Batch


def prepare(config: Config, compiler_cache: Optional[Callable[[Optional[str]], tuple[str, ...]]] = None,
            clock: Optional[PhaseClock] = None, memo: Optional[Stamped] = None,
            discovered: Callable[["Discovered"], None] = lambda found: None) -> Prepared:
    """Everything before the first tool runs, as the phases `discover` (board, toolchain; the sketches with
    the first board), `libraries` (detection and skips), one of each per board, and `plan` (the DAG and
    stage-1 keys), each recorded on `clock`. Raises FbuildError for bad input. `compiler_cache` gives the
    compile launcher for a base folder (every path under it is made relative; None: no such folder short of
    `/`, so paths stay absolute and only builds in the same place share entries). `memo` keeps the
    toolchain probes' answers between builds of the build service. `discovered` hears what is known once
    discovery is done, before library detection (see CoreFirst)."""
    clock = clock or PhaseClock(time.time())
    dirs = installs.Directories.from_environment(config.hardware, config.tools)
    exclusions = tuple(targets.Exclusion.parse(text) for text in config.excludes)
    start = time.time()
    found, skipped = sketches.search(config.sketches)
    resolved, spans, said = [], [], []
    for name in config.boards:
        board, its_notes = _resolve_board(name, dirs, config.build_properties, config.warnings)
        resolved.append(board)
        said.append(its_notes)
        spans.append((start, time.time()))
        start = time.time()
    ids = targets.board_ids(resolved)
    several = len(resolved) > 1
    top = os.path.abspath(config.out or os.path.join(".fbuild-graph", "+".join(ids)))
    # The toolchain's quirks, once the output folder that keeps the probes' answers is known.
    memo = memo or Stamped.in_file(os.path.join(top, PROBES_MEMO))
    notes: list[str] = []
    for i, board in enumerate(resolved):
        start = time.time()
        resolved[i], its_notes = _work_around(board, memo)
        notes += said[i] + its_notes
        spans[i] = (spans[i][0], spans[i][1] + time.time() - start)
    # The sketchbook's libraries come after the ones named, as arduino-cli ranks them below --library.
    library_dirs = (*map(os.path.abspath, config.library_dirs),
                    *([dirs.sketchbook_libraries] if os.path.isdir(dirs.sketchbook_libraries) else []))
    batch = Batch(sketches=tuple(found), markers={sk.id: targets.markers(sk.path) for sk in found},
                  exclusions=exclusions, offered={platforms: libraries.index(list(library_dirs), *platforms)
                                                  for platforms in dict.fromkeys(map(_platforms, resolved))},
                  tool=tools.Tools(os.path.join(top, TOOLS_MEMO), memo),
                  chosen=_chosen(config, [(board, board_id, sk) for board, board_id in zip(resolved, ids)
                                          for sk in found]), memo=memo)
    for compiler in dict.fromkeys(toolchain.compiler(board.properties) for board in resolved):
        batch.tool.system_headers(compiler)  # once, before the boards ask for it side by side
    # Compiles read sketches from their copies in the output folder, user libraries from where they are,
    # and the installed core from where it is on every runner: so paths under the output folder and the
    # user library folders are made relative (to the output folder, the tools' working directory).
    base_dir = os.path.commonpath([top, *library_dirs])
    launcher = compiler_cache(None if base_dir == os.sep else base_dir) if compiler_cache else ()
    placed = [(board, board_id, *_placed(top, board_id, several)) for board, board_id in zip(resolved, ids)]
    discovered(Discovered(out=top, boards=tuple(placed), launcher=launcher, batch=batch))
    # Boards detect side by side: most of detection's time is its preprocessor runs.
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(resolved)) as pool:
        detected = [pool.submit(_detect_and_skip, batch, board, board_id, namespace, layout)
                    for board, board_id, namespace, layout in placed]
    built, all_targets = [], []
    for board, board_id, span, future in zip(resolved, ids, spans, detected):
        clock.record("discover", *span, board=board_id)
        one, its_targets, detect_span = future.result()
        clock.record("libraries", *detect_span, board=board_id)
        built.append(one)
        all_targets += its_targets
        board_notes = [choice.note() for choice in one.discovery.choices]
        board_notes += libraries.warnings(one.discovery.libraries, board.properties, board.architecture)
        notes += [f"{board_id}: {line}" if several else line for line in board_notes]
    with clock.phase("plan"):
        read = [*(sk.path for sk in found), *dict.fromkeys(lib.root for b in built for lib in b.discovery.libraries)]
        if config.out is not None:
            # The default, `.fbuild-graph/` in the current folder, is a folder no build reads (sketch search and
            # every walk skip it), so `cd MySketch && fbuild-graph compile-many -b uno .` works as it always did.
            _check_out(top, read)
        fileio.ensure_folder(top, "--out")
        skipped += [path for top_dir in read for path in fileio.irregular(top_dir, fileio.NOT_READ_DIRS)]
        notes += [f"warning: skipped {path}: not a regular file (a FIFO, socket, device or dangling link); only "
                  "regular files are read" for path in dict.fromkeys(skipped)]
        plans = [_board_plan(b, [t.sketch for t in all_targets if t.board_id == b.board_id and not t.skipped],
                             launcher, batch.tool) for b in built]
        planned = matrix.matrix_actions(plans, macro_use.MacroUse(batch.tool.system_dirs).unmentioned)
        dag = graphs.from_actions(planned.actions)
        units = [unit for b in built for unit in fingerprint.stage1_units(
            dag, b.board, b.discovery, b.layout, b.identity, b.namespace)]
    by_sketch = {b.namespace: b.discovery.by_sketch for b in built}
    linking = [t if t.skipped else evolve(t, libraries=tuple(planned.library_owners[t.namespace][name]
                                                             for name in by_sketch[t.namespace][t.sketch.id]))
               for t in all_targets]
    return Prepared(out=top, boards=tuple(built), targets=tuple(linking), graph=dag, units=tuple(units),
                    notes=tuple(dict.fromkeys(notes)), tools=batch.tool)  # a toolchain note: once for all boards


def _placed(top: str, board_id: str, several: bool) -> tuple[str, Layout]:
    """A board's namespace (its owners' and keys' prefix; none in a single-board build) and its layout."""
    return (board_id, Layout(os.path.join(top, board_id))) if several else ("", Layout(top))


def _chosen(config: Config, pairs: Sequence[tuple[Board, str, sketches.Sketch]]) -> frozenset[tuple[str, str]]:
    """The targets of this run: all of them, or those --only-failed names, then this run's --shard."""
    keys = [(board_id, sk.id) for _, board_id, sk in pairs]
    if config.only_failed:
        again = targets.not_built(results.read_report(config.only_failed, "--only-failed"))
        keys = [(board_id, sk.id) for board, board_id, sk in pairs if (board.fqbn, sk.path) in again]
    if config.shard:
        seconds = targets.target_seconds(results.read_tasks(config.durations)) if config.durations else {}
        keys = targets.shard(keys, *config.shard, seconds)
    return frozenset(keys)


def _resolve_board(name: str, dirs: installs.Directories, build_properties: Mapping[str, str],
                   warnings: str) -> tuple[Board, list[str]]:
    """A board with every property known, its warning flags those of `warnings` (as arduino-cli sets them,
    unless --build-property sets them itself) and its toolchain checked; and what there is to say about it."""
    notes: list[str] = []
    board = boards.resolve(name, dirs, build_properties, say=notes.append)
    level = f"compiler.warning_flags.{warnings}"
    if level in board.properties and "compiler.warning_flags" not in build_properties:
        board = evolve(board, properties={**board.properties, "compiler.warning_flags": board.properties[level]})
    toolchain.check(board.properties)
    return board, notes


def _work_around(board: Board, memo: Stamped) -> tuple[Board, list[str]]:
    """The board with its toolchain's quirks worked around, and what there is to say about it."""
    notes: list[str] = []
    fix = _probed(memo, "decimal_dig", board.properties, toolchain.decimal_dig_fix)
    if fix:
        props = dict(board.properties)
        props["compiler.cpp.extra_flags"] = f"{props.get('compiler.cpp.extra_flags', '')} {fix}".strip()
        board = evolve(board, properties=props)
        notes.append(f"note: {toolchain.compiler(props)} defines DECIMAL_DIG only for C; adding {fix} to C++ compiles")
    return board, notes


def _probed(memo: Stamped, probe: str, props: Mapping[str, str], work: Callable[[Mapping[str, str]], T]) -> T:
    """A toolchain probe's answer, kept while the compiler it ran is the same file (and PATH, which found
    it, the same)."""
    cxx = toolchain.compiler(props)
    program = tools.resolve(cxx) or cxx
    key = (probe, cxx, program, os.environ.get("PATH", ""), properties.value(props, "build.mcu"))
    return memo.get(key, [program], lambda: work(props))


def _detect_and_skip(batch: Batch, board: Board, board_id: str, namespace: str,
                     layout: Layout) -> tuple[BoardBuild, list[targets.Target], tuple[float, float]]:
    """One board's libraries, detected for the sketches its markers and the exclusions leave it, its
    targets, each skipped with its reason or not, and when that began and ended."""
    start = time.time()
    mine = [sk for sk in batch.sketches if (board_id, sk.id) in batch.chosen]
    reasons = {sk.id: targets.marker_reason(batch.markers[sk.id], board_id)
               or targets.exclusion_reason(batch.exclusions, board_id, sk) for sk in mine}
    answers = include_probe.AnswerCache(layout.includes_cache)
    identity = _probed(batch.memo, "identity", board.properties, toolchain.identity)
    discovery = detect_libraries(board, [sk for sk in mine if not reasons[sk.id]], batch.offered[_platforms(board)],
                                 identity, batch.tool, answers)
    by_name = {lib.name: lib for lib in discovery.libraries}
    for sk in mine:
        if not reasons[sk.id]:
            reasons[sk.id] = targets.architecture_reason([by_name[n] for n in discovery.by_sketch[sk.id]], board)
    discovery = detection.restrict(discovery, [sk.id for sk in mine if not reasons[sk.id]])
    found = [targets.Target(sketch=sk, board=board, board_id=board_id, layout=layout, namespace=namespace,
                            skipped=reasons[sk.id])
             for sk in mine]
    return BoardBuild(board=board, identity=identity, board_id=board_id, namespace=namespace, layout=layout,
                      discovery=discovery, answers=answers), found, (start, time.time())


def _platforms(board: Board) -> tuple[str, str]:
    """The platform of a board and that of its core: which libraries it is offered (libraries.index)."""
    return board.platform_path, board.properties["build.core.platform.path"]


def _board_plan(built: BoardBuild, found: Sequence[sketches.Sketch], launcher: tuple[str, ...],
                tool: tools.Tools) -> graphs.BoardPlan:
    board = built.board
    core_dirs = graphs.core_dirs(board.properties)
    linked_precompiled = ((lib.name, libraries.precompiled(lib, board.properties)) for lib in built.discovery.libraries)
    identity = built.identity
    return graphs.BoardPlan(
        board=board, sketches=tuple(found), discovery=built.discovery, layout=built.layout,
        core_sources=tuple(_sources(core_dirs[0])),
        variant_sources=tuple(_sources(core_dirs[1]) if len(core_dirs) > 1 else ()),
        precompiled={name: files for name, files in linked_precompiled if files is not None}, launcher=launcher,
        toolchain=lambda a: hashlib.sha256(f"{identity}\0{tool.identity(a)}".encode()).hexdigest()[:16],
        namespace=built.namespace)


def detect_libraries(board: Board, found: Sequence[sketches.Sketch], offered: Sequence[libraries.Library],
                     identity: str, tool: tools.Tools, answers: include_probe.AnswerCache) -> detection.Discovery:
    """Library detection with the board's preprocessor (see detection.py), its answers kept in `answers`."""
    props = board.properties
    compiler = toolchain.compiler(props)
    scan = include_scan.IncludeScan(tool.system_dirs(compiler), frozenset(libraries.providers(offered)))
    with tempfile.TemporaryDirectory(prefix="fbuild-graph-detect-") as empty:
        prober = include_probe.Prober(props, f"{identity}\0{tool.system_headers(compiler)}", scan, answers, cwd=empty)
        return detection.detect(found, lambda sk: fileio.source_bytes(merge(sk.inos)), offered, graphs.core_dirs(props),
                                prober.first_missing, board.architecture, jobs=os.cpu_count() or 1)


def _check_out(out: str, read: Sequence[str]) -> None:
    """The output folder must be outside every folder the build reads: its copies of the sketches would be
    sketch files, and its objects library sources, on the next build (arduino-cli, building one sketch,
    leaves its build folder out of that sketch's files instead)."""
    real = os.path.realpath(out)
    for folder in read:
        if os.path.commonpath([real, os.path.realpath(folder)]) == os.path.realpath(folder):
            raise FbuildError(f"--out {out} is inside {folder}, a sketch or library folder the build reads; pass "
                              "an --out outside it")


def _sources(folder: str) -> list[str]:
    if not folder or not os.path.isdir(folder):
        return []
    found = []
    for here, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.relpath(os.path.join(here, f), folder) for f in files if f.endswith(SOURCE_EXTENSIONS)]
    return [os.path.join(folder, f) for f in compile_order(found)]


class CoreFirst:
    """Every board's core compiling from the moment the boards are known. Library detection and planning
    take ~0.4 s on a cold build, one core idle meanwhile: so a head start runs the cores' steps on the
    framework slots from then, its results held for the build's collector (head_start.Relay), and is handed
    the whole plan once made (`hand_over`). On runners (--scheduler) the client connects then and the cores'
    steps go to the cluster at once (`ahead`), their results handled by the build's run like its own; the
    sources and libraries follow with the rest. Only where nothing it runs can differ from what the plan
    runs: with no stage-1 hooks (the libraries' postbuild hook is the core's unit and reads their objects),
    with an output folder outside every sketch and library on offer (the full check, _check_out, needs the
    libraries detected), and on runners not in a concurrency group (a run claims its place in the group when
    its run begins); the plan's steps are checked against its own (`check`)."""

    def __init__(self, config: Config, store: Cache, held: contextlib.ExitStack,
                 progress: Callable[[str], None], clock: PhaseClock) -> None:
        self._config, self._store, self._held, self._progress, self._clock = config, store, held, progress, clock
        self.locked = False  # the output folder's lock taken (before anything is written there)
        self.restored: dict[str, str] = {}  # the cores' stage-1 units from the cache
        self.steps: dict[str, Step] = {}  # the steps its head start was given, by key
        self.answered: dict[str, StepResult] = {}  # the steps found up to date, answered before it began
        self._planned: dict[str, Step] = {}  # every step of the cores, by key
        self._units: dict[str, str] = {}  # owner -> stage-1 key of the units it planned
        self._head: Optional[head_start.HeadStart] = None
        self._relay = head_start.Relay()
        self.client = None  # on runners: the build's client, connected early
        self.ahead = None  # on runners: the submission of the steps sent (runner.submit_ahead)

    def start(self, found: Discovered) -> None:
        config, batch = self._config, found.batch
        read = [*(sk.path for sk in batch.sketches), *(lib.root for libs in batch.offered.values() for lib in libs)]
        if ((config.scheduler and config.group) or any(matrix.stage1_hooks(board) for board, *_ in found.boards)
                or not _outside(found.out, read)):
            return
        fileio.ensure_folder(found.out, "--out")
        self._held.enter_context(lock.holding(found.out, self._progress if config.wait else None))
        self.locked = True
        no_libraries = detection.Discovery(libraries=(), by_sketch={}, closure={}, choices=())
        cores = [BoardBuild(board=board, identity=_probed(batch.memo, "identity", board.properties, toolchain.identity),
                            board_id=board_id, namespace=namespace, layout=layout, discovery=no_libraries,
                            answers=include_probe.AnswerCache(None))
                 for board, board_id, namespace, layout in found.boards]
        planned = matrix.matrix_actions([_board_plan(b, [], found.launcher, batch.tool) for b in cores],
                                        lambda macros, actions: False)
        dag = graphs.from_actions(planned.actions)
        units = [unit for b in cores for unit in fingerprint.stage1_units(
            dag, b.board, b.discovery, b.layout, b.identity, b.namespace)]
        self._units = {unit.owner: unit.key for unit in units}
        self.restored = stage1.restore_all(self._store, units)
        steps = plan.steps(dag, config.framework_jobs, config.sketch_jobs, cached=frozenset(self.restored))
        self._planned = {step.key: step for step in steps}
        if config.scheduler:
            self._send(found, steps, cores[0].identity)
            return
        self.answered = _answers(steps)
        rest = [step for step in steps if step.key not in self.answered]
        if rest:
            self.steps = {step.key: step for step in rest}
            # After hand-over it runs sketch steps too: with the content cache a local head start has.
            self._head = self._held.enter_context(head_start.HeadStart(
                rest, {FRAMEWORK: config.framework_jobs},
                functools.partial(execute.run_step, cache=_content_cache(self._store)), self._relay, self.answered))

    def _send(self, found: Discovered, steps: Sequence[Step], identity: str) -> None:
        """The steps to the runners. Their signatures are the runners' own: none is answered from this folder's."""
        if not steps:
            return
        config, started = self._config, time.time()
        self.client = self._held.enter_context(runner.cluster(config.framework_jobs, config.sketch_jobs,
                                                              config.scheduler))
        self._clock.record("cluster_start", started, time.time())
        # The cores' steps read the installed platform (on every runner) and write below --out alone.
        nothing = transfer.Shipment(mirror=transfer.Mirror(roots=(found.out,)), sources={}, digests={})
        self.ahead = runner.submit_ahead(self.client, steps, nothing,
                                         fitness.Expectation.of(found.boards[0][0].properties, identity))

    def check(self, units: Sequence[fingerprint.Unit], steps: Sequence[Step]) -> None:
        """The plan's units and steps are the ones it started, or it stops: what it ran is then left to the
        signatures (a different command is never up to date) and nothing of it is reported."""
        keys = {unit.owner: unit.key for unit in units}
        planned = {step.key: step for step in steps}
        if all(keys.get(owner) == key for owner, key in self._units.items()) and all(
                planned.get(key) == step for key, step in self._planned.items()):
            return
        if self._head is not None:
            self._head.stop()
        if self.ahead is not None:
            self.client.cancel(list(self.ahead.futures.values()))
        self._head, self.steps, self.answered, self.restored, self.ahead = None, {}, {}, {}, None

    def hand_over(self, steps: Sequence[Step], slots: dict[str, int], on_result: Callable[[StepResult], bool],
                  given: Mapping[str, StepResult]) -> Optional[head_start.HeadStart]:
        """Its head start, given the rest of the plan, every result reported from now on; None if it has
        none."""
        if self._head is None:
            return None
        # The rest first: what the results held set off (the cores' stage-1 stores) need not hold it up.
        self._head.take(steps, slots, given)
        if not self._relay.attach(on_result):
            self._head.halt()
        return self._head


def _content_cache(store: Cache) -> Optional[CacheSpec]:
    """What a local build's tasks open for the firmware they cache by content (execute.CACHED_KINDS)."""
    return store.spec if store.mode != "off" else None


def _outside(out: str, read: Sequence[str]) -> bool:
    try:
        _check_out(out, read)
    except FbuildError:
        return False
    return True


def compile_many(config: Config, progress: Callable[[str], None], t0: Optional[float] = None,
                 view: Callable[[int], object] = lambda total: progress_views.Lines(sys.stdout),
                 warm: Optional[Warm] = None) -> tuple[int, BuildReport]:
    """Build every sketch for every board, phase after phase: import, then prepare (discover, libraries,
    plan), take the output folder, restore stage 1 from the cache, run stages 1 and 2, write the results.
    `progress` says notes and errors; `view(total)` makes what shows units and targets finishing (see
    progress.py). `t0` is when the process began importing us (or the client of the build service
    began), so start-up cost shows as a phase. `warm`: the build service's state, kept between builds."""
    clock = PhaseClock(t0 or time.time())
    if warm is not None:
        warm.begin()
    clock.record("import", clock.t0, time.time())
    if config.framework_jobs < 1 or config.sketch_jobs < 1:
        raise FbuildError("--framework-jobs and --sketch-jobs must be at least 1")
    spec = CacheSpec(config.cache_dir or default_cache_dir(), config.cache_mode, config.cache_layers,
                     config.cache_trust, config.max_bundle_bytes)
    with contextlib.ExitStack() as held:
        store = held.enter_context(spec.open(warn=progress))
        ccache_state = held.enter_context(tempfile.TemporaryDirectory(prefix="fbuild-graph-ccache-"))
        core_first = CoreFirst(config, store, held, progress, clock)
        prepared = prepare(config, _compiler_cache(config, store, ccache_state), clock, warm and warm.memo,
                           core_first.start)
        if not core_first.locked:  # held from before the first file is written into --out until results.json is
            held.enter_context(lock.holding(prepared.out, progress if config.wait else None))
        prepared.save_memos()
        for line in prepared.notes:
            progress(line)
        with clock.phase("restore"):
            restored = {**core_first.restored, **stage1.restore_all(
                store, [unit for unit in prepared.units if unit.owner not in core_first.restored])}
        steps = plan.steps(prepared.graph, config.framework_jobs, config.sketch_jobs, cached=frozenset(restored))
        core_first.check(prepared.units, steps)
        shown = view(len(prepared.targets))
        run = Run(config=config, prepared=prepared, steps=tuple(steps), store=store, restored=restored,
                  progress=progress, view=shown, warm=warm, core_first=core_first)
        try:
            outcome = _run(run, clock)
        finally:
            shown.close()
        report = _write_results(run, outcome, clock)
    return report.exit_code, report


def _write_results(run: Run, outcome: Outcome, clock: PhaseClock) -> BuildReport:
    """results.json, phases.tsv and tasks.tsv; the report they hold."""
    prepared = run.prepared
    stage1_key = fingerprint.combined_key(prepared.units)
    stage1_cache = stage1.state(run.store, prepared.units, run.restored)
    records = outcome.collector.tally.all_records
    restored_at = clock.phases[-1].stop + clock.t0  # a stage 1 taken whole from the cache: an empty span there
    for name, resource_class in (("stage1_archives", FRAMEWORK), ("stage2_sketches", SKETCH)):
        ran = [r for r in records if r.resource == resource_class and r.start > 0]
        cache = {"cache_key": stage1_key, "cache": stage1_cache} if resource_class == FRAMEWORK else {}
        if ran or resource_class == FRAMEWORK:
            clock.record(name, min((r.start for r in ran), default=restored_at),
                         max((r.stop for r in ran), default=restored_at), **cache)
    clock.phases.append(Phase("total", 0.0, clock.since_start()))
    ordered = tuple(outcome.collector.results[t.owner] for t in prepared.targets)
    exit_code = outcome.exit_code
    if exit_code == ExitCode.OK and any(r.status not in (SketchStatus.OK, SketchStatus.SKIPPED) for r in ordered):
        exit_code = ExitCode.FAILED
    fqbns = tuple(b.board.fqbn for b in prepared.boards)
    report = BuildReport(board=fqbns[0] if len(fqbns) == 1 else "", boards=fqbns, exit_code=exit_code,
                         stage1_cache_key=stage1_key, stage1_cache=stage1_cache,
                         peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                         phases=tuple(clock.phases), sketches=ordered, slots=outcome.slots,
                         library_detection={"preprocessor_runs": sum(b.answers.runs for b in prepared.boards),
                                            "answers_reused": sum(b.answers.reused for b in prepared.boards)},
                         cpu_seconds=_cpu_seconds())
    boards_of = {b.namespace: b.board_id for b in prepared.boards}
    results.write_tasks(prepared.out, records, clock.t0, plan.waits_for(prepared.graph, run.steps),
                        lambda owner: boards_of[Owner.parse(owner).board] if owner else "")
    results.write_phases(prepared.out, report.phases)
    results.write_report(prepared.out, report)
    return report


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + sys) so far of this process (`orchestrator`) and of the children it has waited
    for (`tools`): the in-process cluster runs every tool as a child of this process."""
    def used(who: int) -> float:
        usage = resource.getrusage(who)
        return round(usage.ru_utime + usage.ru_stime, 3)

    return {"orchestrator": used(resource.RUSAGE_SELF), "tools": used(resource.RUSAGE_CHILDREN)}


def _shipment(prepared: Prepared, restored: Mapping[str, str]) -> transfer.Shipment:
    """For workers that share no disk with us: the sketches, the user libraries (each installed platform's
    own are on every worker host) and the stage-1 files that came from our cache. Of a sketch, what its build
    reads: its `.ino` files and those copied beside the merged source (the IDE's examples hold 5 MB of
    pictures besides 0.3 MB of them); all of its folder when a platform hook, which may read anything there,
    runs."""
    platforms = tuple(b.board.platform_path + os.sep for b in prepared.boards)
    libs = [lib.root for b in prepared.boards for lib in b.discovery.libraries if not lib.root.startswith(platforms)]
    sketches = list({t.sketch.path: t.sketch for t in prepared.targets}.values())
    hooked = any(matrix.any_hooks(b.board) for b in prepared.boards)
    read = [sk.path for sk in sketches] if hooked else [
        path for sk in sketches for path in (*sk.inos, *(os.path.join(sk.path, rel) for rel in sk.files))]
    cached = [path for unit in prepared.units if unit.owner in restored for _, path in unit.outputs]
    mirror = transfer.Mirror(roots=tuple(dict.fromkeys([prepared.out, *(sk.path for sk in sketches), *libs])))
    sources, digests = transfer.read_sources(list(dict.fromkeys([*read, *libs, *cached])))
    return transfer.Shipment(mirror=mirror, sources=sources, digests=digests)


def _compiler_cache(config: Config, store: Cache, state_dir: str) -> Optional[Callable[[Optional[str]], tuple[str, ...]]]:
    if not config.ccache or config.cache_mode == "off":
        return None
    writable, layers = store.ccache_dirs()
    return lambda base_dir: ccache.launcher(writable, layers, base_dir, state_dir)


def _run(run: Run, clock: PhaseClock) -> Outcome:
    """Stages 1 and 2 on the cluster; every finished stage-1 unit goes into the cache as it completes."""
    config, prepared, progress = run.config, run.prepared, run.progress
    units = {u.owner: u for u in prepared.units}
    collector = Collector(prepared.targets, run.steps, run.view,
                          on_stage1_ok=lambda owner: stage1.store(run.store, units[owner], collector.tally.produced),
                          warnings_as_errors=config.warnings_as_errors, max_failures=config.max_failures)
    cached = _cached_records(prepared.graph, frozenset(run.restored))
    for owner, origin in run.restored.items():
        collector.add_cached(owner, cached.get(owner, []), origin)
    collector.add_skipped()
    exit_code = ExitCode.OK
    slots: dict[str, int] = {}
    try:
        # What is up to date is answered here from the signatures, in dependency order: with nothing to do,
        # no cluster is started (or even imported), which would be most of a warm build's time; with one
        # sketch edited, only its steps go to the cluster.
        early, given = (run.core_first.steps, run.core_first.answered) if run.core_first else ({}, {})
        answered = (_answers([step for step in run.steps if step.key not in early], given)
                    if config.scheduler is None else {})
        for result in answered.values():
            collector.on_result(result)
        if len(answered) < len(run.steps):
            try:
                slots = _on_cluster(run, answered, clock, collector)
            finally:
                execute.finish_storing()
    except runner.ClusterFault as exc:
        progress(f"error: {exc}")
        collector.finish_unfinished(SketchStatus.NOT_BUILT, str(exc))
        exit_code = exc.exit_code
    except supersede.Superseded as exc:
        progress(f"error: {exc}")
        collector.finish_unfinished(SketchStatus.CANCELLED, str(exc))
        exit_code = ExitCode.SUPERSEDED
    except KeyboardInterrupt:
        collector.finish_unfinished(SketchStatus.INTERRUPTED, "the build was interrupted before this sketch finished")
        exit_code = ExitCode.INTERRUPTED
    if collector.too_many_failures:
        progress(f"error: --max-failures {config.max_failures} reached: the targets not finished are not built")
        collector.finish_unfinished(SketchStatus.NOT_BUILT, f"not built: --max-failures {config.max_failures} "
                                    "reached first")
    for built in prepared.boards:
        error = collector.tally.core_errors.get(built.namespace)
        if error:
            message = f"the Arduino core failed to compile: {error}; see {built.layout.core_log}"
            progress(f"error: {built.board_id}: {message}" if built.namespace else f"error: {message}")
            collector.finish_unfinished(SketchStatus.FAILED, message, built.namespace)
    return Outcome(collector=collector, exit_code=exit_code, slots=slots)


def _answers(steps: Sequence[Step], given: Mapping[str, StepResult] = {}) -> dict[str, StepResult]:
    """The results of the steps whose every action is up to date and whose every dependency was answered so
    too (a dependency that runs again may change what the step reads), by step key, in the steps' order;
    `given`: steps answered so before (the cores', build.CoreFirst), first."""
    answered: dict[str, StepResult] = dict(given)
    for step in steps:
        if step.key not in answered and all(dep in answered for dep in step.deps):
            result = execute.answer(step)
            if result is not None:
                answered[step.key] = result
    return answered


def _on_cluster(run: Run, answered: Mapping[str, StepResult], clock: PhaseClock, collector: Collector) -> dict[str, int]:
    """The steps not `answered` on the cluster, the first of them run by a head start while our own cluster
    starts; the cluster's slots per resource class."""
    config, prepared = run.config, run.prepared
    local = config.scheduler is None
    # Workers elsewhere cannot open the client's cache folder; the stage-1 cache still applies.
    cache = _content_cache(run.store) if local else None
    rest = [step for step in run.steps if step.key not in answered]
    start = time.time()
    slots_wanted = {FRAMEWORK: config.framework_jobs, SKETCH: config.sketch_jobs}
    with contextlib.ExitStack() as held:
        early = run.core_first and run.core_first.hand_over(rest, slots_wanted, collector.on_result, answered)
        if early:
            held.push(early.__exit__)  # entered by compile_many: here it is only stopped, or abandoned on error
        elif local:
            early = held.enter_context(head_start.HeadStart(
                rest, slots_wanted, functools.partial(execute.run_step, cache=cache), collector.on_result, answered))
        client = run.core_first and run.core_first.client
        if client is None:
            client = held.enter_context(runner.cluster(config.framework_jobs, config.sketch_jobs, config.scheduler,
                                                       run.warm and run.warm.clusters))
            clock.record("cluster_start", start, time.time())
        slots = runner.slots(client)
        finished = early.stop() if early else answered
        if early and not early.go_on:
            return slots
        remote = None if local else _shipment(prepared, run.restored)
        # Workers of our own cluster are this process: their toolchain is ours.
        first = prepared.boards[0]
        expected = None if local else fitness.Expectation.of(first.board.properties, first.identity)
        runner.run(client, rest, collector.on_result, cache, config.group, config.cancel_in_progress,
                   remote, expected, finished=finished, ahead=run.core_first and run.core_first.ahead)
    return slots


def _cached_records(graph, owners: frozenset[str]) -> dict[str, list[ActionRecord]]:
    """The actions of the stage-1 units taken from the cache, by owner, in one pass over the graph."""
    records: dict[str, list[ActionRecord]] = {}
    for a in graphs.actions_of(graph) if owners else ():
        if a.owner in owners:
            records.setdefault(a.owner, []).append(ActionRecord(
                key=a.key, kind=a.kind, owner=a.owner, resource=a.resource, status=ActionStatus.CACHED,
                output=signature.recorded_output(a)))
    return records
