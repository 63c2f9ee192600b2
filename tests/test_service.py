"""The resident build service (compile-many --daemon): the same outputs and exit codes as a build in its own
process, one service per user and package key, started on demand, replaced when stale, gone when idle,
interruptible without going down, and a build in this process whenever it cannot be used.

Every test has a service folder of its own (XDG_RUNTIME_DIR, short: a socket path has a length limit) and
stops what it started."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import PLATFORM, make_sketch, needs_toolchain, run_cli
from fbuild_graph.service import client, place
from fbuild_graph.service.place import Unavailable

BLINK = "void setup() { pinMode(13, OUTPUT); }\nvoid loop() { digitalWrite(13, HIGH); delay(500); }\n"
# Long enough to interrupt: a sketch with a large table to compile, and the core itself.
SLOW = "const long t[] = {" + ",".join(str(n) for n in range(20000)) + "};\nvoid setup() { Serial.begin(9600); }\n" \
       "void loop() { Serial.println(t[millis() % 20000]); }\n"


class Service:
    """One test's service folder and the environment that points clients at it."""

    def __init__(self, runtime: Path, env: dict[str, str]):
        self.runtime, self.env = runtime, env
        self.folder = runtime / "fbuild-graph"
        self.key = place.key()
        self.socket = self.folder / f"{self.key}.sock"

    def cli(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return run_cli(*args, env={**self.env, **kwargs.pop("env", {})}, **kwargs)

    def status(self) -> dict[str, str]:
        """What `fbuild-graph daemon status` prints, as a dict ({} when no service runs)."""
        proc = self.cli("daemon", "status")
        if proc.returncode != 0:
            return {}
        return dict(line.split(": ", 1) for line in proc.stdout.splitlines())

    def stop(self) -> None:
        """`daemon stop`, asked from this process (faster than a command line), and its exit awaited."""
        try:
            answer = client.ask("stop", self.env)
        except Unavailable:
            answer = None
        if answer:
            _wait_gone(answer["pid"])


@pytest.fixture
def service(tmp_path):
    runtime = Path(tempfile.mkdtemp(prefix="fbg-", dir="/tmp"))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "FBUILD_GRAPH_DAEMON_IDLE": "120"}
    env.pop("FBUILD_GRAPH_DAEMON", None)
    started = Service(runtime, env)
    yield started
    started.stop()
    shutil.rmtree(runtime, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (exited, not yet reaped by init) is gone for us
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return False
        time.sleep(0.05)
    return True


def _ours(stderr: str) -> list[str]:
    """What fbuild-graph said, without distributed's own log lines (timestamped)."""
    return [line for line in stderr.splitlines() if " - distributed." not in line]


def _build_args(out: Path, *sketches: Path) -> list[str]:
    return ["compile-many", "--board", "uno", "--framework-jobs", "1", "--sketch-jobs", "2", "-o", str(out),
            *map(str, sketches)]


def test_the_console_entry_imports_nothing_heavy_before_it_decides():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import fbuild_graph.launch"],
                          capture_output=True, text=True, check=True)
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    heavy = {"attrs", "networkx", "dask", "distributed", "rich", "fbuild_graph.cli", "fbuild_graph.build"}
    assert imported & heavy == set()


@needs_toolchain
def test_a_service_build_is_the_in_process_build_and_the_next_one_is_served_by_the_same_service(service, tmp_path):
    sketches = [make_sketch(tmp_path / "s", "Blinky", BLINK), PLATFORM / "libraries/EEPROM/examples/eeprom_read"]
    alone = service.cli(*_build_args(tmp_path / "alone", *sketches))
    served = service.cli(*_build_args(tmp_path / "served", *sketches), "--daemon")
    assert alone.returncode == served.returncode == 0, served.stderr
    assert _ours(served.stderr) == _ours(alone.stderr)  # the notes, through the service's stderr frames
    for name in ("Blinky", "eeprom_read"):
        assert (tmp_path / "served/sketches" / name / "firmware.hex").read_bytes() == \
            (tmp_path / "alone/sketches" / name / "firmware.hex").read_bytes()
    report = json.loads((tmp_path / "served/results.json").read_text())
    assert [s["status"] for s in report["sketches"]] == ["ok", "ok"]
    first = service.status()
    again = service.cli(*_build_args(tmp_path / "served", *sketches), env={"FBUILD_GRAPH_DAEMON": "1"})
    assert again.returncode == 0, again.stderr
    tasks = (tmp_path / "served/tasks.tsv").read_text()
    assert "\tok\t" not in tasks and "up-to-date" in tasks  # signatures decided: nothing ran
    second = service.status()
    assert (first["builds"], second["builds"]) == ("1", "2")
    assert first["pid"] == second["pid"] and first["key"] == second["key"] == service.key


