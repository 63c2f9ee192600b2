"""Library discovery, once for the whole batch: index the libraries on offer, then follow `#include`s.

An include resolves, in order, to a file beside the including one, a core or variant header, or a
library that provides that header (user `--library-dir`s before the platform's `libraries/`; among
several, the one named like the header). What resolves to nothing is left to the compiler, which names
it in its error. Includes are found by scanning preprocessor lines: an `#include` is a line-level
construct, so unlike function prototypes it needs no C++ parser. Includes under a false `#if` are
followed too, which can only add a library, never miss one.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from attrs import frozen

from . import fileio
from .errors import FbuildError
from .model import Library, Sketch
from .sketch import HEADER_EXTENSIONS, SOURCE_EXTENSIONS, compile_order

_INCLUDE = re.compile(rb'^[ \t]*#[ \t]*include[ \t]*[<"]([^>"\n]+)[>"]', re.MULTILINE)
_NOT_LIBRARY_CODE = {"examples", "extras", "test", "tests", "docs", ".git", ".github"}


@frozen
class Discovery:
    """Which libraries each sketch links, in arduino-builder's detection order, and each library's own
    dependency closure (the include path it compiles with). `unresolved` maps a sketch id to headers no
    library provides, for the error hint when its compile fails."""

    libraries: tuple[Library, ...]
    by_sketch: Mapping[str, tuple[str, ...]]
    closure: Mapping[str, tuple[str, ...]]
    unresolved: Mapping[str, tuple[str, ...]]


def index(library_dirs: Sequence[str], platform_path: str) -> list[Library]:
    """Every library on offer, highest priority first: user dirs in the order given, then the platform's."""
    libraries: list[Library] = []
    seen: set[str] = set()
    for folder in [*library_dirs, os.path.join(platform_path, "libraries")]:
        root = Path(os.path.abspath(folder))  # tools run in --out: a relative folder would name another place
        if not root.is_dir():
            if folder in library_dirs:
                raise FbuildError(f"library folder {folder} does not exist; pass an existing folder to --library-dir")
            continue
        candidates = [root] if _is_library(root) else [p for p in sorted(root.iterdir()) if p.is_dir()]
        for lib_root in candidates:
            lib = load(lib_root)
            if lib is not None and lib.name not in seen:
                seen.add(lib.name)
                libraries.append(lib)
    return libraries


def _is_library(folder: Path) -> bool:
    return (folder / "library.properties").is_file() or any(
        p.suffix in HEADER_EXTENSIONS for p in folder.iterdir() if p.is_file()
    )


def load(root: Path) -> Library | None:
    src = root / "src"
    if (root / "library.properties").is_file() and src.is_dir():
        name = _property(root / "library.properties", "name") or root.name
        files = list(_walk(src))
        return Library(
            name=name,
            root=str(root),
            layout="recursive",
            include_dirs=(str(src),),
            sources=tuple(str(src / f) for f in compile_order(f for f in files if f.endswith(SOURCE_EXTENSIONS))),
            headers=tuple(f for f in files if f.endswith(HEADER_EXTENSIONS)),
        )
    top = [p.name for p in sorted(root.iterdir()) if p.is_file()]
    if not any(name.endswith(HEADER_EXTENSIONS) for name in top):
        return None
    utility = root / "utility"
    util_files = [f"utility/{f}" for f in _walk(utility)] if utility.is_dir() else []
    files = [*top, *util_files]
    return Library(
        name=root.name,
        root=str(root),
        layout="flat",
        include_dirs=(str(root), *((str(utility),) if utility.is_dir() else ())),
        sources=tuple(str(root / f) for f in compile_order(f for f in files if f.endswith(SOURCE_EXTENSIONS))),
        # Flat libraries put utility/ on the include path too, so its headers resolve by bare name.
        headers=(*(f for f in files if f.endswith(HEADER_EXTENSIONS)),
                 *(f[len("utility/"):] for f in util_files if f.endswith(HEADER_EXTENSIONS))),
    )


def _property(path: Path, key: str) -> str:
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip()
    return ""


def _walk(folder: Path) -> Iterable[str]:
    for here, dirs, files in fileio.walk(str(folder)):
        dirs[:] = sorted(d for d in dirs if d not in _NOT_LIBRARY_CODE)
        for name in sorted(files):
            yield str((Path(here) / name).relative_to(folder))


@lru_cache(maxsize=None)
def includes(path: str) -> tuple[str, ...]:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return ()
    return tuple(m.decode("utf-8", "replace").strip() for m in _INCLUDE.findall(data))


def discover(sketches: Sequence[Sketch], libraries: Sequence[Library], core_dirs: Sequence[str]) -> Discovery:
    providers = _providers(libraries)
    core_headers = {h for d in core_dirs for h in _walk(Path(d)) if h.endswith(HEADER_EXTENSIONS)}
    by_name = {lib.name: lib for lib in libraries}

    def direct(files: Iterable[str]) -> tuple[list[str], list[str]]:
        """Libraries (in first-include order) and unresolved headers named by these files."""
        libs: list[str] = []
        missing: list[str] = []
        for path in files:
            for header in includes(path):
                if header in core_headers or os.path.exists(os.path.join(os.path.dirname(path), header)):
                    continue
                lib = _choose(header, providers.get(header, ()))
                target = libs if lib else missing
                name = lib.name if lib else header
                if name not in target:
                    target.append(name)
        return libs, missing

    lib_deps = {}
    for lib in libraries:
        lib_deps[lib.name] = _lib_direct(lib, direct)

    def close(start: Sequence[str], exclude: str = "") -> tuple[str, ...]:
        order: list[str] = []
        queue = list(start)
        while queue:
            name = queue.pop(0)
            if name in order or name == exclude:
                continue
            order.append(name)
            queue.extend(lib_deps[name])
        return tuple(order)

    by_sketch: dict[str, tuple[str, ...]] = {}
    unresolved: dict[str, tuple[str, ...]] = {}
    for sk in sketches:
        files = [*sk.inos, *(os.path.join(sk.path, f) for f in sk.files)]
        libs, missing = direct(files)
        by_sketch[sk.id] = close(libs)
        unresolved[sk.id] = tuple(missing)
    used = {name for libs in by_sketch.values() for name in libs}
    closure = {name: close(lib_deps[name], exclude=name) for name in sorted(used)}
    return Discovery(
        libraries=tuple(by_name[name] for name in sorted(used)),
        by_sketch=by_sketch,
        closure=closure,
        unresolved=unresolved,
    )


def _lib_direct(lib: Library, direct) -> list[str]:
    files = [*lib.sources, *(os.path.join(lib.include_dirs[0], h) for h in lib.headers)]
    libs, _ = direct(f for f in files if os.path.exists(f))
    return [name for name in libs if name != lib.name]


def _providers(libraries: Sequence[Library]) -> dict[str, list[Library]]:
    providers: dict[str, list[Library]] = {}
    for lib in libraries:
        for header in lib.headers:
            providers.setdefault(header, []).append(lib)
    return providers


def _choose(header: str, candidates: Sequence[Library]) -> Library | None:
    stem = Path(header).stem
    for lib in candidates:
        if lib.name == stem or Path(lib.root).name == stem:
            return lib
    return candidates[0] if candidates else None
