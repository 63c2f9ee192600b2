"""Compare three ways to build the same set of Arduino sketches for the uno.

    python benchmarks/compare.py                                # 19 examples x 10 copies = 190 sketches
    python benchmarks/compare.py --copies 1 --loop-sample 3     # quick smoke run, about 30 s

Modes, interleaved per repetition (A, B, C, A, B, C, ...) so a slow spell on the machine hits all three
alike, each from a freshly deleted output folder and with the same framework/sketch job limits:

  compile-many  one `fbuild-graph compile-many` over the whole set
  loop          one `compile-many` per sketch, one after another (today's CI pattern); with
                --loop-sample K only the first K sketches run and the time is scaled to the full set
  ninja         `ninja` on the build.ninja that `fbuild-graph graph --format ninja` exports: the same
                toolchain commands with no Python in between, the floor compile-many is judged against.
                The export (which also preprocesses the sketches) is timed on its own, not in ninja's time.

Also reported: compile-many's fixed start-up (phases.tsv: import + discover + cluster start) and the
orchestrating process's peak RSS (results.json) at 19 sketches and at the full set; the 19-sketch value
comes from one extra compile-many run (mode `compile-many-19`) unless --copies is 1.

Prints a table and writes one TSV row per run. The TSV holds what was measured: the loop row's time is
for the sketches it really built, not the extrapolation. Nothing here asserts on time; it only reports.

The sketch set is the 19 examples of the AVR core's libraries, copied N times as `<name>_<i>/<name>_<i>.ino`.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

EXAMPLES = "/usr/share/arduino/hardware/arduino/avr/libraries/*/examples/*/"
BOARD = "uno"
TSV_COLUMNS = ("mode", "rep", "sketches", "wall_seconds", "startup_seconds", "peak_rss_mb")
STARTUP_PHASES = ("import", "discover", "cluster_start")


@dataclass
class Run:
    mode: str
    rep: int
    sketches: int
    wall: float
    startup: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    phases: Optional[dict[str, float]] = None  # seconds per phases.tsv row; `total` is its stop time


@dataclass
class Tools:
    fbuild_graph: str
    ninja: str
    framework_jobs: int
    sketch_jobs: int
    workdir: Path

    @property
    def job_args(self) -> list[str]:
        return ["--framework-jobs", str(self.framework_jobs), "--sketch-jobs", str(self.sketch_jobs)]

    @property
    def build_args(self) -> list[str]:
        """compile-many without its caches: the same commands ninja runs, and a cold build every time."""
        return [*self.job_args, "--cache-mode", "off"]


def run_as(name: str, benchmark: Callable[[], int]) -> int:
    """Run another benchmark built on this module's helpers: they exit with this module's name, so say
    which benchmark stopped."""
    try:
        return benchmark()
    except SystemExit as exc:
        if isinstance(exc.code, str) and exc.code.startswith("compare.py:"):
            sys.exit(f"{name}:" + exc.code[len("compare.py:"):])
        raise


def main() -> int:
    args = parse_args()
    cores = os.cpu_count() or 1
    # The console script beside this interpreter, so a pyenv or venv shim's start-up is not timed.
    tool = shutil.which("fbuild-graph", path=os.path.dirname(sys.executable)) or shutil.which("fbuild-graph")
    ninja = shutil.which("ninja")
    if not tool or not ninja:
        sys.exit("compare.py: needs `fbuild-graph` (pip install -e .) and `ninja` on PATH")
    tools = Tools(tool, ninja, args.framework_jobs or min(cores, 2), args.sketch_jobs or cores,
                  Path(args.workdir).resolve())
    sketches = make_sketch_set(tools.workdir / "sketches", args.copies)
    sample = min(args.loop_sample or len(sketches), len(sketches))
    print_machine(tools, cores)
    print(f"{len(sketches)} sketches ({args.copies} x 19), {args.reps} repetition(s), framework jobs "
          f"{tools.framework_jobs}, sketch jobs {tools.sketch_jobs}, work dir {tools.workdir}\n", flush=True)

    runs: list[Run] = []
    for rep in range(1, args.reps + 1):
        runs.append(compile_many(tools, sketches, "compile-many", rep))
        runs.append(loop(tools, sketches[:sample], rep))
        runs += ninja_build(tools, sketches, rep)
    if args.copies > 1:
        runs.append(compile_many(tools, sketches[:19], "compile-many-19", 1))

    report(runs, len(sketches), sample)
    write_tsv(Path(args.tsv), runs)
    print(f"\nwrote {args.tsv}")
    return 0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--copies", type=at_least(1), default=10,
                   help="copies of the 19 example sketches (default 10 = 190)")
    p.add_argument("--reps", type=at_least(1), default=1, help="repetitions of each mode; the table shows medians")
    p.add_argument("--framework-jobs", type=at_least(1), help="stage-1 job limit (default min(cores, 2))")
    p.add_argument("--sketch-jobs", type=at_least(1), help="stage-2 job limit (default cores)")
    p.add_argument("--loop-sample", type=at_least(0), default=0,
                   help="loop mode builds only the first K sketches and scales the time up (default 0 = all)")
    p.add_argument("--tsv", default=str(Path(__file__).resolve().parent / "results" / "compare.tsv"),
                   help="TSV of every run (default benchmarks/results/compare.tsv)")
    p.add_argument("--workdir", default="/tmp/fbuild-graph-compare",
                   help="sketch copies and build outputs go here; it is overwritten (default %(default)s)")
    return p.parse_args()


def at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = "whole number"  # argparse names the type by it: "invalid whole number value: 'x'"
    return parse


def print_machine(tools: Tools, cores: int) -> None:
    ninja_version = subprocess.run([tools.ninja, "--version"], capture_output=True, text=True).stdout.strip()
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {cores} cores, {platform.platform()}, load average {load}")
    print(f"python {platform.python_version()}, ninja {ninja_version}, {tools.fbuild_graph}")
    print(f"date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")


def make_sketch_set(root: Path, copies: int) -> list[Path]:
    """Copy-major order, so the first 19 are one copy of every example and a loop sample is varied."""
    examples = sorted(Path(p) for p in glob.glob(EXAMPLES))
    if len(examples) != 19:
        sys.exit(f"compare.py: expected 19 example sketches under {EXAMPLES}, found {len(examples)}")
    shutil.rmtree(root, ignore_errors=True)
    made = []
    for i in range(1, copies + 1):
        for example in examples:
            name = f"{example.name}_{i}"
            # A sketch is X/X.ino, so the folder and its main .ino are renamed together.
            shutil.copytree(example, root / name)
            (root / name / f"{example.name}.ino").rename(root / name / f"{name}.ino")
            made.append(root / name)
    return made


def compile_many(tools: Tools, sketches: list[Path], mode: str, rep: int) -> Run:
    out = tools.workdir / "out" / mode
    shutil.rmtree(out, ignore_errors=True)
    wall = timed([tools.fbuild_graph, "compile-many", "--board", BOARD, *tools.build_args, "-o", str(out),
                  *map(str, sketches)], log=tools.workdir / "logs" / f"{mode}-{rep}.log")
    return read_outputs(out, mode, rep, len(sketches), wall)


def loop(tools: Tools, sketches: list[Path], rep: int) -> Run:
    """One invocation per sketch, each into its own output folder, as a CI matrix or shell loop does."""
    out = tools.workdir / "out" / "loop"
    shutil.rmtree(out, ignore_errors=True)
    done = []
    for sketch in sketches:
        wall = timed([tools.fbuild_graph, "compile-many", "--board", BOARD, *tools.build_args,
                      "-o", str(out / sketch.name), str(sketch)],
                     log=tools.workdir / "logs" / f"loop-{rep}-{sketch.name}.log")
        done.append(read_outputs(out / sketch.name, "loop", rep, 1, wall))
    return Run("loop", rep, len(done), sum(r.wall for r in done), startup=statistics.median(r.startup for r in done),
               peak_rss_mb=max(r.peak_rss_mb for r in done))


def ninja_build(tools: Tools, sketches: list[Path], rep: int) -> list[Run]:
    out = tools.workdir / "out" / "ninja"
    build_file = tools.workdir / "ninja" / "build.ninja"
    for folder in (out, build_file.parent):
        shutil.rmtree(folder, ignore_errors=True)
    build_file.parent.mkdir(parents=True)
    export = timed([tools.fbuild_graph, "graph", "--format", "ninja", "--board", BOARD, *tools.job_args,
                    "-o", str(out), *map(str, sketches)],
                   log=tools.workdir / "logs" / f"ninja-export-{rep}.log", stdout=build_file)
    log = tools.workdir / "logs" / f"ninja-{rep}.log"
    # -j F+S so that only the two pools limit ninja, as only the two worker pools limit compile-many. Run
    # in the build file's (fresh) folder so ninja's .ninja_log starts empty too.
    wall = timed([tools.ninja, "-f", str(build_file), "-j", str(tools.framework_jobs + tools.sketch_jobs)],
                 log=log, cwd=build_file.parent)
    # ninja only says its commands succeeded; a firmware per sketch shows the export left none out.
    hexes = glob.glob(str(out / "sketches" / "*" / "**" / "*.hex"), recursive=True)
    if len(hexes) != len(sketches):
        sys.exit(f"compare.py: ninja made {len(hexes)} .hex files for {len(sketches)} sketches under {out}; see {log}")
    return [Run("ninja-export", rep, len(sketches), export), Run("ninja", rep, len(sketches), wall)]


def timed(argv: list[str], log: Path, stdout: Optional[Path] = None, cwd: Optional[Path] = None) -> float:
    """Wall seconds of one command; exits with the log's tail if the command fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    # Output goes to files, never to a pipe we read, so no mode pays for the benchmark's reading speed.
    with open(log, "w") as err, open(stdout or os.devnull, "w") as captured:
        start = time.perf_counter()
        code = subprocess.run(argv, stdout=captured if stdout else err, stderr=err, cwd=cwd).returncode
        wall = time.perf_counter() - start
    if code != 0:
        sys.exit(f"compare.py: `{' '.join(argv[:3])} ...` exited {code}; see {log}:\n{tail(log)}")
    return wall


