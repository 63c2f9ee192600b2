"""Board matrix: every sketch of a set built for every board of a matrix (uno, mega, leonardo, nano) in one
`compile-many` run, against one run per board one after another, and against ninja on the exported matrix graph.

    .venv/bin/python benchmarks/matrix.py                            # both sets, 4 boards, 3 repetitions
    .venv/bin/python benchmarks/matrix.py --set core --reps 1        # quick: 19 sketches x 4 boards
    .venv/bin/python benchmarks/matrix.py --boards uno,mega          # another matrix

Modes, every one cold (`--cache-mode off`: no build cache and no ccache, so all run the same commands), each
from freshly deleted output folders, with the same framework/sketch job limits:

  matrix        one `compile-many` with a `--board` for every board
  sequential    one `compile-many` per board, one after another; one row for them all (times, work and tools
                summed), as a CI job that loops over its boards does
  ninja         `ninja -j F+S` on the build.ninja that `graph --format ninja` exports for the whole matrix (the
                same pools), the floor the matrix run is judged against
  ninja-export  that export, timed on its own, not in ninja's time

Sets:

  core  the AVR core's 19 library examples (harness.py's default set)
  ide   a larger real set: the Arduino IDE's built-in examples that build for every board of the matrix, plus
        the core's 19. The examples come from Debian's `arduino` package (/usr/share/doc/arduino/examples);
        when it is not installed, `apt-get download arduino` fetches it into the work dir and `dpkg-deb -x`
        unpacks it there. Before the first repetition an untimed probe (one compile-many per board) decides
        which examples build; those left out are printed with each board's error. On Debian 12: 68 of the 81,
        since 11 include a library the package does not ship (Keyboard, Mouse, Servo, LiquidCrystal,
        CapacitiveSensor) and 2 use Serial1, which the uno and the nano lack.

Repetitions are interleaved (every set's modes once per repetition), a line printed as each run finishes.
Writes one TSV row per run with harness.py's columns (`sketches` counts targets, sketches x boards; each row
is one set's, its suite `matrix-SET`), then prints the table, medians over repetitions, and saves it beside
the TSV as .txt with the machine lines. A failed build stops it, naming the run and its log.

Targets (issue): the matrix run at most 0.85x the sequential runs' wall time, and at most 1.05x ninja's.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
from pathlib import Path
from typing import TextIO

from common import (COLD, EXAMPLE_COUNT, IDE_EXAMPLES, Bench, Run, at_least, compile_many, done, example_sketches,
                    file_cost_line, find_tools, given_sketches, ide_examples, ide_sketches, machine_lines, median, of,
                    probe, summed, write, write_outputs)
from compare import ninja_build

SUITE = "matrix"
BOARDS = ("uno", "mega", "leonardo", "nano")
SETS = ("core", "ide")
MODES = ("matrix", "sequential", "ninja")
TARGETS = {"sequential": 0.85, "ninja": 1.05}  # the matrix run's wall time over each, at most
RESULTS = Path(__file__).resolve().parent / "results"


def run(bench: Bench, rep: int, boards: tuple[str, ...], name: str) -> list[Run]:
    """One repetition of the three modes on one set (`bench.sketches`), into bench.workdir/matrix-NAME."""
    suite = f"{SUITE}-{name}"
    root = bench.workdir / suite
    matrix = done(compile_many(bench, suite, "matrix", rep, bench.sketches, root / "matrix", *COLD, boards=boards))
    shutil.rmtree(root / "sequential", ignore_errors=True)
    sequential = done(summed([compile_many(bench, suite, "sequential", rep, bench.sketches, root / "sequential" / board,
                                           *COLD, boards=(board,), log=bench.log(suite, f"sequential-{board}", rep))
                              for board in boards]))
    return [matrix, sequential, *map(done, ninja_build(bench, rep, suite, boards))]


def report(runs: list[Run], name: str, boards: tuple[str, ...], out: TextIO) -> dict[str, float]:
    """One set's part of the table; returns its median wall times by mode."""
    suite = f"{SUITE}-{name}"
    walls = {mode: median(runs, suite, mode) for mode in MODES}
    rows = of(runs, suite, "matrix")
    targets = rows[0].sketches
    write(out, f"{suite} ({targets // len(boards)} sketches x {len(boards)} boards = {targets} targets, cold; "
               f"medians of {len(rows)} repetition(s))",
          f"{'mode':<12}{'wall s':>9}{'cpu s':>9}{'tools run':>11}{'vs matrix':>11}")
    for mode in MODES:
        tools = of(runs, suite, mode)[0].tools_run
        write(out, f"{mode:<12}{walls[mode]:>9.2f}{median(runs, suite, mode, lambda r: r.cpu):>9.2f}"
                   f"{'' if tools is None else tools:>11}{walls[mode] / walls['matrix']:>10.2f}x")
    seq_startup = median(runs, suite, "sequential", lambda r: r.startup)
    export = median(runs, suite, "ninja-export")
    write(out, f"ninja export (graph --format ninja, not in ninja's time) = {export:.2f} s",
          *(f"matrix / {mode} = {walls['matrix'] / walls[mode]:.2f}x (target <= {limit:.2f})"
            for mode, limit in TARGETS.items()),
          f"fixed start-up: matrix {median(runs, suite, 'matrix', lambda r: r.startup):.2f} s once, sequential "
          f"{seq_startup:.2f} s x {len(boards)} runs")
    return walls


