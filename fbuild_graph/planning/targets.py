"""Targets: one sketch for one board, the unit stage 2 builds and results.json lists; and which of them a
board cannot build, said the ways libraries already say it. Pure but for `markers`, which lists a folder.

A target is skipped, with its reason in the results, when
- its sketch folder holds `.BOARD.test.skip`, or holds some `.X.test.only` but no `.BOARD.test.only` (the
  marker files Adafruit's library CI reads; BOARD is the board's id, such as `uno` or `leonardo`);
- a library it links declares other architectures only in its library.properties (arduino-cli builds it
  with a warning; a matrix would only collect the failures);
- `--exclude BOARD:GLOB` names it (globs over the board id, and over the sketch's id, name or path).

And which targets a run takes at all: `--only-failed` (those an earlier run did not build) and `--shard K/N`
(a deterministic share, balanced by earlier durations when there are some).
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections import Counter
from typing import Iterable, Mapping, Optional, Sequence

from attrs import frozen

from fbuild_graph.arduino import libraries
from fbuild_graph.errors import FbuildError
from fbuild_graph.model import Board, BuildReport, Library, Owner, Sketch, SketchStatus
from fbuild_graph.planning.layout import Layout

_MARKER = re.compile(r"^\.(.+)\.test\.(skip|only)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@frozen
class Target:
    """A sketch for a board. `board_id` names the board in this run (unique, readable); `namespace` is the
    prefix of its owners and action keys: the board id when the run has several boards, else empty, so a
    single-board build's keys, owners and folders are what they always were. `layout` is its board's.
    `libraries`: the owners of the stage-1 units it links, in link order (a library may be compiled by
    another board's unit, see matrix.py), for its log's header."""

    sketch: Sketch
    board: Board
    board_id: str
    layout: Layout
    namespace: str = ""
    skipped: Optional[str] = None
    libraries: tuple[str, ...] = ()

    @property
    def owner(self) -> str:
        return str(Owner.sketch(self.sketch.id, self.namespace))


@frozen
class Exclusion:
    """`--exclude BOARD:GLOB`."""

    board: str
    sketch: str

    @classmethod
    def parse(cls, text: str) -> "Exclusion":
        board, sep, sketch = text.partition(":")
        if not sep or not board or not sketch:
            raise FbuildError(f"--exclude {text}: expected BOARD:GLOB, such as uno:*/USB/* or *:Blink")
        return cls(board, sketch)

    def matches(self, board_id: str, sketch: Sketch) -> bool:
        return fnmatch.fnmatchcase(board_id, self.board) and any(
            fnmatch.fnmatchcase(name, self.sketch) for name in (sketch.id, sketch.name, sketch.path))


def board_ids(boards: Sequence[Board]) -> list[str]:
    """Readable, unique ids: the FQBN's board name (`uno`), with its menu choices when two boards share it
    (`mega-atmega1280`), and with its vendor and architecture too when that is not enough."""
    ids = [_safe(b.board_id) for b in boards]
    for widen in (_with_menus, _with_platform):
        counts = Counter(ids)
        ids = [widen(i, b) if counts[i] > 1 else i for i, b in zip(ids, boards)]
    twice = next((b.fqbn for b, i in zip(boards, ids) if ids.count(i) > 1), None)
    if twice:
        raise FbuildError(f"board {twice} is given twice; name each board once")
    return ids


def markers(folder: str) -> dict[str, set[str]]:
    """`skip` and `only` -> the board ids a sketch folder's marker files name."""
    found: dict[str, set[str]] = {"skip": set(), "only": set()}
    try:
        names = os.listdir(folder)
    except OSError:
        return found
    for name in names:
        match = _MARKER.match(name)
        if match:
            found[match.group(2)].add(match.group(1))
    return found


def marker_reason(marked: dict[str, set[str]], board_id: str) -> Optional[str]:
    if board_id in marked["skip"]:
        return f"skipped: the sketch folder holds .{board_id}.test.skip"
    if marked["only"] and board_id not in marked["only"]:
        named = ", ".join(f".{b}.test.only" for b in sorted(marked["only"]))
        return f"skipped: the sketch folder holds {named} and no .{board_id}.test.only"
    return None


def architecture_reason(used: Iterable[Library], board: Board) -> Optional[str]:
    archs = libraries.board_architectures(board.properties, board.architecture)
    for lib in used:
        if not libraries.runs_on(lib, archs):
            return (f"skipped: library {lib.name} is for {', '.join(lib.architectures)} (architectures= in its "
                    f"library.properties), not {', '.join(archs)}")
    return None


def exclusion_reason(exclusions: Sequence[Exclusion], board_id: str, sketch: Sketch) -> Optional[str]:
    hit = next((e for e in exclusions if e.matches(board_id, sketch)), None)
    return f"skipped: --exclude {hit.board}:{hit.sketch}" if hit else None


def not_built(report: BuildReport) -> frozenset[tuple[str, str]]:
    """(FQBN, sketch path) of each target an earlier run did not build (failed, not built, cancelled,
    interrupted): what `--only-failed` builds again."""
    done = (SketchStatus.OK, SketchStatus.SKIPPED)
    return frozenset((r.board or report.board, r.path) for r in report.sketches if r.status not in done)


def target_seconds(rows: Iterable[Mapping[str, str]]) -> dict[tuple[str, str], float]:
    """(board id, sketch id) -> the seconds its own actions ran, from tasks.tsv rows."""
    seconds: dict[tuple[str, str], float] = {}
    for row in rows:
        if row.get("sketch") and row.get("seconds"):
            key = (row.get("board", ""), row["sketch"])
            seconds[key] = seconds.get(key, 0.0) + float(row["seconds"])
    return seconds


def shard(keys: Sequence[tuple[str, str]], k: int, n: int,
          seconds: Mapping[tuple[str, str], float] = {}) -> list[tuple[str, str]]:
    """The targets of shard `k` of `n` (from 1): longest first, each onto the shard with the least work so
    far (ties: the lowest shard), so N jobs that each run this get disjoint shares that cover every target
    and take about as long. A target the durations do not know weighs their median (1 when none is known)."""
    known = sorted(seconds[key] for key in keys if key in seconds)
    typical = known[len(known) // 2] if known else 1.0
    weight = {key: seconds.get(key, typical) for key in keys}
    loads = [0.0] * n
    mine = []
    for key in sorted(keys, key=lambda key: (-weight[key], key)):
        least = min(range(n), key=lambda i: (loads[i], i))
        loads[least] += weight[key]
        if least == k - 1:
            mine.append(key)
    return mine


def parse_shard(text: str) -> tuple[int, int]:
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise FbuildError(f"--shard {text}: expected K/N with 1 <= K <= N, such as 2/3")
    return int(k), int(n)


def _with_menus(board_id: str, board: Board) -> str:
    parts = board.fqbn.split(":")
    values = [option.partition("=")[2] for option in (parts[3] if len(parts) > 3 else "").split(",") if option]
    return _safe("-".join([board_id, *values]))


def _with_platform(board_id: str, board: Board) -> str:
    return _safe("-".join([*board.fqbn.split(":")[:2], board_id]))


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("_") or "board"
