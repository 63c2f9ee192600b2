"""Turn step results, as they stream in, into per-sketch results: logs, artifacts, sizes, first errors.

A sketch is finished when all of its steps have reported. Its firmware is moved into its output folder
only when every action succeeded and the size fits the board, so a `firmware.hex` that exists is always
one this build made and accepted.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import defaultdict
from typing import Callable, Mapping, Optional, Sequence

from attrs import evolve

from . import recipes, results, transfer
from .include_probe import missing_header
from .layout import Layout
from .model import OK_STATUSES, ActionRecord, Board, Sketch, SketchResult, StepResult
from .plan import Step

FIRMWARE_FILES = tuple(f"{recipes.PROJECT_NAME}.{ext}" for ext in ("elf", "hex", "eep"))


class Collector:
    """Receives every StepResult once (`on_result`); owns the per-run state the pure parts must not."""

    def __init__(self, board: Board, sketches: Sequence[Sketch], steps: Sequence[Step], layout: Layout,
                 libraries_of: Mapping[str, Sequence[str]], t0: float,
                 view, on_stage1_ok: Callable[[str], None] = lambda owner: None):
        self.board = board
        self.layout = layout
        self.t0 = t0
        self.view = view  # progress.Lines, Live or Quiet: what a person sees as units and sketches finish
        self.on_stage1_ok = on_stage1_ok
        self.libraries_of = libraries_of
        self.sketches = {f"sketch:{s.id}": s for s in sketches}
        self.pending: dict[str, int] = defaultdict(int)
        for step in steps:
            self.pending[step.owner] += 1
        self.records: dict[str, list[ActionRecord]] = defaultdict(list)
        self.failed_owner: dict[str, str] = {}
        self.blocked_by: dict[str, str] = {}
        self.results: dict[str, SketchResult] = {}
        self.all_records: list[ActionRecord] = []
        # Client path -> digest of every output as its producing step saw it just after its tools exited.
        self.produced: dict[str, str] = {}
        self.core_error: Optional[str] = None

    def on_result(self, result: StepResult) -> bool:
        """Returns False when the build must stop (the core failed: nothing can link)."""
        if result.files:
            transfer.write_back(result.files)
        self.records[result.owner].extend(result.records)
        self.produced.update((a.path, a.sha256) for a in result.artifacts)
        # tasks.tsv needs timings, not command lines and output (those go to the logs and are dropped), so
        # memory grows with the sketch count by a small record per action only.
        self.all_records.extend(evolve(r, command="", output="") for r in result.records)
        if result.blocked_by:
            self.blocked_by.setdefault(result.owner, result.blocked_by)
        elif not result.ok:
            self.failed_owner.setdefault(result.owner, _first_error(result.records))
        self.pending[result.owner] -= 1
        if self.pending[result.owner] == 0:
            self._owner_done(result.owner)
        if result.owner == "core" and not result.ok and not result.blocked_by:
            self.core_error = self.failed_owner["core"]
            return False
        return True

    def _owner_done(self, owner: str) -> None:
        if owner in self.sketches:
            self._finish(self.sketches[owner])
            return
        records = self.records.pop(owner)
        log = self.layout.owner_log(owner)
        results.write_atomic(log, results.format_log(records))
        ok = all(r.status in OK_STATUSES for r in records)
        self.view.stage1_done(owner, ok, sum(r.stop - r.start for r in records if r.start > 0), log)
        if ok:
            self.on_stage1_ok(owner)

    def add_cached(self, owner: str, records: Sequence[ActionRecord], origin: str) -> None:
        """A stage-1 unit taken from the cache: its actions show as cached; nothing of it runs."""
        self.all_records.extend(records)
        results.write_atomic(self.layout.owner_log(owner), f"# from the cache: {origin}\n" + results.format_log(records))

    def _finish(self, sk: Sketch) -> None:
        owner = f"sketch:{sk.id}"
        records = self.records.pop(owner)
        ran = [r for r in records if r.start > 0]
        seconds = sum(r.stop - r.start for r in ran)
        log = self.layout.sketch_log(sk.id)
        error = self._error(sk, owner)
        size = next((recipes.parse_size(self.board.properties, r.output) for r in records
                     if r.kind == "size" and r.status in OK_STATUSES), None)
        flash_max, ram_max = self.board.flash_max, self.board.ram_max
        if error is None and size is not None:
            error = _size_error(size, flash_max, ram_max)
        if error:
            self._withdraw(sk)
        published = () if error else self._publish(sk)
        header = _log_header(sk, self.libraries_of.get(sk.id, ()), self.layout)
        results.write_atomic(log, results.format_log(records, header) + (f"# error: {error}\n" if error else ""))
        result = SketchResult(
            sketch=sk.name, id=sk.id, path=sk.path, status=_status(records, error), seconds=round(seconds, 3),
            out_dir=self.layout.sketch_dir(sk.id), log=log, flash=size and size.flash, flash_max=flash_max,
            ram=size and size.ram, ram_max=ram_max, error=error, artifacts=published)
        self._record(result)

    def _record(self, result: SketchResult) -> None:
        results.write_sketch(result.out_dir, result)
        self.results[result.id] = result
        self.view.sketch_done(result, len(self.results), len(self.sketches))

    def _error(self, sk: Sketch, owner: str) -> Optional[str]:
        if owner in self.failed_owner:
            error = self.failed_owner[owner]
            missing = missing_header(error)
            if missing:
                # Library detection added every library that provides a header the compile reaches.
                error += f" (no installed library provides {missing}; add one with --library-dir)"
            return error
        if owner in self.blocked_by:
            culprit = self.blocked_by[owner]
            what = "the core" if culprit == "core" else f"library {culprit.split(':', 1)[1]}"
            return f"{what} failed to compile; see {self.layout.owner_log(culprit)}"
        return None

    def _publish(self, sk: Sketch) -> tuple[str, ...]:
        """Hard-link (or copy) the firmware into the sketch's folder, each file replaced atomically. The
        build folder keeps its own link, so an unchanged sketch is up to date next time."""
        build, final = self.layout.sketch_build_dir(sk.id), self.layout.sketch_dir(sk.id)
        published = []
        for name in FIRMWARE_FILES:
            source = os.path.join(build, name)
            if os.path.isfile(source):
                target = os.path.join(final, name)
                # Renaming a link onto another link of the same file does nothing and leaves the temporary
                # name behind (rename(2)): a warm build finds the firmware already in place.
                if not (os.path.exists(target) and os.path.samefile(source, target)):
                    tmp = os.path.join(final, f".{name}.tmp{os.getpid()}")
                    try:
                        os.link(source, tmp)
                    except OSError:
                        shutil.copyfile(source, tmp)
                    os.replace(tmp, target)
                published.append(name)
        return tuple(published)

    def _withdraw(self, sk: Sketch) -> None:
        """A sketch that did not build this time keeps no firmware from an earlier build."""
        for name in FIRMWARE_FILES:
            try:
                os.remove(os.path.join(self.layout.sketch_dir(sk.id), name))
            except FileNotFoundError:
                pass

    def finish_unfinished(self, status: str, error: str) -> None:
        """Give every sketch that never finished a result (core failure or interruption), and write what
        the unfinished stage-1 owners have logged so far."""
        for owner in [o for o in self.records if o not in self.sketches]:
            results.write_atomic(self.layout.owner_log(owner), results.format_log(self.records.pop(owner)))
        for owner, sk in self.sketches.items():
            if sk.id not in self.results:
                self._withdraw(sk)
                log = self.layout.sketch_log(sk.id)
                results.write_atomic(log, results.format_log(self.records.pop(owner, []),
                                                             _log_header(sk, self.libraries_of.get(sk.id, ()), self.layout))
                                     + f"# {status}: {error}\n")
                self._record(SketchResult(sketch=sk.name, id=sk.id, path=sk.path, status=status, seconds=0.0,
                                          out_dir=self.layout.sketch_dir(sk.id), log=log, error=error,
                                          flash_max=self.board.flash_max, ram_max=self.board.ram_max))


def _log_header(sk: Sketch, libs: Sequence[str], layout: Layout) -> str:
    lines = [f"# sketch {sk.path}", f"# core: {layout.core_log}"]
    lines += [f"# library {name}: {layout.library_log(name)}" for name in libs]
    return "\n".join(lines) + "\n"


# What a person looks for first in a tool's output, best first: a compiler diagnostic, a linker's
# complaint, then anything that says error. ("collect2: error: ld returned 1" only says the linker failed.)
_ERROR_LINES = (re.compile(r"(fatal )?error: "), re.compile(r"undefined reference|multiple definition"),
                re.compile(r"error", re.IGNORECASE))


def _status(records: Sequence[ActionRecord], error: Optional[str]) -> str:
    if any(r.status == "cancelled" for r in records):
        return "cancelled"
    return "failed" if error else "ok"


def _first_error(records: Sequence[ActionRecord]) -> str:
    failed = next((r for r in records if r.status == "failed"), None)
    if failed is None:
        cancelled = any(r.status == "cancelled" for r in records)
        return "cancelled: the run was superseded" if cancelled else "failed"
    lines = [line.strip() for line in failed.output.splitlines() if line.strip() and not line.startswith("collect2")]
    for pattern in _ERROR_LINES:
        line = next((l for l in lines if pattern.search(l)), None)
        if line:
            return line[:300]
    return (lines[0] if lines else f"{failed.key} failed (exit code {failed.returncode})")[:300]


def _size_error(size: recipes.Size, flash_max: Optional[int], ram_max: Optional[int]) -> Optional[str]:
    if flash_max and size.flash > flash_max:
        return f"sketch too big: {size.flash} bytes of program storage, the board has {flash_max}"
    if ram_max and size.ram > ram_max:
        return f"not enough memory: global variables use {size.ram} bytes, the board has {ram_max}"
    return None
