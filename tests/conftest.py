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
from fbuild_graph.caches import signature

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


def run_cli(*args: str, cwd: str | os.PathLike | None = None, timeout: int = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fbuild_graph", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def signed(folder: Path) -> list[Path]:
    """The files under `folder` that carry an action's signature (the first outputs of actions that ran there)."""
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(signature.SUFFIX)
            and signature.recorded(str(p)) is not None]


def make_sketch(root: Path, name: str, body: str, markers: tuple[str, ...] = ()) -> Path:
    """A sketch folder `root/name` holding `name.ino` and the (empty) marker files named."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / f"{name}.ino").write_text(body)
    for marker in markers:
        (folder / marker).touch()
    return folder


def target_results(out: Path) -> dict[tuple[str, str], dict]:
    """A build's results.json targets by (board id, sketch id)."""
    report = json.loads((out / "results.json").read_text())
    return {(s["board_id"], s["id"]): s for s in report["sketches"]}


class Build:
    def __init__(self, out: Path, proc: subprocess.CompletedProcess):
        self.out = out
        self.proc = proc
        self.report = json.loads((out / "results.json").read_text())
        self.by_id = {s["id"]: s for s in self.report["sketches"]}
        self.phases = read_tsv(out / "phases.tsv")
        self.tasks = read_tsv(out / "tasks.tsv")


def write_build_folder(out: Path, phases: list[dict], tasks: list[dict], report: dict) -> Path:
    """A build's output folder written by hand, for readers of it (analysis, report, notebooks) to be tested on
    a build no engine can make yet, or no longer makes: each TSV's columns are its first row's keys."""
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("phases.tsv", phases), ("tasks.tsv", tasks)):
        with open(out / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    (out / "results.json").write_text(json.dumps(report))
    return out


def write_matrix_build(out: Path, board_columns: bool = True) -> Path:
    """A two-board build (uno, mega) that built the sketch Blink for both and Fade for the mega, written by
    hand. Times are multiples of 1/16 s, so sums of them are exact. uno: core 1 s (framework), Blink 0.5 + 0.25
    s, ok; a cached library archive. mega: core 2 s, Blink 0.75 + 0.25 s, its link failed; Fade skipped. With
    `board_columns` False: the uno half alone, as a build from before the board matrix wrote it (no board
    column in either TSV, no board in results.json)."""
    def task(board, key, kind, sketch, resource, start, stop, status="ok", after=()):
        ran = start is not None
        return {"key": f"{board}/{key}", "kind": kind, "sketch": sketch, "board": board, "resource": resource,
                "worker": resource if ran else "", "start": start if ran else "", "stop": stop if ran else "",
                "seconds": stop - start if ran else "", "status": status,
                "after": "|".join(f"{board}/{k}" for k in after)}

    def phase(name, board, start, stop):
        return {"phase": name, "board": board, "start": start, "stop": stop, "seconds": stop - start,
                "cache_key": "", "cache": ""}

    def sketch(board, id, status, seconds, error=""):
        return {"id": id, "board": f"arduino:avr:{board}", "board_id": board, "status": status,
                "seconds": seconds, "error": error}

    boards = ("uno", "mega") if board_columns else ("uno",)
    # Each board is discovered and planned in turn: the mega's plan ends the start-up, at 0.5 s.
    planning = [(name, board) for board in boards for name in ("discover", "libraries", "plan")]
    last = 3.75 if board_columns else 1.75
    phases = [phase("import", "", 0.0, 0.125),
              *(phase(name, board, 0.125 + 0.0625 * n, 0.1875 + 0.0625 * n)
                for n, (name, board) in enumerate(planning)),
              phase("stage1_archives", "", 0.5, 3.5 if board_columns else 1.5),
              phase("stage2_sketches", "", 0.5, last),
              phase("total", "", 0.0, last + 0.25)]
    tasks = [task("uno", "core/core.a", "archive", "", "framework", 0.5, 1.5),
             task("uno", "lib/Wire/Wire.a", "archive", "", "framework", None, None, status="cached"),
             task("uno", "sketch/Blink/compile", "compile", "Blink", "sketch", 0.5, 1.0),
             task("uno", "sketch/Blink/link", "link", "Blink", "sketch", 1.5, 1.75,
                  after=("core/core.a", "sketch/Blink/compile")),
             task("mega", "sketch/Blink/compile", "compile", "Blink", "sketch", 1.0, 1.75),
             task("mega", "core/core.a", "archive", "", "framework", 1.5, 3.5),
             task("mega", "sketch/Blink/link", "link", "Blink", "sketch", 3.5, 3.75, status="failed",
                  after=("core/core.a", "sketch/Blink/compile"))]
    sketches = [sketch("uno", "Blink", "ok", 1.25), sketch("mega", "Blink", "failed", 2.75, "link failed"),
                sketch("mega", "Fade", "skipped", 0.0, "does not fit the mega's flash")]
    report = {"boards": [f"arduino:avr:{b}" for b in boards], "slots": {"framework": 1, "sketch": 2},
              "sketches": [s for s in sketches if s["board_id"] in boards]}
    tasks = [t for t in tasks if t["board"] in boards]
    if not board_columns:
        del report["boards"]
        for row in (*phases, *tasks, *report["sketches"]):
            for column in ("board", "board_id"):
                row.pop(column, None)
    return write_build_folder(out, phases, tasks, report)


# The per-board table (report.board_table) of write_matrix_build's build, split into cells.
MATRIX_BOARD_ROWS = [["uno", "1", "1", "0", "0", "1.0000", "0.7500", "1.2500", "36.8%"],
                     ["mega", "2", "0", "1", "1", "2.0000", "1.0000", "2.7500", "63.2%"]]


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
