"""Which files could reach a library: a textual walk of `#include` lines that spares most preprocessor runs.

Library detection (see detection.py) asks the preprocessor which header is missing first. The preprocessor
reaches a subset of the `#include` lines a plain scan finds, since it skips false `#if` branches. So when the
scan, following every include as gcc would resolve it (the including file's folder for `"..."`, then the
include path, then the compiler's system folders), finds no header that is missing and provided by some
library, the preprocessor cannot find one either, and the run is not needed. Anything the scan cannot
follow (`#include MACRO`, `#include_next`, a directive split by a comment or a line continuation) counts as a
possible library, so the answer errs only towards running the preprocessor.
"""

from __future__ import annotations

import os
import re
from typing import Collection, Iterable, Sequence

# Group 1: `<` or `"`; group 2: the header. A directive the literal form does not match is "computed".
_DIRECTIVE = re.compile(rb'^[ \t]*#[ \t]*(include_next|include|import)\b[ \t]*(?:([<"])([^>"\n]+)[>"])?',
                        re.MULTILINE)
_SPLIT_DIRECTIVE = re.compile(rb"^[ \t]*#[ \t]*(?:/\*|\\\r?\n)", re.MULTILINE)


class IncludeScan:
    """One detection's memo of files' include lines and of which paths are files: the sources do not change
    while a build reads them, and one detection asks about the same core headers for every sketch."""

    def __init__(self, system_dirs: Sequence[str], provided: Collection[str]) -> None:
        self.system_dirs = tuple(system_dirs)
        self.provided = provided
        self._directives: dict[str, tuple[tuple[str, str], ...]] = {}
        self._files: dict[str, bool] = {}
        self._reaches: dict[tuple[str, tuple[str, ...]], bool] = {}

    def directives(self, path: str) -> tuple[tuple[str, str], ...]:
        if path not in self._directives:
            try:
                with open(path, "rb") as f:
                    self._directives[path] = scan(f.read())
            except OSError:
                self._directives[path] = ()
        return self._directives[path]

    def _resolve(self, header: str, folders: Iterable[str]) -> str | None:
        for folder in folders:
            path = os.path.join(folder, header)
            if path not in self._files:
                self._files[path] = os.path.isfile(path)
            if self._files[path]:
                return path
        return None

    def may_reach_library(self, roots: Sequence[tuple[str, str]], quote_dir: str, include_dirs: Sequence[str]) -> bool:
        """Whether preprocessing a file whose include lines are `roots` (its quote includes searching
        `quote_dir` first) could stop at a missing header that some library provides."""
        dirs = tuple(include_dirs)
        for form, header in roots:
            reaches, found = self._follow(quote_dir, form, header, dirs)
            if reaches or (found is not None and self._header_reaches(found, dirs)):
                return True
        return False

    def _follow(self, here: str, form: str, header: str, include_dirs: tuple[str, ...]) -> tuple[bool, str | None]:
        """One include line of a file in `here`: whether it may reach a library by itself (it cannot be
        followed, or it names a header missing from the path that a library provides, and no system folder
        has), and the file it includes, if found on the path."""
        if form == "?":
            return True, None
        found = self._resolve(header, [here, *include_dirs] if form == '"' else include_dirs)
        if found is None:
            # A system header, or one that nobody provides, is no library's: the compile names it if missing.
            return header in self.provided and self._resolve(header, self.system_dirs) is None, None
        return False, found

    def _header_reaches(self, path: str, include_dirs: tuple[str, ...]) -> bool:
        """`may_reach_library` for what a header includes, once per header and include path: a hundred
        sketches that include FastLED.h walk its four hundred headers once."""
        key = (path, include_dirs)
        if key not in self._reaches:
            self._reaches[key] = self._walk(path, include_dirs)
        return self._reaches[key]

    def _walk(self, start: str, include_dirs: tuple[str, ...]) -> bool:
        seen = {start}
        pending = [(os.path.dirname(start), f, h) for f, h in self.directives(start)]
        while pending:
            reaches, found = self._follow(*pending.pop(), include_dirs)
            if reaches:
                return True
            if found is not None and found not in seen:
                seen.add(found)
                pending.extend((os.path.dirname(found), f, h) for f, h in self.directives(found))
        return False


def scan(data: bytes) -> tuple[tuple[str, str], ...]:
    """`(form, header)` per include line: form `<`, `"`, or `?` where the scan cannot follow it."""
    found = [("?", "") for _ in _SPLIT_DIRECTIVE.finditer(data)]
    for m in _DIRECTIVE.finditer(data):
        if m.group(1) != b"include" or not m.group(2):
            found.append(("?", ""))
        else:
            found.append((m.group(2).decode(), m.group(3).decode("utf-8", "surrogateescape").strip()))
    return tuple(found)
