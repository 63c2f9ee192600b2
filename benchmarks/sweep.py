"""Suite `sweep`: how wall time scales with the two job limits. Cold builds (no cache, from a freshly deleted
output folder, as compare's) of the whole set at every point of:

  F1xS1      one framework and one sketch slot: the reference, where slots contend least, so its tasks.tsv
             work per resource class is the work to divide
  F{f}xS{S}  each f of --sweep-framework-jobs, with S the default sketch jobs
  F{F}xS{s}  each s of --sweep-sketch-jobs, with F the default framework jobs

each point once per repetition (a point named twice runs once). The table holds, per point, the median wall
time, the ideal (fbuild_graph.analysis.analysis.ideal_wall: the reference's start-up plus the largest of its total
work over f + s slots, its framework work over f and its sketch work over s), wall/ideal (1.0 would be
perfect scaling) and the speed-up over F1xS1. Past the machine's cores more slots cannot help, so
wall/ideal grows there. notebooks/scaling.ipynb draws the same from the TSV.
"""

from __future__ import annotations

from typing import TextIO

from fbuild_graph.analysis.analysis import ideal_wall

from common import COLD, Bench, Run, compile_many, done, heading, median, write

SUITE = "sweep"
NEEDS: set[str] = set()
REFERENCE = (1, 1)


def points(bench: Bench) -> list[tuple[int, int]]:
    found = [REFERENCE, *((f, bench.sketch_jobs) for f in bench.sweep_framework_jobs),
             *((bench.framework_jobs, s) for s in bench.sweep_sketch_jobs)]
    return list(dict.fromkeys(found))


def name(framework_jobs: int, sketch_jobs: int) -> str:
    return f"F{framework_jobs}xS{sketch_jobs}"


def run(bench: Bench, rep: int) -> list[Run]:
    return [done(compile_many(bench, SUITE, name(*point), rep, bench.sketches, bench.workdir / SUITE / name(*point),
                              *COLD, jobs=point))
            for point in points(bench)]


def report(runs: list[Run], out: TextIO) -> None:
    swept = sorted({(r.framework_jobs, r.sketch_jobs) for r in runs if r.suite == SUITE})
    reference = name(*REFERENCE)
    work_f = median(runs, SUITE, reference, lambda r: r.framework_work)
    work_s = median(runs, SUITE, reference, lambda r: r.sketch_work)
    startup = median(runs, SUITE, reference, lambda r: r.startup)
    base = median(runs, SUITE, reference)
    write(out, heading(runs, SUITE, reference, ", cold"),
          f"at {reference}: framework work {work_f:.2f} s, sketch work {work_s:.2f} s, fixed start-up {startup:.2f} s",
          f"{'point':<9}{'wall s':>9}{'cpu s':>9}{'ideal s':>9}{'wall/ideal':>12}{'speed-up':>10}")
    for f, s in swept:
        mode = name(f, s)
        wall, ideal = median(runs, SUITE, mode), ideal_wall(work_f, work_s, f, s, startup)
        write(out, f"{mode:<9}{wall:>9.2f}{median(runs, SUITE, mode, lambda r: r.cpu):>9.2f}{ideal:>9.2f}"
                   f"{wall / ideal:>11.2f}x{base / wall:>9.2f}x")
