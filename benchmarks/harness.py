"""Benchmark fbuild-graph on one sketch set for the uno: the suites below, interleaved, into one TSV and one table.

    python benchmarks/harness.py                                        # compare, cache, sweep; 3 repetitions
    python benchmarks/harness.py --reps 1 --limit 4 --loop-sample 2     # quick smoke run
    python benchmarks/harness.py --suites cluster --copies 3            # 57 sketches on a local Dask cluster
    python benchmarks/harness.py path/to/MySketch path/to/Other         # your own sketches
    python benchmarks/harness.py --suites first --set ide               # issue 15's table on 100 real sketches

Suites (each module's docstring says what its modes mean and what they are judged against):

  compare  compile-many against one compile-many per sketch (loop) and against ninja on the exported graph
  cache    cold, warm, baked bundle and relocated builds with the build cache
  sweep    cold builds over --framework-jobs and --sketch-jobs, against the ideal scaling
  cluster  the in-process local cluster against a Dask scheduler with two `fbuild-graph worker` runners;
           not run unless asked, since it starts processes of its own
  first    a first build with default settings, without ccache and without any cache, and a second build
           with nothing changed, against ninja; CPU split between the tools and the orchestrating process

The sketch set (--set): `core`, the 19 examples of the AVR core's libraries; `ide`, the Arduino IDE's built-in
examples (/usr/share/doc/arduino/examples, or Debian's `arduino` package fetched with `apt-get download` and
unpacked into the work dir when not installed) and the core's 19, 100 sketches on Debian 12. An untimed probe
(one cold compile-many) finds which of them do not build for the uno (13 on Debian 12: libraries the package does
not ship, Serial1): `first` builds the whole set and checks that exactly those fail, the other suites build the
rest. Or the SKETCH_DIR folders given. The set is copied --copies times into the work dir as
`<name>_<i>/<name>_<i>.ino` (copy-major, so the first of them are one copy of every sketch), the first --limit of
them. Repetitions are interleaved, every suite's modes once per repetition (compare, cache, sweep, compare,
cache, sweep, ...), so a slow spell on the machine hits every mode alike; a line is printed as each run finishes.

Writes one TSV row per run: suite, mode, rep, sketches, the job limits it used (a cluster's: the runners' total),
wall and CPU seconds (user + sys of the command and its descendants; summed over the loop's invocations;
tools_cpu and orchestrator_cpu: compile-many's own split of it in results.json, its children's and its own; for
ninja all of it is the tools'), the seconds of ok actions per resource class from tasks.tsv (framework_work,
sketch_work; every compile-many row), start-up seconds (phases.tsv: import, discover, libraries, plan, cluster
start), the orchestrating process's peak RSS, the stage-1 cache outcome, the tools run
(compile/archive/link/eep/hex/size actions), the targets that failed (as expected) and when the first stage-1
action started (tasks.tsv). Then it prints the ratio table, medians over repetitions, and saves it beside the TSV
as .txt with the machine lines. A failed build stops it with a non-zero exit naming the run and its log. Nothing
here asserts on time; it only reports.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import cache
import cluster
import compare
import first
import sweep
from common import (BOARD, EXAMPLE_COUNT, IDE_EXAMPLES, Bench, Run, at_least, example_sketches, fail, file_cost_line,
                    find_tools, given_sketches, ide_examples, ide_sketches, machine_lines, make_sketch_set, probe,
                    write_outputs)

SUITES = {"compare": compare, "cache": cache, "sweep": sweep, "cluster": cluster, "first": first}
DEFAULT_SUITES = "compare,cache,sweep"
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    args = parse_args()
    cores = os.cpu_count() or 1
    suites = [SUITES[name] for name in args.suites]
    tools = find_tools(set().union(*(suite.NEEDS for suite in suites)))
    workdir = Path(args.workdir).resolve()
    jobs = (args.framework_jobs or min(cores, 2), args.sketch_jobs or cores)
    if args.sketch_dirs and args.set:
        fail("give either SKETCH_DIR folders or --set, not both")
    failing: list[Path] = []
    if args.set == "ide":
        examples = ide_examples(Path(args.ide_examples), workdir)
        sources = given_sketches([str(s) for s in [*ide_sketches(examples), *example_sketches()]])
        builds = set(probe(Bench(tools, workdir, [], *jobs), (BOARD,), sources))
        failing = [s for s in sources if s not in builds]
        origin = f"{len(sources)} real sketches: the IDE's examples under {examples} and the core's {EXAMPLE_COUNT}"
    elif args.sketch_dirs:
        sources = given_sketches(args.sketch_dirs)
        origin = f"{len(sources)} sketch folder(s)"
    else:
        sources = example_sketches()
        origin = f"{EXAMPLE_COUNT} core examples"
    whole = make_sketch_set(workdir / "sketches", sources, args.copies, args.limit)
    # A copy X_i of a sketch X fails as X does.
    failed_names = {s.name for s in failing}
    failing_copies = [s for s in whole if s.name.rsplit("_", 1)[0] in failed_names]
    sketches = [s for s in whole if s not in failing_copies]
    bench = Bench(tools, workdir, sketches, *jobs, args.loop_sample, args.sweep_framework_jobs,
                  args.sweep_sketch_jobs, whole=whole if failing_copies else (), failing=failing_copies)
    limited = f", first {len(whole)}" if args.limit else ""
    left_out = (f", {len(failing_copies)} of them fail for the {BOARD} (built by suite first only)"
                if failing_copies else "")
    header = [*machine_lines(tools),
              f"{len(whole)} sketches{left_out} ({args.copies} x {origin}{limited}); suites {', '.join(args.suites)}; "
              f"{args.reps} repetition(s); framework jobs {bench.framework_jobs}, sketch jobs {bench.sketch_jobs}; "
              f"work dir {workdir}", file_cost_line(workdir)]
    print("\n".join(header) + "\n", flush=True)

    runs: list[Run] = []
    for rep in range(1, args.reps + 1):
        for suite in suites:
            runs += suite.run(bench, rep)

    table = io.StringIO()
    for suite in suites:
        print(file=table)
        suite.report(runs, table)
    print(table.getvalue())
    write_outputs(Path(args.tsv), runs, header, table.getvalue())
    return 0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="harness.py", description=__doc__.split("\n\nWrites")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sketch_dirs", nargs="*", metavar="SKETCH_DIR",
                   help="sketch folders (X/ holding X.ino) to build instead of the core's 19 examples")
    p.add_argument("--set", choices=("core", "ide"),
                   help="the core's 19 examples (the default), or the IDE's examples and those 19 (see above)")
    p.add_argument("--ide-examples", metavar="DIR", default=IDE_EXAMPLES,
                   help="with --set ide: the IDE's examples (default %(default)s, fetched into the work dir when "
                        "not installed)")
    p.add_argument("--suites", metavar="LIST", type=suite_list, default=suite_list(DEFAULT_SUITES),
                   help=f"comma-separated, run in this order: {', '.join(SUITES)} (default {DEFAULT_SUITES})")
    p.add_argument("--reps", metavar="N", type=at_least(1), default=3,
                   help="repetitions of every mode; the table shows medians (default 3)")
    p.add_argument("--copies", metavar="N", type=at_least(1), default=1, help="copies of every sketch (default 1)")
    p.add_argument("--limit", metavar="K", type=at_least(1), help="build only the first K sketches of the set")
    p.add_argument("--loop-sample", metavar="K", type=at_least(0), default=0,
                   help="compare's loop builds only the first K sketches; the table scales its time to the set "
                        "(default 0 = all)")
    p.add_argument("--framework-jobs", metavar="F", type=at_least(1), help="stage-1 job limit (default min(cores, 2))")
    p.add_argument("--sketch-jobs", metavar="S", type=at_least(1), help="stage-2 job limit (default cores)")
    p.add_argument("--sweep-framework-jobs", metavar="LIST", type=jobs_list, default=jobs_list("1,2,3"),
                   help="sweep's framework job limits, each with the default sketch jobs (default 1,2,3)")
    p.add_argument("--sweep-sketch-jobs", metavar="LIST", type=jobs_list, default=jobs_list("1,2,4"),
                   help="sweep's sketch job limits, each with the default framework jobs (default 1,2,4)")
    p.add_argument("--tsv", metavar="PATH", default=str(RESULTS / "harness.tsv"),
                   help="the TSV of every run; the table goes beside it as .txt "
                        "(default benchmarks/results/harness.tsv)")
    p.add_argument("--workdir", metavar="DIR", default="/tmp/fbuild-graph-harness",
                   help="sketch copies, caches, build outputs and logs go here; its contents are overwritten "
                        "(default %(default)s)")
    return p.parse_args()


def suite_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SUITES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SUITES)}, got {text!r}")
    return list(dict.fromkeys(names))


def jobs_list(text: str) -> list[int]:
    try:
        return [at_least(1)(part) for part in text.split(",")]
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"a comma-separated list of whole numbers >= 1, got {text!r}") from None


if __name__ == "__main__":
    sys.exit(main())
