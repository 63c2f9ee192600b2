"""The notebooks run top to bottom, headless, in a real Jupyter kernel: on a given build or benchmark TSV, and
on the build or sweep they start themselves when given none. Every code cell must run and every figure show."""

from __future__ import annotations

import csv
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from conftest import MATRIX_BOARD_ROWS, Build, needs_toolchain, write_matrix_build

pytestmark = needs_toolchain

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
HARNESS_TSV = Path(__file__).parent.parent / "benchmarks" / "results" / "harness.tsv"
PERFORMANCE_FIGURES = 6  # phases, timeline, per-sketch time, critical path and stages, idle slots, per board
SCALING_FIGURES = 2  # wall against the job limits, wall over ideal


def execute(name: str, parameter: str | None = None) -> nbformat.NotebookNode:
    """Run a notebook as Jupyter does (the kernel's working directory is notebooks/). `parameter` replaces the
    first code cell, which holds the notebook's one setting."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", [])
    if parameter is not None:
        first.source = parameter
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]


def figures(notebook: nbformat.NotebookNode) -> list[dict]:
    return [out for out in outputs(notebook) if out.output_type == "display_data" and "image/png" in out.data]


def text(notebook: nbformat.NotebookNode) -> str:
    return "".join(out.text for out in outputs(notebook) if out.output_type == "stream" and out.name == "stdout")


def board_rows(printed: str) -> list[list[str]]:
    """The cells of the per-board table (report.board_table), which both notebooks print last."""
    return [line.split() for line in printed.rsplit("BOARD  ", 1)[1].splitlines()[1:]]


def assert_ran_every_cell(notebook: nbformat.NotebookNode) -> None:
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code)
    assert not [out for out in outputs(notebook) if out.output_type == "error"]


def test_build_performance_on_a_given_build(big_build: Build):
    notebook = execute("build_performance.ipynb", f"BUILD_DIR = {str(big_build.out)!r}")
    assert_ran_every_cell(notebook)
    assert len(figures(notebook)) == PERFORMANCE_FIGURES
    printed = text(notebook)
    ok = sum(s["status"] == "ok" for s in big_build.report["sketches"])
    assert f"{len(big_build.report['sketches'])} sketches ({ok} ok)" in printed
    assert "framework 1 slots" in printed and "sketch    2 slots" in printed


def test_build_performance_on_a_board_matrix(tmp_path):
    notebook = execute("build_performance.ipynb", f"BUILD_DIR = {str(write_matrix_build(tmp_path / 'matrix'))!r}")
    assert_ran_every_cell(notebook)
    assert len(figures(notebook)) == PERFORMANCE_FIGURES
    printed = text(notebook)
    assert "3 sketches (1 ok)" in printed
    assert board_rows(printed) == MATRIX_BOARD_ROWS


def test_build_performance_builds_the_core_examples_when_given_no_build():
    notebook = execute("build_performance.ipynb")
    assert_ran_every_cell(notebook)
    assert len(figures(notebook)) == PERFORMANCE_FIGURES
    assert "19 sketches (19 ok)" in text(notebook)


def test_scaling_on_the_benchmark_harness_tsv(tmp_path):
    with open(HARNESS_TSV, newline="") as f:
        points = {(int(r["framework_jobs"]), int(r["sketch_jobs"])) for r in csv.DictReader(f, delimiter="\t")
                  if r["suite"] == "sweep"}
    # The TSV's builds are gone: the harness work dir holds a board matrix's build at the reference point instead.
    reference = min(sorted(points), key=sum)
    write_matrix_build(tmp_path / "sweep" / f"F{reference[0]}xS{reference[1]}")
    notebook = execute("scaling.ipynb", f"HARNESS_TSV = {str(HARNESS_TSV)!r}\nHARNESS_WORKDIR = {str(tmp_path)!r}")
    assert_ran_every_cell(notebook)
    assert len(figures(notebook)) == SCALING_FIGURES
    printed = text(notebook)
    assert all(f"F{f}xS{s} " in printed for f, s in points)
    assert board_rows(printed) == MATRIX_BOARD_ROWS


def test_scaling_runs_a_small_sweep_when_given_no_tsv():
    notebook = execute("scaling.ipynb")
    assert_ran_every_cell(notebook)
    assert len(figures(notebook)) == SCALING_FIGURES
    printed = text(notebook)
    assert "F1xS1 " in printed
    # The sweep's reference build, read back: one board, all 6 sketches ok. Cells counted from the end: a build
    # from before the board matrix leaves the BOARD cell empty.
    assert [row[-8:-4] for row in board_rows(printed)] == [["6", "6", "0", "0"]]
