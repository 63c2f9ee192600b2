"""Memory deltas between two builds: flash and RAM of each target in a base build and a head build (two
results.json), paired, subtracted, sorted by growth. Pure: `fbuild-graph compare` and the sketches report
(sketches_report.py) read the files and print or write what this computes.

Two percentages, because two tools disagree on which one a reader wants:
- `relative`: the change as a percentage of the board's maximum (the head's), rounded to two places, as
  arduino/compile-sketches computes its `delta.relative` and report-size-deltas shows it;
- `growth`: the change as a percentage of the base size: what `--fail-on-growth PERCENT` checks.
A size that is not known (the target failed, was skipped, or exists on one side only) makes every number
that needs it `None` (compile-sketches' `N/A`); nothing is guessed.
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from typing import Iterable, Optional, Sequence

import attrs
from attrs import frozen

from fbuild_graph.model import SketchResult, SketchStatus

RELATIVE_DECIMALS = 2  # compile-sketches' relative_size_report_decimal_places


class Memory(StrEnum):
    FLASH = "flash"
    RAM = "ram"


class Change(StrEnum):
    """How a target appears in the two builds: on both sides, only in the head (ADDED) or only in the base
    (REMOVED)."""

    BOTH = "both"
    ADDED = "added"
    REMOVED = "removed"


@frozen
class Usage:
    """One memory of one target as built: `absolute` bytes used (None: not known, the target did not build)
    and the board's `maximum` (None: the board names none, or the size is not known)."""

    absolute: Optional[int] = None
    maximum: Optional[int] = None

    @classmethod
    def of(cls, result: Optional[SketchResult], memory: Memory) -> "Usage":
        """What compile-sketches reads from a build's output: nothing unless it built; the maximum only
        beside a known size."""
        if result is None or result.status != SketchStatus.OK:
            return cls()
        used, maximum = (result.flash, result.flash_max) if memory == Memory.FLASH else (result.ram, result.ram_max)
        return cls(used, maximum if used is not None else None)

    @property
    def relative(self) -> Optional[float]:
        """Percent of the maximum used, as compile-sketches rounds it."""
        return percent(self.absolute, self.maximum)


@frozen
class MemoryDelta:
    """One memory of one target in the base and the head build."""

    base: Usage
    head: Usage

    @property
    def absolute(self) -> Optional[int]:
        if self.base.absolute is None or self.head.absolute is None:
            return None
        return self.head.absolute - self.base.absolute

    @property
    def relative(self) -> Optional[float]:
        """The change in percent of the head's maximum, from the absolute values (compile-sketches)."""
        return percent(self.absolute, self.head.maximum)

    @property
    def growth(self) -> Optional[float]:
        """The change in percent of the base size; None when either is unknown or the base is 0."""
        return percent(self.absolute, self.base.absolute)

    def grew_past(self, limit: float) -> bool:
        """Grew by more than `limit` percent of the base size; any growth from nothing counts."""
        if self.absolute is None or self.absolute <= 0:
            return False
        return self.base.absolute == 0 or self.growth > limit


@frozen
class TargetDelta:
    """A target (one sketch for one board) in the two builds. `board` is its FQBN, `board_id` and `id` as the
    build named them (the head's, or the base's for a removed target); `base_status`/`head_status`: its
    SketchStatus on each side, empty where it is missing."""

    board: str
    board_id: str
    id: str
    sketch: str
    change: Change
    base_status: str
    head_status: str
    flash: MemoryDelta
    ram: MemoryDelta

    @property
    def memories(self) -> tuple[tuple[Memory, MemoryDelta], ...]:
        return ((Memory.FLASH, self.flash), (Memory.RAM, self.ram))

    def grew_past(self, limit: float) -> bool:
        return self.flash.grew_past(limit) or self.ram.grew_past(limit)


def percent(part: Optional[int], whole: Optional[int]) -> Optional[float]:
    """100 * part / whole rounded as compile-sketches rounds it; None when either is unknown or whole is 0."""
    if part is None or not whole:
        return None
    return round(100 * part / whole, RELATIVE_DECIMALS)


def pair(base: Iterable[SketchResult], head: Iterable[SketchResult]) -> list[tuple[Optional[SketchResult],
                                                                                    Optional[SketchResult]]]:
    """The same target in both builds, matched by board FQBN and sketch name; where a board has several
    sketches of one name (two libraries' `Basic` examples), by the longest common tail of their paths, so a
    base built in another checkout (another folder) still pairs. Unmatched ones pair with None. In the
    head's order, then the base's leftovers."""
    left: dict[tuple[str, str], list[SketchResult]] = {}
    for result in base:
        left.setdefault((result.board, result.sketch), []).append(result)
    pairs: list[tuple[Optional[SketchResult], Optional[SketchResult]]] = []
    for result in head:
        candidates = left.get((result.board, result.sketch), [])
        if candidates:
            best = max(candidates, key=lambda other: _common_tail(other.path, result.path))
            candidates.remove(best)
            pairs.append((best, result))
        else:
            pairs.append((None, result))
    pairs += [(result, None) for results in left.values() for result in results]
    return pairs


