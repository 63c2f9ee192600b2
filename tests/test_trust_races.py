"""One build per output folder, and a shared cache that stays sound when builds race."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import PLATFORM, needs_toolchain, run_cli

from fbuild_graph.outputs import lock
from fbuild_graph.caches.cache import Cache
from fbuild_graph.errors import FbuildError

EXAMPLES = PLATFORM / "libraries"
SPI = [str(p) for p in sorted((EXAMPLES / "SPI" / "examples").iterdir())]
WIRE = [str(p) for p in sorted((EXAMPLES / "Wire" / "examples").iterdir())][:3]
EEPROM = [str(p) for p in sorted((EXAMPLES / "EEPROM" / "examples").iterdir())][:3]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fbuild_graph", *args]


@needs_toolchain
def test_a_second_build_on_a_busy_out_stops_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    with lock.holding(str(out)):
        proc = run_cli("compile-many", "--board", "uno", "-o", str(out), *EEPROM[:1], timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"fbuild-graph: error: output folder {out} is in use by build {os.getpid()} on ")
    assert "Traceback" not in proc.stderr
    assert not (out / "results.json").exists()


@needs_toolchain
def test_wait_builds_once_the_holder_is_done(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from fbuild_graph.outputs import lock\n"
                               f"with lock.holding({str(out)!r}):\n    print('held', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    waiting = subprocess.Popen(_cli("compile-many", "--board", "uno", "--wait", "-o", str(out), *EEPROM[:1]),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    assert waiting.poll() is None and not (out / "results.json").exists()  # still waiting
    holder.communicate("")  # the holder ends
    _, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    assert f"is in use by build {holder.pid} " in err and "waiting for it" in err
    assert len(list((out / "sketches").glob("*/firmware.hex"))) == 1


def test_a_killed_build_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from fbuild_graph.outputs import lock\n"
                               f"with lock.holding({str(out)!r}):\n    print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    try:
        try:
            with lock.holding(str(out)):
                raise AssertionError("the lock was not held")
        except FbuildError as exc:
            assert f"in use by build {holder.pid} " in str(exc)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with lock.holding(str(out)):  # the kernel dropped the dead build's lock
        pass


def test_a_file_changed_after_its_action_is_never_stored(tmp_path):
    made = tmp_path / "x.o"
    made.write_bytes(b"what the compiler wrote")
    import hashlib

    produced = hashlib.sha256(made.read_bytes()).hexdigest()
    made.write_bytes(b"what another process wrote since")
    warnings = []
    store = Cache(str(tmp_path / "cache"), warn=warnings.append)
    assert store.put("stage1", "ab12", {"x.o": str(made)}, expected={"x.o": produced}) is False
    assert store.get("stage1", "ab12", str(tmp_path / "dest")) is None
    assert "changed after the action that made it finished" in warnings[0]
    assert not any((tmp_path / "cache").rglob("x.o"))


@needs_toolchain
def test_racing_builds_on_one_cache_store_only_sound_entries(tmp_path):
    cache = tmp_path / "cache"
    sets = [SPI + WIRE, WIRE + EEPROM, EEPROM + SPI]
    for rep in range(2):
        procs = [subprocess.Popen(_cli("compile-many", "--board", "uno", "--quiet", "--cache-dir", str(cache),
                                       "--framework-jobs", "1", "--sketch-jobs", "1", "-o", str(tmp_path / f"out{i}"),
                                       *sketches), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i, sketches in enumerate(sets)]
        time.sleep(0.5)
        busy = run_cli("compile-many", "--board", "uno", "--cache-dir", str(cache), "-o", str(tmp_path / "out0"),
                       *SPI, timeout=300)
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
        # Either the first build still held out0 (one line, exit 2) or it had finished (then this one built).
        assert busy.returncode == 0 or (busy.returncode == 2 and "is in use by build" in busy.stderr), busy.stderr
    verify = run_cli("cache", "verify", "--cache-dir", str(cache))
    assert verify.returncode == 0, verify.stdout
    assert Cache(str(cache)).stats().entries.get("stage1", 0) >= 3
    clean = run_cli("compile-many", "--board", "uno", "--cache-mode", "off", "-o", str(tmp_path / "clean"),
                    *SPI, *WIRE, *EEPROM, timeout=300)
    assert clean.returncode == 0, clean.stderr
    for i, sketches in enumerate(sets):
        for sketch in sketches:
            name = Path(sketch).name
            got = (tmp_path / f"out{i}" / "sketches" / name / "firmware.hex").read_bytes()
            assert got == (tmp_path / "clean" / "sketches" / name / "firmware.hex").read_bytes(), name
