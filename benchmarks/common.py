"""What every benchmark suite shares: finding the tools, the sketch sets (the core's 19 examples; the Arduino
IDE's examples, unpacked from Debian's `arduino` package when not installed, and which of them build), one
timed command, one compile-many read back from its output files, the TSV, and the medians the ratio table is
made of.

A suite (compare, cache, sweep, cluster, first) is a module with `NEEDS` (tools beyond fbuild-graph), `run(bench, rep)`
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
from typing import Callable, Collection, NoReturn, Optional, Sequence, TextIO

from fbuild_graph.analysis import analysis

PROG = "harness.py"  # every message names the entry point, whichever suite stopped
EXAMPLES = "/usr/share/arduino/hardware/arduino/avr/libraries/*/examples/*/"
EXAMPLE_COUNT = 19
IDE_EXAMPLES = "/usr/share/doc/arduino/examples"  # Debian's `arduino` package: the IDE's built-in examples
BOARD = "uno"
# No build cache and no ccache: every build compiles everything, the same commands ninja runs.
COLD = ("--cache-mode", "off")
TOOL_KINDS = ("compile", "archive", "link", "eep", "hex", "size")
TSV_COLUMNS = ("suite", "mode", "rep", "sketches", "framework_jobs", "sketch_jobs", "wall_seconds", "cpu_seconds",
               "framework_work_seconds", "sketch_work_seconds", "startup_seconds", "peak_rss_mb", "stage1_cache",
               "tools_run", "tools_cpu_seconds", "orchestrator_cpu_seconds", "failed", "stage1_start_seconds")


@dataclass
class Run:
    """One TSV row (the fields in TSV_COLUMNS' order), plus what only the table uses. `cpu` is what the harness
    measured of the command and all its descendants; `tools_cpu` and `orchestrator_cpu` are compile-many's own
    split of it (results.json `cpu_seconds`: its children, and the orchestrating process itself; for ninja the
    harness sets `tools_cpu` to `cpu`). `failed`: targets that failed, as the set expected."""

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
    tools_cpu: Optional[float] = None
    orchestrator_cpu: Optional[float] = None
    failed: int = 0
    stage1_start: Optional[float] = None  # tasks.tsv: seconds from start to the first stage-1 action's start
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
    # A real set may hold sketches that do not build for the board (the IDE's examples): `sketches` leaves
    # them out, so a suite can demand that every sketch builds; `whole` is the set in its order with them,
    # `failing` those, for a suite that measures the set as it is (first). Both empty: every sketch builds.
    whole: Sequence[Path] = ()
    failing: Sequence[Path] = ()

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


def file_cost_line(workdir: Path, count: int = 500) -> str:
    """What creating a file costs in `workdir`'s filesystem now. Builds create thousands (outputs, logs,
    results, cache entries): on an ext4 without a journal each new inode is checked against the inodes
    deleted in the last minutes (`recently_deleted`), so after heavy churn (every repetition deletes the
    last one's folders) a file cost 0.6 ms of CPU here where it cost 0.08 ms on a quiet folder, and it
    slows everything that creates files, the tools too. Printed so that runs can be compared."""
    probe = workdir / "file-cost-probe"
    shutil.rmtree(probe, ignore_errors=True)
    probe.mkdir(parents=True)
    start = time.process_time()
    for i in range(count):
        (probe / f"f{i}").write_bytes(b"x")
    cost = (time.process_time() - start) / count * 1000
    shutil.rmtree(probe, ignore_errors=True)
    return f"creating a file in the work dir: {cost:.3f} ms of CPU (a quiet ext4 folder here: ~0.08)"


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


def ide_examples(folder: Path, workdir: Path) -> Path:
    """`folder`, or when it is Debian's default and not installed, the same folder of Debian's `arduino`
    package, fetched with `apt-get download arduino` and unpacked into `workdir`."""
    if folder.is_dir():
        return folder
    if str(folder) != IDE_EXAMPLES:
        fail(f"--ide-examples {folder}: no such folder")
    unpacked = workdir / "arduino-deb"
    examples = unpacked / IDE_EXAMPLES.lstrip("/")
    if not examples.is_dir():
        print(f"{IDE_EXAMPLES} is not installed: fetching Debian's arduino package into {unpacked}", flush=True)
        shutil.rmtree(unpacked, ignore_errors=True)
        unpacked.mkdir(parents=True)
        got = subprocess.run(["apt-get", "download", "arduino"], cwd=unpacked, capture_output=True, text=True)
        debs = sorted(unpacked.glob("arduino_*.deb"))
        if got.returncode != 0 or not debs:
            fail(f"`apt-get download arduino` failed ({got.stderr.strip()[-200:]}); install Debian's arduino "
                 "package or pass --ide-examples DIR")
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(unpacked)], check=True)
        if not examples.is_dir():
            fail(f"{debs[-1].name} holds no {IDE_EXAMPLES}")
    return examples


def ide_sketches(examples: Path) -> list[Path]:
    """The sketch folders (X/ holding X.ino) under the IDE's examples folder, in path order."""
    return sorted(main.parent for main in examples.rglob("*.ino") if main.stem == main.parent.name)


def probe(bench: Bench, boards: Sequence[str], sketches: Sequence[Path]) -> list[Path]:
    """The sketches every board builds: one untimed, cold compile-many per board (a sketch that fails is no
    error here); prints those left out with each board's error."""
    failed: dict[Path, dict[str, str]] = {}
    for board in boards:
        out = bench.workdir / "probe" / board
        shutil.rmtree(out, ignore_errors=True)
        log = bench.log("probe", board, 0)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:
            code = subprocess.run([bench.tools.fbuild_graph, "compile-many", "--board", board, *job_args(*bench.jobs),
                                   *COLD, "--quiet", "-o", str(out), *map(str, sketches)], stdout=f,
                                  stderr=subprocess.STDOUT).returncode
        results = out / "results.json"
        if code not in (0, 1) or not results.is_file():
            fail(f"probe for {board}: compile-many exited {code}; see {log}")
        for entry in json.loads(results.read_text())["sketches"]:
            if entry["status"] != "ok":
                error = (entry["error"] or entry["status"]).splitlines()[0]
                failed.setdefault(Path(entry["path"]), {})[board] = error
    kept = [s for s in sketches if s not in failed]
    print(f"probe: {len(kept)} of {len(sketches)} sketches build for {', '.join(boards)}; left out:", flush=True)
    for sketch, errors in sorted(failed.items()):
        by_error: dict[str, list[str]] = {}
        for board, error in errors.items():
            by_error.setdefault(error[:150], []).append(board)
        print(f"  {sketch.name}: " + "; ".join(f"{'/'.join(b)}: {e}" for e, b in by_error.items()), flush=True)
    return kept


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
          env: Optional[dict[str, str]] = None, ok: Collection[int] = (0,)) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + sys of the command and every descendant it waited for) of one
    command; exits naming `what` and the log if the command exits with a code not in `ok`."""
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
    if code not in ok:
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
                 boards: Sequence[str] = (BOARD,), failing: Collection[Path] = ()) -> Run:
    """One `fbuild-graph compile-many` into `out` (deleted first unless not `fresh`), read back; exits unless
    every sketch built but those of `failing`, which must fail. On a `scheduler` the job limits are the
    workers' own, so `jobs` only labels the row. With several `boards` (a board matrix) the row's `sketches`
    counts targets: sketches x boards."""
    framework_jobs, sketch_jobs = jobs or bench.jobs
    where = ["--scheduler", scheduler] if scheduler else job_args(framework_jobs, sketch_jobs)
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    what = f"{suite} {mode} rep {rep}"
    wall, cpu = timed([bench.tools.fbuild_graph, "compile-many", *board_args(boards), *where, *extra, "-o", str(out),
                       *map(str, sketches)], log or bench.log(suite, mode, rep), what, env=env,
                      ok=(0, 1) if failing else (0,))
    return read_outputs(out, Run(suite, mode, rep, len(sketches) * len(boards), framework_jobs, sketch_jobs, wall,
                                 cpu), what, failing)


def summed(each: Sequence[Run]) -> Run:
    """One row for several compile-many runs made one after another (a loop over sketches or boards): sketches,
    times, work, tools and failures summed, the median start-up, the largest peak RSS."""
    stage1 = {r.stage1_cache for r in each}
    starts = [r.stage1_start for r in each if r.stage1_start is not None]
    return dataclasses.replace(
        each[0], sketches=sum(r.sketches for r in each), wall=sum(r.wall for r in each),
        cpu=sum(r.cpu for r in each), framework_work=sum(r.framework_work for r in each),
        sketch_work=sum(r.sketch_work for r in each), startup=statistics.median(r.startup for r in each),
        peak_rss_mb=max(r.peak_rss_mb for r in each), stage1_cache=stage1.pop() if len(stage1) == 1 else "mixed",
        tools_run=sum(r.tools_run for r in each), tools_cpu=sum(r.tools_cpu for r in each),
        orchestrator_cpu=sum(r.orchestrator_cpu for r in each), failed=sum(r.failed for r in each),
        stage1_start=statistics.median(starts) if starts else None, phases={}, tasks_per_worker={})


def firmware_count(out: Path) -> int:
    """The `.hex` files under `out`'s sketches/ (OUT/sketches/ID/ for one board, OUT/BOARD/sketches/ID/ for a
    matrix): ninja only says its commands succeeded, a firmware per target shows the export left none out."""
    return sum("sketches" in path.relative_to(out).parts for path in out.rglob("*.hex"))


def read_outputs(out: Path, run: Run, what: str, failing: Collection[Path] = ()) -> Run:
    """`run` with what results.json, phases.tsv and tasks.tsv in `out` say; exits unless every sketch is ok but
    those of `failing`, which must have failed (and then the exit code is 1)."""
    results = json.loads((out / "results.json").read_text())
    expected = {str(path) for path in failing}
    bad = {s["path"]: s for s in results["sketches"] if s["status"] != "ok"}
    if (results["exit_code"] != (1 if expected else 0) or set(bad) != expected
            or any(s["status"] != "failed" for s in bad.values()) or len(results["sketches"]) != run.sketches):
        unexpected = [f"{s['id']} ({s['status']})" for path, s in bad.items() if path not in expected]
        built = [Path(path).name for path in expected - set(bad)]
        fail(f"{what}: exit code {results['exit_code']}, {len(results['sketches'])} of {run.sketches} sketches "
             f"reported, not ok: {', '.join(unexpected) or 'none'} (expected {len(expected)} to fail; "
             f"built all the same: {', '.join(built) or 'none'}); see {out}")
    build = analysis.load(str(out))
    run.phases = {p.name: p.seconds for p in build.phases}
    run.phases["total"] = build.wall
    run.startup = build.startup
    run.stage1_cache = next((p.cache for p in build.phases if p.name == "stage1_archives"), "")
    run.peak_rss_mb = float(results["peak_rss_mb"])
    run.tools_cpu = float(results["cpu_seconds"]["tools"])
    run.orchestrator_cpu = float(results["cpu_seconds"]["orchestrator"])
    run.failed = len(bad)
    ok = [t for t in build.tasks if t.status == "ok"]
    run.framework_work = sum((t.seconds for t in ok if t.resource == "framework"), 0.0)
    run.sketch_work = sum((t.seconds for t in ok if t.resource == "sketch"), 0.0)
    run.tools_run = sum(t.kind in TOOL_KINDS for t in ok)
    run.stage1_start = min((t.start for t in build.tasks if t.resource == "framework" and t.start is not None),
                           default=None)
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
