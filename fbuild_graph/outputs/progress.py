"""How a build shows itself while it runs: the views of the collector's events.

- Lines (stdout is not a terminal, as in CI): one line per finished stage-1 unit and sketch,
  `[stage2] OK   (1.3s) Blink  flash=924/32256 log=PATH`, then a summary line.
- Live (a terminal): a rich progress display with the stage, done/total, failures so far and elapsed time,
  then the result table.
- Quiet: the summary line only. Notes and errors always go to stderr.
"""

from __future__ import annotations

import sys
from typing import Optional, TextIO

from fbuild_graph.model import Owner, SketchResult, SketchStatus


class Lines:
    def __init__(self, stream: TextIO):
        self.stream = stream

    def stage1_done(self, owner: str, ok: bool, seconds: float, log: str) -> None:
        parsed = Owner.parse(owner)
        board = f"board={parsed.board}  " if parsed.board else ""
        self._line("stage1", "OK" if ok else "FAIL", seconds, parsed.name or str(parsed.kind), f"{board}log={log}")

    def sketch_done(self, result: SketchResult, done: int, total: int) -> None:
        detail = result.error if result.error else f"flash={result.flash}/{result.flash_max}"
        log = f"  log={result.log}" if result.log else ""
        self._line("stage2", _word(result.status), result.seconds, result.id, f"board={result.board_id}  {detail}{log}")

    def _line(self, stage: str, word: str, seconds: float, name: str, detail: str) -> None:
        self.stream.write(f"[{stage}] {word:<4} ({seconds:.1f}s) {name}  {detail}\n")
        self.stream.flush()

    def close(self) -> None:
        pass


class Quiet(Lines):
    def __init__(self):
        super().__init__(sys.stdout)

    def _line(self, *args) -> None:
        pass


class Live:
    """A rich progress bar on the terminal; `total` is known once the plan is made."""

    def __init__(self, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.failures = 0
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[failures]} failed"), TimeElapsedColumn(), transient=True)
        self.task = self.progress.add_task("stage 1: framework", total=total, failures=0)
        self.progress.start()

    def stage1_done(self, owner: str, ok: bool, seconds: float, log: str) -> None:
        if not ok:
            self.progress.console.print(f"[red]stage 1: {owner} failed[/red]: see {log}")

    def sketch_done(self, result: SketchResult, done: int, total: int) -> None:
        if result.status not in (SketchStatus.OK, SketchStatus.SKIPPED):
            self.failures += 1
        self.progress.update(self.task, completed=done, description="stage 2: sketches", failures=self.failures)

    def close(self) -> None:
        self.progress.stop()


def view(json: bool, quiet: bool, total: Optional[int] = None, stream: Optional[TextIO] = None):
    """The view for how we were started: lines when stdout is not a terminal (or holds --json), live on one.
    `stream` defaults to sys.stdout as it is now (the build service replaces it for each build)."""
    stream = stream or sys.stdout
    if quiet:
        return Quiet()
    if json:
        return Lines(sys.stderr)
    if stream.isatty() and total is not None:
        return Live(total)
    return Lines(stream)


def _word(status: str) -> str:
    return {"ok": "OK", "failed": "FAIL"}.get(status, status.upper())
