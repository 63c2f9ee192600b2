"""What a run's finished owners leave on disk: logs, published firmware, each sketch's result.json.

tally.py decides when an owner is finished and what became of it. A sketch's firmware is moved into its
output folder only when every action succeeded and the size fits the board, so a `firmware.hex` that exists is
always one this build made and accepted.
"""

from __future__ import annotations

import os
import shutil
from typing import Callable, Optional, Sequence

from fbuild_graph import fileio
from fbuild_graph.arduino import recipes
from fbuild_graph.outputs import results
from fbuild_graph.execution import transfer
from fbuild_graph.model import ActionRecord, Owner, SketchResult, SketchStatus, Step, StepResult
from fbuild_graph.planning.targets import Target
from fbuild_graph.outputs.tally import SketchDone, Tally, UnitDone

FIRMWARE_FILES = tuple(f"{recipes.PROJECT_NAME}.{ext}" for ext in ("elf", "hex", "eep"))


class Collector:
    """The file side of a run's tally: writes each finished owner's log, publishes or withdraws a target's
    firmware, writes its result.json and tells the view. `on_stage1_ok(owner)` stores a unit in the cache."""

    def __init__(self, targets: Sequence[Target], steps: Sequence[Step], view,
                 on_stage1_ok: Callable[[str], None] = lambda owner: None, warnings_as_errors: bool = False,
                 max_failures: Optional[int] = None):
        self.tally = Tally([t for t in targets if not t.skipped], steps, warnings_as_errors)
        self.max_failures = max_failures
        self.failures = 0
        self.skipped = [t for t in targets if t.skipped]
        self.view = view  # progress.Lines, Live or Quiet: what a person sees as units and targets finish
        self.on_stage1_ok = on_stage1_ok
        self.total = len(targets)
        self.results: dict[str, SketchResult] = {}  # by the target's owner

    def on_result(self, result: StepResult) -> bool:
        """Returns False when the build must stop: every board's core failed (nothing can link), or
        --max-failures targets failed."""
        if result.files:
            transfer.write_back(result.files)
        for done in self.tally.add(result):
            if isinstance(done, UnitDone):
                self._unit_done(done)
            else:
                self._sketch_done(done)
                self.failures += done.status == SketchStatus.FAILED
        return not (self.tally.every_core_failed or self.too_many_failures)

    @property
    def too_many_failures(self) -> bool:
        return self.max_failures is not None and self.failures >= self.max_failures

    def _unit_done(self, done: UnitDone) -> None:
        log = self.tally.log_of(done.owner)
        fileio.write_if_changed(log, results.format_log(done.records))
        self.view.stage1_done(done.owner, done.ok, sum(r.stop - r.start for r in done.records if r.start > 0), log)
        if done.ok:
            self.on_stage1_ok(done.owner)

    def add_cached(self, owner: str, records: Sequence[ActionRecord], origin: str) -> None:
        """A stage-1 unit taken from the cache: its actions show as cached; nothing of it runs."""
        self.tally.add_cached(owner, records)
        fileio.write_if_changed(self.tally.log_of(owner), f"# from the cache: {origin}\n" + results.format_log(records))

    def add_skipped(self) -> None:
        """The targets a board cannot build: a result saying why, and no firmware from an earlier build."""
        for target in self.skipped:
            self._withdraw(target)
            self._record(target, SketchResult(
                sketch=target.sketch.name, id=target.sketch.id, path=target.sketch.path, status=SketchStatus.SKIPPED,
                seconds=0.0, out_dir=target.layout.sketch_dir(target.sketch.id), log="",
                flash_max=target.board.flash_max, ram_max=target.board.ram_max, error=target.skipped,
                board=target.board.fqbn, board_id=target.board_id))

    def _sketch_done(self, done: SketchDone) -> None:
        target, sk = done.target, done.target.sketch
        layout = target.layout
        published = self._publish(target) if done.status == SketchStatus.OK else self._withdraw(target)
        log = layout.sketch_log(sk.id)
        header = _log_header(target, self.tally)
        ended = f"# {done.status}: {done.error}\n" if done.ended_early else f"# error: {done.error}\n" if done.error else ""
        fileio.write_if_changed(log, results.format_log(done.records, header) + ended)
        self._record(target, SketchResult(
            sketch=sk.name, id=sk.id, path=sk.path, status=done.status, seconds=done.seconds,
            out_dir=layout.sketch_dir(sk.id), log=log, flash=done.size and done.size.flash,
            flash_max=target.board.flash_max, ram=done.size and done.size.ram, ram_max=target.board.ram_max,
            error=done.error, artifacts=published, board=target.board.fqbn, board_id=target.board_id,
            warnings=done.warnings))

    def _record(self, target: Target, result: SketchResult) -> None:
        results.write_sketch(result.out_dir, result)
        self.results[target.owner] = result
        self.view.sketch_done(result, len(self.results), self.total)

    def _publish(self, target: Target) -> tuple[str, ...]:
        """Hard-link (or copy) the firmware into the target's folder, each file replaced atomically. The
        build folder keeps its own link, so an unchanged sketch is up to date next time."""
        build = target.layout.sketch_build_dir(target.sketch.id)
        final = target.layout.sketch_dir(target.sketch.id)
        published = []
        for name in FIRMWARE_FILES:
            source = os.path.join(build, name)
            if os.path.isfile(source):
                dest = os.path.join(final, name)
                # Renaming a link onto another link of the same file does nothing and leaves the temporary
                # name behind (rename(2)): a warm build finds the firmware already in place.
                if not (os.path.exists(dest) and os.path.samefile(source, dest)):
                    tmp = os.path.join(final, f".{name}.tmp{os.getpid()}")
                    try:
                        os.link(source, tmp)
                    except OSError:
                        shutil.copyfile(source, tmp)
                    os.replace(tmp, dest)
                published.append(name)
        return tuple(published)

    def _withdraw(self, target: Target) -> tuple[str, ...]:
        """A target that did not build this time keeps no firmware from an earlier build."""
        for name in FIRMWARE_FILES:
            try:
                os.remove(os.path.join(target.layout.sketch_dir(target.sketch.id), name))
            except FileNotFoundError:
                pass
        return ()

    def finish_unfinished(self, status: SketchStatus, error: str, namespace: Optional[str] = None) -> None:
        """Give every target that never finished a result (core failure or interruption), of every board or
        of the one of `namespace`, and write what the unfinished stage-1 owners have logged so far."""
        units, sketches = self.tally.unfinished(status, error, namespace)
        for unit in units:
            results.write_atomic(self.tally.log_of(unit.owner), results.format_log(unit.records))
        for done in sketches:
            self._sketch_done(done)


def _log_header(target: Target, tally: Tally) -> str:
    lines = [f"# sketch {target.sketch.path}", f"# core: {tally.log_of(str(Owner.core(target.namespace)))}"]
    lines += [f"# library {Owner.parse(owner).name}: {tally.log_of(owner)}" for owner in target.libraries]
    return "\n".join(lines) + "\n"