def read_outputs(out: Path, mode: str, rep: int, expected: int, wall: float) -> Run:
    results = json.loads((out / "results.json").read_text())
    bad = [s["id"] for s in results["sketches"] if s["status"] != "ok"]
    if results["exit_code"] != 0 or bad or len(results["sketches"]) != expected:
        sys.exit(f"compare.py: {mode} rep {rep}: exit code {results['exit_code']}, {len(results['sketches'])} of "
                 f"{expected} sketches reported, not ok: {', '.join(bad) or 'none'}; see {out}")
    header, *rows = [line.split("\t") for line in (out / "phases.tsv").read_text().splitlines()]
    stop, seconds = header.index("stop"), header.index("seconds")
    phases = {row[0]: float(row[seconds]) for row in rows}
    phases["total"] = next(float(row[stop]) for row in rows if row[0] == "total")
    # An up-to-date build runs inline and starts no cluster: its start-up ends with discovery.
    startup = max(float(row[stop]) for row in rows if row[0] in STARTUP_PHASES)
    return Run(mode, rep, expected, wall, startup=startup, peak_rss_mb=results["peak_rss_mb"], phases=phases)


def report(runs: list[Run], total: int, sample: int) -> None:
    def median(mode: str, value: Callable[[Run], float] = lambda r: r.wall) -> float:
        return statistics.median(value(r) for r in runs if r.mode == mode)

    walls = {"compile-many": median("compile-many"), "loop": median("loop") * total / sample, "ninja": median("ninja")}
    extrapolated = f"extrapolated from {sample} of {total} sketches" if sample < total else ""
    print(f"{'mode':<14}{'sketches':>9}{'median s':>11}{'vs ninja':>10}{'vs compile-many':>17}")
    for mode, wall in walls.items():
        note = f"  ({extrapolated})" if mode == "loop" and extrapolated else ""
        print(f"{mode:<14}{total:>9}{wall:>11.2f}{wall / walls['ninja']:>9.2f}x"
              f"{wall / walls['compile-many']:>16.2f}x{note}")
    print(f"ninja export (graph --format ninja, not in ninja's time) = {median('ninja-export'):.2f} s\n")

    print(f"compile-many / ninja = {walls['compile-many'] / walls['ninja']:.2f}x (target <= 1.05)")
    loop_note = f" (loop {extrapolated})" if extrapolated else ""
    print(f"compile-many / loop = {walls['compile-many'] / walls['loop']:.2f}x{loop_note}")
    parts = {name: median("compile-many", lambda r: r.phases[name]) for name in STARTUP_PHASES}
    print(f"fixed start-up = {median('compile-many', lambda r: r.startup):.2f} s (target < 0.7; import "
          f"{parts['import']:.2f}, discover {parts['discover']:.2f}, cluster start {parts['cluster_start']:.2f})")
    # phases.tsv's clock starts when fbuild_graph.cli is imported and stops before the result files are
    # written, so interpreter start-up, writing results and process exit show only against the wall time.
    outside = median("compile-many", lambda r: r.wall - r.phases["total"])
    print(f"outside phases.tsv (interpreter start, writing results, exit) = {outside:.2f} s")
    full = median("compile-many", lambda r: r.peak_rss_mb)
    small = [r.peak_rss_mb for r in runs if r.mode == "compile-many-19"]
    sizes = f"19 sketches {small[0]:.0f} MB, " if small else ""
    print(f"peak RSS: {sizes}{total} sketches {full:.0f} MB")


def write_tsv(path: Path, runs: list[Run]) -> None:
    def cell(value) -> str:
        return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [TSV_COLUMNS, *((r.mode, r.rep, r.sketches, r.wall, r.startup, r.peak_rss_mb) for r in runs)]
    path.write_text("".join("\t".join(cell(v) for v in row) + "\n" for row in rows))


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


if __name__ == "__main__":
    sys.exit(main())
