"""Shared fixtures: real builds with the real AVR toolchain and the Debian Arduino core.

The expensive build runs once per session: the core's 19 example sketches plus this folder's test
sketches (some written to fail) and test libraries, through the real command line.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from fbuild_graph.arduino import installs

# Every test process, and every build a test starts, gets a cache of its own: builds must not hit entries
# another test left behind. The session-wide build uses this one; each test gets a fresh one below.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="fbuild-graph-test-cache-")
# Nor may they find the cores and libraries of whoever runs them: only Debian's, unless a test makes its own.
os.environ["ARDUINO_DIRECTORIES_DATA"] = tempfile.mkdtemp(prefix="fbuild-graph-test-arduino-data-")
os.environ["ARDUINO_DIRECTORIES_USER"] = tempfile.mkdtemp(prefix="fbuild-graph-test-sketchbook-")

HERE = Path(__file__).parent
# Where a test's own resolve() finds platforms: Debian's folder alone.
DEBIAN_ONLY = installs.Directories(data="/nonexistent/arduino-data", user="/nonexistent/sketchbook")
PLATFORM = Path("/usr/share/arduino/hardware/arduino/avr")
EXAMPLES = sorted(PLATFORM.glob("libraries/*/examples/*/*.ino"))
TEST_SKETCHES = HERE / "sketches"
TEST_LIBRARIES = HERE / "libraries"

needs_toolchain = pytest.mark.skipif(
    not (shutil.which("avr-g++") and PLATFORM.is_dir()),
    reason="needs gcc-avr, avr-libc, binutils-avr and arduino-core-avr (.ci/run installs them)",
)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


def run_cli(*args: str, cwd: str | os.PathLike | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fbuild_graph", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


class Build:
    def __init__(self, out: Path, proc: subprocess.CompletedProcess):
        self.out = out
        self.proc = proc
        self.report = json.loads((out / "results.json").read_text())
        self.by_id = {s["id"]: s for s in self.report["sketches"]}
        self.phases = read_tsv(out / "phases.tsv")
        self.tasks = read_tsv(out / "tasks.tsv")


FRAMEWORK_JOBS, SKETCH_JOBS = 1, 2


@pytest.fixture(scope="session")
def big_build(tmp_path_factory) -> Build:
    if not (shutil.which("avr-g++") and PLATFORM.is_dir()):
        pytest.skip("needs the AVR toolchain and arduino-core-avr")
    out = tmp_path_factory.mktemp("build") / "out"
    proc = run_cli("compile-many", "--board", "uno", "--framework-jobs", str(FRAMEWORK_JOBS),
                   "--sketch-jobs", str(SKETCH_JOBS), "--library-dir", str(TEST_LIBRARIES), "-o", str(out),
                   str(PLATFORM / "libraries"), str(TEST_SKETCHES))
    return Build(out, proc)


def arduino_builder(ino: Path, root: Path, libraries: Path | None = None) -> tuple[bytes, str]:
    """The `.hex` Debian's arduino-builder (the reference) builds for the Uno from `ino`, offline, and its verbose
    output (every command it ran); `root` holds its build folders and its core cache, shared between calls;
    `libraries` is a user library folder (the sketchbook's `libraries/`)."""
    cache, tools, build = root / "cache", root / "tools", root / "builds" / ino.stem
    for folder in (cache, tools, build):
        folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["arduino-builder", "-compile", "-verbose", "-hardware", "/usr/share/arduino-builder", "-hardware",
         "/usr/share/arduino/hardware", "-tools", str(tools), *(["-libraries", str(libraries)] if libraries else []),
         "-fqbn", "arduino:avr:uno", "-build-path", str(build), "-build-cache", str(cache),
         "-core-api-version", "10819", "-warnings", "none",
         "-prefs", "compiler.cpp.extra_flags=-DDECIMAL_DIG=__DECIMAL_DIG__", str(ino)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return (build / f"{ino.stem}.ino.hex").read_bytes(), proc.stdout


def arduino_builder_hex(ino: Path, root: Path) -> bytes:
    return arduino_builder(ino, root)[0]
