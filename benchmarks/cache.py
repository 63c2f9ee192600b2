"""Measure what the build cache saves on the AVR core's 19 example sketches for the uno.

    python benchmarks/cache.py              # 3 repetitions, about a minute
    python benchmarks/cache.py --reps 1     # quick smoke run, about 20 s

The targets (issue): a warm no-change run at most 0.10x the cold run's wall time, and a cold run on a fresh
runner with a baked bundle at most 0.5x a cold run without one.

Each repetition starts from fresh folders (cache, outputs, and $XDG_CACHE_HOME, where bundles are unpacked)
and runs, in this order, so a slow spell on the machine hits every mode alike:

  cold       `fbuild-graph compile-many` with an empty --cache-dir into an empty output folder
  warm       the same command again: same cache, same output folder, nothing changed. `tools run` counts
             tasks.tsv rows with status ok and kind compile/archive/link/eep/hex/size (should be 0)
  bake       `fbuild-graph cache bake` of the same sketches into a bundle; timed but not compared, as a
             runner receives the bundle ready-made
  bundle     an empty --cache-dir, an empty output folder and `--cache-ro BUNDLE`: a cold run on a fresh
             runner that got the baked bundle (the bundle's unpacking is in its time). Stage 1 should hit
  relocated  the same sketches copied to another folder, an empty output folder and the cold run's cache:
             stage 1 should hit, since the cache keys do not depend on where the sketches are

Prints a table of medians, the ratios against cold and the stage-1 cache outcome (phases.tsv), and writes
one TSV row per run. Any failed build stops the benchmark with a non-zero exit. Nothing here asserts on
time; it only reports.

The sketch set is the one compare.py makes with one copy: `<name>_1/<name>_1.ino`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the sibling benchmark: machine facts, sketch set, timed runs, result checks)

MODES = ("cold", "warm", "bundle", "relocated")  # the table's rows; bake is reported on its own
TOOL_KINDS = ("compile", "archive", "link", "eep", "hex", "size")
TSV_COLUMNS = ("mode", "rep", "wall_seconds", "stage1_cache", "tools_run")


@dataclass
class Run:
    mode: str
    rep: int
    wall: float
    stage1_cache: str = ""
    tools_run: Optional[int] = None


def main() -> int:
    return compare.run_as("cache.py", lambda: benchmark(parse_args()))


def benchmark(args: argparse.Namespace) -> int:
    cores = os.cpu_count() or 1
    # The console script beside this interpreter, so a pyenv or venv shim's start-up is not timed.
    tool = shutil.which("fbuild-graph", path=os.path.dirname(sys.executable)) or shutil.which("fbuild-graph")
    ninja = shutil.which("ninja")  # not used here, but compare.print_machine reports its version
    if not tool or not ninja:
        sys.exit("cache.py: needs `fbuild-graph` (pip install -e .) and `ninja` on PATH")
    tools = compare.Tools(tool, ninja, args.framework_jobs or min(cores, 2), args.sketch_jobs or cores,
                          Path(args.workdir).resolve())
    shutil.rmtree(tools.workdir, ignore_errors=True)
    sketches = compare.make_sketch_set(tools.workdir / "sketches", 1)
    compare.print_machine(tools, cores)
    print(f"{len(sketches)} sketches, {args.reps} repetition(s), framework jobs {tools.framework_jobs}, "
          f"sketch jobs {tools.sketch_jobs}, work dir {tools.workdir}\n", flush=True)

    runs: list[Run] = []
    for rep in range(1, args.reps + 1):
        runs += repetition(tools, sketches, rep)
        print(f"rep {rep}: " + ", ".join(f"{r.mode} {r.wall:.2f} s" for r in runs if r.rep == rep), flush=True)

    print()
    report(runs)
    write_tsv(Path(args.tsv), runs)
    print(f"\nwrote {args.tsv}")
    return 0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--reps", type=compare.at_least(1), default=3,
                   help="repetitions of every mode; the table shows medians (default 3)")
    p.add_argument("--framework-jobs", type=compare.at_least(1), help="stage-1 job limit (default min(cores, 2))")
    p.add_argument("--sketch-jobs", type=compare.at_least(1), help="stage-2 job limit (default cores)")
    p.add_argument("--tsv", default=str(Path(__file__).resolve().parent / "results" / "cache.tsv"),
                   help="TSV of every run (default benchmarks/results/cache.tsv)")
    p.add_argument("--workdir", default="/tmp/fbuild-graph-cache",
                   help="sketches, caches, bundles and build outputs go here; it is overwritten (default %(default)s)")
    return p.parse_args()


def repetition(tools: compare.Tools, sketches: list[Path], rep: int) -> list[Run]:
    root = tools.workdir / f"rep{rep}"
    shutil.rmtree(root, ignore_errors=True)
    # Bundles unpack under $XDG_CACHE_HOME; a fresh one per repetition keeps the bundle run a fresh runner's
    # (a bundle baked from the same inputs may have the same digest as last time) and ~/.cache untouched.
    os.environ["XDG_CACHE_HOME"] = str(root / "xdg")
    cache, bundle = root / "cache", root / "bundle.tar.zst"

    cold = build(tools, "cold", rep, sketches, root / "out", cache)
    warm = build(tools, "warm", rep, sketches, root / "out", cache)
    # bake builds in a temporary cache and output folder of its own, so it takes no --cache-dir.
    bake = compare.timed([tools.fbuild_graph, "cache", "bake", "--board", compare.BOARD, *tools.job_args,
                          "-o", str(bundle), *map(str, sketches)],
                         log=tools.workdir / "logs" / f"bake-{rep}.log")
    if not bundle.is_file():
        sys.exit(f"cache.py: bake rep {rep} exited 0 but wrote no {bundle}; see {tools.workdir / 'logs'}")
    from_bundle = build(tools, "bundle", rep, sketches, root / "out-bundle", root / "cache-bundle",
                        "--cache-ro", str(bundle))
    moved = compare.make_sketch_set(root / "relocated", 1)
    relocated = build(tools, "relocated", rep, moved, root / "out-relocated", cache)
    return [cold, warm, Run("bake", rep, bake), from_bundle, relocated]


def build(tools: compare.Tools, mode: str, rep: int, sketches: list[Path], out: Path, cache: Path, *extra: str) -> Run:
    """One compile-many; exits if it or any sketch fails."""
    wall = compare.timed([tools.fbuild_graph, "compile-many", "--board", compare.BOARD, *tools.job_args,
                          "--cache-dir", str(cache), *extra, "-o", str(out), *map(str, sketches)],
                         log=tools.workdir / "logs" / f"{mode}-{rep}.log")
    compare.read_outputs(out, mode, rep, len(sketches), wall)  # exits unless results.json says every sketch is ok
    phases = read_tsv(out / "phases.tsv")
    stage1 = [row["cache"] for row in phases if row["phase"] == "stage1_archives"]
    tools_run = sum(row["status"] == "ok" and row["kind"] in TOOL_KINDS for row in read_tsv(out / "tasks.tsv"))
    return Run(mode, rep, wall, stage1[0] if stage1 else "", tools_run)


def read_tsv(path: Path) -> list[dict[str, str]]:
    header, *rows = [line.split("\t") for line in path.read_text().splitlines()]
    return [dict(zip(header, row)) for row in rows]


def report(runs: list[Run]) -> None:
    def of(mode: str) -> list[Run]:
        return [r for r in runs if r.mode == mode]

    def per_rep(mode: str, value) -> str:
        """One value if every repetition agrees, else each repetition's in order."""
        values = [str(value(r)) for r in of(mode)]
        return values[0] if len(set(values)) == 1 else ", ".join(values)

    walls = {mode: statistics.median(r.wall for r in of(mode)) for mode in MODES}
    print(f"{'mode':<11}{'median s':>10}{'vs cold':>9}  {'stage-1 cache':<15}tools run")
    for mode in MODES:
        print(f"{mode:<11}{walls[mode]:>10.2f}{walls[mode] / walls['cold']:>8.2f}x  "
              f"{per_rep(mode, lambda r: r.stage1_cache):<15}{per_rep(mode, lambda r: r.tools_run)}")
    print(f"bake (not compared: a runner gets the bundle ready-made) = "
          f"{statistics.median(r.wall for r in of('bake')):.2f} s\n")

    print(f"warm / cold = {walls['warm'] / walls['cold']:.2f}x (target <= 0.10)")
    print(f"bundle / cold = {walls['bundle'] / walls['cold']:.2f}x (target <= 0.5)")
    print(f"warm tools run: {per_rep('warm', lambda r: r.tools_run)}")
    print(f"bundle stage-1 cache: {per_rep('bundle', lambda r: r.stage1_cache)}")
    print(f"relocated stage-1 cache: {per_rep('relocated', lambda r: r.stage1_cache)}")


def write_tsv(path: Path, runs: list[Run]) -> None:
    def cell(value) -> str:
        return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [TSV_COLUMNS, *((r.mode, r.rep, r.wall, r.stage1_cache, r.tools_run) for r in runs)]
    path.write_text("".join("\t".join(cell(v) for v in row) + "\n" for row in rows))


if __name__ == "__main__":
    sys.exit(main())
