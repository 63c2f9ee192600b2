"""What a run's finished owners leave on disk: logs, published firmware, each sketch's result.json.

tally.py decides when an owner is finished and what became of it. A sketch's firmware is moved into its
output folder only when every action succeeded and the size fits the board, so a `firmware.hex` that exists is
always one this build made and accepted.
"""

from __future__ import annotations

import os
import shutil
from typing import Callable, Mapping, Sequence

from fbuild_graph.arduino import recipes
from fbuild_graph.outputs import results
from fbuild_graph.execution import transfer
from fbuild_graph.planning.layout import Layout
from fbuild_graph.model import ActionRecord, Board, Sketch, SketchResult, SketchStatus, StepResult
from fbuild_graph.planning.plan import Step
from fbuild_graph.outputs.tally import SketchDone, Tally, UnitDone

FIRMWARE_FILES = tuple(f"{recipes.PROJECT_NAME}.{ext}" for ext in ("elf", "hex", "eep"))


class Collector:
    """The file side of a run's tally: writes each finished owner's log, publishes or withdraws a sketch's
    firmware, writes its result.json and tells the view. `on_stage1_ok(owner)` stores a unit in the cache."""

    def __init__(self, board: Board, sketches: Sequence[Sketch], steps: Sequence[Step], layout: Layout,
                 libraries_of: Mapping[str, Sequence[str]], view,
                 on_stage1_ok: Callable[[str], None] = lambda owner: None):
        self.tally = Tally(board, sketches, steps, layout)
        self.board = board
        self.layout = layout
        self.view = view  # progress.Lines, Live or Quiet: what a person sees as units and sketches finish
        self.on_stage1_ok = on_stage1_ok
        self.libraries_of = libraries_of
        self.total = len(sketches)
        self.results: dict[str, SketchResult] = {}

    def on_result(self, result: StepResult) -> bool:
        """Returns False when the build must stop (the core failed: nothing can link)."""
        if result.files:
            transfer.write_back(result.files)
        for done in self.tally.add(result):
            if isinstance(done, UnitDone):
                self._unit_done(done)
            else:
                self._sketch_done(done)
        return self.tally.core_error is None

    def _unit_done(self, done: UnitDone) -> None:
        log = self.layout.owner_log(done.owner)
        results.write_atomic(log, results.format_log(done.records))
        self.view.stage1_done(done.owner, done.ok, sum(r.stop - r.start for r in done.records if r.start > 0), log)
        if done.ok:
            self.on_stage1_ok(done.owner)

    def add_cached(self, owner: str, records: Sequence[ActionRecord], origin: str) -> None:
        """A stage-1 unit taken from the cache: its actions show as cached; nothing of it runs."""
        self.tally.add_cached(records)
        results.write_atomic(self.layout.owner_log(owner), f"# from the cache: {origin}\n" + results.format_log(records))

    def _sketch_done(self, done: SketchDone) -> None:
        sk = done.sketch
        published = self._publish(sk) if done.status == SketchStatus.OK else self._withdraw(sk)
        log = self.layout.sketch_log(sk.id)
        header = _log_header(sk, self.libraries_of.get(sk.id, ()), self.layout)
        ended = f"# {done.status}: {done.error}\n" if done.ended_early else f"# error: {done.error}\n" if done.error else ""
        results.write_atomic(log, results.format_log(done.records, header) + ended)
        result = SketchResult(
            sketch=sk.name, id=sk.id, path=sk.path, status=done.status, seconds=done.seconds,
            out_dir=self.layout.sketch_dir(sk.id), log=log, flash=done.size and done.size.flash,
            flash_max=self.board.flash_max, ram=done.size and done.size.ram, ram_max=self.board.ram_max,
            error=done.error, artifacts=published)
        results.write_sketch(result.out_dir, result)
        self.results[result.id] = result
        self.view.sketch_done(result, len(self.results), self.total)

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

    def _withdraw(self, sk: Sketch) -> tuple[str, ...]:
        """A sketch that did not build this time keeps no firmware from an earlier build."""
        for name in FIRMWARE_FILES:
            try:
                os.remove(os.path.join(self.layout.sketch_dir(sk.id), name))
            except FileNotFoundError:
                pass
        return ()

    def finish_unfinished(self, status: SketchStatus, error: str) -> None:
        """Give every sketch that never finished a result (core failure or interruption), and write what
        the unfinished stage-1 owners have logged so far."""
        units, sketches = self.tally.unfinished(status, error)
        for unit in units:
            results.write_atomic(self.layout.owner_log(unit.owner), results.format_log(unit.records))
        for done in sketches:
            self._sketch_done(done)


def _log_header(sk: Sketch, libs: Sequence[str], layout: Layout) -> str:
    lines = [f"# sketch {sk.path}", f"# core: {layout.core_log}"]
    lines += [f"# library {name}: {layout.library_log(name)}" for name in libs]
    return "\n".join(lines) + "\n"
