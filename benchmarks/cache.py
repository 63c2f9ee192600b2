"""Suite `cache`: what the build cache saves.

Each repetition starts from fresh folders (cache, outputs, and $XDG_CACHE_HOME, where bundles are unpacked)
and runs, in this order:

  cold       `fbuild-graph compile-many` with an empty --cache-dir into an empty output folder
  warm       the same command again: same cache, same output folder, nothing changed. `tools run` counts
             tasks.tsv rows with status ok and kind compile/archive/link/eep/hex/size (should be 0)
  bake       `fbuild-graph cache bake` of the same sketches into a bundle; timed but not compared, as a
             runner receives the bundle ready-made
  bundle     an empty --cache-dir, an empty output folder and `--cache-ro BUNDLE`: a cold run on a fresh
             runner that got the baked bundle (the bundle's unpacking is in its time). Stage 1 should hit
  relocated  the same sketches copied to another folder, an empty output folder and the cold run's cache:
             stage 1 should hit, since the cache keys do not depend on where the sketches are

Targets (issue): a warm no-change run at most 0.10x the cold run's wall time, and a cold run on a fresh runner
with a baked bundle at most 0.5x a cold run without one. Also reported: the stage-1 cache outcome
(phases.tsv) of every mode.
"""

from __future__ import annotations

import os
import shutil
from typing import TextIO

from common import BOARD, Bench, Run, compile_many, done, fail, heading, job_args, median, per_rep, timed, write

SUITE = "cache"
NEEDS: set[str] = set()
MODES = ("cold", "warm", "bundle", "relocated")  # the table's rows; bake is reported on its own


def run(bench: Bench, rep: int) -> list[Run]:
    root = bench.workdir / SUITE / f"rep{rep}"
    shutil.rmtree(root, ignore_errors=True)
    # Bundles unpack under $XDG_CACHE_HOME; a fresh one per repetition keeps the bundle run a fresh runner's
    # (a bundle baked from the same inputs may have the same digest as last time) and ~/.cache untouched.
    env = {**os.environ, "XDG_CACHE_HOME": str(root / "xdg")}
    cache, bundle = root / "cache", root / "bundle.tar.zst"

    def build(mode: str, sketches, out: str, cache_dir, *extra: str, fresh: bool = True) -> Run:
        return done(compile_many(bench, SUITE, mode, rep, sketches, root / out, "--cache-dir", str(cache_dir), *extra,
                                 fresh=fresh, env=env))

    runs = [build("cold", bench.sketches, "out", cache), build("warm", bench.sketches, "out", cache, fresh=False)]
    # bake builds in a temporary cache and output folder of its own, so it takes no --cache-dir.
    baked = timed([bench.tools.fbuild_graph, "cache", "bake", "--board", BOARD, *job_args(*bench.jobs),
                   "-o", str(bundle), *map(str, bench.sketches)], bench.log(SUITE, "bake", rep),
                  f"{SUITE} bake rep {rep}", env=env)
    if not bundle.is_file():
        fail(f"{SUITE} bake rep {rep}: exited 0 but wrote no {bundle}; see {bench.log(SUITE, 'bake', rep)}")
    runs.append(done(Run(SUITE, "bake", rep, len(bench.sketches), *bench.jobs, *baked)))
    runs.append(build("bundle", bench.sketches, "out-bundle", root / "cache-bundle", "--cache-ro", str(bundle)))
    moved = [shutil.copytree(sketch, root / "relocated" / sketch.name) for sketch in bench.sketches]
    runs.append(build("relocated", moved, "out-relocated", cache))
    return runs


def report(runs: list[Run], out: TextIO) -> None:
    walls = {mode: median(runs, SUITE, mode) for mode in MODES}
    write(out, heading(runs, SUITE, "cold"),
          f"{'mode':<11}{'wall s':>9}{'cpu s':>9}{'vs cold':>9}  {'stage-1 cache':<15}tools run")
    for mode in MODES:
        write(out, f"{mode:<11}{walls[mode]:>9.2f}{median(runs, SUITE, mode, lambda r: r.cpu):>9.2f}"
                   f"{walls[mode] / walls['cold']:>8.2f}x  {per_rep(runs, SUITE, mode, lambda r: r.stage1_cache):<15}"
                   f"{per_rep(runs, SUITE, mode, lambda r: r.tools_run)}")
    write(out,
          f"bake (not compared: a runner gets the bundle ready-made) = {median(runs, SUITE, 'bake'):.2f} s",
          f"warm / cold = {walls['warm'] / walls['cold']:.2f}x (target <= 0.10)",
          f"bundle / cold = {walls['bundle'] / walls['cold']:.2f}x (target <= 0.5)",
          f"relocated / cold = {walls['relocated'] / walls['cold']:.2f}x",
          f"warm tools run: {per_rep(runs, SUITE, 'warm', lambda r: r.tools_run)}",
          f"stage-1 cache: bundle {per_rep(runs, SUITE, 'bundle', lambda r: r.stage1_cache)}, "
          f"relocated {per_rep(runs, SUITE, 'relocated', lambda r: r.stage1_cache)}")
