"""The notebooks run top to bottom, headless, in a real Jupyter kernel: on a given build or benchmark TSV, and
on the build or sweep they start themselves when given none. Every code cell must run and every figure show."""

from __future__ import annotations

import csv
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import Build, needs_toolchain

pytestmark = needs_toolchain

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
HARNESS_TSV = Path(__file__).parent.parent / "benchmarks" / "results" / "harness.tsv"
PERFORMANCE_FIGURES = 5  # phases, timeline, per-sketch time, critical path and stages, idle slots
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


def test_build_performance_builds_the_core_examples_when_given_no_build():
    notebook = execute("build_performance.ipynb")
    assert_ran_every_cell(notebook)
    assert len(figures(notebook)) == PERFORMANCE_FIGURES
    assert "19 sketches (19 ok)" in text(notebook)


def test_scaling_on_the_benchmark_harness_tsv():
    notebook = execute("scaling.ipynb", f"HARNESS_TSV = {str(HARNESS_TSV)!r}")
    assert_ran_every_cell(notebook)
    assert len(figures(notebook)) == SCALING_FIGURES
    with open(HARNESS_TSV, newline="") as f:
        points = {(r["framework_jobs"], r["sketch_jobs"]) for r in csv.DictReader(f, delimiter="\t")
                  if r["suite"] == "sweep"}
    printed = text(notebook)
    assert all(f"F{f}xS{s} " in printed for f, s in points)


def test_scaling_runs_a_small_sweep_when_given_no_tsv():
    notebook = execute("scaling.ipynb")
    assert_ran_every_cell(notebook)
    assert len(figures(notebook)) == SCALING_FIGURES
    assert "F1xS1 " in text(notebook)
