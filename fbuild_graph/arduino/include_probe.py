"""Asking the preprocessor which header a source misses first, with the board's macros, and remembering it.

The command is arduino-cli's (`recipes.detect_argv`); `-H` makes the same run list every header it read. A
run's answer (the first missing header, or none) is kept in `OUT/includes.cache` under a key over what
decides it: the toolchain and its system headers, the command, the source's bytes and the headers present in
every folder it searches. Before an answer is reused, every header that run read is hashed again, so an edited
header (or one that newly shadows another in a searched folder) makes the preprocessor run again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
from typing import Mapping, Optional, Sequence

from attrs import frozen

from fbuild_graph import fileio
from fbuild_graph.arduino import recipes
from fbuild_graph.arduino.detection import Source
from fbuild_graph.errors import FbuildError
from fbuild_graph.arduino.include_scan import IncludeScan, scan
from fbuild_graph.arduino.sketch import HEADER_EXTENSIONS

_MISSING = re.compile(r"fatal error: (.+?): No such file or directory")
_READ = re.compile(r"^\.+ (.+)$", re.MULTILINE)
CACHE_FORMAT = 1


@frozen
class Answer:
    """`missing`: the first header the preprocessor could not find, or None. `read`: every header it read,
    with its digest."""

    missing: Optional[str]
    read: tuple[tuple[str, str], ...]


def missing_header(message: str) -> Optional[str]:
    """The header gcc's "No such file" error names, if it says so."""
    found = _MISSING.search(message)
    return found.group(1) if found else None


def parse(stderr: str) -> tuple[Optional[str], tuple[str, ...]]:
    """gcc's `-H` listing and its fatal error -> (first missing header, headers read in order)."""
    return missing_header(stderr), tuple(dict.fromkeys(_READ.findall(stderr)))


class Prober:
    """The preprocessor as an oracle for detection: `first_missing(source, include_dirs)`. Thread-safe:
    detection asks for many sketches at once."""

    def __init__(self, props: Mapping[str, str], identity: str, scan: IncludeScan, cache: "AnswerCache",
                 cwd: str) -> None:
        self.props = props
        self.identity = identity
        self.scan = scan
        self.cache = cache
        self.cwd = cwd  # an empty folder: gcc searches the working folder for a stdin file's quote includes
        self._listings: dict[str, str] = {}
        self._lock = threading.Lock()

    def first_missing(self, source: Source, include_dirs: Sequence[str]) -> Optional[str]:
        roots = scan(source.text) if source.text is not None else self.scan.directives(source.path)
        if not self.scan.may_reach_library(roots, source.quote_dir, include_dirs):
            return None
        argv = recipes.detect_argv(self.props, "-" if source.text is not None else source.path, include_dirs,
                                   (source.quote_dir,) if source.text is not None else ())
        key = self._key(argv, source, include_dirs)
        known = self.cache.get(key)
        if known is not None:
            return known.missing
        answer = self._run(argv, source)
        self.cache.put(key, answer)
        return answer.missing

    def _key(self, argv: Sequence[str], source: Source, include_dirs: Sequence[str]) -> str:
        h = hashlib.sha256(f"{CACHE_FORMAT}\0{self.identity}\0{json.dumps(list(argv))}\0".encode())
        h.update(hashlib.sha256(source.text).hexdigest().encode() if source.text is not None
                 else fileio.digest(source.path).encode())
        for folder in (source.quote_dir, *include_dirs):
            h.update(f"\0{folder}\0{self._listing(folder)}".encode())
        return h.hexdigest()

    def _listing(self, folder: str) -> str:
        """A digest of the headers a folder holds, walked once per build."""
        with self._lock:
            known = self._listings.get(folder)
        if known is None:
            names = sorted(os.path.relpath(os.path.join(here, name), folder)
                           for here, dirs, names in fileio.walk(folder) for name in names
                           if name.endswith(HEADER_EXTENSIONS))
            known = hashlib.sha256(json.dumps(names).encode()).hexdigest()
            with self._lock:
                self._listings[folder] = known
        return known

    def _run(self, argv: Sequence[str], source: Source) -> Answer:
        try:
            proc = subprocess.run(argv, input=source.text if source.text is not None else b"", capture_output=True,
                                  cwd=self.cwd, env={**os.environ, "LC_ALL": "C"}, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FbuildError(f"cannot run the preprocessor for {source.path}: {exc}") from None
        missing, read = parse(proc.stderr.decode("utf-8", "surrogateescape"))
        return Answer(missing=missing, read=tuple((path, _digest_or_missing(path)) for path in read))


class AnswerCache:
    """Answers by key, read from and written back to one file. Only the answers this build asked for are
    written back, so the file holds one build's worth. `runs` counts the answers the preprocessor gave this
    build, `reused` those taken from the file."""

    def __init__(self, path: Optional[str]) -> None:
        self.path = path
        self.runs = 0
        self.reused = 0
        self._known: dict[str, Answer] = {}
        self._used: dict[str, Answer] = {}
        self._digests: dict[str, str] = {}
        self._lock = threading.Lock()
        if path:
            try:
                with open(path, encoding="utf-8") as f:
                    data = json.load(f)
                if data.get("format") == CACHE_FORMAT:
                    self._known = {key: Answer(missing=entry["missing"], read=tuple(map(tuple, entry["read"])))
                                   for key, entry in data["answers"].items()}
            except (OSError, ValueError, KeyError, TypeError):
                self._known = {}  # absent or unreadable: every answer is asked again

    def get(self, key: str) -> Optional[Answer]:
        with self._lock:
            answer = self._known.get(key)
        if answer is None or not all(self._current(path) == digest for path, digest in answer.read):
            return None
        with self._lock:
            self._used[key] = answer
            self.reused += 1
        return answer

    def _current(self, path: str) -> str:
        """A header's digest now, looked up once per build: the hundreds of answers that read FastLED.h
        would otherwise each stat every header it includes."""
        with self._lock:
            known = self._digests.get(path)
        if known is None:
            known = _digest_or_missing(path)
            with self._lock:
                self._digests[path] = known
        return known

    def put(self, key: str, answer: Answer) -> None:
        with self._lock:
            self._used[key] = answer
            self.runs += 1

    def save(self) -> None:
        if not self.path or self._used == self._known:
            return
        answers = {key: {"missing": a.missing, "read": [list(r) for r in a.read]} for key, a in sorted(self._used.items())}
        fileio.write_atomic(self.path, json.dumps({"format": CACHE_FORMAT, "answers": answers}, indent=0))


def _digest_or_missing(path: str) -> str:
    try:
        return fileio.digest(path)
    except OSError:
        return "missing"
