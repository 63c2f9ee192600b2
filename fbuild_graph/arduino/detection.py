"""Library detection, once for the whole batch, as arduino-cli does it: a library counts only where the
preprocessor, with the board's macros, reaches one of its headers.

Each source is preprocessed with the include path found so far; the first header it misses selects the library
that provides it (libraries.resolve: arduino-cli's choice, for the board's architecture), whose folders join the
include path, and the source is preprocessed again, until it misses nothing (or misses a header no library
provides: its compile names it). A sketch's sources come first (the merged `.ino`, then its other files);
each library found then has its own sources detected the same way, with the core, itself and what they find
on the path, and a sketch links the closure in the order found. An `#include <SPI.h>` under `#ifdef ESP8266`
therefore links nothing on an AVR board, and a library no sketch reaches is never compiled, whatever
architecture it was written for.

Pure given its oracle: `first_missing(source, include_dirs)` (include_probe.Prober asks the compiler; tests
pass a fake).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable, Mapping, Optional, Sequence

from attrs import frozen

from fbuild_graph.arduino.libraries import Choice, providers, resolve
from fbuild_graph.model import Library, Sketch


@frozen
class Source:
    """A file library detection preprocesses. `text` holds a merged sketch, which exists nowhere on disk
    yet: it goes to the preprocessor on stdin, with `quote_dir` (the sketch folder) searched for `"..."`
    includes, as the copy beside it would be. `path` names the file; for a file on disk it is the file."""

    path: str
    quote_dir: str
    text: Optional[bytes] = None


FirstMissing = Callable[[Source, Sequence[str]], Optional[str]]


@frozen
class Discovery:
    """Which libraries each sketch links, in detection order, and each library's own dependency closure (the
    include path it compiles with); `choices`, by header, where several libraries provided a header found
    missing."""

    libraries: tuple[Library, ...]
    by_sketch: Mapping[str, tuple[str, ...]]
    closure: Mapping[str, tuple[str, ...]]
    choices: tuple[Choice, ...]


def sketch_sources(sk: Sketch, merged: bytes) -> list[Source]:
    """What detection preprocesses of a sketch: the merged `.ino` (its quote includes find the sketch's
    files, as its copy beside them does), then its other sources."""
    return [Source(path=sk.inos[0], quote_dir=sk.path, text=merged),
            *(Source(path=os.path.join(sk.path, rel), quote_dir=os.path.dirname(os.path.join(sk.path, rel)))
              for rel in sk.sources)]


def library_sources(lib: Library) -> list[Source]:
    return [Source(path=src, quote_dir=os.path.dirname(src)) for src in lib.sources]


def detect(sketches: Sequence[Sketch], merged: Callable[[Sketch], bytes], libraries: Sequence[Library],
           core_dirs: Sequence[str], first_missing: FirstMissing, arch: str, jobs: int = 1) -> Discovery:
    """`merged(sketch)` gives a sketch's merged `.ino` source; `arch` is the board's architecture (`avr`),
    which libraries are ranked for; `jobs` sketches (then libraries) are detected at once."""
    offered = providers(libraries)
    core = [d for d in core_dirs if d]
    choices: dict[str, Choice] = {}  # the same for every source that misses the header: one choice per header

    def follow(sources: Sequence[Source], start: Sequence[str], own: str = "") -> list[str]:
        """The libraries found, in order, preprocessing `sources` in turn."""
        found: list[Library] = []
        include_dirs = list(start)
        for source in sources:
            while (header := first_missing(source, tuple(include_dirs))) is not None:
                candidates = offered.get(header, [])
                lib = resolve(header, candidates, arch)
                if lib is None or any(c in found or c.name == own for c in candidates):
                    # No library has it, or one that has it is on the path already and still misses it:
                    # arduino-cli stops here, and the compile says which header it is.
                    break
                if len(candidates) > 1:
                    choices[header] = Choice(header, lib, tuple(c for c in candidates if c != lib))
                found.append(lib)
                include_dirs += lib.include_dirs
        return [lib.name for lib in found]

    by_name = {lib.name: lib for lib in libraries}
    lib_deps: dict[str, Future] = {}
    lock = threading.Lock()

    def want(names: Sequence[str]) -> None:
        """Detect each library's own sources as soon as some source first reaches it."""
        with lock:
            for name in names:
                if name not in lib_deps:
                    lib = by_name[name]
                    lib_deps[name] = pool.submit(lambda lib=lib: want_all(
                        follow(library_sources(lib), [*core, *lib.include_dirs], own=lib.name)))

    def want_all(names: list[str]) -> list[str]:
        want(names)
        return names

    jobs = max(1, jobs)
    # Sketches are queued a few at a time, so that a library reached early (its sources are detected one
    # after another) starts before the last sketches instead of after them.
    queued = threading.BoundedSemaphore(2 * jobs)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        sketch_libs = {}
        for sk in sketches:
            queued.acquire()
            sketch_libs[sk.id] = pool.submit(lambda sk=sk: want_all(follow(sketch_sources(sk, merged(sk)), core)))
            sketch_libs[sk.id].add_done_callback(lambda _: queued.release())
        direct = {sk_id: future.result() for sk_id, future in sketch_libs.items()}
        while True:  # a library's task may still add others
            with lock:
                pending = [f for f in lib_deps.values() if not f.done()]
            if not pending:
                break
            wait(pending)
    deps = {name: future.result() for name, future in lib_deps.items()}

    def close(start: Sequence[str], exclude: str = "") -> tuple[str, ...]:
        order: list[str] = []
        queue = list(start)
        while queue:
            name = queue.pop(0)
            if name not in order and name != exclude:
                order.append(name)
                queue.extend(deps[name])
        return tuple(order)

    by_sketch = {sk_id: close(libs) for sk_id, libs in direct.items()}
    used = sorted({name for libs in by_sketch.values() for name in libs})
    return Discovery(
        libraries=tuple(by_name[name] for name in used),
        by_sketch=by_sketch,
        closure={name: close(deps[name], exclude=name) for name in used},
        choices=tuple(choices[header] for header in sorted(choices)),
    )


def restrict(discovery: Discovery, kept: Sequence[str]) -> Discovery:
    """What of a discovery the sketches `kept` (ids) need: a library only a skipped sketch links is not
    built."""
    by_sketch = {sk_id: discovery.by_sketch[sk_id] for sk_id in kept}
    used = {name for libs in by_sketch.values() for name in libs}
    return Discovery(libraries=tuple(lib for lib in discovery.libraries if lib.name in used), by_sketch=by_sketch,
                     closure={name: deps for name, deps in discovery.closure.items() if name in used},
                     choices=discovery.choices)