def summary(walls: dict[str, dict[str, float]], targets: dict[str, int], out: TextIO) -> None:
    """The sets side by side: medians and the two ratios against their targets."""
    write(out, f"{'set':<6}{'targets':>8}{'matrix s':>10}{'sequential s':>14}{'ninja s':>9}"
               + "".join(f"{f'matrix/{mode} (<= {limit:.2f})':>30}" for mode, limit in TARGETS.items()))
    for name, wall in walls.items():
        ratios = {mode: wall["matrix"] / wall[mode] for mode in TARGETS}
        cells = [f"{ratio:.2f}x {'met' if ratio <= TARGETS[mode] else 'missed'}" for mode, ratio in ratios.items()]
        write(out, f"{name:<6}{targets[name]:>8}{wall['matrix']:>10.2f}{wall['sequential']:>14.2f}"
                   f"{wall['ninja']:>9.2f}" + "".join(f"{cell:>30}" for cell in cells))


def main() -> int:
    args = parse_args()
    cores = os.cpu_count() or 1
    tools = find_tools({"ninja"})
    workdir = Path(args.workdir).resolve()
    boards = tuple(args.boards)
    jobs = (args.framework_jobs or min(cores, 2), args.sketch_jobs or cores)
    core = example_sketches()
    sets: dict[str, Bench] = {}
    if args.set in ("core", "both"):
        sets["core"] = Bench(tools, workdir, given_sketches([str(s) for s in core]), *jobs)
    header = [*machine_lines(tools), file_cost_line(workdir)]
    if args.set in ("ide", "both"):
        examples = ide_examples(Path(args.ide_examples), workdir)
        found = ide_sketches(examples)
        kept = probe(Bench(tools, workdir, [], *jobs), boards, found)
        sets["ide"] = Bench(tools, workdir, given_sketches([str(s) for s in [*core, *kept]]), *jobs)
        header.append(f"ide set: the core's {EXAMPLE_COUNT} examples and {len(kept)} of the {len(found)} IDE "
                      f"examples under {examples} (those every board builds)")
    header.append(f"boards {', '.join(boards)}; sets {', '.join(sets)}; {args.reps} repetition(s); "
                  f"framework jobs {jobs[0]}, sketch jobs {jobs[1]}; cold (--cache-mode off); work dir {workdir}")
    print("\n".join(header) + "\n", flush=True)

    runs: list[Run] = []
    for rep in range(1, args.reps + 1):
        for name, bench in sets.items():
            runs += run(bench, rep, boards, name)

    table = io.StringIO()
    walls = {}
    for name in sets:
        print(file=table)
        walls[name] = report(runs, name, boards, table)
    print(file=table)
    summary(walls, {name: of(runs, f"{SUITE}-{name}", "matrix")[0].sketches for name in sets}, table)
    print(table.getvalue())
    write_outputs(Path(args.tsv), runs, header, table.getvalue())
    return 0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="matrix.py", description=__doc__.split("\n\nRepetitions")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", choices=("core", "ide", "both"), default="both",
                   help="the core's 19 examples, the IDE's examples that build plus those 19, or both (default both)")
    p.add_argument("--boards", metavar="LIST", type=board_list, default=list(BOARDS),
                   help=f"comma-separated boards of the matrix (default {','.join(BOARDS)})")
    p.add_argument("--reps", metavar="N", type=at_least(1), default=3,
                   help="repetitions of every mode; the table shows medians (default 3)")
    p.add_argument("-F", "--framework-jobs", metavar="F", type=at_least(1),
                   help="stage-1 job limit (default min(cores, 2))")
    p.add_argument("-S", "--sketch-jobs", metavar="S", type=at_least(1), help="stage-2 job limit (default cores)")
    p.add_argument("--ide-examples", metavar="DIR", default=IDE_EXAMPLES,
                   help="the IDE's examples (default %(default)s, fetched into the work dir when not installed)")
    p.add_argument("--tsv", metavar="PATH", default=str(RESULTS / "matrix.tsv"),
                   help="the TSV of every run; the table goes beside it as .txt "
                        "(default benchmarks/results/matrix.tsv)")
    p.add_argument("--workdir", metavar="DIR", default="/tmp/fbuild-graph-matrix",
                   help="build outputs, logs and the unpacked IDE examples go here; its contents are overwritten "
                        "(default %(default)s)")
    return p.parse_args()


def board_list(text: str) -> list[str]:
    boards = list(dict.fromkeys(b.strip() for b in text.split(",") if b.strip()))
    if not boards:
        raise argparse.ArgumentTypeError(f"a comma-separated list of boards, got {text!r}")
    return boards


if __name__ == "__main__":
    sys.exit(main())
