"""Bad input: one clear line naming the thing at fault, exit 2, never a traceback. And a broken core."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import PLATFORM, TEST_SKETCHES, needs_toolchain, run_cli

BLINKISH = str(TEST_SKETCHES / "dup_a" / "Basic")


def assert_usage_error(proc, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@needs_toolchain
def test_unknown_board_suggests_close_names(tmp_path):
    assert_usage_error(run_cli("compile-many", "--board", "unoo", "-o", str(tmp_path), BLINKISH),
                       "unknown board 'unoo'", "did you mean uno")


@needs_toolchain
def test_unknown_menu_option_lists_the_valid_ones(tmp_path):
    assert_usage_error(run_cli("compile-many", "--board", "arduino:avr:mega:cpu=atmega9", "-o", str(tmp_path), BLINKISH),
                       "atmega2560", "atmega1280")


@needs_toolchain
def test_sketch_path_that_does_not_exist(tmp_path):
    assert_usage_error(run_cli("compile-many", "--board", "uno", "-o", str(tmp_path), str(tmp_path / "nope")),
                       "nope does not exist")


@needs_toolchain
def test_folder_without_sketches(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no sketch here")
    assert_usage_error(run_cli("compile-many", "--board", "uno", "-o", str(tmp_path / "o"), str(empty)),
                       "no sketch found in", "X/ holding X.ino")


@pytest.mark.parametrize("flag", ["--sketch-jobs", "--framework-jobs"])
def test_zero_jobs_is_refused(tmp_path, flag):
    assert_usage_error(run_cli("compile-many", "--board", "uno", flag, "0", BLINKISH), flag, "at least 1")


def test_scheduler_conflicts_with_local_job_counts():
    assert_usage_error(run_cli("compile-many", "--board", "uno", "--scheduler", "tcp://127.0.0.1:1", "--sketch-jobs", "2",
                               BLINKISH), "--scheduler")


@needs_toolchain
def test_missing_toolchain_names_the_packages(tmp_path):
    assert_usage_error(run_cli("compile-many", "--board", "uno", "--build-property", "compiler.path=/nonexistent/",
                               "-o", str(tmp_path), BLINKISH),
                       "/nonexistent/avr-gcc", "gcc-avr avr-libc binutils-avr")


def test_a_platform_not_installed_is_named_with_what_is(tmp_path):
    assert_usage_error(run_cli("compile-many", "--board", "MiniCore:avr:328", "--hardware", str(tmp_path), BLINKISH),
                       "platform MiniCore:avr is not installed", "installed: arduino:avr", "arduino-cli core install")


@needs_toolchain
def test_unresolved_property_is_an_error_not_a_silent_placeholder(tmp_path):
    assert_usage_error(run_cli("compile-many", "--board", "uno", "--build-property",
                               "compiler.c.extra_flags={no.such.key}", "-o", str(tmp_path), BLINKISH),
                       "{no.such.key}")


def test_help_lists_the_knobs():
    proc = run_cli("compile-many", "--help")
    assert proc.returncode == 0
    for flag in ("--board", "--framework-jobs", "--sketch-jobs", "--library-dir", "--build-property", "--scheduler"):
        assert flag in proc.stdout


@needs_toolchain
def test_build_property_reaches_the_command(tmp_path):
    proc = run_cli("compile-many", "--board", "uno", "--build-property", "compiler.cpp.extra_flags=-DFROM_USER=1",
                   "-o", str(tmp_path), BLINKISH)
    assert proc.returncode == 0, proc.stderr
    log = Path(json.loads((tmp_path / "results.json").read_text())["sketches"][0]["log"]).read_text()
    assert "-DFROM_USER=1" in log
    assert "-DDECIMAL_DIG=__DECIMAL_DIG__" in log  # the fix is added on top of the user's flags


@needs_toolchain
def test_broken_core_fails_fast_with_one_message_and_nothing_half_built(tmp_path):
    hardware = tmp_path / "hardware"
    platform = hardware / "arduino" / "avr"
    shutil.copytree(PLATFORM, platform, symlinks=True)
    wmath = platform / "cores" / "arduino" / "WMath.cpp"
    wmath.unlink()  # a copy of a Debian symlink may point back into /usr/share
    wmath.write_text("long random(long howbig) { return howbig +; }\n")
    out = tmp_path / "out"
    proc = run_cli("compile-many", "--board", "uno", "--hardware", str(hardware), "--framework-jobs", "1",
                   "-o", str(out), str(TEST_SKETCHES / "dup_a"), str(TEST_SKETCHES / "dup_b"), str(TEST_SKETCHES / "multi_file"))
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the Arduino core failed to compile" in errors[0] and "WMath.cpp" in errors[0]
    assert not (out / "stage1" / "core" / "core.a").exists()
    assert not list(out.glob("sketches/*/firmware.*"))
    report = json.loads((out / "results.json").read_text())
    assert {s["status"] for s in report["sketches"]} == {"failed"}
    core_log = (out / "stage1" / "core.log").read_text()
    assert "WMath.cpp" in core_log and "error:" in core_log
    assert "core failed" in report["sketches"][0]["error"] or "core failed to compile" in report["sketches"][0]["error"]


@needs_toolchain
def test_quiet_prints_only_the_summary_line(tmp_path):
    proc = run_cli("compile-many", "--board", "uno", "--quiet", "-o", str(tmp_path), BLINKISH)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["1 sketches for arduino:avr:uno: 1 ok, 0 not ok in " + proc.stdout.split(" in ")[1].strip()]
    assert "[stage" not in proc.stdout + proc.stderr
