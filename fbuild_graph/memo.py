"""Values worked out from files (a compiler's answers to a probe, say), kept between the builds of one build
service while every file they came from has the stamp it had before the value was worked out: path, size,
mtime, ctime and inode, which an edit, a replacement or a package upgrade changes. The stamps are taken
before the work, so a file changed during it is seen by the next build. A build in a process of its own
keeps them in a file of its output folder (`Stamped.in_file`), under the same rule: each value is taken again
only while every stamp it was kept with is the same; a file that cannot be read is no memo.

Never used for what decides whether an action is up to date: those signatures hash content on every build.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Callable, Hashable, Optional, Sequence, TypeVar

from fbuild_graph import fileio

T = TypeVar("T")


def stamp(path: str) -> Optional[tuple[int, int, int, int]]:
    """(size, mtime, ctime, inode); None for a path that is not there (its appearing is a change too)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


class Stamped:
    """`path`: the file the values are read from and saved to (`in_file`); None: kept in this process only.
    Keys and values of a kept file are JSON (strings, numbers, None, tuples of them)."""

    def __init__(self, keep: bool = True, path: Optional[str] = None) -> None:
        self.keep = keep
        self.path = path
        self._values: dict[Hashable, tuple[tuple, object]] = {}
        self._lock = threading.Lock()
        self._saved = ""
        self._used: set[Hashable] = set()  # what this process asked for: all a kept file keeps
        self.reused = 0

    @classmethod
    def in_file(cls, path: str) -> "Stamped":
        memo = cls(keep=True, path=path)
        try:
            with open(path, encoding="utf-8") as f:
                memo._saved = f.read()
            memo._values = {_tupled(key): (_tupled(stamps), _tupled(value)) for key, stamps, value in json.loads(memo._saved)}
        except (OSError, ValueError, TypeError):
            memo._values = {}
        return memo

    def save(self) -> None:
        """The values into `path` (by whoever holds the output folder's lock), when they changed."""
        if self.path is None:
            return
        with self._lock:
            text = json.dumps([[key, stamps, value] for key, (stamps, value) in self._values.items()
                               if key in self._used])
        if text != self._saved:
            fileio.write_atomic(self.path, text)
            self._saved = text

    def get(self, key: Hashable, paths: Sequence[str], work: Callable[[], T]) -> T:
        """The value `work()` gave for `key` while every one of `paths` is as it was; else `work()` again."""
        if not self.keep:
            return work()
        stamps = tuple(stamp(p) for p in paths)
        with self._lock:
            self._used.add(key)
            known = self._values.get(key)
        if known is not None and known[0] == stamps:
            self.reused += 1
            return known[1]  # type: ignore[return-value]
        value = work()
        with self._lock:
            self._values[key] = (stamps, value)
        return value


def _tupled(value: object) -> object:
    """JSON's lists back into the tuples they were."""
    return tuple(map(_tupled, value)) if isinstance(value, list) else value
