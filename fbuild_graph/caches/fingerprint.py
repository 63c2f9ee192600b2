"""Stage-1 cache keys: a unit is keyed on what its compiles actually read, as ninja's deps log knows it.

A unit is the core (its archive and variant objects) or one library (its objects). Its base key covers
the toolchain's identity, the FQBN, the unit's command lines with the identity of each action's tool, and
the content of its own sources. What else its compiles read (headers in the core, in other libraries,
outside every library: `#include "../../cfg.h"`, `-include FILE`) is not guessed from folders: it is the
read set, every file the unit's depfiles (gcc -MMD) list, with its content digest, taken after the unit
built. An entry's key is the base key plus the current digest of every file of a read set recorded
under the base key (see stage1.py), so a lookup is a hit only if every file read then has the same
content now.

Paths are replaced by names (`$OUT`, `$CORE`, `$LIB:Wire`, ...) before hashing and in read sets, so the
same sketches and libraries in another checkout give the same keys; a file outside every named root keeps
its absolute path. Keys are per unit, not per batch: a batch that adds one library reuses the rest of
stage 1.

Known limit, shared with ninja and ccache: a header that newly appears earlier on the include path and
would shadow one the compile read is not noticed.
"""

from __future__ import annotations

import hashlib
import os
from typing import Iterable, Optional, Sequence

import networkx as nx
from attrs import frozen

from fbuild_graph import fileio
from fbuild_graph.caches import signature
from fbuild_graph.planning.layout import Layout
from fbuild_graph.arduino.detection import Discovery
from fbuild_graph.model import FRAMEWORK, HOOK, SKETCH, Action, Board, Kind, Owner

# The digest recorded for a listed file that does not exist (or cannot be read) now.
ABSENT = "absent"


@frozen
class Unit:
    """`outputs` pairs each file stage 2 reads (path relative to OUT/stage1) with its absolute path.
    `key` is the base key. `depfiles` are the depfiles its compiles write, read with `cwd` as the folder
    their relative paths start from; `roots` names the folders paths are expressed in, longest first.
    `said` pairs the same way the files where its tools' output is kept (signature.output_path), stored
    with its outputs when a tool said something (its warnings)."""

    owner: str
    key: str
    outputs: tuple[tuple[str, str], ...]
    depfiles: tuple[str, ...] = ()
    cwd: str = ""
    roots: tuple[tuple[str, str], ...] = ()
    said: tuple[tuple[str, str], ...] = ()


def stage1_units(graph: nx.DiGraph, board: Board, discovery: Discovery, layout: Layout,
                 toolchain_identity: str, namespace: str = "") -> list[Unit]:
    """The stage-1 units of one board: the owners of `namespace` (see graph.board_actions)."""
    props = board.properties
    found = {"$OUT": layout.out, "$CORE": props["build.core.path"], "$VARIANT": props.get("build.variant.path", "")}
    found.update({f"$LIB:{lib.name}": lib.root for lib in discovery.libraries})
    roots = tuple(sorted(((n, os.path.normpath(r)) for n, r in found.items() if r), key=lambda item: -len(item[1])))
    by_owner: dict[str, list[Action]] = {}
    for key in sorted(graph.nodes):
        action = graph.nodes[key]["action"]
        if action.resource == FRAMEWORK and Owner.parse(action.owner).board == namespace:
            by_owner.setdefault(action.owner, []).append(action)
    if any(a.kind == HOOK for actions in by_owner.values() for a in actions):
        return []  # what stage-1 hooks write besides their output is unknown: such a stage 1 is never cached
    stage1 = os.path.join(layout.out, "stage1")
    units = []
    for owner, actions in sorted(by_owner.items()):
        h = hashlib.sha256(f"{toolchain_identity}\0{board.fqbn}".encode())
        for action in actions:
            h.update(f"\0{action.toolchain}\0{_normalize(action.argv, roots)}".encode())
        sources = [path for action in actions if action.kind == Kind.COMPILE for path in action.inputs]
        for name, digest in current_digests([name_of(path, roots) for path in sources], roots, layout.out):
            h.update(f"\0{name}\0{digest}".encode())
        outputs = tuple(
            (os.path.relpath(path, stage1), path)
            for action in actions for path in action.outputs
            if any(graph.nodes[s]["action"].resource == SKETCH for s in graph.successors(action.key))
        )
        depfiles = tuple(d for d in map(signature.depfile, actions) if d)
        said = tuple((os.path.relpath(path, stage1), path) for path in map(signature.output_path, actions) if path)
        units.append(Unit(owner=owner, key=h.hexdigest()[:32], outputs=outputs, depfiles=depfiles, cwd=layout.out,
                          roots=roots, said=said))
    return units


def read_set(unit: Unit) -> Optional[dict[str, str]]:
    """Name -> digest of every file the unit's last compiles read, from their depfiles; None when a
    depfile or a file it lists is missing: then what the unit read is unknown and it must not be stored."""
    names = []
    for depfile in unit.depfiles:
        if not os.path.isfile(depfile):
            return None
        names += [name_of(os.path.join(unit.cwd, path), unit.roots) for path in signature.depfile_headers(depfile)]
    found = dict(current_digests(sorted(set(names)), unit.roots, unit.cwd))
    return None if ABSENT in found.values() else found


def current_digests(names: Iterable[str], roots: Sequence[tuple[str, str]], cwd: str) -> list[tuple[str, str]]:
    """(name, digest of that file now, or ABSENT), in the order given."""
    where = dict(roots)
    pairs = []
    for name in names:
        root, _, rest = name.partition(os.sep)
        path = os.path.join(where[root], rest) if root in where else None if name.startswith("$") else name
        path = path and os.path.join(cwd, path)
        try:  # only regular files: a read set from a cache layer may name anything, a FIFO included
            pairs.append((name, fileio.digest(path) if path and os.path.isfile(path) else ABSENT))
        except OSError:
            pairs.append((name, ABSENT))
    return pairs


def entry_key(node: str, pairs: Iterable[tuple[str, str]]) -> str:
    """The key of the entry, or of the next read set, for a node (a base key or an earlier entry key) and
    the current digests of the read set recorded under it."""
    h = hashlib.sha256(node.encode())
    for name, digest in pairs:
        h.update(f"\0{name}\0{digest}".encode())
    return h.hexdigest()[:32]


def name_of(path: str, roots: Sequence[tuple[str, str]]) -> str:
    """A path under a named root as NAME/rest (the longest root wins), any other path as is, normalized."""
    path = os.path.normpath(path)
    for name, root in roots:
        if path == root or path.startswith(root + os.sep):
            return name + path[len(root):]
    return path


def combined_key(units: Sequence[Unit]) -> str:
    """One key for the whole of stage 1, for phases.tsv and results.json."""
    return hashlib.sha256("\0".join(u.key for u in units).encode()).hexdigest()[:16]


def _normalize(argv: Iterable[str], roots: Sequence[tuple[str, str]]) -> str:
    line = "\x1f".join(argv)
    for name, root in roots:
        line = line.replace(root, name)
    return line
