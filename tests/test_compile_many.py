"""compile-many end to end: firmware that parses and fits, failures that stay local, results and limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import EXAMPLES, FRAMEWORK_JOBS, SKETCH_JOBS, Build, needs_toolchain

pytestmark = needs_toolchain

EXPECTED_FAILURES = {
    "syntax_error": "syntax_error.ino:5:",
    "missing_library": "NoSuchLibrary.h: No such file or directory",
    "usb_only": "'USBDevice' was not declared",
    "too_big": "sketch too big: ",
    "uses_broken": "library Broken failed to compile",
}
EXPECTED_OK = [p.stem for p in EXAMPLES] + ["multi_file", "uses_libs"]


def parse_intel_hex(path: Path) -> dict[int, int]:
    """Address -> byte, checking every record's checksum; raises on anything malformed."""
    memory: dict[int, int] = {}
    base = 0
    saw_eof = False
    for line in path.read_text().splitlines():
        assert line.startswith(":"), line
        raw = bytes.fromhex(line[1:])
        count, address, kind, data = raw[0], int.from_bytes(raw[1:3], "big"), raw[3], raw[4:-1]
        assert len(data) == count and sum(raw) & 0xFF == 0, f"bad record {line}"
        if kind == 0:
            for i, b in enumerate(data):
                memory[base + address + i] = b
        elif kind == 1:
            saw_eof = True
        elif kind == 2:
            base = int.from_bytes(data, "big") << 4
    assert saw_eof, f"{path} has no end-of-file record"
    return memory


def test_exit_code_is_1_when_some_sketches_fail(big_build: Build):
    assert big_build.proc.returncode == 1, big_build.proc.stderr
    assert big_build.report["exit_code"] == 1
    assert "Traceback" not in big_build.proc.stderr


def test_the_decimal_dig_fix_is_applied_and_said_once(big_build: Build):
    assert big_build.proc.stderr.count("-DDECIMAL_DIG=__DECIMAL_DIG__") == 1


@pytest.mark.parametrize("sketch_id", EXPECTED_OK)
def test_expected_success_has_hex_that_parses_and_fits(big_build: Build, sketch_id: str):
    result = big_build.by_id[sketch_id]
    assert result["status"] == "ok", result
    out = Path(result["out_dir"])
    memory = parse_intel_hex(out / "firmware.hex")
    assert memory, "empty firmware"
    assert max(memory) < result["flash_max"] == 32256
    assert 0 < result["flash"] <= result["flash_max"]
    assert len(memory) == result["flash"]  # the hex holds exactly the flash the size report counts
    assert 0 <= result["ram"] <= result["ram_max"] == 2048
    assert (out / "firmware.elf").read_bytes()[:4] == b"\x7fELF"
    assert (out / "firmware.eep").is_file()


@pytest.mark.parametrize("sketch_id,message", sorted(EXPECTED_FAILURES.items()))
def test_broken_sketch_fails_with_the_right_message(big_build: Build, sketch_id: str, message: str):
    result = big_build.by_id[sketch_id]
    assert result["status"] == "failed"
    assert message in result["error"].replace("‘", "'").replace("’", "'")
    out = Path(result["out_dir"])
    assert not (out / "firmware.hex").exists(), "a failed sketch must not leave firmware behind"
    log = Path(result["log"]).read_text()
    assert "$ " in log  # the commands are in the log


def test_missing_library_error_says_what_to_do(big_build: Build):
    assert "--library-dir" in big_build.by_id["missing_library"]["error"]


def test_compiler_errors_name_the_ino_file_and_line(big_build: Build):
    log = Path(big_build.by_id["syntax_error"]["log"]).read_text()
    assert "syntax_error.ino:5:23: error" in log


def test_broken_library_fails_only_its_users_and_its_log_has_the_compiler_message(big_build: Build):
    error = big_build.by_id["uses_broken"]["error"]
    log = Path(error.rsplit("see ", 1)[1])
    assert log.name == "Broken.log"
    assert "this_is_not_declared" in log.read_text()
    assert big_build.by_id["uses_libs"]["status"] == "ok"


def test_sketches_with_the_same_name_get_their_own_folders(big_build: Build):
    basics = [r for r in big_build.report["sketches"] if r["sketch"] == "Basic"]
    assert len(basics) == 2
    assert len({r["out_dir"] for r in basics}) == 2
    hexes = [Path(r["out_dir"], "firmware.hex").read_bytes() for r in basics]
    assert hexes[0] != hexes[1]  # pin 12 vs pin 11: each folder holds its own sketch's firmware


