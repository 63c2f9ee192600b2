"""The actions of a build for several boards, as one list: each board's core and sketches, and each library
compiled once for every set of boards whose compiles of it would make the same objects. Pure, given
`unmentioned` (see arduino/macro_use.py), which says whether any file a compile can read names a macro.

Two boards compile a library alike when its argv, with its files placed alike, differ only in `-D` macros
that no file the compiles can read names: `uno` and `nano` differ in `-DARDUINO_AVR_UNO` against
`-DARDUINO_AVR_NANO`, which no library tests, so a library compiled for one links into the other. A
difference in anything else (the MCU, F_CPU, an include folder, the tool itself) or in a macro some file
names keeps the compiles apart. Stage-1 hooks keep them apart too: what a hook does is unknown.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence

from attrs import frozen

from fbuild_graph.model import Action, Board, Library, Owner
from fbuild_graph.planning import graph
from fbuild_graph.planning.graph import BoardPlan

Unmentioned = Callable[[frozenset[str], Sequence[Action]], bool]


@frozen
class Matrix:
    """Every board's actions, and for each board (by namespace) the owner of the unit that compiles each of
    its libraries: its own, or the board's it borrows it from."""

    actions: tuple[Action, ...]
    library_owners: Mapping[str, Mapping[str, str]]


def matrix_actions(plans: Sequence[BoardPlan], unmentioned: Unmentioned) -> Matrix:
    """Every board's actions, a library borrowed from the first earlier board that compiles it alike."""
    built: list[tuple[BoardPlan, graph.BoardActions]] = []
    owners: dict[str, dict[str, str]] = {}
    for plan in plans:
        borrowed = {}
        owners[plan.namespace] = {}
        for lib in plan.discovery.libraries:
            lender = next(((earlier, done) for earlier, done in built if _alike(plan, earlier, lib, unmentioned)),
                          None)
            if lender is not None:
                borrowed[lib.name] = lender[1].linked[lib.name]
            owners[plan.namespace][lib.name] = owners[lender[0].namespace][lib.name] if lender else str(
                Owner.library(lib.name, plan.namespace))
        built.append((plan, graph.board_actions(plan, borrowed)))
    return Matrix(actions=tuple(action for _, done in built for action in done.actions), library_owners=owners)


def _alike(mine: BoardPlan, theirs: BoardPlan, lib: Library, unmentioned: Unmentioned) -> bool:
    if lib not in theirs.discovery.libraries or stage1_hooks(mine.board) or stage1_hooks(theirs.board):
        return False
    if mine.precompiled.get(lib.name) != theirs.precompiled.get(lib.name):
        return False
    # Both planned into the lender's folders: only what the compiles themselves are told may differ.
    own = graph.library_plan(mine.board.properties, lib, mine.discovery, theirs.layout, mine.precompiled.get(lib.name))
    lent = graph.library_plan(theirs.board.properties, lib, theirs.discovery, theirs.layout,
                              theirs.precompiled.get(lib.name))
    macros = differing_macros(own, lent)
    # The tools' identities last: asking the driver what a command runs costs a process.
    return (macros is not None and [mine.toolchain(a) for a in own] == [theirs.toolchain(a) for a in lent]
            and (not macros or unmentioned(macros, [*own, *lent])))


def differing_macros(mine: Sequence[Action], theirs: Sequence[Action]) -> Optional[frozenset[str]]:
    """The names of the `-D` macros in which two lists of actions differ, token for token; None when they
    differ in anything else."""
    if len(mine) != len(theirs):
        return None
    names: set[str] = set()
    for a, b in zip(mine, theirs):
        if (a.kind, a.outputs, a.inputs, len(a.argv)) != (b.kind, b.outputs, b.inputs, len(b.argv)):
            return None
        for x, y in zip(a.argv, b.argv):
            if x == y:
                continue
            if not (x.startswith("-D") and y.startswith("-D")):
                return None
            names.update(token[2:].partition("=")[0] for token in (x, y))
    return frozenset(names)


def stage1_hooks(board: Board) -> bool:
    """Whether the board's platform has hooks around its core or libraries (what they do is unknown)."""
    return any(key.startswith(("recipe.hooks.core.", "recipe.hooks.libraries.")) for key in board.properties)


def any_hooks(board: Board) -> bool:
    """Whether the board's platform has hooks at all (one may read any file of a sketch's folder)."""
    return any(key.startswith("recipe.hooks.") for key in board.properties)
