"""From the action DAG to steps: the units Dask schedules. Pure.

A step is one Dask task running one or more actions in order. In-process, a Dask task costs ~5-10 ms of
CPU (measured), CPU the compilers on the same cores want; so steps are as coarse as the schedule allows:
- a sketch's link, objcopy and size always share a step (a strict chain);
- a sketch's preprocessing and TU compiles get a step of their own only for the sketches that can
  compile while stage 1 is still running (the overlap window); the others' compiles join their firmware
  step, since they could not start earlier anyway.
The DAG and `tasks.tsv` still show every action.
"""

from __future__ import annotations

import networkx as nx

from fbuild_graph.planning.graph import actions_of, firmware_step
from fbuild_graph.model import FRAMEWORK, SKETCH, Action, Kind, Step

# Dask runs higher priorities first among ready tasks on a worker: finishing a sketch whose archives are
# ready beats starting another sketch's compile, so results stream out steadily.
PRIORITY = {"framework": 2, "firmware": 1, "compile": 0}


def steps(graph: nx.DiGraph, framework_jobs: int, sketch_jobs: int,
          cached: frozenset[str] = frozenset()) -> list[Step]:
    """Steps in a topological order: every step comes after the steps it depends on. The actions of
    `cached` owners (stage-1 units whose outputs came from the cache) are left out, and so are the
    dependencies on them: their files are in place before anything runs."""
    actions = [a for a in actions_of(graph) if a.owner not in cached]
    early = overlap_window(sum(a.resource == FRAMEWORK for a in actions), framework_jobs, sketch_jobs)
    early_sketches: set[str] = set()
    grouped: dict[str, list[Action]] = {}
    for action in actions:
        key = action.step
        if action.resource == SKETCH and action.kind in (Kind.PREPROCESS, Kind.COMPILE, Kind.HOOK) and key != firmware_step(action.owner):
            if action.owner not in early_sketches and len(early_sketches) < early:
                early_sketches.add(action.owner)
            if action.owner not in early_sketches:
                key = firmware_step(action.owner)
        grouped.setdefault(key, []).append(action)
    step_of = {a.key: key for key, group in grouped.items() for a in group}
    step_graph = nx.DiGraph()
    step_graph.add_nodes_from(grouped)
    for key, group in grouped.items():
        for action in group:
            for pred in graph.predecessors(action.key):
                if pred in step_of and step_of[pred] != key:
                    step_graph.add_edge(step_of[pred], key)
    return [
        Step(
            key=key,
            owner=grouped[key][0].owner,
            resource=grouped[key][0].resource,
            actions=tuple(grouped[key]),
            deps=tuple(sorted(step_graph.predecessors(key))),
            priority=_priority(grouped[key]),
        )
        for key in nx.lexicographical_topological_sort(step_graph)
    ]


def overlap_window(stage1_actions: int, framework_jobs: int, sketch_jobs: int) -> int:
    """How many sketches can compile while stage 1 runs: stage 1 takes about ceil(actions / jobs) rounds of
    one TU compile each, and each sketch slot compiles about one sketch per round."""
    return sketch_jobs * -(-stage1_actions // framework_jobs)


def _priority(actions: list[Action]) -> int:
    if actions[0].resource == FRAMEWORK:
        return PRIORITY["framework"]
    return PRIORITY["firmware"] if any(a.kind == Kind.LINK for a in actions) else PRIORITY["compile"]


def waits_for(graph: nx.DiGraph, steps: list[Step]) -> dict[str, tuple[str, ...]]:
    """Action key -> the actions that had to finish before it could start: the producers of its inputs and,
    inside a step, the action before it (a step runs its actions one after another). tasks.tsv records
    this so that a build's critical path can be read back from its timings alone."""
    after = {key: list(graph.predecessors(key)) for key in graph}
    for step in steps:
        for before, action in zip(step.actions, step.actions[1:]):
            if before.key not in after[action.key]:
                after[action.key].append(before.key)
    return {key: tuple(sorted(keys)) for key, keys in after.items()}
