"""`fbuild-graph report BUILD_DIR`: where the time went, from phases.tsv and tasks.tsv, for a terminal.

Reads only the TSVs (their column names are the contract with notebooks and benchmarks), so it works on
the output of any build, local or on a cluster, and on a copy of them taken from a CI artifact.
"""

from __future__ import annotations

import csv
import os
from typing import Sequence

from .errors import FbuildError

SLOWEST = 10


def read_tsv(path: str) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    except OSError:
        raise FbuildError(f"{path} not found: pass the --out folder of a compile-many run") from None


def text(build_dir: str) -> str:
    phases = read_tsv(os.path.join(build_dir, "phases.tsv"))
    tasks = read_tsv(os.path.join(build_dir, "tasks.tsv"))
    lines = [_table(("PHASE", "START", "SECONDS", "CACHE"),
                    [(p["phase"], p["start"], p["seconds"], p.get("cache", "")) for p in phases])]
    ran = sorted((t for t in tasks if t["seconds"]), key=lambda t: float(t["seconds"]), reverse=True)
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    lines.append(f"\n{len(tasks)} actions: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    lines.append(f"\nthe {min(SLOWEST, len(ran))} slowest actions:")
    lines.append(_table(("SECONDS", "KIND", "RESOURCE", "WORKER", "KEY"),
                        [(t["seconds"], t["kind"], t["resource"], t["worker"], t["key"]) for t in ran[:SLOWEST]]))
    return "\n".join(lines) + "\n"


def timeline_png(build_dir: str, png: str) -> None:
    """Every action as a bar on its worker's row, coloured by resource class."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise FbuildError("--png needs matplotlib: pip install matplotlib") from None
    tasks = [t for t in read_tsv(os.path.join(build_dir, "tasks.tsv")) if t["start"]]
    rows = _lanes(tasks)
    names = sorted(set(rows.values()))
    colours = {"framework": "tab:orange", "sketch": "tab:blue"}
    fig, ax = plt.subplots(figsize=(10, 1 + 0.4 * len(names)))
    for i, t in enumerate(tasks):
        ax.barh(names.index(rows[i]), float(t["seconds"]), left=float(t["start"]),
                color=colours.get(t["resource"], "grey"), edgecolor="white", linewidth=0.3)
    ax.set_yticks(range(len(names)), [f"{worker} #{lane + 1}" for worker, lane in names])
    ax.set_xlabel("seconds since the build started")
    ax.set_title("actions per worker (orange: framework, blue: sketch)")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def _lanes(tasks: Sequence[dict[str, str]]) -> dict[int, tuple[str, int]]:
    """Task index -> (worker, slot): tasks.tsv does not record a worker's thread, so each task takes the
    first slot of its worker that is free when it starts, which shows the slots' concurrency as rows."""
    free_at: dict[str, list[float]] = {}
    rows = {}
    for i in sorted(range(len(tasks)), key=lambda i: float(tasks[i]["start"])):
        t = tasks[i]
        slots = free_at.setdefault(t["worker"], [])
        start, stop = float(t["start"]), float(t["stop"])
        lane = next((n for n, free in enumerate(slots) if free <= start), len(slots))
        if lane == len(slots):
            slots.append(stop)
        slots[lane] = stop
        rows[i] = (t["worker"], lane)
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    rows = [tuple(header), *rows]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
