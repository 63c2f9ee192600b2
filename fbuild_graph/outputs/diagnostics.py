"""Compiler diagnostics read back from a target's build.log, each named by the user's own file. Pure: text in,
records out; no file is opened.

A compile does not read the user's files where they are: a sketch's `.ino`s are merged into `NAME.ino.cpp`,
whose `#line` directives name them `SKETCH/FILE.ino` (preprocess.merge), and its other files are compiled
from copies under the build folder (Layout.sketch_copies_dir); the tools run in the board's output folder,
and ccache's base_dir makes the paths they print relative to it. Library files are compiled in place.
`user_path` undoes all three, so an annotation points at the file a person edits.
"""

from __future__ import annotations

import os
import re
from typing import Optional

from attrs import frozen

from fbuild_graph.arduino.sketch import merged_name
from fbuild_graph.model import SketchResult
from fbuild_graph.planning.layout import Layout


@frozen
class Diagnostic:
    """One compiler or linker complaint: `severity` is `error` or `warning` (gcc's `fatal error` is an
    error); `column` is None when the tool gives none (the linker)."""

    path: str
    line: int
    column: Optional[int]
    severity: str
    message: str


# gcc's `FILE:LINE:COL: error: MESSAGE` (COL absent with -fno-show-column), and ld's
# `FILE:LINE: undefined reference to ...` for objects with debug information, which says no `error:`.
_COMPILER = re.compile(r"^(?P<path>[^\s:][^:]*):(?P<line>\d+):(?:(?P<column>\d+):)? "
                       r"(?P<severity>fatal error|error|warning): (?P<message>.+)$")
_LINKER = re.compile(r"^(?P<path>[^\s:][^:]*):(?P<line>\d+): (?P<message>(?:undefined reference to|multiple "
                     r"definition of) .+)$")


def parse(log: str) -> tuple[Diagnostic, ...]:
    """Every error and warning of a build.log, in order, each once. The log's own lines (`$ COMMAND`,
    `# NOTE`) are no tool's output: its closing `# error:` repeats the first error."""
    found: dict[Diagnostic, None] = {}
    for line in log.splitlines():
        if line.startswith(("$ ", "# ")):
            continue
        match = _COMPILER.match(line) or _LINKER.match(line)
        if match:
            severity = match.groupdict().get("severity") or "error"
            column = match.groupdict().get("column")
            found[Diagnostic(path=match["path"], line=int(match["line"]), column=int(column) if column else None,
                             severity="warning" if severity == "warning" else "error",
                             message=match["message"])] = None
    return tuple(found)


def user_path(path: str, result: SketchResult) -> str:
    """The absolute path of the file a person edits for a path a tool printed while building `result`; a
    file the user has no copy of (the merged `.ino.cpp`, a core header) keeps its own absolute path."""
    # result.out_dir is the target's Layout.sketch_dir(ID), OUT/sketches/ID; its tools ran in OUT (graph.py).
    layout = Layout(os.path.dirname(os.path.dirname(result.out_dir)))
    return user_file(path, result.path, result.sketch, result.id, layout)


def user_file(path: str, sketch_dir: str, sketch_name: str, sketch_id: str, layout: Layout) -> str:
    """`user_path` for a target named by its parts: its sketch folder, name and id, and its board's layout."""
    head, _, rest = path.partition("/")
    if not os.path.isabs(path) and head == os.path.basename(sketch_dir) and rest.endswith((".ino", ".pde")) \
            and "/" not in rest:
        return os.path.join(sketch_dir, rest)  # a `#line` name
    absolute = os.path.normpath(os.path.join(layout.out, path))
    copies = layout.sketch_copies_dir(sketch_id)
    if os.path.dirname(absolute) == copies and os.path.basename(absolute) == merged_name(sketch_name):
        return absolute
    if absolute.startswith(copies + os.sep):
        return os.path.join(sketch_dir, os.path.relpath(absolute, copies))
    return absolute


def with_user_path(line: str, sketch_dir: str, sketch_name: str, sketch_id: str, layout: Layout) -> str:
    """A tool's diagnostic line naming the user's file (see user_file) in place of the one the tool read;
    any other line as it is."""
    match = _COMPILER.match(line) or _LINKER.match(line)
    if not match:
        return line
    return user_file(match["path"], sketch_dir, sketch_name, sketch_id, layout) + line[match.end("path"):]


def in_workspace(path: str, workspace: Optional[str]) -> str:
    """`path` relative to `workspace` when inside it (what a CI's annotations and links expect), else as is."""
    if workspace and os.path.commonpath([os.path.abspath(workspace), path]) == os.path.abspath(workspace):
        return os.path.relpath(path, os.path.abspath(workspace))
    return path
