"""`fbuild-graph report BUILD_DIR`: where the time went, from phases.tsv and tasks.tsv, for a terminal.

Reads only the build's output files (the TSVs' column names are the contract with notebooks and benchmarks;
results.json adds the per-board targets' outcomes), so it works on the output of any build, local or on a
cluster, and on a copy of them taken from a CI artifact.
"""

from __future__ import annotations

from typing import Sequence

from fbuild_graph.analysis import analysis
from fbuild_graph.analysis import plots

SLOWEST = 10


def text(build_dir: str) -> str:
    build = analysis.load(build_dir)
    lines = [_table(("PHASE", "START", "SECONDS", "CACHE"),
                    [(p.label, f"{p.start:.4f}", f"{p.seconds:.4f}", p.cache) for p in build.phases])]
    counts: dict[str, int] = {}
    for t in build.tasks:
        counts[t.status] = counts.get(t.status, 0) + 1
    lines.append(f"\n{len(build.tasks)} actions: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    slowest = analysis.slowest(build, SLOWEST)
    lines.append(f"\nthe {len(slowest)} slowest actions:")
    lines.append(_table(("SECONDS", "KIND", "RESOURCE", "WORKER", "KEY"),
                        [(f"{t.seconds:.4f}", t.kind, t.resource, t.worker, t.key) for t in slowest]))
    boards = analysis.per_board(build)
    # A folder from before the board matrix has no board column: its one board would be a row without a name.
    if any(b.board for b in boards):
        lines.append("\nper board:")
        lines.append(board_table(boards))
    return "\n".join(lines) + "\n"


def board_table(boards: Sequence[analysis.BoardWork]) -> str:
    """analysis.per_board's records as a table; the notebooks print the same one."""
    return _table(("BOARD", "TARGETS", "OK", "FAILED", "SKIPPED", "STAGE1_S", "STAGE2_S", "SPAN_S", "SHARE"),
                  [(b.board, b.targets, b.ok, b.failed, b.skipped, f"{b.stage1:.4f}", f"{b.stage2:.4f}",
                    f"{b.span:.4f}", f"{b.share:.1%}") for b in boards])


def timeline_png(build_dir: str, png: str) -> None:
    plt = plots.pyplot()
    plt.switch_backend("Agg")
    build = analysis.load(build_dir)
    rows = len(set(analysis.lanes(build.ran).values()))
    fig, ax = plt.subplots(figsize=(10, 1 + 0.4 * rows))
    plots.timeline(ax, build, highlight=[t.key for t in analysis.critical_path(build)])
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    rows = [tuple(header), *rows]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
