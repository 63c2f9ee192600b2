"""Compare three ways to build the same set of Arduino sketches for the uno.

    python benchmarks/compare.py                          # 19 examples x 10 copies = 190 sketches, 1 repetition
    python benchmarks/compare.py --copies 1 --loop-sample 3   # quick smoke run (~30 s)

Modes, run interleaved per repetition (A, B, C, A, B, C, ...) so a slow spell on the machine hits all
three alike, each from a freshly deleted output folder, with the same framework/sketch job limits:

  compile-many  one `fbuild-graph compile-many` over the whole set
  loop          one `compile-many` per sketch, one after another (today's CI pattern); with
                --loop-sample K only the first K sketches run and the time is scaled to the full set
  ninja         `ninja` on the build.ninja that `fbuild-graph graph --format ninja` exports: the same
                toolchain commands with no Python in the way, i.e. the floor compile-many is judged
                against. The export runs before ninja and is timed on its own line, not in ninja's time.

Also reported: compile-many's fixed start-up (phases.tsv: import + discover + cluster start) and the
orchestrating process's peak RSS (results.json) at 19 sketches and at the full set. Prints a table and
writes one TSV row per run. It only reports; nothing here asserts on time.

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
from typing import Optional

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
    phases: Optional[dict[str, float]] = None


def main() -> int:
    args = parse_args()
    cores = os.cpu_count() or 1
    framework_jobs = args.framework_jobs or min(cores, 2)
    sketch_jobs = args.sketch_jobs or cores
    jobs = ["--framework-jobs", str(framework_jobs), "--sketch-jobs", str(sketch_jobs)]
    tool = shutil.which("fbuild-graph", path=os.path.dirname(sys.executable)) or shutil.which("fbuild-graph")
    ninja = shutil.which("ninja")
    if not tool or not ninja:
        sys.exit("compare.py: needs `fbuild-graph` (pip install -e .) and `ninja` on PATH")

    workdir = Path(args.workdir).resolve()
    sketches = make_sketch_set(workdir / "sketches", args.copies)
    sample = min(args.loop_sample or len(sketches), len(sketches))
    print(f"machine: {cores} cores, {platform.platform()}, load average {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"python {platform.python_version()}, {subprocess.run([ninja, '--version'], capture_output=True, text=True).stdout.strip()} "
          f"(ninja), {tool}")
    print(f"date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"{len(sketches)} sketches ({args.copies} x 19), {args.reps} repetition(s), framework jobs {framework_jobs}, "
          f"sketch jobs {sketch_jobs}, work dir {workdir}\n", flush=True)

    runs: list[Run] = []
    for rep in range(1, args.reps + 1):
        runs.append(compile_many(tool, jobs, sketches, workdir, "compile-many", rep))
        runs.append(loop(tool, jobs, sketches[:sample], workdir, rep))
        export, built = ninja_build(tool, ninja, framework_jobs + sketch_jobs, jobs, sketches, workdir, rep)
        runs += [export, built]
    if args.copies > 1:
        runs.append(compile_many(tool, jobs, sketches[:19], workdir, "compile-many-19", 1))

    report(runs, len(sketches), sample)
    write_tsv(Path(args.tsv), runs)
    print(f"\nwrote {args.tsv}")
    return 0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--copies", type=int, default=10, help="copies of the 19 example sketches (default 10 = 190)")
    p.add_argument("--reps", type=int, default=1, help="repetitions of each mode; the table shows medians")
    p.add_argument("--framework-jobs", type=int, help="stage-1 job limit (default min(cores, 2))")
    p.add_argument("--sketch-jobs", type=int, help="stage-2 job limit (default cores)")
    p.add_argument("--loop-sample", type=int, default=0,
                   help="loop mode builds only the first K sketches and scales the time up (default 0 = all)")
    p.add_argument("--tsv", default=str(Path(__file__).resolve().parent / "results" / "compare.tsv"),
                   help="TSV of every run (default benchmarks/results/compare.tsv)")
    p.add_argument("--workdir", default=os.path.join("/tmp", "fbuild-graph-compare"),
                   help="sketch copies and build outputs go here (default /tmp/fbuild-graph-compare)")
    args = p.parse_args()
    if min(args.copies, args.reps) < 1 or args.loop_sample < 0:
        p.error("--copies and --reps must be at least 1, --loop-sample at least 0")
    return args


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


def compile_many(tool: str, jobs: list[str], sketches: list[Path], workdir: Path, mode: str, rep: int) -> Run:
    out = workdir / "out" / mode
    shutil.rmtree(out, ignore_errors=True)
    wall = timed([tool, "compile-many", "--board", BOARD, *jobs, "-o", str(out), *map(str, sketches)],
                 log=workdir / "logs" / f"{mode}-{rep}.log")
    return read_outputs(out, mode, rep, len(sketches), wall)


def loop(tool: str, jobs: list[str], sketches: list[Path], workdir: Path, rep: int) -> Run:
    """One invocation per sketch, each into its own output folder, as a CI matrix or shell loop does."""
    out = workdir / "out" / "loop"
    shutil.rmtree(out, ignore_errors=True)
    done = []
    for sketch in sketches:
        wall = timed([tool, "compile-many", "--board", BOARD, *jobs, "-o", str(out / sketch.name), str(sketch)],
                     log=workdir / "logs" / f"loop-{rep}-{sketch.name}.log")
        done.append(read_outputs(out / sketch.name, "loop", rep, 1, wall))
    return Run("loop", rep, len(done), sum(r.wall for r in done),
               startup=statistics.median(r.startup for r in done),
               peak_rss_mb=max(r.peak_rss_mb for r in done))


def ninja_build(tool: str, ninja: str, total_jobs: int, jobs: list[str], sketches: list[Path], workdir: Path,
                rep: int) -> tuple[Run, Run]:
    out = workdir / "out" / "ninja"
    build_file = workdir / "ninja" / "build.ninja"
    for folder in (out, build_file.parent):
        shutil.rmtree(folder, ignore_errors=True)
    build_file.parent.mkdir(parents=True)
    export = timed([tool, "graph", "--format", "ninja", "--board", BOARD, *jobs, "-o", str(out), *map(str, sketches)],
                   log=workdir / "logs" / f"ninja-export-{rep}.log", stdout=build_file)
    # -j F+S so that only the pools limit ninja, as only the two worker pools limit compile-many. Run
    # from the build file's folder so ninja's own .ninja_log starts empty with it.
    log = workdir / "logs" / f"ninja-{rep}.log"
    wall = timed([ninja, "-f", str(build_file), "-j", str(total_jobs)], log=log, cwd=build_file.parent)
    hexes = glob.glob(str(out / "sketches" / "*" / "**" / "*.hex"), recursive=True)
    if len(hexes) != len(sketches):
        sys.exit(f"compare.py: ninja made {len(hexes)} .hex files for {len(sketches)} sketches under {out}; see {log}")
    return Run("ninja-export", rep, len(sketches), export), Run("ninja", rep, len(sketches), wall)


def timed(argv: list[str], log: Path, stdout: Optional[Path] = None, cwd: Optional[Path] = None) -> float:
    """Wall seconds of one command; exits with the log's tail if it fails."""
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
    rows = [line.split("\t") for line in (out / "phases.tsv").read_text().splitlines()]
    columns = rows[0]
    stops = {row[0]: float(row[columns.index("stop")]) for row in rows[1:]}
    phases = {row[0]: float(row[columns.index("seconds")]) for row in rows[1:]}
    phases["total"] = stops["total"]
    return Run(mode, rep, expected, wall, startup=stops["cluster_start"], peak_rss_mb=results["peak_rss_mb"],
               phases=phases)


