"""--scheduler: the same build on an existing Dask cluster of real scheduler and worker processes (loopback)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PLATFORM, needs_toolchain, read_tsv, run_cli, signed

pytestmark = needs_toolchain


BIN = Path(sys.executable).parent


@pytest.fixture
def scheduler(tmp_path):
    """A real scheduler on loopback; yields (address, procs): processes appended to procs are stopped
    first, then the scheduler."""
    with _scheduler(tmp_path, [str(BIN / "dask"), "scheduler"]) as started:
        yield started


@contextlib.contextmanager
def _scheduler(tmp_path, command: list[str]):
    scheduler_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([*command, "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(scheduler_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.1)
        yield json.loads(scheduler_file.read_text())["address"], procs
    finally:
        for p in reversed(procs):  # workers first: a worker whose scheduler vanished retries to reconnect
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def dask_cluster(scheduler, tmp_path):
    """Plain `dask worker`s, one per resource class, as the README describes."""
    address, procs = scheduler
    yield address, lambda resources, nthreads: procs.append(subprocess.Popen(
        [str(BIN / "dask"), "worker", address, "--nthreads", str(nthreads), "--resources", resources,
         "--no-dashboard", "--no-nanny", "--local-directory", str(tmp_path / f"w{len(procs)}")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def _wait_for_workers(address: str, count: int) -> None:
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(count, timeout=60)


def _on_workers(address: str, function) -> dict:
    """`function` run on every worker, by value: the workers cannot import this module."""
    import cloudpickle
    from distributed import Client

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with Client(address, timeout="30s") as client:
            return client.run(function)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _worker_state() -> tuple[bool, bool, str]:
    import dask

    return ("fbuild_graph.execution.execute" in sys.modules, "networkx" in sys.modules,
            dask.config.get("distributed.worker.memory.monitor-interval"))


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
    # The client connected once the board was known, before libraries were detected, to send the core's
    # steps ahead (build.CoreFirst; when they start is the workers' affair), and each ran once.
    phases = {row["phase"]: row for row in read_tsv(out / "phases.tsv")}
    core = [t for t in tasks if t["key"].startswith("core/")]
    assert float(phases["cluster_start"]["stop"]) <= float(phases["libraries"]["start"])
    assert {t["status"] for t in core} == {"ok"} and len(core) == len({t["key"] for t in core})


def test_bad_input_found_while_the_core_compiles_on_the_cluster_stops_the_build(dask_cluster, tmp_path, monkeypatch):
    import attrs

    from fbuild_graph import build
    from fbuild_graph.errors import FbuildError
    from fbuild_graph.execution import runner
    from test_compile_many import _uses_libs

    address, start_worker = dask_cluster
    start_worker("framework=1", 1)
    start_worker("sketch=1", 1)
    _wait_for_workers(address, 2)
    sent = []

    def send(*args, **kwargs):
        sent.append(real_send(*args, **kwargs))
        return sent[-1]

    def failing_detection(*args, **kwargs):
        raise FbuildError("cannot run the preprocessor for uses_libs.ino: gone")

    real_send, real_detection = runner.submit_ahead, build.detect_libraries
    monkeypatch.setattr(runner, "submit_ahead", send)
    monkeypatch.setattr(build, "detect_libraries", failing_detection)
    config = attrs.evolve(_uses_libs(tmp_path), scheduler=address)
    with pytest.raises(FbuildError, match="cannot run the preprocessor"):
        build.compile_many(config, lambda line: None)
    assert sent and all(key.startswith("core:") for key in sent[0].futures)  # the core's steps had gone ahead
    # The client is gone with its tasks, the output folder's lock is free, and the next build is whole.
    assert {future.status for future in sent[0].futures.values()} == {"cancelled"}
    monkeypatch.setattr(build, "detect_libraries", real_detection)
    code, report = build.compile_many(config, lambda line: None)
    assert code == 0 and [s.status for s in report.sketches] == ["ok"]
    assert (Path(config.out) / "sketches" / "uses_libs" / "firmware.hex").is_file()


def test_a_cluster_without_the_resources_is_a_clear_error(dask_cluster):
    address, start_worker = dask_cluster
    start_worker("sketch=1", 1)
    _wait_for_workers(address, 1)
    proc = run_cli("compile-many", "--board", "uno", "--scheduler", address,
                   str(PLATFORM / "libraries" / "Wire" / "examples" / "master_reader"))
    assert proc.returncode == 2
    assert "offers the framework resource" in proc.stderr and "Traceback" not in proc.stderr


# Where fbuild-graph cannot be imported (a host it was not installed on).
WITHOUT_US = "import sys; sys.modules['fbuild_graph'] = None; from distributed.cli.{} import main; main()"


def test_a_scheduler_that_cannot_load_our_tasks_is_a_clear_error(tmp_path):
    # distributed's scheduler unpickles the tasks it is sent: this one refused them all, and the build said
    # it had lost the scheduler.
    with _scheduler(tmp_path, [sys.executable, "-c", WITHOUT_US.format("dask_scheduler")]) as (address, _):
        _expect_cannot_load(tmp_path, address, f"the Dask scheduler at {address}")


def test_a_worker_that_cannot_load_our_tasks_is_a_clear_error(scheduler, tmp_path):
    # It closed at its first task, and the build waited 30 s to say that no worker offered its resource.
    address, procs = scheduler
    for command, resource in ((WITHOUT_US.format("dask_worker"), "framework"),
                              ("from distributed.cli.dask_worker import main; main()", "sketch")):
        procs.append(subprocess.Popen(
            [sys.executable, "-c", command, address, "--nthreads", "1", "--resources", f"{resource}=1",
             "--no-nanny", "--no-dashboard", "--local-directory", str(tmp_path / resource)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    _wait_for_workers(address, 2)
    _expect_cannot_load(tmp_path, address, "worker tcp://127.0.0.1:")


def _expect_cannot_load(tmp_path, address: str, who: str) -> None:
    proc = run_cli("compile-many", "--board", "uno", "--scheduler", address, "-o", str(tmp_path / "out"),
                   str(PLATFORM / "libraries" / "Wire" / "examples" / "master_reader"))
    assert proc.returncode == 2
    error = proc.stderr.strip().splitlines()[-1]
    assert f"{who}" in error and "cannot load fbuild-graph's tasks" in error, proc.stderr
    assert "install fbuild-graph" in error and "Traceback" not in proc.stderr


@pytest.fixture
def runners(scheduler, tmp_path):
    """`fbuild-graph worker` runners (one framework and one sketch slot each), each with its own folder;
    start_runner() adds one and returns its process."""
    address, procs = scheduler

    def start_runner() -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "fbuild_graph", "worker", address, "--framework-jobs", "1",
                                 "--sketch-jobs", "1", "--local-directory", str(tmp_path / f"runner{len(procs)}")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        return proc

    yield address, start_runner


def _copies(tmp_path, count: int) -> Path:
    """`count` copies of the core's examples under distinct names: enough work to act on mid-build."""
    root = tmp_path / "sketches"
    for example in sorted(PLATFORM.glob("libraries/*/examples/*")):
        for i in range(count):
            target = root / f"{example.name}_{i}"
            target.mkdir(parents=True)
            (target / f"{example.name}_{i}.ino").write_text((example / f"{example.name}.ino").read_text())
    return root


