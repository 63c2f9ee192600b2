"""README.md opens with the two commands that set up and run the main job and the tests; CI runs the latter."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parent.parent


def _readme_commands() -> list[str]:
    lines = ROOT.joinpath("README.md").read_text().split("```sh", 1)[1].split("```", 1)[0].splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_readme_opens_with_the_main_job_and_the_test_command():
    main, tests = _readme_commands()
    assert "compile-many --board uno" in main and main.startswith("bash .ci/setup && ")
    assert "pytest" in tests and tests.startswith("bash .ci/setup && ")


def test_ci_runs_the_readme_test_command():
    ci = ROOT.joinpath(".ci", "run").read_text().splitlines()
    assert _readme_commands()[1] in ci


def test_the_main_job_names_a_real_path_and_installed_tool():
    main = _readme_commands()[0]
    words = main.split()
    assert Path(words[-1]).is_dir() or not Path("/usr/share/arduino").exists()
    assert ROOT.joinpath(".ci", "setup").is_file()
