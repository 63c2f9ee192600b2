"""Measure the cost of distribution: the same build on one local cluster and on a Dask cluster of two runners.

    python benchmarks/cluster.py                        # 19 examples x 3 copies = 57 sketches, 3 repetitions
    python benchmarks/cluster.py --copies 1 --reps 1    # quick smoke run, about 30 s

The target (issue): with two workers on this machine, each given one core's worth of slots, wall time within
1.10x of one LocalCluster worker with two slots.

Modes, interleaved per repetition (local, cluster, local, cluster, ...) so a slow spell on the machine hits
both alike, each from a freshly deleted output folder and with no cache (--cache-mode off, which also turns
ccache off), so every run is a cold build:

  local    `fbuild-graph compile-many --framework-jobs 2 --sketch-jobs 2`: the in-process local cluster
  cluster  `fbuild-graph compile-many --scheduler ADDRESS` on a cluster of this machine: one `dask scheduler`
           and two runners `fbuild-graph worker ADDRESS --framework-jobs 1 --sketch-jobs 1`, each with a
           fresh --local-directory of its own. The workers share no files with the client's output:
           fbuild-graph ships the sources and the results through Dask. The cluster is started afresh for
           every repetition (so nothing is up to date on a worker) and stopped after it; its start-up, up
           to the scheduler seeing all 4 workers, is not in the time

Prints a table of medians, the ratio, and the tasks each worker ran in every cluster run (tasks.tsv,
column `worker`), so the balance between the runners shows; writes one TSV row per run. Any failed build
stops the benchmark with a non-zero exit; the cluster's processes are stopped however it ends. Nothing
here asserts on time; it only reports.

The sketch set is the one compare.py makes: the 19 examples of the AVR core's libraries, copied N times.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the sibling benchmark: machine facts, sketch set, timed runs, result checks)

MODES = ("local", "cluster")
RUNNERS = 2  # `fbuild-graph worker` processes, each one framework and one sketch slot (one core's worth)
RUNNER_JOBS = 1  # framework and sketch slots per runner; local gets RUNNERS x this of each
TSV_COLUMNS = ("mode", "rep", "wall_seconds")
START_TIMEOUT = 60.0  # seconds for the scheduler file to appear and for all workers to join
STOP_TIMEOUT = 15.0  # seconds a cluster process gets after SIGTERM before SIGKILL


@dataclass
class Run:
    mode: str
    rep: int
    wall: float
    tasks_per_worker: dict[str, int] = field(default_factory=dict)  # cluster only: tasks.tsv rows per worker


def main() -> int:
    return compare.run_as("cluster.py", lambda: benchmark(parse_args()))


def benchmark(args: argparse.Namespace) -> int:
    cores = os.cpu_count() or 1
    # The console scripts beside this interpreter, so a pyenv or venv shim's start-up is not timed.
    here = os.path.dirname(sys.executable)
    tool = shutil.which("fbuild-graph", path=here) or shutil.which("fbuild-graph")
    dask = shutil.which("dask", path=here) or shutil.which("dask")
    ninja = shutil.which("ninja")  # not used here, but compare.print_machine reports its version
    if not tool or not dask or not ninja:
        sys.exit("cluster.py: needs `fbuild-graph` (pip install -e .), `dask` (distributed) and `ninja` on PATH")
    jobs = RUNNERS * RUNNER_JOBS
    tools = compare.Tools(tool, ninja, jobs, jobs, Path(args.workdir).resolve())
    shutil.rmtree(tools.workdir, ignore_errors=True)
    sketches = compare.make_sketch_set(tools.workdir / "sketches", args.copies)
    compare.print_machine(tools, cores)
    print(f"{len(sketches)} sketches ({args.copies} x 19), {args.reps} repetition(s); local: framework jobs "
          f"{jobs}, sketch jobs {jobs}; cluster: {RUNNERS} runners x {RUNNER_JOBS} framework + {RUNNER_JOBS} "
          f"sketch slot(s), {dask}; work dir {tools.workdir}\n", flush=True)

    runs: list[Run] = []
    for rep in range(1, args.reps + 1):
        local = compare.compile_many(tools, sketches, "local", rep)  # exits unless every sketch is ok
        runs.append(Run("local", rep, local.wall))
        runs.append(on_cluster(tools, dask, sketches, rep))
        print(f"rep {rep}: " + ", ".join(f"{r.mode} {r.wall:.2f} s" for r in runs if r.rep == rep), flush=True)

    print()
    report(runs, len(sketches))
    write_tsv(Path(args.tsv), runs)
    print(f"\nwrote {args.tsv}")
    return 0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--copies", type=compare.at_least(1), default=3,
                   help="copies of the 19 example sketches (default 3 = 57)")
    p.add_argument("--reps", type=compare.at_least(1), default=3,
                   help="repetitions of each mode; the table shows medians (default 3)")
    p.add_argument("--tsv", default=str(Path(__file__).resolve().parent / "results" / "cluster.tsv"),
                   help="TSV of every run (default benchmarks/results/cluster.tsv)")
    p.add_argument("--workdir", default="/tmp/fbuild-graph-cluster",
                   help="sketches, worker folders, build outputs and logs go here; it is overwritten "
                        "(default %(default)s)")
    return p.parse_args()


def on_cluster(tools: compare.Tools, dask: str, sketches: list[Path], rep: int) -> Run:
    """One compile-many on a freshly started cluster, which is stopped afterwards whatever happens."""
    root = tools.workdir / "cluster" / f"rep{rep}"
    logs = tools.workdir / "logs"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    logs.mkdir(parents=True, exist_ok=True)
    out = tools.workdir / "out" / "cluster"
    shutil.rmtree(out, ignore_errors=True)
    scheduler_file = root / "scheduler.json"
    processes: list[tuple[subprocess.Popen, Path]] = []  # runners first, then the scheduler: the order to stop
    try:
        scheduler_log = logs / f"cluster-{rep}-scheduler.log"
        scheduler = start([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                           "--scheduler-file", str(scheduler_file)], scheduler_log)
        processes.append((scheduler, scheduler_log))
        address = read_address(scheduler_file, scheduler, scheduler_log)
        for i in range(1, RUNNERS + 1):
            log = logs / f"cluster-{rep}-runner{i}.log"
            runner = start([tools.fbuild_graph, "worker", address, "--framework-jobs", str(RUNNER_JOBS),
                            "--sketch-jobs", str(RUNNER_JOBS), "--local-directory", str(root / f"runner{i}")], log)
            processes.insert(0, (runner, log))
        wait_for_workers(address, 2 * RUNNERS, processes)

        wall = compare.timed([tools.fbuild_graph, "compile-many", "--board", compare.BOARD, "--scheduler", address,
                              "--cache-mode", "off", "-o", str(out), *map(str, sketches)],
                             log=logs / f"cluster-{rep}.log")
    finally:
        stop(processes)
    compare.read_outputs(out, "cluster", rep, len(sketches), wall)  # exits unless every sketch is ok
    per_worker = collections.Counter(row["worker"] or "(none)" for row in read_tsv(out / "tasks.tsv"))
    return Run("cluster", rep, wall, dict(sorted(per_worker.items())))


def start(argv: list[str], log: Path) -> subprocess.Popen:
    """A cluster process in a session of its own, so stop() can reach the worker processes its nannies spawn."""
    with open(log, "w") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def read_address(scheduler_file: Path, scheduler: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if scheduler.poll() is not None:
            sys.exit(f"cluster.py: `dask scheduler` exited {scheduler.returncode}; see {log}:\n{compare.tail(log)}")
        try:
            return json.loads(scheduler_file.read_text())["address"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):  # not there yet, or half written
            time.sleep(0.1)
    sys.exit(f"cluster.py: `dask scheduler` wrote no address to {scheduler_file} in {START_TIMEOUT:.0f} s; see {log}")


def wait_for_workers(address: str, count: int, processes: list[tuple[subprocess.Popen, Path]]) -> None:
    from distributed import Client

    with Client(address, timeout=f"{START_TIMEOUT:.0f}s") as client:
        try:
            client.wait_for_workers(count, timeout=START_TIMEOUT)
        except TimeoutError:
            joined = len(client.scheduler_info()["workers"])
            dead = [f"{log} (exited {p.returncode}):\n{compare.tail(log)}" for p, log in processes
                    if p.poll() is not None]
            sys.exit(f"cluster.py: {joined} of {count} workers joined {address} in {START_TIMEOUT:.0f} s"
                     + "".join(f"; see {d}" for d in dead))


def stop(processes: list[tuple[subprocess.Popen, Path]]) -> None:
    """In the given order: SIGTERM the process we started and wait for it (a runner's workers exit with it),
    then SIGKILL whatever is left in its session, the process itself too if it outlived the timeout."""
    for process, _ in processes:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        signal_group(process, signal.SIGKILL)
        process.wait()


def signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)  # the session's id is the id of the process we started
    except ProcessLookupError:  # nothing left in it
        pass


def read_tsv(path: Path) -> list[dict[str, str]]:
    header, *rows = [line.split("\t") for line in path.read_text().splitlines()]
    return [dict(zip(header, row)) for row in rows]


def report(runs: list[Run], total: int) -> None:
    walls = {mode: statistics.median(r.wall for r in runs if r.mode == mode) for mode in MODES}
    print(f"{'mode':<9}{'sketches':>9}{'median s':>11}{'vs local':>10}")
    for mode in MODES:
        print(f"{mode:<9}{total:>9}{walls[mode]:>11.2f}{walls[mode] / walls['local']:>9.2f}x")
    print(f"\ncluster / local = {walls['cluster'] / walls['local']:.2f}x (target <= 1.10)")
    print("tasks per worker (cluster, tasks.tsv):")
    for run in (r for r in runs if r.mode == "cluster"):
        counts = ", ".join(f"{worker} {n}" for worker, n in run.tasks_per_worker.items())
        print(f"  rep {run.rep}: {counts}")


def write_tsv(path: Path, runs: list[Run]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [TSV_COLUMNS, *((r.mode, str(r.rep), f"{r.wall:.4f}") for r in runs)]
    path.write_text("".join("\t".join(row) + "\n" for row in rows))


if __name__ == "__main__":
    sys.exit(main())
