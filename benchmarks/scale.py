"""How planning and scheduling scale with the number of targets: no toolchain, a fake command runner.

A matrix of BOARDS boards x S sketches (each board: a core of two TUs and an archive, three libraries; each
sketch: one TU, linked with one library, then hex and size) is planned into steps and run on the real local
Dask cluster and the real tally and collector, with the tests' fake command runner in place of the tools
(tests/test_engine.py: it writes every output and returns at once). Each size runs in a process of its own,
so its peak RSS is its own. What is timed is what fbuild-graph itself does per target: plan, submit,
schedule, collect, write the logs and results; what the tools would take is not in it.

Targets (issue 15): 10,000 targets planned and scheduled in under 5 s and 300 MB; the orchestrator's peak
memory at 1,000 targets at most 1.2x that at 100.

    python benchmarks/scale.py [--sizes 100,1000,10000] [--boards 10]
    TMPDIR=/dev/shm python benchmarks/scale.py      # the same without the disk: what the Python costs
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import file_cost_line

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def measure(targets: int, boards: int, root: Path) -> dict:
    """One size, in this process: seconds to plan, to run, and the peak RSS."""
    sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent)]
    from test_engine import FakeCommandRunner, Quiet, _targets, _world

    from fbuild_graph.execution import runner
    from fbuild_graph.outputs.collect import Collector
    from fbuild_graph.planning import graph, plan

    per_board = max(1, targets // boards)
    libs = {f"L{i}": f"l{i}.cpp" for i in range(3)}
    worlds, actions = [], []
    for b in range(boards):
        folder = root / f"b{b}"
        folder.mkdir()
        layout, found, dag = _world(folder, libs, {f"s{i}": [f"L{i % 3}"] for i in range(per_board)})
        worlds.append((f"b{b}", layout, found))
        actions += [graph.within(action, f"b{b}") for action in graph.actions_of(dag)]
    cpu = _cpu_seconds()
    start = time.perf_counter()
    steps = plan.steps(graph.from_actions(actions), 2, 2)
    planned = time.perf_counter()
    collector = Collector([t for name, layout, found in worlds for t in _targets(found, layout, namespace=name)],
                          steps, Quiet())
    with runner.cluster(2, 2) as client:
        started = time.perf_counter()
        runner.run(client, steps, collector.on_result, None, commands=FakeCommandRunner())
        ran = time.perf_counter()
    assert len(collector.results) == per_board * boards and all(r.status == "ok" for r in collector.results.values())
    return {"targets": per_board * boards, "steps": len(steps), "plan_s": planned - start,
            "run_s": (ran - started) + (started - planned), "total_s": ran - start, "cpu_s": _cpu_seconds() - cpu,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _cpu_seconds() -> float:
    # This process's CPU, every thread's, user and system: steadier than wall time on a shared machine.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(prog="scale.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,1000,10000", help="target counts, comma-separated (default %(default)s)")
    p.add_argument("--boards", type=int, default=10, help="boards of the matrix (default %(default)s)")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a size measured in this process
    args = p.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory(prefix="fbuild-graph-scale-") as root:
            print(json.dumps(measure(args.one, args.boards, Path(root))))
        return 0
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--one", str(size), "--boards", str(args.boards)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.splitlines()[-1]))
    lines = [f"{'targets':>8} {'steps':>7} {'plan s':>7} {'run s':>7} {'total s':>8} {'cpu s':>7} {'peak MB':>8}"]
    lines += [f"{r['targets']:>8} {r['steps']:>7} {r['plan_s']:>7.2f} {r['run_s']:>7.2f} {r['total_s']:>8.2f} "
              f"{r['cpu_s']:>7.2f} {r['peak_mb']:>8.0f}" for r in rows]
    by_size = {r["targets"]: r for r in rows}
    if 100 in by_size and 1000 in by_size:
        lines.append(f"peak memory 1,000 / 100 targets = {by_size[1000]['peak_mb'] / by_size[100]['peak_mb']:.2f}x "
                     "(target <= 1.2)")
    if 10000 in by_size:
        big = by_size[10000]
        lines.append(f"10,000 targets: {big['total_s']:.1f} s (target < 5), {big['peak_mb']:.0f} MB (target < 300)")
    lines.append(file_cost_line(Path(tempfile.gettempdir())) + "; the temporary folders are made under TMPDIR")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.txt").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