def test_two_runners_share_the_work_and_build_the_same_bytes_as_a_local_cluster(runners, tmp_path):
    address, start_runner = runners
    start_runner()
    start_runner()
    _wait_for_workers(address, 4)
    # Before any task: every worker holds the tasks' code, without the planner's networkx, and polls its
    # memory once a second (worker.serve).
    assert set(_on_workers(address, _worker_state).values()) == {(True, False, "1s")}
    sketches = PLATFORM / "libraries"
    # A sketch as the IDE's examples are: a picture of its wiring beside its sources.
    pictured = tmp_path / "Pictured"
    pictured.mkdir()
    (pictured / "Pictured.ino").write_text('#include "pins.h"\nvoid setup() { pinMode(LED, OUTPUT); }\nvoid loop() {}\n')
    (pictured / "pins.h").write_text("#define LED 13\n")
    (pictured / "layout.png").write_bytes(b"\x89PNG" + bytes(range(256)) * 64)
    remote, local = tmp_path / "remote", tmp_path / "local"
    proc = run_cli("compile-many", "--board", "uno", "--scheduler", address, "--cache-mode", "off", "-o", str(remote),
                   str(sketches), str(pictured))
    assert proc.returncode == 0, proc.stderr
    assert run_cli("compile-many", "--board", "uno", "--cache-mode", "off", "-o", str(local), str(sketches),
                   str(pictured)).returncode == 0
    # What the sketch's build reads went to the runners; its picture, which no tool reads, did not.
    assert list(tmp_path.glob("runner*/fbuild-graph-mirror/**/Pictured/pins.h"))
    assert not list(tmp_path.glob("runner*/fbuild-graph-mirror/**/layout.png"))
    per_worker: dict[str, int] = {}
    for t in read_tsv(remote / "tasks.tsv"):
        per_worker[t["worker"]] = per_worker.get(t["worker"], 0) + 1
    assert len(per_worker) == 4 and min(per_worker.values()) > 0, per_worker  # both runners, both classes
    for hex_file in local.glob("sketches/*/firmware.hex"):
        assert (remote / "sketches" / hex_file.parent.name / "firmware.hex").read_bytes() == hex_file.read_bytes()
    # The runners built in mirrors under their own folders; the client only received the files. Signatures
    # are written where an action runs, so none is in the client's output folder.
    assert list(tmp_path.glob("runner*/fbuild-graph-mirror/*/**/firmware.elf"))
    assert not signed(remote) and signed(local)
    assert "fbuild-graph-mirror" in (remote / "sketches" / "master_reader" / "build.log").read_text()
    assert (remote / "stage1" / "core" / "core.a").is_file()