def report(runs: list[Run], total: int, sample: int) -> None:
    def median(mode: str, value=lambda r: r.wall) -> float:
        return statistics.median(value(r) for r in runs if r.mode == mode)

    scale = total / sample
    walls = {"compile-many": median("compile-many"), "loop": median("loop") * scale, "ninja": median("ninja")}
    extrapolated = f"extrapolated from {sample} of {total} sketches" if sample < total else ""
    print(f"{'mode':<14}{'sketches':>9}{'median s':>11}{'vs ninja':>10}{'vs compile-many':>17}")
    for mode, wall in walls.items():
        note = f"  ({extrapolated})" if mode == "loop" and extrapolated else ""
        print(f"{mode:<14}{total:>9}{wall:>11.2f}{wall / walls['ninja']:>9.2f}x{wall / walls['compile-many']:>16.2f}x{note}")
    print(f"ninja export (graph --format ninja, not in ninja's time) = {median('ninja-export'):.2f} s\n")

    print(f"compile-many / ninja = {walls['compile-many'] / walls['ninja']:.2f}x (target <= 1.05)")
    loop_note = f" (loop {extrapolated})" if extrapolated else ""
    print(f"compile-many / loop = {walls['compile-many'] / walls['loop']:.2f}x{loop_note}")
    parts = {name: median("compile-many", lambda r: r.phases[name]) for name in STARTUP_PHASES}
    print(f"fixed start-up = {median('compile-many', lambda r: r.startup):.2f} s (target < 0.7; import "
          f"{parts['import']:.2f}, discover {parts['discover']:.2f}, cluster start {parts['cluster_start']:.2f})")
    # phases.tsv starts its clock when fbuild_graph.cli is imported, so the interpreter's own start-up,
    # the result files written after `total`, and process exit only show as the difference to the wall time.
    outside = median("compile-many", lambda r: r.wall - r.phases["total"])
    print(f"outside phases.tsv (interpreter start, results writing, exit) = {outside:.2f} s")
    full = median("compile-many", lambda r: r.peak_rss_mb)
    small = [r.peak_rss_mb for r in runs if r.mode == "compile-many-19"]
    sizes = f"19 sketches {small[0]:.0f} MB, {total} sketches {full:.0f} MB" if small else f"{total} sketches {full:.0f} MB"
    print(f"peak RSS: {sizes}")


def write_tsv(path: Path, runs: list[Run]) -> None:
    """Raw measurements: the loop row holds the time of the sketches it really built, not the extrapolation."""
    def cell(value) -> str:
        return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(TSV_COLUMNS)]
    lines += ["\t".join(cell(v) for v in (r.mode, r.rep, r.sketches, r.wall, r.startup, r.peak_rss_mb)) for r in runs]
    path.write_text("\n".join(lines) + "\n")


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


if __name__ == "__main__":
    sys.exit(main())
