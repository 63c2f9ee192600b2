"""The sketches report of arduino/compile-sketches: one JSON file per board, which arduino/report-size-deltas
turns into a pull request's memory comment. The format is compile-sketches' own (compilesketches.py:
`get_sketch_report`, `get_sizes_from_output`, `get_size_report`, `get_sketches_report`,
`get_sizes_summary_report`, `create_sketches_report_file`), key for key and in its order, so a workflow
swaps the compile step and keeps its report step.

What differs from compile-sketches, by design: deltas (`previous`, `delta`) come from a base build's
results.json (`--base`) instead of checking out the base ref and building every sketch again; skipped
targets are left out (compile-sketches has no skips: it is never asked to build them); the warnings report
(its `enable-warnings-report`, off by default) is not written.

`build` is pure; `commit_from_environment` and `write` are the IO at the edges.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Iterable, Mapping, Optional, Sequence

from attrs import frozen

from fbuild_graph.fileio import write_atomic
from fbuild_graph.model import SketchResult, SketchStatus
from fbuild_graph.outputs.deltas import Memory, MemoryDelta, Usage, pair

NA = "N/A"  # compile-sketches' not_applicable_indicator
# compile-sketches' memory type names, which report-size-deltas uses as column headings.
SIZE_NAMES = ((Memory.FLASH, "flash"), (Memory.RAM, "RAM for global variables"))


@frozen
class Commit:
    """The commit a report is for: `hash` (empty outside a checkout, where compile-sketches cannot run) and
    `url` (empty unless the repository is known, i.e. on GitHub Actions)."""

    hash: str = ""
    url: str = ""


def report_file_name(fqbn: str) -> str:
    """compile-sketches' file name: the FQBN with `:` turned into `-`."""
    return fqbn.replace(":", "-") + ".json"


def sketch_name(path: str, workspace: str) -> str:
    """A sketch's name in the report, as compile-sketches' path_relative_to_workspace has it: its folder
    resolved and relative to the workspace, or resolved and absolute when it lies outside."""
    resolved, root = os.path.realpath(path), os.path.realpath(workspace)
    if resolved == root:
        return "."
    if resolved.startswith(root.rstrip(os.sep) + os.sep):
        return os.path.relpath(resolved, root)
    return resolved


def build(head: Sequence[SketchResult], boards: Sequence[str], commit: Commit, workspace: str,
          base: Optional[Iterable[SketchResult]] = None) -> dict[str, dict]:
    """One report per board of `boards` (file name → report). Without `base`, no deltas (compile-sketches
    without enable-deltas-report); with it, each built target's `previous` sizes are its base result's
    (`N/A` where the base has none: it failed, was skipped or did not exist, as a rebuild at the base ref
    would find)."""
    deltas = base is not None
    pairs = [(b, h) for b, h in pair(base or (), head) if h is not None]
    reports = {}
    for fqbn in boards:
        sketches = [_sketch(result, workspace, deltas, previous) for previous, result in pairs
                    if result.board == fqbn and result.status != SketchStatus.SKIPPED]
        sketches.sort(key=lambda s: s["name"])
        board: dict = {"board": fqbn, "sketches": sketches}
        summary = _sizes_summary(sketches)
        if summary:
            board["sizes"] = summary
        reports[report_file_name(fqbn)] = {"commit_hash": commit.hash, "commit_url": commit.url, "boards": [board]}
    return reports


def _sketch(result: SketchResult, workspace: str, deltas: bool, previous: Optional[SketchResult]) -> dict:
    """One sketch's entry; with `deltas`, its sizes in `previous` (its base result, None when it has none)."""
    built = result.status == SketchStatus.OK
    current = {memory: Usage.of(result, memory) for memory, _ in SIZE_NAMES}
    # compile-sketches builds the base only when the head built and some size is known.
    deltas = deltas and built and any(u.absolute is not None for u in current.values())
    sizes = []
    for memory, name in SIZE_NAMES:
        size = {"name": name, "maximum": _na(current[memory].maximum),
                "current": {"absolute": _na(current[memory].absolute), "relative": _na(current[memory].relative)}}
        if deltas:
            delta = MemoryDelta(Usage.of(previous, memory), current[memory])
            size["previous"] = {"absolute": _na(delta.base.absolute), "relative": _na(delta.base.relative)}
            size["delta"] = {"absolute": _na(delta.absolute), "relative": _na(delta.relative)}
        sizes.append(size)
    return {"name": sketch_name(result.path, workspace), "compilation_success": built, "sizes": sizes}


