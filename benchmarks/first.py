"""Suite `first`: a first build with each cache setting against ninja on the same commands, a second build with
nothing changed, and the fixed start-up (issue 15's table).

It builds the whole set as it is: with `--set ide` (the IDE's examples and the core's 19) that includes the
sketches that do not build for the uno (13 of the 100 on Debian 12, found by harness.py's untimed probe), and
every mode must fail exactly those. Each repetition starts from fresh folders (caches, outputs and
$XDG_CACHE_HOME) and runs, in this order, with the same framework/sketch job limits:

  first            default settings: an empty --cache-dir (which holds ccache's files too, so the compiler
                   cache starts empty; ccache's own state is a private temporary folder of each build) and an
                   empty output folder. The build cache and ccache are on
  nothing-changed  the same command again, on first's output folder and cache: everything is up to date but
                   the failing sketches, which run again, as ninja's do
  no-ccache        `--no-ccache`, an empty --cache-dir and output folder: the build cache on, ccache off
  off              `--cache-mode off --no-ccache`: no cache at all, the same work as ninja's
  ninja            `ninja -k 0` on the build.ninja that `graph --format ninja` exports (the same commands and
                   pools); the export is timed apart (ninja-export)
  ninja-again      ninja once more in the same folder: it runs only what failed (what nothing-changed is
                   compared with)

Every row has wall seconds and CPU seconds (user + sys of the command and all its descendants), split as
compile-many records it in results.json (`cpu_seconds`): the tools' (its children: compilers, linker, ...)
and the orchestrating process's own. For ninja the tools' CPU is all of it.

Targets (issue 15): first at most 1.05x ninja's wall time; off at most 1.02x; nothing-changed under 0.2 s;
the first stage-1 action of first (tasks.tsv) started within 0.3 s of the command, reported with the start-up
phases (phases.tsv: import, discover, libraries, plan, restore) and the cluster start. The tools overlap all
but the first two: the cores compile from the end of discovery on (build.CoreFirst), and the head start runs
steps while the local cluster starts. no-ccache has no target.
"""

from __future__ import annotations

import os
import shutil
from typing import Optional, TextIO

from fbuild_graph.analysis import analysis

from common import Bench, Run, compile_many, done, median, of, write
from compare import ninja_build

SUITE = "first"
NEEDS = {"ninja"}
# mode: (what its wall time is compared with, the ratio's target or None; or None, an absolute target in s)
ROWS: dict[str, tuple[str, Optional[float], Optional[float]]] = {
    "first": ("ninja", 1.05, None),
    "no-ccache": ("ninja", None, None),
    "off": ("ninja", 1.02, None),
    "nothing-changed": ("ninja-again", None, 0.2),
    "ninja": ("ninja", None, None),
    "ninja-again": ("ninja-again", None, None),
}
STARTUP_TARGET = 0.3  # seconds


def run(bench: Bench, rep: int) -> list[Run]:
    root = bench.workdir / SUITE / f"rep{rep}"
    shutil.rmtree(root, ignore_errors=True)
    # A fresh $XDG_CACHE_HOME too, so that nothing of an earlier build (or of ~/.cache) is found.
    env = {**os.environ, "XDG_CACHE_HOME": str(root / "xdg")}
    sketches = bench.whole or bench.sketches

    def build(mode: str, out: str, *extra: str, fresh: bool = True) -> Run:
        return done(compile_many(bench, SUITE, mode, rep, sketches, root / out, *extra, fresh=fresh, env=env,
                                 failing=bench.failing))

    cache = ("--cache-dir", str(root / "cache"))
    return [build("first", "out", *cache),
            build("nothing-changed", "out", *cache, fresh=False),
            build("no-ccache", "out-no-ccache", "--cache-dir", str(root / "cache-no-ccache"), "--no-ccache"),
            build("off", "out-off", "--cache-mode", "off", "--no-ccache"),
            *map(done, ninja_build(bench, rep, SUITE, sketches=sketches, failing=len(bench.failing), again=True))]


def report(runs: list[Run], out: TextIO) -> None:
    def med(mode: str, value=lambda r: r.wall) -> Optional[float]:
        values = [value(r) for r in of(runs, SUITE, mode)]
        return None if any(v is None for v in values) else median(runs, SUITE, mode, value)

    def cell(value: Optional[float], width: int) -> str:
        return f"{'-' if value is None else f'{value:.2f}':>{width}}"

    rows = of(runs, SUITE, "first")
    failed = f", {rows[0].failed} of them fail for the board" if rows[0].failed else ""
    write(out, f"{SUITE} ({rows[0].sketches} sketches{failed}; medians of {len(rows)} repetition(s))",
          f"{'mode':<16}{'wall s':>8}{'cpu s':>8}{'tools cpu s':>13}{'orch. cpu s':>13}{'vs ninja':>10}  target")
    for mode, (against, ratio_target, seconds_target) in ROWS.items():
        wall = med(mode)
        ratio = wall / med(against)
        if ratio_target is not None:
            target = f"<= {ratio_target:.2f}x {'met' if ratio <= ratio_target else 'missed'}"
        elif seconds_target is not None:
            target = f"< {seconds_target:.1f} s {'met' if wall < seconds_target else 'missed'}"
        else:
            target = ""
        write(out, (f"{mode:<16}{cell(wall, 8)}{cell(med(mode, lambda r: r.cpu), 8)}"
                    f"{cell(med(mode, lambda r: r.tools_cpu), 13)}{cell(med(mode, lambda r: r.orchestrator_cpu), 13)}"
                    f"{ratio:>9.2f}x  {target}").rstrip())
    first_tool = med("first", lambda r: r.stage1_start)
    parts = {name: med("first", lambda r, name=name: r.phases.get(name, 0.0)) for name in analysis.STARTUP}
    verdict = "" if first_tool is None else f" (target < {STARTUP_TARGET}: {'met' if first_tool < STARTUP_TARGET else 'missed'})"
    write(out,
          "(nothing-changed is compared with ninja-again, ninja's own second run; orch. cpu: the orchestrating "
          "process's own)",
          f"ninja export (graph --format ninja, not in ninja's time) = {med('ninja-export'):.2f} s",
          f"first stage-1 action (first) started at{cell(first_tool, 5)} s{verdict}; start-up phases: "
          + ", ".join(f"{name.replace('_', ' ')} {seconds:.2f}" for name, seconds in parts.items()
                      if name != "cluster_start")
          + f"; cluster start {parts.get('cluster_start') or 0.0:.2f} s; the tools run from the end of discover on")
