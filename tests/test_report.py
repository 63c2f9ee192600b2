"""fbuild-graph report: the phase table and the slowest actions of a real build, from its TSVs; the per-board
table of a board matrix's folder written by hand."""

from __future__ import annotations

import importlib.util

import pytest

from conftest import MATRIX_BOARD_ROWS, Build, run_cli, write_matrix_build

# No module-wide needs_toolchain: the real build's tests skip through big_build; the hand-written ones need none.


def test_report_prints_phases_and_the_ten_slowest_actions(big_build: Build):
    proc = run_cli("report", str(big_build.out))
    assert proc.returncode == 0, proc.stderr
    for phase in ("discover", "stage1_archives", "stage2_sketches", "total"):
        assert phase in proc.stdout
    slowest = proc.stdout.split("slowest actions:\n", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert len(slowest) == 10
    seconds = [float(line.split()[0]) for line in slowest]
    assert seconds == sorted(seconds, reverse=True)
    longest = max(float(t["seconds"]) for t in big_build.tasks if t["seconds"])
    assert seconds[0] == pytest.approx(longest, abs=1e-4)


def test_report_prints_a_row_per_board_of_a_board_matrix(tmp_path):
    proc = run_cli("report", str(write_matrix_build(tmp_path / "matrix")))
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("\nper board:\n", 1)[1].splitlines()
    assert table[0].split() == ["BOARD", "TARGETS", "OK", "FAILED", "SKIPPED", "STAGE1_S", "STAGE2_S", "SPAN_S", "SHARE"]
    assert [line.split() for line in table[1:]] == MATRIX_BOARD_ROWS
    assert "discover mega" in proc.stdout


def test_report_on_a_folder_from_before_the_board_matrix_has_no_board_table(tmp_path):
    proc = run_cli("report", str(write_matrix_build(tmp_path / "old", board_columns=False)))
    assert proc.returncode == 0, proc.stderr
    assert "discover" in proc.stdout and "per board" not in proc.stdout


def test_report_on_a_folder_without_a_build_is_a_usage_error(tmp_path):
    proc = run_cli("report", str(tmp_path))
    assert proc.returncode == 2 and "phases.tsv not found" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="--png needs matplotlib")
def test_report_png_is_a_picture(big_build: Build, tmp_path):
    png = tmp_path / "timeline.png"
    assert run_cli("report", str(big_build.out), "--png", str(png)).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