def test_a_worker_killed_mid_build_does_not_fail_the_build(runners, tmp_path):
    address, start_runner = runners
    runner = start_runner()
    start_runner()
    _wait_for_workers(address, 4)
    out = tmp_path / "out"
    build = subprocess.Popen([sys.executable, "-m", "fbuild_graph", "compile-many", "--board", "uno", "--scheduler",
                              address, "--cache-mode", "off", "-o", str(out), str(_copies(tmp_path, 2))],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finished = 0
    for line in build.stdout:
        finished += line.startswith("[stage2]")
        if finished == 3:
            break
    workers = subprocess.run(["pgrep", "-P", str(runner.pid)], capture_output=True, text=True).stdout.split()
    assert workers, "the runner has no worker processes"
    for pid in workers:  # the nanny restarts them; their tasks are recomputed elsewhere
        os.kill(int(pid), signal.SIGKILL)
    build.communicate(timeout=300)
    report = json.loads((out / "results.json").read_text())
    assert build.returncode == 0, [s["error"] for s in report["sketches"] if s["error"]]
    assert {s["status"] for s in report["sketches"]} == {"ok"} and len(report["sketches"]) == 38


def test_a_newer_run_in_the_group_cancels_the_older_one(runners, tmp_path):
    address, start_runner = runners
    start_runner()
    _wait_for_workers(address, 2)
    old_out = tmp_path / "old"
    old = subprocess.Popen([sys.executable, "-m", "fbuild_graph", "compile-many", "--board", "uno", "--scheduler",
                            address, "--cache-mode", "off", "--group", "main", "-o", str(old_out),
                            str(_copies(tmp_path, 3))], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finished = 0
    for line in old.stdout:
        finished += line.startswith("[stage2]")
        if finished == 2:
            break
    new = run_cli("compile-many", "--board", "uno", "--scheduler", address, "--cache-mode", "off", "--group", "main",
                  "--cancel-in-progress", "-o", str(tmp_path / "new"),
                  str(PLATFORM / "libraries" / "Wire" / "examples" / "master_reader"))
    _, rest = old.communicate(timeout=120)  # stderr: the superseded message
    assert new.returncode == 0, new.stderr
    assert old.returncode == 3
    assert "superseded by run" in rest and "group 'main'" in rest
    time.sleep(1)
    assert subprocess.run(["pgrep", "-f", str(old_out)], capture_output=True, text=True).stdout == ""
    report = json.loads((old_out / "results.json").read_text())
    statuses = {s["status"] for s in report["sketches"]}
    assert "cancelled" in statuses and statuses <= {"ok", "cancelled"} and report["exit_code"] == 3


def test_group_flags_need_a_scheduler(tmp_path):
    proc = run_cli("compile-many", "--board", "uno", "--group", "main", str(PLATFORM / "libraries"))
    assert proc.returncode == 2 and "--scheduler" in proc.stderr
