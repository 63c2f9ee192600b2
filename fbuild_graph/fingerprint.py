"""Stage-1 cache keys: one function over everything that can change a unit's outputs.

A unit is the core (its archive and variant objects) or one library (its objects). Its key covers the
toolchain's identity, the FQBN, the unit's command lines and the content of every source and header they
can read: the unit's own folder, the core and variant, and the libraries it includes. Paths are replaced
by names (`$OUT`, `$CORE`, `$LIB:Wire`, ...) before hashing, so the same sketches and libraries in another
checkout give the same keys. Keys are per unit, not per batch: a batch that adds one library reuses the
rest of stage 1.
"""

from __future__ import annotations

import hashlib
import os
from typing import Iterable, Mapping, Sequence

import networkx as nx
from attrs import frozen

from . import fileio
from .layout import Layout
from .libraries import Discovery
from .model import FRAMEWORK, SKETCH, Action, Board


@frozen
class Unit:
    """`outputs` pairs each file stage 2 reads (path relative to OUT/stage1) with its absolute path."""

    owner: str
    key: str
    outputs: tuple[tuple[str, str], ...]


def stage1_units(graph: nx.DiGraph, board: Board, discovery: Discovery, layout: Layout,
                 toolchain_identity: str) -> list[Unit]:
    props = board.properties
    roots = {"$OUT": layout.out, "$CORE": props["build.core.path"], "$VARIANT": props.get("build.variant.path", "")}
    roots.update({f"$LIB:{lib.name}": lib.root for lib in discovery.libraries})
    by_owner: dict[str, list[Action]] = {}
    for key in sorted(graph.nodes):
        action = graph.nodes[key]["action"]
        if action.resource == FRAMEWORK:
            by_owner.setdefault(action.owner, []).append(action)
    base = [toolchain_identity, board.fqbn]
    trees: dict[str, str] = {}  # one digest per folder per build: the core is read once, not once per unit
    stage1 = os.path.join(layout.out, "stage1")
    units = []
    for owner, actions in sorted(by_owner.items()):
        reads = ["$CORE", "$VARIANT"]
        if owner.startswith("lib:"):
            name = owner.split(":", 1)[1]
            reads += [f"$LIB:{dep}" for dep in (name, *discovery.closure[name])]
        h = hashlib.sha256("\0".join(base).encode())
        for action in actions:
            h.update(b"\0" + _normalize(action.argv, roots).encode())
        for name in reads:
            if name not in trees:
                trees[name] = _tree_digest(roots[name])
            h.update(f"\0{name}\0{trees[name]}".encode())
        outputs = tuple(
            (os.path.relpath(path, stage1), path)
            for action in actions for path in action.outputs
            if any(graph.nodes[s]["action"].resource == SKETCH for s in graph.successors(action.key))
        )
        units.append(Unit(owner=owner, key=h.hexdigest()[:32], outputs=outputs))
    return units


def combined_key(units: Sequence[Unit]) -> str:
    """One key for the whole of stage 1, for phases.tsv and results.json."""
    return hashlib.sha256("\0".join(u.key for u in units).encode()).hexdigest()[:16]


def _normalize(argv: Iterable[str], roots: Mapping[str, str]) -> str:
    line = "\x1f".join(argv)
    for name, root in sorted(roots.items(), key=lambda item: -len(item[1])):
        if root:
            line = line.replace(root, name)
    return line


def _tree_digest(top: str) -> str:
    h = hashlib.sha256()
    if top:
        for here, dirs, files in fileio.walk(top):
            dirs[:] = sorted(d for d in dirs if d not in ("examples", "extras", ".git"))
            for name in sorted(files):
                path = os.path.join(here, name)
                with open(path, "rb") as f:
                    h.update(f"\0{os.path.relpath(path, top)}\0".encode() + hashlib.sha256(f.read()).digest())
    return h.hexdigest()