def test_every_stage1_action_ran_once_for_the_whole_batch(big_build: Build):
    framework = [t["key"] for t in big_build.tasks if t["resource"] == "framework"]
    assert len(framework) == len(set(framework))
    wire = [k for k in framework if k.startswith("lib/Wire/")]
    assert sorted(wire) == ["lib/Wire/Wire.cpp.o", "lib/Wire/utility/twi.c.o"]
    assert "core/core.a" in framework


def test_phases_tsv_has_the_phases_and_the_cache_key(big_build: Build):
    phases = {row["phase"]: row for row in big_build.phases}
    for name in ("discover", "stage1_archives", "stage2_sketches", "total"):
        assert float(phases[name]["seconds"]) > 0, name
    assert len(phases["stage1_archives"]["cache_key"]) == 16
    assert phases["stage1_archives"]["cache_key"] == big_build.report["stage1_cache_key"]
    assert float(phases["total"]["stop"]) >= float(phases["stage2_sketches"]["stop"])


def test_tasks_tsv_has_a_row_per_action(big_build: Build):
    assert list(big_build.tasks[0]) == ["key", "kind", "sketch", "board", "resource", "worker", "start", "stop",
                                         "seconds", "status", "after"]
    rows = {t["key"]: t for t in big_build.tasks}
    link = rows["sketch/master_reader/link"]
    assert link["kind"] == "link" and link["sketch"] == "master_reader" and link["resource"] == "sketch"
    assert {t["board"] for t in big_build.tasks} == {"uno"}
    assert link["status"] == "ok" and float(link["stop"]) > float(link["start"])
    assert rows["sketch/uses_broken/link"]["status"] == "skipped"
    kinds = {t["kind"] for t in big_build.tasks}
    assert {"preprocess", "compile", "archive", "link", "eep", "hex", "size"} <= kinds


def _max_concurrency(rows) -> int:
    events = sorted([(float(r["start"]), 1) for r in rows] + [(float(r["stop"]), -1) for r in rows])
    level = peak = 0
    for _, delta in events:
        level += delta
        peak = max(peak, level)
    return peak


def test_the_two_limits_held(big_build: Build):
    ran = [t for t in big_build.tasks if t["start"]]
    framework = [t for t in ran if t["resource"] == "framework"]
    sketch = [t for t in ran if t["resource"] == "sketch"]
    assert _max_concurrency(framework) <= FRAMEWORK_JOBS
    assert _max_concurrency(sketch) <= SKETCH_JOBS
    assert {t["worker"] for t in framework} == {"framework"}


def test_sketch_compiles_do_not_wait_for_stage1(big_build: Build):
    stage1_end = max(float(t["stop"]) for t in big_build.tasks if t["resource"] == "framework" and t["stop"])
    early = [t for t in big_build.tasks if t["kind"] == "compile" and t["resource"] == "sketch" and t["start"]
             and float(t["start"]) < stage1_end]
    assert early, "no sketch TU compiled while stage 1 was running"
    first_link = min(float(t["start"]) for t in big_build.tasks if t["kind"] == "link" and t["start"])
    core_archive = next(t for t in big_build.tasks if t["key"] == "core/core.a")
    assert first_link >= float(core_archive["stop"])


def test_results_json_names_the_board_and_every_sketch(big_build: Build):
    assert big_build.report["board"] == "arduino:avr:uno"
    assert {s["id"] for s in big_build.report["sketches"]} == {p.stem for p in big_build.out.glob("sketches/*/")}
    assert big_build.report["peak_rss_mb"] > 0


def test_results_json_splits_cpu_between_the_orchestrator_and_its_tools(big_build: Build):
    cpu = big_build.report["cpu_seconds"]
    assert set(cpu) == {"orchestrator", "tools"}
    assert cpu["orchestrator"] > 0
    # A cold build of the core and every sketch: the compilers, children of this process, do most of the work.
    assert cpu["tools"] > cpu["orchestrator"], cpu
    # No more CPU than the machine's cores could give over the build (1 s slack for results and rounding).
    wall = next(float(p["stop"]) for p in big_build.phases if p["phase"] == "total")
    assert cpu["orchestrator"] + cpu["tools"] <= (wall + 1) * (os.cpu_count() or 1), (cpu, wall)


def test_stdout_has_a_line_per_finished_unit_and_sketch_then_a_summary(big_build: Build):
    lines = big_build.proc.stdout.splitlines()
    sketch_lines = {line.split()[3]: line for line in lines if line.startswith("[stage2]")}
    assert set(sketch_lines) == set(big_build.by_id)
    assert sketch_lines["master_reader"].startswith("[stage2] OK ") and "flash=" in sketch_lines["master_reader"]
    assert sketch_lines["syntax_error"].startswith("[stage2] FAIL ") and "log=" in sketch_lines["syntax_error"]
    assert any(line.startswith("[stage1] OK ") and " core " in line for line in lines)
    assert any(line.startswith("[stage1] FAIL ") and " Broken " in line for line in lines)
    assert lines[-1].startswith(f"{len(big_build.by_id)} sketches for arduino:avr:uno: ")


