"""Suite `cluster`: the cost of distribution, the same cold build (no cache, which also turns ccache off; a freshly
deleted output folder) on one local cluster and on a Dask cluster of two runners on this machine.

  local    `fbuild-graph compile-many --framework-jobs 2 --sketch-jobs 2`: the in-process local cluster
  cluster  `fbuild-graph compile-many --scheduler ADDRESS` on a cluster of this machine: one `dask scheduler`
           and two runners `fbuild-graph worker ADDRESS --framework-jobs 1 --sketch-jobs 1`, each with a
           fresh --local-directory of its own. The workers share no files with the client's output:
           fbuild-graph ships the sources and the results through Dask. The cluster is started afresh for
           every repetition (so nothing is up to date on a worker) and stopped after it, however the
           repetition ends; its start-up, up to the scheduler seeing all 4 workers, is not in the time.
           Its row's job limits are the runners' totals, and its CPU time is the client's plus what every
           cluster process used during the build (the runners are not the client's descendants)

Target (issue): with two workers on this machine, each given one core's worth of slots, wall time within 1.10x
of one LocalCluster worker with two slots. Also reported: the tasks each worker ran in every cluster run
(tasks.tsv, column `worker`), so the balance between the runners shows.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TextIO

from common import COLD, Bench, Run, compile_many, done, fail, heading, median, of, write

SUITE = "cluster"
NEEDS = {"dask"}
RUNNERS = 2  # `fbuild-graph worker` processes
RUNNER_JOBS = 1  # framework and sketch slots per runner (one core's worth); local gets RUNNERS x this of each
JOBS = (RUNNERS * RUNNER_JOBS, RUNNERS * RUNNER_JOBS)
START_TIMEOUT = 60.0  # seconds for the scheduler file to appear and for all workers to join
STOP_TIMEOUT = 15.0  # seconds a cluster process gets after SIGTERM before SIGKILL

Processes = list[tuple[subprocess.Popen, Path]]  # each with its log


def run(bench: Bench, rep: int) -> list[Run]:
    local = done(compile_many(bench, SUITE, "local", rep, bench.sketches, bench.workdir / SUITE / "out-local", *COLD,
                              jobs=JOBS))
    return [local, done(on_cluster(bench, rep))]


def on_cluster(bench: Bench, rep: int) -> Run:
    """One compile-many on a freshly started cluster, which is stopped afterwards whatever happens."""
    root = bench.workdir / SUITE / f"rep{rep}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    scheduler_file = root / "scheduler.json"
    processes: Processes = []  # runners first, then the scheduler: the order to stop them in
    try:
        log = bench.log(SUITE, "scheduler", rep)
        log.parent.mkdir(parents=True, exist_ok=True)
        scheduler = start([bench.tools.dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                           "--scheduler-file", str(scheduler_file)], log)
        processes.append((scheduler, log))
        address = read_address(scheduler_file, scheduler, log)
        for i in range(1, RUNNERS + 1):
            log = bench.log(SUITE, f"runner{i}", rep)
            runner = start([bench.tools.fbuild_graph, "worker", address, "--framework-jobs", str(RUNNER_JOBS),
                            "--sketch-jobs", str(RUNNER_JOBS), "--local-directory", str(root / f"runner{i}")], log)
            processes.insert(0, (runner, log))
        wait_for_workers(address, 2 * RUNNERS, processes)

        sessions = {process.pid for process, _ in processes}
        before = session_cpu(sessions)
        build = compile_many(bench, SUITE, "cluster", rep, bench.sketches, root / "out", *COLD, jobs=JOBS,
                             scheduler=address)
        build.cpu += session_cpu(sessions) - before
        return build
    finally:
        stop(processes)


def start(argv: list[str], log: Path) -> subprocess.Popen:
    """A cluster process in a session of its own, so stop() can reach the worker processes its nannies spawn."""
    with open(log, "w") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def read_address(scheduler_file: Path, scheduler: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if scheduler.poll() is not None:
            fail(f"`dask scheduler` exited {scheduler.returncode}; see {log}")
        try:
            return json.loads(scheduler_file.read_text())["address"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):  # not there yet, or half written
            time.sleep(0.1)
    fail(f"`dask scheduler` wrote no address to {scheduler_file} in {START_TIMEOUT:.0f} s; see {log}")


def wait_for_workers(address: str, count: int, processes: Processes) -> None:
    from distributed import Client  # only this suite needs it, and it is slow to import

    with Client(address, timeout=f"{START_TIMEOUT:.0f}s") as client:
        try:
            client.wait_for_workers(count, timeout=START_TIMEOUT)
        except TimeoutError:
            joined = len(client.scheduler_info()["workers"])
            dead = [f"{log} (exited {p.returncode})" for p, log in processes if p.poll() is not None]
            fail(f"{joined} of {count} workers joined {address} in {START_TIMEOUT:.0f} s; "
                 f"see {', '.join(dead) or 'the logs in ' + str(processes[0][1].parent)}")


def session_cpu(sessions: set[int]) -> float:
    """CPU seconds so far of every process in these sessions, with those of the children they have reaped
    (Linux /proc). A child reaped between two readings moves from its own count to its parent's, so the
    difference of two readings is what the sessions used in between."""
    ticks = 0
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            stat = Path(path).read_text()
        except OSError:  # gone meanwhile
            continue
        # From after the command name in parentheses (which may hold spaces), so fields[0] is proc(5)'s field 3.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) in sessions:  # field 6, the session
            ticks += sum(int(x) for x in fields[11:15])  # fields 14 to 17: utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def stop(processes: Processes) -> None:
    """In the given order: SIGTERM the process we started and wait for it (a runner's workers exit with it),
    then SIGKILL whatever is left in its session, the process itself too if it outlived the timeout."""
    for process, _ in processes:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the session's id is the id of the process we started
        except ProcessLookupError:  # nothing left in it
            pass
        process.wait()


def report(runs: list[Run], out: TextIO) -> None:
    walls = {mode: median(runs, SUITE, mode) for mode in ("local", "cluster")}
    write(out, heading(runs, SUITE, "local", ", cold"), f"{'mode':<9}{'wall s':>9}{'cpu s':>9}{'vs local':>10}")
    for mode, wall in walls.items():
        write(out, f"{mode:<9}{wall:>9.2f}{median(runs, SUITE, mode, lambda r: r.cpu):>9.2f}"
                   f"{wall / walls['local']:>9.2f}x")
    write(out, f"cluster / local = {walls['cluster'] / walls['local']:.2f}x (target <= 1.10)",
          "tasks per worker (cluster, tasks.tsv):",
          *(f"  rep {r.rep}: " + ", ".join(f"{worker} {n}" for worker, n in r.tasks_per_worker.items())
            for r in of(runs, SUITE, "cluster")))
