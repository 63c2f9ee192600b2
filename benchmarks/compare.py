"""Suite `compare`: three ways to build the same sketch set, each from a freshly deleted output folder, with
no cache and the same framework/sketch job limits.

  compile-many     one `fbuild-graph compile-many` over the whole set
  loop             one `compile-many` per sketch, one after another (today's CI pattern); with --loop-sample K
                   only the first K sketches run. The row holds what was measured (the sketches it really
                   built); the table scales its time to the full set
  ninja            `ninja` on the build.ninja that `fbuild-graph graph --format ninja` exports: the same
                   toolchain commands with no Python in between, the floor compile-many is judged against
  ninja-export     that export (which also preprocesses the sketches), timed on its own, not in ninja's time
  compile-many-19  with more than 19 sketches, one extra compile-many of the first 19 in the first repetition,
                   for the orchestrating process's peak RSS at 19 sketches beside the full set's

Targets (issue): compile-many within 1.05x of ninja; a fixed start-up (phases.tsv: import + discover + libraries + plan + cluster
start) under 0.7 s. Also reported: compile-many against the loop, and peak RSS (results.json).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional, Sequence, TextIO

from fbuild_graph.analysis import analysis

from common import (BOARD, COLD, EXAMPLE_COUNT, Bench, Run, board_args, compile_many, done, fail, firmware_count,
                    heading, job_args, median, of, per_rep, summed, timed, write)

SUITE = "compare"
NEEDS = {"ninja"}


def run(bench: Bench, rep: int) -> list[Run]:
    runs = [done(compile_many(bench, SUITE, "compile-many", rep, bench.sketches,
                              bench.workdir / SUITE / "compile-many", *COLD)),
            done(loop(bench, rep)),
            *map(done, ninja_build(bench, rep))]
    if rep == 1 and len(bench.sketches) > EXAMPLE_COUNT:
        runs.append(done(compile_many(bench, SUITE, "compile-many-19", rep, bench.sketches[:EXAMPLE_COUNT],
                                      bench.workdir / SUITE / "compile-many-19", *COLD)))
    return runs


def loop(bench: Bench, rep: int) -> Run:
    """One invocation per sketch, each into its own output folder, as a CI matrix or shell loop does; one row
    for them all: times, work and tools summed, the median start-up, the largest peak RSS."""
    root = bench.workdir / SUITE / "loop"
    shutil.rmtree(root, ignore_errors=True)
    return summed([compile_many(bench, SUITE, "loop", rep, [sketch], root / sketch.name, *COLD,
                                log=bench.log(SUITE, f"loop-{sketch.name}", rep))
                   for sketch in bench.sketches[:bench.loop_sample or None]])


def ninja_build(bench: Bench, rep: int, suite: str = SUITE, boards: Sequence[str] = (BOARD,),
                sketches: Optional[Sequence[Path]] = None, failing: int = 0, again: bool = False) -> list[Run]:
    """The export (mode ninja-export) and ninja's build of it (mode ninja) of `sketches` (default
    bench.sketches); with several `boards`, the matrix's graph, and `sketches` counts targets (sketches x
    boards) as compile-many's rows do. When `failing` of the targets fail, ninja keeps going past them (`-k 0`,
    as compile-many does) and exits 1. `again`: then ninja once more in the same folder (mode ninja-again),
    which has nothing to do but what failed."""
    sketches = bench.sketches if sketches is None else sketches
    out = bench.workdir / suite / "ninja-out"
    build_file = bench.workdir / suite / "ninja" / "build.ninja"
    for folder in (out, build_file.parent):
        shutil.rmtree(folder, ignore_errors=True)
    build_file.parent.mkdir(parents=True)
    targets = len(sketches) * len(boards)
    export = timed([bench.tools.fbuild_graph, "graph", "--format", "ninja", *board_args(boards),
                    *job_args(*bench.jobs), "-o", str(out), *map(str, sketches)],
                   bench.log(suite, "ninja-export", rep), f"{suite} ninja-export rep {rep}", stdout=build_file)
    runs = [Run(suite, "ninja-export", rep, targets, *bench.jobs, *export)]
    for mode in ("ninja", "ninja-again") if again else ("ninja",):
        log = bench.log(suite, mode, rep)
        # -j F+S so that only the two pools limit ninja, as only the two worker pools limit compile-many. Run in
        # the build file's (fresh) folder so ninja's .ninja_log starts empty too.
        wall, cpu = timed([bench.tools.ninja, "-f", str(build_file), "-j", str(sum(bench.jobs)),
                           *(("-k", "0") if failing else ())], log, f"{suite} {mode} rep {rep}",
                          cwd=build_file.parent, ok=(1,) if failing else (0,))
        hexes = firmware_count(out)
        if hexes != targets - failing:
            fail(f"{suite} {mode} rep {rep}: {hexes} .hex files for {targets} targets ({failing} expected to fail) "
                 f"under {out}; see {log}")
        # No Python in between: all its CPU is the tools' (ninja's own few milliseconds included).
        runs.append(Run(suite, mode, rep, targets, *bench.jobs, wall, cpu, tools_cpu=cpu, failed=failing))
    return runs


def report(runs: list[Run], out: TextIO) -> None:
    def med(mode: str, value=lambda r: r.wall) -> float:
        return median(runs, SUITE, mode, value)

    total = of(runs, SUITE, "compile-many")[0].sketches
    sample = of(runs, SUITE, "loop")[0].sketches
    scale = {"compile-many": 1, "loop": total / sample, "ninja": 1}
    walls = {mode: med(mode) * k for mode, k in scale.items()}
    extrapolated = f"extrapolated from {sample} of {total} sketches" if sample < total else ""
    write(out, heading(runs, SUITE, "compile-many", ", cold"),
          f"{'mode':<14}{'wall s':>9}{'cpu s':>9}{'vs ninja':>10}{'vs compile-many':>17}")
    for mode, wall in walls.items():
        note = f"  ({extrapolated})" if mode == "loop" and extrapolated else ""
        write(out, f"{mode:<14}{wall:>9.2f}{med(mode, lambda r: r.cpu) * scale[mode]:>9.2f}"
                   f"{wall / walls['ninja']:>9.2f}x{wall / walls['compile-many']:>16.2f}x{note}")
    loop_note = f" (loop {extrapolated})" if extrapolated else ""
    parts = {name: med("compile-many", lambda r: r.phases[name]) for name in analysis.STARTUP}
    # phases.tsv's clock starts when fbuild_graph.cli is imported and stops before the result files are
    # written, so interpreter start-up, writing results and process exit show only against the wall time.
    outside = med("compile-many", lambda r: r.wall - r.phases["total"])
    small = of(runs, SUITE, "compile-many-19")
    sizes = f"{EXAMPLE_COUNT} sketches {small[0].peak_rss_mb:.0f} MB, " if small else ""
    write(out,
          f"ninja export (graph --format ninja, not in ninja's time) = {med('ninja-export'):.2f} s",
          f"compile-many / ninja = {walls['compile-many'] / walls['ninja']:.2f}x (target <= 1.05)",
          f"compile-many / loop = {walls['compile-many'] / walls['loop']:.2f}x{loop_note}",
          f"fixed start-up = {med('compile-many', lambda r: r.startup):.2f} s (target < 0.7; "
          + ", ".join(f"{name.replace('_', ' ')} {seconds:.2f}" for name, seconds in parts.items()) + ")",
          f"outside phases.tsv (interpreter start, writing results, exit) = {outside:.2f} s",
          f"peak RSS: {sizes}{total} sketches {med('compile-many', lambda r: r.peak_rss_mb):.0f} MB, "
          f"loop (one sketch each) {per_rep(runs, SUITE, 'loop', lambda r: f'{r.peak_rss_mb:.0f}')} MB")
