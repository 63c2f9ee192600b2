"""The libraries on offer: found in the library folders, indexed by the headers they provide, and the
choice among several that provide the same header (user `--library-dir`s before the platform's
`libraries/`; among those, the one named like the header). Which libraries a sketch uses is detection.py's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from . import fileio
from .errors import FbuildError
from .model import Library
from .sketch import HEADER_EXTENSIONS, SOURCE_EXTENSIONS, compile_order

_NOT_LIBRARY_CODE = {"examples", "extras", "test", "tests", "docs", ".git", ".github"}


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


def providers(libraries: Sequence[Library]) -> dict[str, list[Library]]:
    """Header (as `#include` names it) -> the libraries that provide it, highest priority first."""
    offered: dict[str, list[Library]] = {}
    for lib in libraries:
        for header in lib.headers:
            offered.setdefault(header, []).append(lib)
    return offered


def choose(header: str, candidates: Sequence[Library]) -> Library | None:
    stem = Path(header).stem
    for lib in candidates:
        if lib.name == stem or Path(lib.root).name == stem:
            return lib
    return candidates[0] if candidates else None
