"""--scheduler: the same build on an existing Dask cluster of real scheduler and worker processes (loopback)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PLATFORM, needs_toolchain, read_tsv, run_cli

pytestmark = needs_toolchain


@pytest.fixture
def dask_cluster(tmp_path):
    """A scheduler and two workers, one per resource class, as the README recommends."""
    scheduler_file = tmp_path / "scheduler.json"
    bin_dir = Path(sys.executable).parent
    procs = [subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        yield address, lambda resources, nthreads: procs.append(subprocess.Popen(
            [str(bin_dir / "dask"), "worker", address, "--nthreads", str(nthreads), "--resources", resources,
             "--no-dashboard", "--no-nanny", "--local-directory", str(tmp_path / f"w{len(procs)}")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    finally:
        for p in reversed(procs):  # workers first: a worker whose scheduler vanished retries to reconnect
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _wait_for_workers(address: str, count: int) -> None:
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(count, timeout=60)


def test_compile_many_on_an_existing_cluster_keeps_the_limits(dask_cluster, tmp_path):
    address, start_worker = dask_cluster
    start_worker("framework=1", 1)
    start_worker("sketch=2", 2)
    _wait_for_workers(address, 2)
    out = tmp_path / "out"
    proc = run_cli("compile-many", "--board", "uno", "--scheduler", address, "--json", "-o", str(out),
                   str(PLATFORM / "libraries" / "Wire" / "examples"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # --json: the result map on stdout
    assert {s["status"] for s in report["sketches"]} == {"ok"} and len(report["sketches"]) == 7
    tasks = read_tsv(out / "tasks.tsv")
    workers = {t["resource"]: set() for t in tasks}
    for t in tasks:
        workers[t["resource"]].add(t["worker"])
    assert len(workers["framework"]) == 1 and len(workers["sketch"]) == 1
    assert workers["framework"] != workers["sketch"]


def test_a_cluster_without_the_resources_is_a_clear_error(dask_cluster):
    address, start_worker = dask_cluster
    start_worker("sketch=1", 1)
    _wait_for_workers(address, 1)
    proc = run_cli("compile-many", "--board", "uno", "--scheduler", address,
                   str(PLATFORM / "libraries" / "Wire" / "examples" / "master_reader"))
    assert proc.returncode == 2
    assert "offers the framework resource" in proc.stderr and "Traceback" not in proc.stderr
