"""README's CI workflows (issue 14) are YAML a CI reads, and every fbuild-graph command in them is one our own
parser accepts: a renamed flag fails here, not in a user's first pipeline."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from fbuild_graph import cli

README = Path(__file__).parent.parent / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```$", README.read_text(), re.MULTILINE | re.DOTALL)


def _strings(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []


def _commands(text: str) -> list[str]:
    """The fbuild-graph command lines of a shell script (a `run:` or a `script:` entry)."""
    return [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip().startswith("fbuild-graph ")]


def _workflows() -> tuple[dict, dict]:
    github, gitlab = (yaml.safe_load(block) for block in _blocks())
    return github, gitlab


def _accepted(command: str) -> None:
    """Parsed as the command line would be; a usage error exits (SystemExit), failing the test."""
    cli.parser().parse_args(shlex.split(command)[1:])


def test_readme_has_a_github_and_a_gitlab_workflow():
    github, gitlab = _workflows()
    steps = github["jobs"]["compile"]["steps"]
    assert any(step.get("uses", "").startswith("actions/checkout@") for step in steps)
    assert any("apt-get install" in step.get("run", "") and "gcc-avr" in step["run"] for step in steps)
    assert any(step.get("run", "").startswith("pip install fbuild-graph") for step in steps)
    assert any(step.get("uses", "").startswith("actions/cache/restore@") for step in steps)
    assert gitlab["compile-sketches"]["artifacts"]["reports"]["junit"] == "reports/junit.xml"


def test_every_fbuild_graph_command_in_the_workflows_is_accepted():
    github, gitlab = _workflows()
    commands = [c for workflow in (github, gitlab) for s in _strings(workflow) for c in _commands(s)]
    assert len(commands) == 5  # compile-many (GitHub: and again with --base) and cache bake
    for command in commands:
        _accepted(command)
    builds = [cli.parser().parse_args(shlex.split(c)[1:]) for c in commands if c.startswith("fbuild-graph compile-many ")]
    assert len(builds) == 3
    for args in builds:
        assert args.board == ["uno", "mega", "leonardo", "nano"] and args.annotations == "auto"
        assert args.cache_mode == "ro"
    assert [args.junit for args in builds] == ["reports/junit.xml", None, "reports/junit.xml"]
    assert [(args.sketches_report, args.base) for args in builds[:2]] == [("sketches-reports", None),
                                                                          ("sketches-reports", "base")]
