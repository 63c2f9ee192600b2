"""A run for GitHub Actions: workflow commands (an annotation per diagnostic of a failed target, its log
folded in a group) and the job summary's Markdown. Pure: the report and the failed targets' logs in, text
out; cli.py prints the commands after the build and appends the summary to $GITHUB_STEP_SUMMARY.
"""

from __future__ import annotations

import hashlib
import os
from typing import Mapping, Optional

from fbuild_graph.model import BuildReport, SketchStatus
from fbuild_graph.outputs import diagnostics

# Statuses counted apart from failures: the target could not run (see SketchStatus).
_NOT_FINISHED = (SketchStatus.NOT_BUILT, SketchStatus.CANCELLED, SketchStatus.INTERRUPTED)


def escape_data(text: str) -> str:
    """A workflow command's message: the runner reads one command a line and decodes these three."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value (file=, title=): `:` ends the properties and `,` separates them, so both go too."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **properties: object) -> str:
    """`::NAME k=v,...::MESSAGE`; properties that are None are left out."""
    given = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties.items() if value is not None)
    return f"::{name}{' ' + given if given else ''}::{escape_data(message)}\n"


def annotations(report: BuildReport, logs: Mapping[str, str], workspace: Optional[str]) -> str:
    """For each failed target: every error and warning of its log on the user's file (relative to
    `workspace` when inside it), or its first error alone when the log holds none (a sketch too big, a
    library that failed); then its log in a group."""
    out = []
    for result in report.sketches:
        if result.status != SketchStatus.FAILED:
            continue
        title = f"{result.board_id} {result.id}"
        log = logs.get(result.log, "")
        found = diagnostics.parse(log)
        for d in found:
            path = diagnostics.in_workspace(diagnostics.user_path(d.path, result), workspace)
            out.append(command(d.severity, d.message, file=path, line=d.line, col=d.column, title=title))
        if not any(d.severity == "error" for d in found):
            out.append(command("error", result.error or "failed", title=title))
        out.append(command("group", title) + _verbatim(log) + command("endgroup", ""))
    return "".join(out)


def _verbatim(log: str) -> str:
    """The log with workflow commands off: a compiler echoes source lines, and a sketch's line could read as
    a command. The token ending the stretch comes from the log's digest, so no log can know it in advance."""
    token = hashlib.sha256(log.encode("utf-8", "surrogateescape")).hexdigest()
    body = log if log.endswith("\n") or not log else log + "\n"
    return f"::stop-commands::{token}\n{body}::{token}::\n"


def summary(report: BuildReport, workspace: Optional[str] = None) -> str:
    """The job summary: targets per board by outcome, each failure with its first error (its file relative
    to `workspace` when inside it), flash and RAM."""
    lines = [f"### fbuild-graph: {len(report.sketches)} targets for {len(report.boards or (report.board,))} "
             "board(s)", "", "| board | ok | failed | skipped | not finished |", "|---|---:|---:|---:|---:|"]
    for fqbn in report.boards or (report.board,):
        ours = [r for r in report.sketches if r.board == fqbn]
        counts = [sum(r.status == s for r in ours) for s in (SketchStatus.OK, SketchStatus.FAILED, SketchStatus.SKIPPED)]
        counts.append(sum(r.status in _NOT_FINISHED for r in ours))
        lines.append(f"| {_cell(fqbn)} | " + " | ".join(map(str, counts)) + " |")
    failed = [r for r in report.sketches if r.status == SketchStatus.FAILED]
    if failed:
        lines += ["", "#### Failures", "", "| board | sketch | first error |", "|---|---|---|"]
        lines += [f"| {_cell(r.board_id)} | {_cell(r.id)} | {_cell(_in_workspace(r.error or '', workspace))} |"
                  for r in failed]
    sized = [r for r in report.sketches if r.flash is not None]
    if sized:
        lines += ["", "#### Sizes", "", "| board | sketch | flash | RAM |", "|---|---|---:|---:|"]
        lines += [f"| {_cell(r.board_id)} | {_cell(r.id)} | {_use(r.flash, r.flash_max)} | {_use(r.ram, r.ram_max)} |"
                  for r in sized]
    return "\n".join(lines) + "\n\n"


def _use(used: Optional[int], maximum: Optional[int]) -> str:
    if used is None:
        return "-"
    return f"{used} / {maximum} ({100 * used / maximum:.1f}%)" if maximum else str(used)


def _cell(text: str) -> str:
    """Text inside a table cell: `|` would end the cell and `<` open HTML; Markdown takes `\\` before any
    punctuation, so these print as themselves."""
    escaped = "".join(f"\\{ch}" if ch in "\\|<>*_`[]~" else ch for ch in text)
    return " ".join(escaped.split())


def _in_workspace(error: str, workspace: Optional[str]) -> str:
    """An error line whose file is under `workspace`, with the file named relative to it."""
    root = os.path.join(os.path.abspath(workspace), "") if workspace else None
    return error[len(root):] if root and error.startswith(root) else error
