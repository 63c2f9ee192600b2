"""From the action DAG to steps: the units Dask schedules. Pure.

A step is one Dask task running one or more actions in order. Most steps hold one action. A sketch's
preprocessing and the compile of its merged `.ino.cpp` share a step, and so do its link, objcopy and
size: those chains are strictly sequential, and at ~1-3 ms of scheduling overhead per Dask task the
saving is worth it at hundreds of sketches. The DAG and `tasks.tsv` still show every action.
"""

from __future__ import annotations

from attrs import frozen
import networkx as nx

from .graph import actions_of
from .model import FRAMEWORK, Action

# Dask runs higher priorities first among ready tasks on a worker: finishing a sketch whose archives are
# ready beats starting another sketch's compile, so results stream out steadily.
PRIORITY = {"framework": 2, "firmware": 1, "compile": 0}


@frozen
class Step:
    key: str
    owner: str
    resource: str
    actions: tuple[Action, ...]
    deps: tuple[str, ...]
    priority: int


def steps(graph: nx.DiGraph) -> list[Step]:
    """Steps in a topological order: every step comes after the steps it depends on."""
    grouped: dict[str, list[Action]] = {}
    for action in actions_of(graph):
        grouped.setdefault(action.step, []).append(action)
    step_graph = nx.DiGraph()
    step_graph.add_nodes_from(grouped)
    for key, actions in grouped.items():
        for action in actions:
            for pred in graph.predecessors(action.key):
                dep = graph.nodes[pred]["action"].step
                if dep != key:
                    step_graph.add_edge(dep, key)
    order = list(nx.lexicographical_topological_sort(step_graph))
    return [
        Step(
            key=key,
            owner=grouped[key][0].owner,
            resource=grouped[key][0].resource,
            actions=tuple(grouped[key]),
            deps=tuple(sorted(step_graph.predecessors(key))),
            priority=_priority(grouped[key]),
        )
        for key in order
    ]


def _priority(actions: list[Action]) -> int:
    if actions[0].resource == FRAMEWORK:
        return PRIORITY["framework"]
    return PRIORITY["firmware"] if any(a.kind == "link" for a in actions) else PRIORITY["compile"]
