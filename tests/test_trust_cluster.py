"""Cluster faults give true results: real schedulers and workers on loopback, each fault injected mid-build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PLATFORM, needs_toolchain, read_tsv
from test_scheduler import BIN, _copies, _wait_for_workers, scheduler  # noqa: F401  (scheduler: a fixture)

pytestmark = needs_toolchain

BROKEN_TOOLS = ("/usr/bin/avr-gcc", "/usr/bin/avr-g++")


def _build(address: str, out: Path, sketches: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fbuild_graph", "compile-many", "--board", "uno", "--scheduler",
                             address, "--cache-mode", "off", "-o", str(out), str(sketches)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})


def _dask_worker(address: str, resources: str, folder: Path) -> list[str]:
    return [str(BIN / "dask"), "worker", address, "--nthreads", "2", "--resources", resources, "--no-dashboard",
            "--no-nanny", "--local-directory", str(folder)]


def _broken(argv: list[str], tmp_path: Path) -> list[str]:
    """argv run where the compilers exist but exit 1 (a private mount namespace: no root needed)."""
    fake = tmp_path / "broken-compiler"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    mounts = " && ".join(f"mount --bind {fake} {tool}" for tool in BROKEN_TOOLS)
    return ["unshare", "-rm", "sh", "-c", f'{mounts} && exec "$@"', "sh", *argv]


needs_namespaces = pytest.mark.skipif(subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0,
                                      reason="needs unprivileged user namespaces (unshare -rm)")


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


def test_the_only_framework_worker_dying_for_good_ends_the_build_with_one_line(scheduler, tmp_path):
    address, procs = scheduler
    framework = subprocess.Popen(_dask_worker(address, "framework=1", tmp_path / "wf"),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs += [framework, subprocess.Popen(_dask_worker(address, "sketch=2", tmp_path / "ws"),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    _wait_for_workers(address, 2)
    out = tmp_path / "out"
    build = _build(address, out, _copies(tmp_path, 1), FBUILD_GRAPH_NO_WORKER_TIMEOUT="3")
    build.stdout.readline()  # the first unit is done: the others (the core's objects, its archive) remain
    framework.send_signal(signal.SIGKILL)
    error, _ = _one_error(build, "its only framework worker died")
    assert "no worker offers the framework resource" in error and "fbuild-graph worker" in error
    report = json.loads((out / "results.json").read_text())
    assert report["exit_code"] == 2
    assert {s["status"] for s in report["sketches"]} <= {"ok", "not built"}
    assert "not built" in {s["status"] for s in report["sketches"]}


def _one_error(build: subprocess.Popen, event: str) -> tuple[str, str]:
    """The build ends within bounded time after `event`, exit 2, with exactly one error line and no
    traceback: that line and the whole stderr."""
    try:
        _, stderr = build.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        build.kill()
        pytest.fail(f"the build hung after {event}")
    assert build.returncode == 2, stderr
    assert "Traceback" not in stderr, stderr
    errors = _errors(stderr)
    assert len(errors) == 1, stderr
    return errors[0], stderr


@pytest.fixture
def runner(scheduler, tmp_path):
    address, procs = scheduler
    proc = subprocess.Popen([sys.executable, "-m", "fbuild_graph", "worker", address, "--framework-jobs", "1",
                             "--sketch-jobs", "1", "--local-directory", str(tmp_path / "runner")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(proc)
    _wait_for_workers(address, 2)
    return address, procs


def test_a_lost_scheduler_keeps_what_finished_and_reports_the_rest_not_built(runner, tmp_path):
    address, procs = runner
    out = tmp_path / "out"
    build = _build(address, out, _copies(tmp_path, 2))
    finished = 0
    for line in build.stdout:
        finished += line.startswith("[stage2]")
        if finished == 3:
            break
    procs[0].send_signal(signal.SIGKILL)  # the scheduler
    error, stderr = _one_error(build, "its scheduler died")
    assert "FutureCancelledError" not in stderr, stderr
    assert f"lost the scheduler at {address}" in error
    report = json.loads((out / "results.json").read_text())
    statuses = [s["status"] for s in report["sketches"]]
    assert set(statuses) == {"ok", "not built"} and statuses.count("ok") >= 3, statuses
    for sketch in report["sketches"]:
        hex_file = out / "sketches" / sketch["id"] / "firmware.hex"
        assert hex_file.is_file() == (sketch["status"] == "ok"), sketch


@needs_namespaces
def test_a_runner_whose_compiler_does_not_work_refuses_to_join(scheduler, tmp_path):
    address, _ = scheduler
    argv = [sys.executable, "-m", "fbuild_graph", "worker", address, "--local-directory", str(tmp_path / "r")]
    proc = subprocess.run(_broken(argv, tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "/usr/bin/avr-gcc cannot compile" in proc.stderr and "did not join" in proc.stderr


@needs_namespaces
def test_a_broken_worker_beside_a_healthy_one_does_not_fail_sketches(scheduler, tmp_path):
    address, procs = scheduler
    resources = "framework=1,sketch=1"
    broken = subprocess.Popen(_broken(_dask_worker(address, resources, tmp_path / "bad"), tmp_path),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs += [broken, subprocess.Popen(_dask_worker(address, resources, tmp_path / "good"),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    _wait_for_workers(address, 2)
    out = tmp_path / "out"
    build = _build(address, out, PLATFORM / "libraries" / "Wire" / "examples")
    _, stderr = build.communicate(timeout=300)
    assert (out / "results.json").exists(), stderr
    report = json.loads((out / "results.json").read_text())
    assert build.returncode == 0, [s["error"] for s in report["sketches"] if s["error"]]
    assert [s["status"] for s in report["sketches"]] == ["ok"] * 7
    assert len({t["worker"] for t in read_tsv(out / "tasks.tsv")}) == 1  # the healthy one ran everything
    assert broken.wait(timeout=60) is not None  # the broken one left the cluster


def test_a_runner_listens_only_on_the_host_it_is_given(scheduler, tmp_path):
    import psutil

    address, procs = scheduler
    proc = subprocess.Popen([sys.executable, "-m", "fbuild_graph", "worker", address, "--host", "127.0.0.1",
                             "--framework-jobs", "1", "--sketch-jobs", "1", "--local-directory", str(tmp_path / "r")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    procs.append(proc)
    time.sleep(1)
    assert proc.poll() is None, proc.stderr.read()
    _wait_for_workers(address, 2)
    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    listening = [c.laddr for p in tree for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert len(listening) >= 4, listening  # two nannies, two workers
    assert {a.ip for a in listening} == {"127.0.0.1"}, listening
