"""Find sketches on disk and describe each one's files, as the Arduino IDE sees a sketch folder.

A sketch is a folder `X/` holding `X.ino`; its other `.ino` files are merged into one C++ file after the
main one, in C-locale order; `.c/.cpp/.S` files beside them and everything under `src/` compile too.
`.pde`, the extension of sketches older than Arduino 1.0, is a `.ino` too (as arduino-cli takes it): many
library examples still ship as `X/X.pde`.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Iterable, Sequence

from attrs import evolve

from fbuild_graph import fileio
from fbuild_graph.errors import FbuildError
from fbuild_graph.model import Sketch
from fbuild_graph.names import folder_name

SOURCE_EXTENSIONS = (".S", ".c", ".cpp")
SKETCH_EXTENSIONS = (".ino", ".pde")
HEADER_EXTENSIONS = (".h", ".hh", ".hpp", ".tpp", ".ipp", ".inc")
_SKIPPED_DIRS = {".git", ".svn", "node_modules", "__pycache__", "build", ".fbuild-graph"}


def find(args: Sequence[str]) -> list[Sketch]:
    return search(args)[0]


def search(args: Sequence[str]) -> tuple[list[Sketch], list[str]]:
    """Sketch folders, `.ino` files or folders searched recursively -> sketches with unique ids, and the
    main `.ino` paths passed over because they are not regular files (a FIFO `X/X.ino` is no sketch).
    Sketches are named by their real paths; the folders are resolved once each, not file by file."""
    found: dict[str, None] = {}
    skipped: list[str] = []
    for arg in args:
        if not os.path.exists(arg):
            raise FbuildError(f"sketch path {arg} does not exist")
        for main in _mains(arg, skipped):
            found.setdefault(main)
    return with_ids([load(main) for main in found]), skipped


def _mains(path: str, skipped: list[str]) -> list[str]:
    """The real paths of the main `.ino` files `path` names or holds."""
    if not os.path.isdir(path):
        if os.path.splitext(path)[1] not in SKETCH_EXTENSIONS or not fileio.is_regular(path):
            raise FbuildError(f"{path} is not a sketch: pass a sketch folder, a .ino file (a regular file) or a "
                              "folder of sketches")
        return [os.path.realpath(path)]
    real = os.path.realpath(path)
    for own in _main_names(real):
        if fileio.is_regular(own):
            return [os.path.realpath(own)]
        if os.path.lexists(own):
            raise FbuildError(f"{own} is not a regular file (a FIFO, socket, device or dangling link): a sketch's "
                              ".ino must be a file")
    mains: list[str] = []
    _walk_mains(path, real, mains, skipped)
    if not mains:
        inos = sorted(name for name in os.listdir(path) if name.endswith(".ino") and not name.startswith("."))
        hint = f" ({inos[0]} should be named {os.path.basename(real)}.ino)" if inos else ""
        raise FbuildError(f"no sketch found in {path}{hint}: a sketch is a folder X/ holding X.ino")
    return mains


def _walk_mains(shown: str, real: str, mains: list[str], skipped: list[str]) -> None:
    """Below a folder (`shown` as the user named it, `real` its real path), in sorted order: a folder holding
    its main `.ino` is a sketch and its subfolders hold no other; hidden and build folders are not entered,
    nor are links to folders (as os.walk). A main `.ino` that is not a regular file is `skipped` (by the
    path as the user named it)."""
    with os.scandir(real) as listing:
        entries = {entry.name: entry for entry in listing}
    name = os.path.basename(real)
    for ext in SKETCH_EXTENSIONS:
        entry = entries.get(name + ext)
        if entry is None:
            continue
        if entry.is_file():
            mains.append(os.path.realpath(entry.path) if entry.is_symlink() else entry.path)
            return
        skipped.append(os.path.join(shown, entry.name))
    for sub in sorted(n for n, e in entries.items()
                      if not n.startswith(".") and n not in _SKIPPED_DIRS and e.is_dir(follow_symlinks=False)):
        _walk_mains(os.path.join(shown, sub), os.path.join(real, sub), mains, skipped)


def _main_names(folder: str) -> list[str]:
    name = os.path.basename(folder)
    return [os.path.join(folder, f"{name}{ext}") for ext in SKETCH_EXTENSIONS]


def load(main: str) -> Sketch:
    """The sketch whose main `.ino` is `main` (a real path)."""
    folder, main_name = os.path.split(str(main))
    with os.scandir(folder) as listing:
        regular = sorted(entry.name for entry in listing if entry.is_file())
    others = [name for name in regular if os.path.splitext(name)[1] in SKETCH_EXTENSIONS and name != main_name]
    files = (*(name for name in regular if name.endswith(SOURCE_EXTENSIONS + HEADER_EXTENSIONS)),
             *_src_files(folder))
    sources = tuple(compile_order(f for f in files if f.endswith(SOURCE_EXTENSIONS)))
    stem = os.path.splitext(main_name)[0]
    return Sketch(
        id=stem,
        name=stem,
        path=folder,
        inos=(str(main), *(os.path.join(folder, name) for name in others)),
        files=files,
        sources=sources,
    )


def with_ids(sketches: Iterable[Sketch]) -> list[Sketch]:
    """Give each sketch an output folder name: its own name, or its safe form plus a path digest when two
    share it (two libraries that both ship an example `Basic`) or it is no safe folder name (`...ino`)."""
    sketches = sorted(sketches, key=lambda s: (s.name, s.path))
    counts = Counter(s.name for s in sketches)
    return [evolve(s, id=folder_name(s.name, s.path if counts[s.name] > 1 else None)) for s in sketches]


def _src_files(folder: str) -> Iterable[str]:
    """Everything under the sketch's `src/` the IDE copies beside the merged sketch (its sources and headers),
    relative to the sketch's folder."""
    src = os.path.join(folder, "src")
    if os.path.isdir(src):
        for root, dirs, files in fileio.walk(src):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(SOURCE_EXTENSIONS + HEADER_EXTENSIONS):
                    yield os.path.relpath(os.path.join(root, name), folder)


def compile_order(paths: Iterable[str]) -> list[str]:
    """arduino-builder's object order: per folder, `.S` then `.c` then `.cpp` files, each C-locale sorted,
    then the subfolders in order. The order reaches the link line and the core archive, so the firmware
    bytes depend on it."""

    def key(path: str) -> tuple:
        folder, name = os.path.split(path)
        rank = next(i for i, ext in enumerate(SOURCE_EXTENSIONS) if name.endswith(ext))
        return (_parts(folder), rank, name)

    return sorted(paths, key=key)


def merged_name(sketch_name: str) -> str:
    """The merged sketch source, named as arduino-builder names it."""
    return f"{sketch_name}.ino.cpp"


def _parts(folder: str) -> tuple[str, ...]:
    """PurePosixPath(folder).parts, without building the path object: a build sorts thousands of these."""
    root = "//" if folder.startswith("//") and not folder.startswith("///") else "/" if folder.startswith("/") else ""
    return (*((root,) if root else ()), *(part for part in folder.split("/") if part and part != "."))