def test_exit_codes_and_one_line_errors_come_through(service, tmp_path):
    sketch = make_sketch(tmp_path / "s", "Blinky", BLINK)
    args = ["compile-many", "--board", "unoo", "-o", str(tmp_path / "out"), str(sketch)]
    alone = service.cli(*args)
    # Two clients at once: they start one service between them.
    racing = [subprocess.Popen([sys.executable, "-m", "fbuild_graph", *args, "--daemon"], env=service.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=120) for proc in racing]
    assert alone.returncode == 2 and [proc.returncode for proc in racing] == [2, 2]
    assert [err for _, err in outputs] == [alone.stderr] * 2
    assert len(alone.stderr.splitlines()) == 1 and "unknown board 'unoo'" in alone.stderr
    assert service.status()["builds"] == "2"
    log = (service.folder / f"{service.key}.log").read_text()
    assert log.count(" serving ") == 1
    usage = service.cli("compile-many", "--daemon", "--board", "uno", "--sketch-jobs", "0", str(sketch))
    assert usage.returncode == 2 and "at least 1" in usage.stderr and len(usage.stderr.splitlines()) == 1
    pid = int(service.status()["pid"])
    stopped = service.cli("daemon", "stop")
    assert stopped.returncode == 0 and f"(pid {pid}) to stop after 3 builds" in stopped.stderr
    assert _wait_gone(pid) and not service.socket.exists()
    none = service.cli("daemon", "status")
    assert none.returncode == 1 and "no build service is running" in none.stderr


def test_a_service_of_another_key_is_never_used(service, tmp_path):
    service.folder.mkdir(mode=0o700)
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(service.folder / "0123456789abcdef.sock"))
    other.listen(1)
    other.settimeout(0.1)
    proc = service.cli("compile-many", "--daemon", "--board", "unoo", str(make_sketch(tmp_path, "B", BLINK)))
    assert proc.returncode == 2 and "unknown board" in proc.stderr
    with pytest.raises(socket.timeout):
        other.accept()  # nobody called
    other.close()
    assert service.status()["key"] == service.key
    # A service asked to serve a key that is not its code's refuses.
    wrong = subprocess.run([sys.executable, "-m", "fbuild_graph.launch", "serve", str(service.folder),
                            "0123456789abcdef"], env=service.env, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 1 and "this code's key is" in wrong.stderr


def test_a_stale_socket_is_replaced(service, tmp_path):
    service.folder.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(service.socket))
    dead.close()  # the file stays; nobody listens: a service that died
    proc = service.cli("compile-many", "--daemon", "--board", "unoo", str(make_sketch(tmp_path, "B", BLINK)))
    assert proc.returncode == 2 and "unknown board" in proc.stderr and "note:" not in proc.stderr
    assert service.status()["builds"] == "1"


def test_the_service_exits_when_idle_and_removes_its_socket(service, tmp_path):
    proc = service.cli("compile-many", "--daemon", "--board", "unoo", str(make_sketch(tmp_path, "B", BLINK)),
                       env={"FBUILD_GRAPH_DAEMON_IDLE": "1"})
    assert proc.returncode == 2
    pid = int((service.folder / f"{service.key}.log").read_text().split("(pid ", 1)[1].split(",", 1)[0])
    assert _wait_gone(pid)
    assert not service.socket.exists()
    assert "idle for 1 s: exiting" in (service.folder / f"{service.key}.log").read_text()


@needs_toolchain
def test_interrupting_the_client_stops_the_build_and_the_service_keeps_serving(service, tmp_path):
    sketches = [make_sketch(tmp_path / "s", f"Slow{n}", SLOW) for n in range(3)]
    out = tmp_path / "out"
    client = subprocess.Popen([sys.executable, "-m", "fbuild_graph", *_build_args(out, *sketches), "--daemon",
                               "--sketch-jobs", "1"], env=service.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    # The targets' build has begun (the core's may begin before the targets are planned: build.CoreFirst).
    while not (out / "sketches").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    client.send_signal(signal.SIGINT)
    stdout, stderr = client.communicate(timeout=60)
    assert client.returncode == 130, stderr
    report = json.loads((out / "results.json").read_text())
    assert "interrupted" in {s["status"] for s in report["sketches"]}
    status = service.status()
    assert status["busy"] == "False" and status["builds"] == "1"
    after = service.cli(*_build_args(tmp_path / "again", make_sketch(tmp_path / "t", "Blinky", BLINK)), "--daemon")
    assert after.returncode == 0, after.stderr
    assert service.status()["pid"] == status["pid"]


@needs_toolchain
@pytest.mark.parametrize("problem", ["a file", "someone else's"])
def test_when_the_service_cannot_be_used_the_build_runs_in_process(service, tmp_path, problem):
    if problem == "a file":
        service.runtime.rmdir()
        service.runtime.write_text("not a folder")
    else:
        if os.getuid() != 0:
            pytest.skip("needs root to give the folder to another user")
        service.folder.mkdir(mode=0o700)
        os.chown(service.folder, 12345, 12345)
    proc = service.cli(*_build_args(tmp_path / "out", make_sketch(tmp_path / "s", "Blinky", BLINK)), "--daemon")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("fbuild-graph: note: building in this process:")
    assert (tmp_path / "out/sketches/Blinky/firmware.hex").is_file()
    if problem == "a file":
        service.runtime.unlink()
        service.runtime.mkdir()