def _common_tail(a: str, b: str) -> int:
    parts_a, parts_b = os.path.normpath(a).split(os.sep), os.path.normpath(b).split(os.sep)
    n = 0
    while n < min(len(parts_a), len(parts_b)) and parts_a[-1 - n] == parts_b[-1 - n]:
        n += 1
    return n


def target_delta(base: Optional[SketchResult], head: Optional[SketchResult]) -> TargetDelta:
    named = head or base
    change = Change.BOTH if base and head else Change.ADDED if head else Change.REMOVED
    return TargetDelta(board=named.board, board_id=named.board_id, id=named.id, sketch=named.sketch, change=change,
                       base_status=base.status if base else "", head_status=head.status if head else "",
                       flash=MemoryDelta(Usage.of(base, Memory.FLASH), Usage.of(head, Memory.FLASH)),
                       ram=MemoryDelta(Usage.of(base, Memory.RAM), Usage.of(head, Memory.RAM)))


def compare(base: Iterable[SketchResult], head: Iterable[SketchResult]) -> tuple[TargetDelta, ...]:
    """Every target of either build but those skipped on every side it appears on, the largest growth first:
    by the larger of flash and RAM growth (then absolute change), targets without a delta last."""
    deltas = [target_delta(b, h) for b, h in pair(base, head)
              if any(r is not None and r.status != SketchStatus.SKIPPED for r in (b, h))]
    return tuple(sorted(deltas, key=_growth_order))


def _growth_order(delta: TargetDelta):
    growths = [d.growth for _, d in delta.memories if d.growth is not None]
    absolutes = [d.absolute for _, d in delta.memories if d.absolute is not None]
    known = bool(absolutes)
    return (not known, -max(growths, default=0.0), -max(absolutes, default=0), delta.board, delta.id,
            str(delta.change))


def grown_past(deltas: Iterable[TargetDelta], limit: float) -> list[TargetDelta]:
    return [d for d in deltas if d.grew_past(limit)]


def format_table(deltas: Sequence[TargetDelta]) -> str:
    """The terminal table: per target, each memory's head size and its change in bytes and in percent of
    the base size; NOTE says added, removed, or a side that did not build."""
    rows = [("BOARD", "SKETCH", "FLASH", "CHANGE", "RAM", "CHANGE", "NOTE")]
    for d in deltas:
        cells = [d.board_id or d.board, d.id]
        for _, memory in d.memories:
            cells += [_size(memory.head.absolute if d.change != Change.REMOVED else memory.base.absolute),
                      _change(memory)]
        rows.append((*cells, _note(d)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(widths[i]) if i < len(widths) else cell for i, cell in enumerate(row)).rstrip()
                     for row in rows) + "\n"


def _size(value: Optional[int]) -> str:
    return "-" if value is None else str(value)


def _change(memory: MemoryDelta) -> str:
    if memory.absolute is None:
        return "-"
    growth = memory.growth
    if growth is None:
        return f"{memory.absolute:+d} (new)" if memory.absolute else "0"
    return f"{memory.absolute:+d} ({growth:+.2f}%)" if memory.absolute else "0"


def _note(d: TargetDelta) -> str:
    if d.change != Change.BOTH:
        status = d.head_status or d.base_status
        return str(d.change) if status == SketchStatus.OK else f"{d.change} ({status})"
    sides = [f"{side} {status}" for side, status in (("base", d.base_status), ("head", d.head_status))
             if status != SketchStatus.OK]
    return ", ".join(sides)


def summary_line(deltas: Sequence[TargetDelta], limit: Optional[float]) -> str:
    grew = sum(1 for d in deltas if any((m.absolute or 0) > 0 for _, m in d.memories))
    shrank = sum(1 for d in deltas if any((m.absolute or 0) < 0 for _, m in d.memories))
    added = sum(d.change == Change.ADDED for d in deltas)
    removed = sum(d.change == Change.REMOVED for d in deltas)
    line = f"{len(deltas)} targets: {grew} grew, {shrank} shrank, {added} added, {removed} removed"
    if limit is not None:
        line += f"; {len(grown_past(deltas, limit))} grew past {limit:g}%"
    return line + "\n"


def to_json(deltas: Sequence[TargetDelta], limit: Optional[float] = None) -> str:
    """For machines: every target with, per memory, base and head (`absolute`, `maximum`, `relative`: percent
    of the maximum) and the `delta` (`absolute`, `relative`: percent of the head's maximum as compile-sketches
    has it, `growth`: percent of the base size); null where unknown. `grown_past` is set with a limit."""
    def usage(u: Usage) -> dict:
        return {"absolute": u.absolute, "maximum": u.maximum, "relative": u.relative}

    targets = []
    for d in deltas:
        item = {field.name: getattr(d, field.name) for field in attrs.fields(TargetDelta)
                if field.name not in ("flash", "ram")}
        for name, memory in d.memories:
            item[str(name)] = {"base": usage(memory.base), "head": usage(memory.head),
                               "delta": {"absolute": memory.absolute, "relative": memory.relative,
                                         "growth": memory.growth}}
        if limit is not None:
            item["grown_past"] = d.grew_past(limit)
        targets.append(item)
    document = {"targets": targets}
    if limit is not None:
        document["fail_on_growth"] = limit
    return json.dumps(document, indent=2) + "\n"
