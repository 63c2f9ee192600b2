"""compile-many: the top-level build, read as its list of phases.

resolve board -> check toolchain -> find sketches -> discover libraries -> plan the DAG -> run it on
Dask (stage 1 and stage 2 overlap; only links wait for archives) -> write results.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import Callable, Optional

from attrs import evolve, field, frozen

from . import board as boards
from . import fingerprint, libraries, plan, results, runner, toolchain
from . import graph as graphs
from . import sketch as sketches
from .collect import Collector
from .errors import FbuildError
from .layout import Layout
from .model import FRAMEWORK, SKETCH, Board, BuildReport, Phase
from .sketch import SOURCE_EXTENSIONS, compile_order

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


@frozen
class Config:
    board: str
    sketches: tuple[str, ...]
    out: Optional[str] = None
    hardware: tuple[str, ...] = (boards.DEFAULT_HARDWARE,)
    library_dirs: tuple[str, ...] = ()
    build_properties: dict[str, str] = field(factory=dict)
    framework_jobs: int = field(factory=lambda: min(os.cpu_count() or 1, 2))
    sketch_jobs: int = field(factory=lambda: os.cpu_count() or 1)
    scheduler: Optional[str] = None


@frozen
class Prepared:
    """Everything known before anything runs: the inputs to `run` and to `graph --format ninja`."""

    board: Board
    layout: Layout
    sketches: tuple[sketches.Sketch, ...]
    discovery: libraries.Discovery
    graph: object
    stage1_key: str
    notes: tuple[str, ...]


def prepare(config: Config) -> Prepared:
    """Everything before the first tool runs. Raises FbuildError for bad input; its `notes` are for the
    caller to say once preparation has succeeded, so bad input gets exactly one line."""
    board = boards.resolve(config.board, config.hardware, config.build_properties)
    toolchain.check(board.properties)
    found = sketches.find(config.sketches)
    core_dirs = [board.properties["build.core.path"], board.properties.get("build.variant.path", "")]
    discovery = libraries.discover(found, libraries.index(config.library_dirs, board.platform_path), core_dirs)
    notes = []
    fix = toolchain.decimal_dig_fix(board.properties)
    if fix:
        props = dict(board.properties)
        props["compiler.cpp.extra_flags"] = f"{props.get('compiler.cpp.extra_flags', '')} {fix}".strip()
        board = evolve(board, properties=props)
        notes.append(f"note: {toolchain.compiler(props)} defines DECIMAL_DIG only for C; adding {fix} to C++ compiles")
    layout = Layout(os.path.abspath(config.out or os.path.join(".fbuild-graph", board.board_id)))
    dag = graphs.build_graph(board, found, discovery, layout, _sources(core_dirs[0]), _sources(core_dirs[1]))
    source_dirs = [*filter(None, core_dirs), *(d.root for d in discovery.libraries)]
    key = fingerprint.stage1_key(toolchain.identity(board.properties), board.fqbn, graphs.actions_of(dag), source_dirs)
    return Prepared(board=board, layout=layout, sketches=tuple(found), discovery=discovery, graph=dag, stage1_key=key,
                    notes=tuple(notes))


def _sources(folder: str) -> list[str]:
    if not folder or not os.path.isdir(folder):
        return []
    found = []
    for here, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.relpath(os.path.join(here, f), folder) for f in files if f.endswith(SOURCE_EXTENSIONS)]
    return [os.path.join(folder, f) for f in compile_order(found)]


def compile_many(config: Config, progress: Callable[[str], None], t0: Optional[float] = None) -> tuple[int, BuildReport]:
    """Build every sketch. `t0` is when the process began importing us, so start-up cost shows as a phase."""
    t0 = t0 or time.time()
    begin = time.time() - t0
    if config.framework_jobs < 1 or config.sketch_jobs < 1:
        raise FbuildError("--framework-jobs and --sketch-jobs must be at least 1")
    prepared = prepare(config)
    for line in prepared.notes:
        progress(line)
    layout = prepared.layout
    steps = plan.steps(prepared.graph, config.framework_jobs, config.sketch_jobs)
    phases = [Phase("import", 0.0, begin), Phase("discover", begin, time.time() - t0)]
    collector = Collector(prepared.board, prepared.sketches, steps, layout, prepared.discovery.by_sketch,
                          prepared.discovery.unresolved, t0, progress)
    exit_code = EXIT_OK
    try:
        start = time.time() - t0
        with runner.cluster(config.framework_jobs, config.sketch_jobs, config.scheduler) as client:
            phases.append(Phase("cluster_start", start, time.time() - t0))
            runner.run(client, steps, collector.on_result)
    except KeyboardInterrupt:
        collector.finish_unfinished("interrupted", "the build was interrupted before this sketch finished")
        exit_code = EXIT_INTERRUPTED
    if collector.core_error:
        message = f"the Arduino core failed to compile: {collector.core_error}; see {layout.core_log}"
        progress(f"error: {message}")
        collector.finish_unfinished("failed", message)
    stop = time.time() - t0
    phases += _stage_phases(collector, t0, prepared.stage1_key)
    phases.append(Phase("total", 0.0, stop))
    ordered = tuple(collector.results[sk.id] for sk in prepared.sketches)
    if exit_code == EXIT_OK and any(r.status != "ok" for r in ordered):
        exit_code = EXIT_FAILED
    report = BuildReport(board=prepared.board.fqbn, exit_code=exit_code, stage1_cache_key=prepared.stage1_key,
                         peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                         phases=tuple(phases), sketches=ordered)
    results.write_tasks(layout.out, collector.all_records, t0)
    results.write_phases(layout.out, report.phases)
    results.write_report(layout.out, report)
    return exit_code, report


def _stage_phases(collector: Collector, t0: float, key: str) -> list[Phase]:
    spans = []
    for name, resource_class in (("stage1_archives", FRAMEWORK), ("stage2_sketches", SKETCH)):
        ran = [r for r in collector.all_records if r.resource == resource_class and r.start > 0]
        if ran:
            spans.append(Phase(name, min(r.start for r in ran) - t0, max(r.stop for r in ran) - t0,
                               cache_key=key if resource_class == FRAMEWORK else ""))
    return spans


def print_table(report: BuildReport) -> None:
    out = sys.stdout
    out.write(results.format_table(report.sketches))
    ok = sum(r.status == "ok" for r in report.sketches)
    total = next(p.seconds for p in report.phases if p.name == "total")
    out.write(f"{len(report.sketches)} sketches for {report.board}: {ok} ok, {len(report.sketches) - ok} not ok "
              f"in {total:.1f} s\n")
