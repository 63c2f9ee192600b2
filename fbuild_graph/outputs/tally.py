"""The tally of a run: step results in, finished owners out. Pure: it holds records, writes no file.

An owner (the core, a library, a sketch) is finished when all of its steps have reported. A finished sketch's
outcome is decided here: its first error (its own tool's, or the library or core it waited for, or a size
over the board's), its size, its status. collect.py does what follows with files.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Optional, Sequence, Union

from attrs import evolve, frozen

from fbuild_graph.arduino import recipes
from fbuild_graph.arduino.include_probe import missing_header
from fbuild_graph.outputs import diagnostics
from fbuild_graph.model import OK_STATUSES, ActionRecord, ActionStatus, Kind, Owner, OwnerKind, SketchStatus, Step, StepResult
from fbuild_graph.planning.targets import Target

@frozen
class UnitDone:
    """A stage-1 owner (a board's `core`, `lib:NAME`) whose steps have all reported."""

    owner: str
    records: tuple[ActionRecord, ...]
    ok: bool


@frozen
class SketchDone:
    """A target whose steps have all reported, or (`ended_early`) that will get no more: the run stopped."""

    target: Target
    records: tuple[ActionRecord, ...]
    status: str
    error: Optional[str]
    size: Optional[recipes.Size] = None
    ended_early: bool = False
    warnings: int = 0

    @property
    def seconds(self) -> float:
        """The time its actions took this build; an up-to-date action took none (its check's few microseconds
        would make an unchanged sketch's result.json differ from one build to the next)."""
        return 0.0 if self.ended_early else round(sum((r.stop - r.start for r in self.records
                                                       if r.start > 0 and r.status != ActionStatus.UP_TO_DATE), 0.0), 3)


Finished = Union[UnitDone, SketchDone]


class Tally:
    """Receives every StepResult once (`add`) and says which owners it finished. `targets`: those that run
    (skipped ones have no steps)."""

    def __init__(self, targets: Sequence[Target], steps: Sequence[Step], warnings_as_errors: bool = False):
        self.targets = {t.owner: t for t in targets}
        self.warnings_as_errors = warnings_as_errors
        self.warnings: dict[str, int] = {}  # stage-1 owner -> its tools' warnings
        self.layouts = {t.namespace: t.layout for t in targets}
        self.pending: dict[str, int] = defaultdict(int)
        for step in steps:
            self.pending[step.owner] += 1
        self.records: dict[str, list[ActionRecord]] = defaultdict(list)
        self.failed_owner: dict[str, str] = {}
        self.blocked_by: dict[str, str] = {}
        self.finished: set[str] = set()
        # Every action's record without its command and output (those go to the logs), for tasks.tsv: memory
        # grows with the target count by a small record per action only.
        self.all_records: list[ActionRecord] = []
        # Client path -> digest of every output as its producing step saw it just after its tools exited.
        self.produced: dict[str, str] = {}
        # Board namespace -> the first error of its core, which no target of that board can link without.
        self.core_errors: dict[str, str] = {}

    def add(self, result: StepResult) -> list[Finished]:
        self.records[result.owner].extend(result.records)
        self.produced.update((a.path, a.sha256) for a in result.artifacts)
        self.all_records.extend(evolve(r, command="", output="") for r in result.records)
        if result.blocked_by:
            self.blocked_by.setdefault(result.owner, result.blocked_by)
        elif not result.ok:
            self.failed_owner.setdefault(result.owner, first_error(result.records))
        owner = Owner.parse(result.owner)
        if owner.kind == OwnerKind.CORE and not result.ok and not result.blocked_by:
            self.core_errors.setdefault(owner.board, self.failed_owner[result.owner])
        self.pending[result.owner] -= 1
        return [self._done(result.owner)] if self.pending[result.owner] == 0 else []

    @property
    def every_core_failed(self) -> bool:
        """Nothing more can link: the run may stop."""
        return set(self.core_errors) >= set(self.layouts)

    def add_cached(self, owner: str, records: Sequence[ActionRecord]) -> None:
        """A stage-1 unit taken from the cache: its actions show as cached; nothing of it runs."""
        self.all_records.extend(evolve(r, output="") for r in records)
        self.warnings[owner] = count_warnings(records)

    def log_of(self, owner: str) -> str:
        """The log of a stage-1 owner, in its own board's folder (a library may be another board's)."""
        return self.layouts[Owner.parse(owner).board].owner_log(owner)

    def _done(self, owner: str) -> Finished:
        records = tuple(self.records.pop(owner))
        target = self.targets.get(owner)
        if target is None:
            self.warnings[owner] = count_warnings(records)
            return UnitDone(owner=owner, records=records, ok=all(r.status in OK_STATUSES for r in records))
        self.finished.add(owner)
        error = self._error(owner)
        size = next((recipes.parse_size(target.board.properties, r.output) for r in records
                     if r.kind == Kind.SIZE and r.status in OK_STATUSES), None)
        if error is None and size is not None:
            error = size_error(size, target.board.flash_max, target.board.ram_max)
        warnings = count_warnings(records) + sum(self.warnings.get(lib, 0) for lib in target.libraries)
        if error is None and warnings and self.warnings_as_errors:
            first = first_warning(records) or "in a library it links: see its log"
            error = f"{warnings} warning{'s' if warnings > 1 else ''} and --warnings-as-errors: {first}"
        return SketchDone(target=target, records=records, status=_status(records, error), error=error, size=size,
                          warnings=warnings)

    def _error(self, owner: str) -> Optional[str]:
        if owner in self.failed_owner:
            target = self.targets[owner]
            # The file the person edits, as arduino-cli names it, not the copy or the `#line` name the tool read.
            error = diagnostics.with_user_path(self.failed_owner[owner], target.sketch.path, target.sketch.name,
                                               target.sketch.id, target.layout)
            missing = missing_header(error)
            if missing:
                # Library detection added every library that provides a header the compile reaches.
                error += f" (no installed library provides {missing}; add one with --library-dir)"
            return error
        if owner in self.blocked_by:
            culprit = Owner.parse(self.blocked_by[owner])
            what = "the core" if culprit.kind == OwnerKind.CORE else f"library {culprit.name}"
            return f"{what} failed to compile; see {self.log_of(self.blocked_by[owner])}"
        return None

    def unfinished(self, status: SketchStatus, error: str,
                   namespace: Optional[str] = None) -> tuple[list[UnitDone], list[SketchDone]]:
        """Close the run early (a core failure, an interruption), for every board or the one of `namespace`:
        what the unfinished stage-1 owners logged so far, and an outcome with `status` for every target that
        never finished."""
        def ours(owner: str) -> bool:
            return namespace is None or Owner.parse(owner).board == namespace

        units = [UnitDone(owner=o, records=tuple(self.records.pop(o)), ok=False)
                 for o in [o for o in self.records if o not in self.targets and ours(o)]]
        sketches = []
        for owner, target in self.targets.items():
            if owner not in self.finished and ours(owner):
                self.finished.add(owner)
                sketches.append(SketchDone(target=target, records=tuple(self.records.pop(owner, [])), status=status,
                                           error=error, ended_early=True))
        return units, sketches


# What a person looks for first in a tool's output, best first: a compiler diagnostic, a linker's
# complaint, then anything that says error. ("collect2: error: ld returned 1" only says the linker failed.)
_ERROR_LINES = (re.compile(r"(fatal )?error: "), re.compile(r"undefined reference|multiple definition"),
                re.compile(r"error", re.IGNORECASE))


_WARNING = re.compile(r": warning: ")


def count_warnings(records: Sequence[ActionRecord]) -> int:
    return sum(1 for r in records for line in r.output.splitlines() if _WARNING.search(line))


def first_warning(records: Sequence[ActionRecord]) -> Optional[str]:
    return next((line.strip()[:300] for r in records for line in r.output.splitlines() if _WARNING.search(line)), None)


def _status(records: Sequence[ActionRecord], error: Optional[str]) -> str:
    if any(r.status == ActionStatus.CANCELLED for r in records):
        return SketchStatus.CANCELLED
    return SketchStatus.FAILED if error else SketchStatus.OK


def first_error(records: Sequence[ActionRecord]) -> str:
    failed = next((r for r in records if r.status == ActionStatus.FAILED), None)
    if failed is None:
        cancelled = any(r.status == ActionStatus.CANCELLED for r in records)
        return "cancelled: the run was superseded" if cancelled else "failed"
    lines = [line.strip() for line in failed.output.splitlines() if line.strip() and not line.startswith("collect2")]
    for pattern in _ERROR_LINES:
        line = next((l for l in lines if pattern.search(l)), None)
        if line:
            return line[:300]
    return (lines[0] if lines else f"{failed.key} failed (exit code {failed.returncode})")[:300]


def size_error(size: recipes.Size, flash_max: Optional[int], ram_max: Optional[int]) -> Optional[str]:
    if flash_max and size.flash > flash_max:
        return f"sketch too big: {size.flash} bytes of program storage, the board has {flash_max}"
    if ram_max and size.ram > ram_max:
        return f"not enough memory: global variables use {size.ram} bytes, the board has {ram_max}"
    return None