def _na(value):
    return NA if value is None else value


def _sizes_summary(sketches: Sequence[dict]) -> list[dict]:
    """compile-sketches' get_sizes_summary_report, rule for rule: per memory, the first known maximum and
    the smallest and largest delta (`N/A` until one is known)."""
    summary: list[dict] = []
    for sketch in sketches:
        for size in sketch["sizes"]:
            entry = next((s for s in summary if s["name"] == size["name"]), None)
            if entry is None:
                entry = {"name": size["name"]}
                summary.append(entry)
            if entry.get("maximum", NA) == NA:
                entry["maximum"] = size["maximum"]
            if "delta" not in size:
                continue
            absolute, relative = size["delta"]["absolute"], size["delta"]["relative"]
            if "delta" not in entry or entry["delta"]["absolute"]["minimum"] == NA:
                entry["delta"] = {"absolute": {"minimum": absolute, "maximum": absolute},
                                  "relative": {"minimum": relative, "maximum": relative}}
            elif absolute != NA:
                if absolute < entry["delta"]["absolute"]["minimum"]:
                    entry["delta"]["absolute"]["minimum"] = absolute
                    entry["delta"]["relative"]["minimum"] = relative
                if absolute > entry["delta"]["absolute"]["maximum"]:
                    entry["delta"]["absolute"]["maximum"] = absolute
                    entry["delta"]["relative"]["maximum"] = relative
    return summary


def commit_from(env: Mapping[str, str], event: Optional[dict], git_head: str) -> Commit:
    """The commit as compile-sketches' get_head_commit_hash finds it: a pull request's head commit from the
    event (not the merge commit GitHub checks out, which is GITHUB_SHA there), else GITHUB_SHA, else the
    checkout's HEAD (`git_head`, empty outside a checkout). The URL needs the repository (GITHUB_REPOSITORY,
    on GITHUB_SERVER_URL, else github.com as compile-sketches always has it)."""
    sha = ""
    if env.get("GITHUB_EVENT_NAME") == "pull_request" and event:
        sha = str(((event.get("pull_request") or {}).get("head") or {}).get("sha") or "")
    sha = sha or env.get("GITHUB_SHA", "") or git_head
    repository = env.get("GITHUB_REPOSITORY", "")
    server = env.get("GITHUB_SERVER_URL", "") or "https://github.com"
    return Commit(sha, f"{server.rstrip('/')}/{repository}/commit/{sha}" if sha and repository else "")


def commit_from_environment(env: Mapping[str, str], cwd: str) -> Commit:
    """commit_from with its inputs read: the event file GITHUB_EVENT_PATH names, `git rev-parse HEAD` in
    `cwd` (nothing when git is missing or `cwd` is no checkout)."""
    event = None
    if env.get("GITHUB_EVENT_NAME") == "pull_request" and env.get("GITHUB_EVENT_PATH"):
        try:
            with open(env["GITHUB_EVENT_PATH"], encoding="utf-8") as f:
                event = json.load(f)
        except (OSError, ValueError):
            event = None
    head = ""
    if not env.get("GITHUB_SHA") and event is None:
        try:
            proc = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=cwd, capture_output=True,
                                  text=True, timeout=30)
            head = proc.stdout.strip() if proc.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError):
            head = ""
    return commit_from(env, event if isinstance(event, dict) else None, head)


def to_json(report: dict) -> str:
    """As compile-sketches' json.dump(indent=2) writes it."""
    return json.dumps(report, indent=2)


def write(folder: str, reports: Mapping[str, dict]) -> list[str]:
    """Each report into `folder` (atomically); the paths written."""
    paths = []
    for name, report in sorted(reports.items()):
        path = os.path.join(folder, name)
        write_atomic(path, to_json(report))
        paths.append(path)
    return paths
