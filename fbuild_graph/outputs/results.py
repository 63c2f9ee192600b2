"""Files out: results.json (cattrs), phases.tsv, tasks.tsv, per-sketch build.log and result.json.

Every file is written to a temporary name and renamed into place, so an interrupted build never leaves a
half-written file that a reader would trust. TSV column names are stable: notebooks and benchmarks read
them.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Callable, Iterable, Mapping, Sequence

import attrs
import cattrs

from fbuild_graph.errors import FbuildError
from fbuild_graph.fileio import write_atomic, write_if_changed
from fbuild_graph.model import ActionRecord, ActionStatus, BuildReport, Kind, Owner, OwnerKind, Phase, SketchResult, SketchStatus

PHASE_COLUMNS = ("phase", "board", "start", "stop", "seconds", "cache_key", "cache")
TASK_COLUMNS = ("key", "kind", "sketch", "board", "resource", "worker", "start", "stop", "seconds", "status", "after")

_converter = cattrs.Converter()
_converter.register_unstructure_hook(Phase, lambda p: {
    "name": p.name, "start": round(p.start, 4), "stop": round(p.stop, 4), "seconds": round(p.seconds, 4),
    "cache_key": p.cache_key, "cache": p.cache, "board": p.board})


def to_json(value) -> str:
    return json.dumps(_converter.unstructure(value), indent=2, sort_keys=True) + "\n"


def write_report(out: str, report: BuildReport) -> None:
    write_atomic(os.path.join(out, "results.json"), to_json(report))


def read_report(path: str, what: str = "results.json") -> BuildReport:
    """A build's results.json read back; `path` is the file or the --out folder holding it. `what` names the
    argument in the one-line error a missing or foreign file gives. A single-board build's targets from
    before they named their board get the build's."""
    file = os.path.join(path, "results.json") if os.path.isdir(path) else path
    try:
        with open(file, encoding="utf-8") as f:
            data = json.load(f)
        report = _converter.structure(data, BuildReport)
    except FileNotFoundError:
        raise FbuildError(f"{what} {path}: no results.json there; pass the --out folder of a compile-many run") from None
    except (ValueError, TypeError, KeyError, cattrs.BaseValidationError) as exc:
        first = (str(exc).splitlines() or [""])[0]
        raise FbuildError(f"{what} {file}: not a results.json of fbuild-graph ({type(exc).__name__}: {first})") from None
    if report.board and any(not r.board for r in report.sketches):  # written before targets named their board
        report = attrs.evolve(report, sketches=tuple(r if r.board else attrs.evolve(r, board=report.board)
                                                     for r in report.sketches))
    return report


def write_sketch(sketch_dir: str, result: SketchResult) -> None:
    """Left as it is when it already says exactly this (a build with nothing to do: reading is cheaper than
    replacing, and its time stays that of the build that last changed it)."""
    write_if_changed(os.path.join(sketch_dir, "result.json"), to_json(result))


def tsv(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["\t".join(columns)]
    for row in rows:
        lines.append("\t".join(_cell(v) for v in row))
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value).replace("\t", " ").replace("\n", " ")


def write_phases(out: str, phases: Sequence[Phase]) -> None:
    rows = [(p.name, p.board, p.start, p.stop, p.seconds, p.cache_key, p.cache) for p in phases]
    write_atomic(os.path.join(out, "phases.tsv"), tsv(PHASE_COLUMNS, rows))


def write_tasks(out: str, records: Iterable[ActionRecord], t0: float, after: Mapping[str, Sequence[str]],
                board_of: Callable[[str], str]) -> None:
    """One row per action that ran or was skipped; times in seconds since the build started. `after`: the
    keys of the actions each one waited for (see plan.waits_for), separated by `|`, which no portable file
    name (and so no action key) holds. `board_of(owner)`: the id of the board an action is for."""
    rows = []
    for r in sorted(records, key=lambda r: (r.start or float("inf"), r.key)):
        ran = r.start > 0
        rows.append((r.key, r.kind, _sketch_of(r.owner), board_of(r.owner), r.resource, r.worker if ran else "",
                     r.start - t0 if ran else None, r.stop - t0 if ran else None,
                     r.stop - r.start if ran else None, r.status, "|".join(after.get(r.key, ()))))
    write_atomic(os.path.join(out, "tasks.tsv"), tsv(TASK_COLUMNS, rows))


def read_tasks(path: str) -> list[dict[str, str]]:
    """The rows of a tasks.tsv (the file, or the --out folder holding it)."""
    file = os.path.join(path, "tasks.tsv") if os.path.isdir(path) else path
    try:
        with open(file, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    except OSError:
        raise FbuildError(f"--durations {path}: no tasks.tsv there; pass the tasks.tsv or --out folder of an earlier "
                          "compile-many run") from None


def _sketch_of(owner: str) -> str:
    parsed = Owner.parse(owner) if owner else None
    return parsed.name if parsed and parsed.kind == OwnerKind.SKETCH else ""


def format_log(records: Iterable[ActionRecord], header: str = "") -> str:
    parts = [header] if header else []
    for r in records:
        if r.status in (ActionStatus.SKIPPED, ActionStatus.UP_TO_DATE, ActionStatus.CACHED):
            # What a compile or link said when it ran is said again: its warnings still hold.
            said = r.output if r.kind in (Kind.COMPILE, Kind.LINK) else ""
            parts.append(f"# {r.status}: {r.key}\n{said}")
            continue
        parts.append(f"$ {r.command}\n{r.output}")
        if r.status != ActionStatus.OK:
            parts.append(f"# {r.key} {r.status} (exit code {r.returncode})\n")
    return "".join(parts)


def format_table(results: Sequence[SketchResult], several_boards: bool = False) -> str:
    """The result table a terminal keeps; a BOARD column when the run built for several boards."""
    board = ("BOARD",) if several_boards else ()
    rows = [("STATUS", *board, "SECONDS", "FLASH", "RAM", "WARNINGS", "SKETCH", "DETAIL")]
    for r in results:
        rows.append((r.status, *((r.board_id,) if several_boards else ()), f"{r.seconds:.2f}", _use(r.flash, r.flash_max),
                     _use(r.ram, r.ram_max), str(r.warnings), r.id, r.error or os.path.join(r.out_dir, "firmware.hex")))
    last = len(rows[0]) - 1
    widths = [max(len(row[i]) for row in rows) for i in range(last)]
    return "\n".join("  ".join(cell.ljust(widths[i]) if i < last else cell for i, cell in enumerate(row)).rstrip()
                     for row in rows) + "\n"


def format_summary(report: BuildReport) -> str:
    """The line a run ends with: its targets by outcome and its wall time."""
    total = next(p.seconds for p in report.phases if p.name == "total")
    counts = {status: sum(r.status == status for r in report.sketches) for status in SketchStatus}
    skipped = f", {counts[SketchStatus.SKIPPED]} skipped" if counts[SketchStatus.SKIPPED] else ""
    not_ok = len(report.sketches) - counts[SketchStatus.OK] - counts[SketchStatus.SKIPPED]
    what = report.board or f"{len(report.boards)} boards"
    return (f"{len(report.sketches)} sketches for {what}: {counts[SketchStatus.OK]} ok, {not_ok} not ok{skipped} "
            f"in {total:.1f} s\n")


def _use(used, maximum) -> str:
    if used is None:
        return "-"
    return f"{used}/{maximum}" if maximum else str(used)