def test_per_sketch_result_json_matches_the_map(big_build: Build):
    import json

    result = big_build.by_id["multi_file"]
    assert json.loads(Path(result["out_dir"], "result.json").read_text()) == result
    assert os.path.isfile(result["log"])


def test_an_interrupted_build_keeps_finished_results_and_leaves_no_compiler(tmp_path):
    import json
    import signal
    import subprocess
    import sys

    from conftest import PLATFORM

    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "fbuild_graph", "compile-many", "--board", "uno", "--sketch-jobs", "1",
                             "-o", str(out), str(PLATFORM / "libraries")], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    for line in proc.stdout:  # interrupt as soon as the first sketch has finished
        if line.startswith("[stage2]"):
            break
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    report = json.loads((out / "results.json").read_text())
    statuses = {s["status"] for s in report["sketches"]}
    assert statuses == {"ok", "interrupted"}
    for s in report["sketches"]:
        hex_file = Path(s["out_dir"], "firmware.hex")
        assert hex_file.exists() == (s["status"] == "ok")
        assert json.loads(Path(s["out_dir"], "result.json").read_text())["status"] == s["status"]
    leftovers = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout
    assert leftovers == ""


def test_a_task_that_raises_fails_only_its_own_sketch(tmp_path):
    from conftest import TEST_SKETCHES, run_cli

    out = tmp_path / "out"
    # A file where multi_file's build folder goes: creating folders under it raises inside the Dask task.
    (out / "sketches" / "multi_file").mkdir(parents=True)
    (out / "sketches" / "multi_file" / "build").write_text("in the way")
    proc = run_cli("compile-many", "--board", "uno", "-o", str(out), str(TEST_SKETCHES / "multi_file"),
                   str(TEST_SKETCHES / "dup_a" / "Basic"))
    import json

    report = json.loads((out / "results.json").read_text())
    by_id = {s["id"]: s for s in report["sketches"]}
    assert proc.returncode == 1, proc.stderr
    assert by_id["Basic"]["status"] == "ok"
    assert by_id["multi_file"]["status"] == "failed"
    assert "NotADirectoryError" in by_id["multi_file"]["error"] or "FileExistsError" in by_id["multi_file"]["error"]


def _uses_libs(tmp_path: Path):
    from conftest import TEST_LIBRARIES, TEST_SKETCHES

    from fbuild_graph import build

    return build.Config(boards=("uno",), sketches=(str(TEST_SKETCHES / "uses_libs"),), out=str(tmp_path / "out"),
                        library_dirs=(str(TEST_LIBRARIES),), cache_mode="off", framework_jobs=2, sketch_jobs=2)


def test_the_core_compiles_while_libraries_are_detected(tmp_path):
    from conftest import read_tsv, run_cli

    config = _uses_libs(tmp_path)
    proc = run_cli("compile-many", "--board", "uno", "--cache-mode", "off", "--library-dir", config.library_dirs[0],
                   "-o", config.out, *config.sketches)
    assert proc.returncode == 0, proc.stderr
    phases = {row["phase"]: row for row in read_tsv(tmp_path / "out" / "phases.tsv")}
    tasks = read_tsv(tmp_path / "out" / "tasks.tsv")
    core = [t for t in tasks if t["key"].startswith("core/")]
    assert min(float(t["start"]) for t in core) < float(phases["libraries"]["stop"])
    assert {t["status"] for t in core} == {"ok"} and len(core) == len({t["key"] for t in core})
    assert {t["status"] for t in tasks if t["resource"] == "framework"} == {"ok"}


def test_bad_input_found_while_the_core_compiles_stops_it(tmp_path, monkeypatch):
    import time

    from fbuild_graph import build
    from fbuild_graph.errors import FbuildError
    from fbuild_graph.execution import execute

    started = []

    def failing_detection(*args, **kwargs):
        started.append(time.time())
        time.sleep(0.3)  # the core's compiles are under way by now
        raise FbuildError("cannot run the preprocessor for uses_libs.ino: gone")

    real = build.detect_libraries
    monkeypatch.setattr(build, "detect_libraries", failing_detection)
    config = _uses_libs(tmp_path)
    with pytest.raises(FbuildError, match="cannot run the preprocessor"):
        build.compile_many(config, lambda line: None)
    assert started and not execute._running  # no compiler outlives the build
    # The output folder's lock is free again, and what the stopped core left is never taken as built.
    monkeypatch.setattr(build, "detect_libraries", real)
    code, report = build.compile_many(config, lambda line: None)
    assert code == 0 and [s.status for s in report.sketches] == ["ok"]
