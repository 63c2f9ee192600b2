"""Whether a compile could see a macro: does any file it can read name it? (planning/matrix.py asks, to
compile a library once for boards whose commands differ only in such macros.)

What a compile can read is bounded by its command: the files and folders its argv names (the source, `-I`
folders, `-include` files) and the compiler's system header folders. A macro that no byte of those names
can change nothing the compiler does: `#if`, `#ifdef` and expansion all need its name spelled out. (A
name pasted together with `##` inside `#if` escapes this, which no Arduino code does; a substring match
errs the safe way.)
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Sequence

from fbuild_graph.model import Action


class MacroUse:
    """`system_dirs(compiler)`: the compiler's own include folders. Answers are kept per folder and name:
    the same core and system headers stand behind every library."""

    def __init__(self, system_dirs: Callable[[str], Sequence[str]]):
        self.system_dirs = system_dirs
        self._named: dict[tuple[str, str], bool] = {}

    def unmentioned(self, names: Iterable[str], actions: Sequence[Action]) -> bool:
        roots = dict.fromkeys(path for action in actions for path in self._readable(action))
        return not any(self._names(root, name.encode()) for root in roots for name in names)

    def _readable(self, action: Action) -> list[str]:
        found = list(self.system_dirs(action.argv[0]))
        for token in action.argv[1:]:
            for path in (token, token[2:]):
                if path and os.path.exists(path):
                    found.append(os.path.realpath(path))
        return found

    def _names(self, root: str, name: bytes) -> bool:
        key = (root, name.decode())
        if key not in self._named:
            self._named[key] = any(name in _read(path) for path in _files(root))
        return self._named[key]


def _files(root: str) -> Iterable[str]:
    if os.path.isfile(root):
        yield root
        return
    for here, _, files in os.walk(root):
        for name in files:
            yield os.path.join(here, name)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""
