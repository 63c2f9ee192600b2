"""Pictures of a build (analysis.py's numbers) with matplotlib, for `fbuild-graph report --png` and the
notebooks. matplotlib is optional: only these functions import it."""

from __future__ import annotations

from typing import Iterable

from fbuild_graph.analysis.analysis import Build, lanes
from fbuild_graph.errors import FbuildError

COLOURS = {"framework": "tab:orange", "sketch": "tab:blue"}


def pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise FbuildError("pictures need matplotlib: pip install matplotlib") from None
    return plt


def timeline(ax, build: Build, highlight: Iterable[str] = ()) -> None:
    """Every action that ran as a bar on its worker's slot row, coloured by resource class; the actions in
    `highlight` (a critical path, say) get a black outline."""
    ran = build.ran
    rows = lanes(ran)
    names = sorted(set(rows.values()))
    marked = set(highlight)
    for t in ran:
        ax.barh(names.index(rows[t.key]), t.seconds, left=t.start, color=COLOURS.get(t.resource, "grey"),
                edgecolor="black" if t.key in marked else "white", linewidth=1.2 if t.key in marked else 0.3)
    ax.set_yticks(range(len(names)), [f"{worker} #{lane + 1}" for worker, lane in names])
    ax.set_xlabel("seconds since the build started")
    ax.set_title("actions per worker slot (orange: framework, blue: sketch)")
