"""Values worked out from files (a compiler's answers to a probe, say), kept between the builds of one build
service while every file they came from has the stamp it had before the value was worked out: path, size,
mtime, ctime and inode, which an edit, a replacement or a package upgrade changes. The stamps are taken
before the work, so a file changed during it is seen by the next build. A build in a process of its own
keeps nothing (`Stamped(keep=False)`): it works everything out, as it always did.

Never used for what decides whether an action is up to date: those signatures hash content on every build.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Hashable, Optional, Sequence, TypeVar

T = TypeVar("T")


def stamp(path: str) -> Optional[tuple[int, int, int, int]]:
    """(size, mtime, ctime, inode); None for a path that is not there (its appearing is a change too)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


class Stamped:
    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self._values: dict[Hashable, tuple[tuple, object]] = {}
        self._lock = threading.Lock()
        self.reused = 0

    def get(self, key: Hashable, paths: Sequence[str], work: Callable[[], T]) -> T:
        """The value `work()` gave for `key` while every one of `paths` is as it was; else `work()` again."""
        if not self.keep:
            return work()
        stamps = tuple(stamp(p) for p in paths)
        with self._lock:
            known = self._values.get(key)
        if known is not None and known[0] == stamps:
            self.reused += 1
            return known[1]  # type: ignore[return-value]
        value = work()
        with self._lock:
            self._values[key] = (stamps, value)
        return value
