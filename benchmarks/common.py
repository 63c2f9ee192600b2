"""What every benchmark suite shares: finding the tools, the sketch set, one timed command, one compile-many
read back from its output files, the TSV, and the medians the ratio table is made of.

A suite (compare, cache, sweep, cluster) is a module with `NEEDS` (tools beyond fbuild-graph), `run(bench, rep)`
(one repetition of its modes, one Run per mode, each printed by `done` as it finishes) and `report(runs, out)`
(its part of the ratio table, from every suite's runs). harness.py is the entry point.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime
import glob
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import astuple, dataclass, field, fields
from pathlib import Path
from typing import Callable, NoReturn, Optional, Sequence, TextIO

from fbuild_graph.analysis import analysis

PROG = "harness.py"  # every message names the entry point, whichever suite stopped
EXAMPLES = "/usr/share/arduino/hardware/arduino/avr/libraries/*/examples/*/"
EXAMPLE_COUNT = 19
BOARD = "uno"
# No build cache and no ccache: every build compiles everything, the same commands ninja runs.
COLD = ("--cache-mode", "off")
TOOL_KINDS = ("compile", "archive", "link", "eep", "hex", "size")
TSV_COLUMNS = ("suite", "mode", "rep", "sketches", "framework_jobs", "sketch_jobs", "wall_seconds", "cpu_seconds",
               "framework_work_seconds", "sketch_work_seconds", "startup_seconds", "peak_rss_mb", "stage1_cache",
               "tools_run")


@dataclass
class Run:
    """One TSV row (the fields in TSV_COLUMNS' order), plus what only the table uses."""

    suite: str
    mode: str
    rep: int
    sketches: int
    framework_jobs: int
    sketch_jobs: int
    wall: float
    cpu: float
    framework_work: Optional[float] = None  # tasks.tsv: seconds of the ok actions of each resource class
    sketch_work: Optional[float] = None
    startup: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    stage1_cache: str = ""
    tools_run: Optional[int] = None
    phases: dict[str, float] = field(default_factory=dict)  # phases.tsv seconds; `total`: its stop
    tasks_per_worker: dict[str, int] = field(default_factory=dict)

    def row(self) -> tuple:
        return astuple(self)[:len(TSV_COLUMNS)]


assert [f.name for f in fields(Run)][:len(TSV_COLUMNS)] == [
    c.removesuffix("_seconds") for c in TSV_COLUMNS], "Run's fields and TSV_COLUMNS disagree"


@dataclass
class Tools:
    fbuild_graph: str
    ninja: Optional[str] = None
    dask: Optional[str] = None


@dataclass
class Bench:
    """What a suite's repetition needs: the tools, the sketch set, the job limits and the suites' options."""

    tools: Tools
    workdir: Path
    sketches: list[Path]
    framework_jobs: int
    sketch_jobs: int
    loop_sample: int = 0
    sweep_framework_jobs: Sequence[int] = ()
    sweep_sketch_jobs: Sequence[int] = ()

    @property
    def jobs(self) -> tuple[int, int]:
        return self.framework_jobs, self.sketch_jobs

    def log(self, suite: str, mode: str, rep: int) -> Path:
        return self.workdir / "logs" / f"{suite}-{mode}-{rep}.log"


def fail(message: str) -> NoReturn:
    sys.exit(f"{PROG}: {message}")


def find_tools(needs: set[str]) -> Tools:
    # The console scripts beside this interpreter first, so a pyenv or venv shim's start-up is not timed.
    here = os.path.dirname(sys.executable)
    found = {name: shutil.which(name, path=here) or shutil.which(name) for name in ("fbuild-graph", *sorted(needs))}
    missing = [name for name, path in found.items() if not path]
    if missing:
        fail(f"needs {', '.join(f'`{m}`' for m in missing)} on PATH "
             "(fbuild-graph: pip install -e .; dask: pip install distributed; ninja: apt or pip install ninja)")
    return Tools(found["fbuild-graph"], found.get("ninja"), found.get("dask"))


def machine_lines(tools: Tools) -> list[str]:
    ninja = (subprocess.run([tools.ninja, "--version"], capture_output=True, text=True).stdout.strip()
             if tools.ninja else "not used")
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    return [f"machine: {os.cpu_count()} cores, {platform.platform()}, load average {load}",
            f"python {platform.python_version()}, ninja {ninja}, {tools.fbuild_graph}",
            f"date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}"]


def at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = "whole number"  # argparse names the type by it: "invalid whole number value: 'x'"
    return parse


def example_sketches() -> list[Path]:
    examples = sorted(Path(p) for p in glob.glob(EXAMPLES))
    if len(examples) != EXAMPLE_COUNT:
        fail(f"expected {EXAMPLE_COUNT} example sketches under {EXAMPLES}, found {len(examples)}")
    return examples


def given_sketches(folders: Sequence[str]) -> list[Path]:
    sketches = [Path(folder).resolve() for folder in folders]
    for folder, sketch in zip(folders, sketches):
        if not (sketch / f"{sketch.name}.ino").is_file():
            fail(f"{folder} is not a sketch folder: a sketch is a folder X/ holding X.ino")
    names = collections.Counter(sketch.name for sketch in sketches)
    clash = [name for name, n in names.items() if n > 1]
    if clash:  # their copies would land in one folder
        fail(f"more than one sketch folder named {', '.join(clash)}")
    return sketches


def make_sketch_set(root: Path, sources: Sequence[Path], copies: int, limit: Optional[int] = None) -> list[Path]:
    """`copies` copies of each source as `<name>_<i>/<name>_<i>.ino`, the first `limit` of them. Copy-major
    order, so the first len(sources) are one copy of every sketch and a loop sample or a limit is varied."""
    shutil.rmtree(root, ignore_errors=True)
    plan = [(source, f"{source.name}_{i}") for i in range(1, copies + 1) for source in sources][:limit]
    for source, name in plan:
        # A sketch is X/X.ino, so the folder and its main .ino are renamed together.
        shutil.copytree(source, root / name)
        (root / name / f"{source.name}.ino").rename(root / name / f"{name}.ino")
    return [root / name for _, name in plan]


def job_args(framework_jobs: int, sketch_jobs: int) -> list[str]:
    return ["--framework-jobs", str(framework_jobs), "--sketch-jobs", str(sketch_jobs)]


def timed(argv: list[str], log: Path, what: str, stdout: Optional[Path] = None, cwd: Optional[Path] = None,
          env: Optional[dict[str, str]] = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + sys of the command and every descendant it waited for) of one
    command; exits naming `what` and the log if the command fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    # Output goes to files, never to a pipe we read, so no mode pays for the benchmark's reading speed.
    with open(log, "w") as err, (open(stdout, "w") if stdout else contextlib.nullcontext(err)) as out:
        # RUSAGE_CHILDREN only grows as children are reaped; the harness runs one command at a time, so the
        # difference is this command's alone.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        code = subprocess.run(argv, stdout=out, stderr=err, cwd=cwd, env=env).returncode
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        fail(f"{what}: `{' '.join(argv[:3])} ...` exited {code}; see {log}{last_line(log)}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def last_line(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return f" (last line: {lines[-1][:200]})" if lines else ""


def board_args(boards: Sequence[str]) -> list[str]:
    return [arg for board in boards for arg in ("--board", board)]


def compile_many(bench: Bench, suite: str, mode: str, rep: int, sketches: Sequence[Path], out: Path, *extra: str,
                 jobs: Optional[tuple[int, int]] = None, scheduler: Optional[str] = None, fresh: bool = True,
                 env: Optional[dict[str, str]] = None, log: Optional[Path] = None,
                 boards: Sequence[str] = (BOARD,)) -> Run:
    """One `fbuild-graph compile-many` into `out` (deleted first unless not `fresh`), read back; exits unless
    every sketch built. On a `scheduler` the job limits are the workers' own, so `jobs` only labels the row.
    With several `boards` (a board matrix) the row's `sketches` counts targets: sketches x boards."""
    framework_jobs, sketch_jobs = jobs or bench.jobs
    where = ["--scheduler", scheduler] if scheduler else job_args(framework_jobs, sketch_jobs)
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    what = f"{suite} {mode} rep {rep}"
    wall, cpu = timed([bench.tools.fbuild_graph, "compile-many", *board_args(boards), *where, *extra, "-o", str(out),
                       *map(str, sketches)], log or bench.log(suite, mode, rep), what, env=env)
    return read_outputs(out, Run(suite, mode, rep, len(sketches) * len(boards), framework_jobs, sketch_jobs, wall,
                                 cpu), what)


def summed(each: Sequence[Run]) -> Run:
    """One row for several compile-many runs made one after another (a loop over sketches or boards): sketches,
    times, work and tools summed, the median start-up, the largest peak RSS."""
    stage1 = {r.stage1_cache for r in each}
    return dataclasses.replace(
        each[0], sketches=sum(r.sketches for r in each), wall=sum(r.wall for r in each),
        cpu=sum(r.cpu for r in each), framework_work=sum(r.framework_work for r in each),
        sketch_work=sum(r.sketch_work for r in each), startup=statistics.median(r.startup for r in each),
        peak_rss_mb=max(r.peak_rss_mb for r in each), stage1_cache=stage1.pop() if len(stage1) == 1 else "mixed",
        tools_run=sum(r.tools_run for r in each), phases={}, tasks_per_worker={})


def firmware_count(out: Path) -> int:
    """The `.hex` files under `out`'s sketches/ (OUT/sketches/ID/ for one board, OUT/BOARD/sketches/ID/ for a
    matrix): ninja only says its commands succeeded, a firmware per target shows the export left none out."""
    return sum("sketches" in path.relative_to(out).parts for path in out.rglob("*.hex"))


def read_outputs(out: Path, run: Run, what: str) -> Run:
    """`run` with what results.json, phases.tsv and tasks.tsv in `out` say; exits unless every sketch is ok."""
    results = json.loads((out / "results.json").read_text())
    bad = [s["id"] for s in results["sketches"] if s["status"] != "ok"]
    if results["exit_code"] != 0 or bad or len(results["sketches"]) != run.sketches:
        fail(f"{what}: exit code {results['exit_code']}, {len(results['sketches'])} of {run.sketches} sketches "
             f"reported, not ok: {', '.join(bad) or 'none'}; see {out}")
    build = analysis.load(str(out))
    run.phases = {p.name: p.seconds for p in build.phases}
    run.phases["total"] = build.wall
    run.startup = build.startup
    run.stage1_cache = next((p.cache for p in build.phases if p.name == "stage1_archives"), "")
    run.peak_rss_mb = float(results["peak_rss_mb"])
    ok = [t for t in build.tasks if t.status == "ok"]
    run.framework_work = sum((t.seconds for t in ok if t.resource == "framework"), 0.0)
    run.sketch_work = sum((t.seconds for t in ok if t.resource == "sketch"), 0.0)
    run.tools_run = sum(t.kind in TOOL_KINDS for t in ok)
    run.tasks_per_worker = dict(sorted(collections.Counter(t.worker or "(none)" for t in build.tasks).items()))
    return run


def done(run: Run) -> Run:
    """The progress line, as each run finishes."""
    print(f"rep {run.rep} {run.suite} {run.mode} {run.wall:.2f} s", flush=True)
    return run


def write_tsv(path: Path, runs: Sequence[Run]) -> None:
    def cell(value) -> str:
        return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [TSV_COLUMNS, *(run.row() for run in runs)]
    path.write_text("".join("\t".join(cell(v) for v in row) + "\n" for row in rows))


def write_outputs(tsv: Path, runs: Sequence[Run], header: Sequence[str], table: str) -> None:
    """The runs as TSV, and beside it (.txt) the machine header and the printed table."""
    write_tsv(tsv, runs)
    txt = tsv.with_suffix(".txt")
    txt.write_text("\n".join(header) + "\n" + table)
    print(f"wrote {tsv} and {txt}")


def of(runs: Sequence[Run], suite: str, mode: str) -> list[Run]:
    return [r for r in runs if r.suite == suite and r.mode == mode]


def median(runs: Sequence[Run], suite: str, mode: str, value: Callable[[Run], float] = lambda r: r.wall) -> float:
    return statistics.median(value(r) for r in of(runs, suite, mode))


def per_rep(runs: Sequence[Run], suite: str, mode: str, value: Callable[[Run], object]) -> str:
    """One value if every repetition agrees, else each repetition's in order."""
    values = [str(value(r)) for r in of(runs, suite, mode)]
    return values[0] if len(set(values)) == 1 else ", ".join(values)


def heading(runs: Sequence[Run], suite: str, mode: str, note: str = "") -> str:
    rows = of(runs, suite, mode)
    return f"{suite} ({rows[0].sketches} sketches{note}; medians of {len(rows)} repetition(s))"


def write(out: TextIO, *lines: str) -> None:
    for line in lines:
        print(line, file=out)
