"""Find sketches on disk and describe each one's files, as the Arduino IDE sees a sketch folder.

A sketch is a folder `X/` holding `X.ino`; its other `.ino` files are merged into one C++ file after the
main one, in C-locale order; `.c/.cpp/.S` files beside them and everything under `src/` compile too.
`.pde`, the extension of sketches older than Arduino 1.0, is a `.ino` too (as arduino-cli takes it): many
library examples still ship as `X/X.pde`.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
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
    main `.ino` paths passed over because they are not regular files (a FIFO `X/X.ino` is no sketch)."""
    found: dict[str, Path] = {}
    skipped: list[str] = []
    for arg in args:
        path = Path(arg)
        if not path.exists():
            raise FbuildError(f"sketch path {arg} does not exist")
        for main in _mains(path, skipped):
            found.setdefault(str(main.resolve()), main.resolve())
    return with_ids([load(main) for main in found.values()]), skipped


def _mains(path: Path, skipped: list[str]) -> list[Path]:
    if not path.is_dir():
        if path.suffix not in SKETCH_EXTENSIONS or not path.is_file():
            raise FbuildError(f"{path} is not a sketch: pass a sketch folder, a .ino file (a regular file) or a "
                              "folder of sketches")
        return [path]
    for own in _main_names(path.resolve()):
        if own.is_file():
            return [own]
        if os.path.lexists(own):
            raise FbuildError(f"{own} is not a regular file (a FIFO, socket, device or dangling link): a sketch's "
                              ".ino must be a file")
    mains = []
    for folder, dirs, files in fileio.walk(str(path)):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for main in _main_names(Path(folder)):
            if main.name in files:
                mains.append(main)
                dirs[:] = []  # a sketch's own subfolders (src/) hold no other sketches
                break
            if os.path.lexists(main):
                skipped.append(str(main))
    if not mains:
        inos = sorted(path.glob("*.ino"))
        hint = f" ({inos[0].name} should be named {path.resolve().name}.ino)" if inos else ""
        raise FbuildError(f"no sketch found in {path}{hint}: a sketch is a folder X/ holding X.ino")
    return mains


def _main_names(folder: Path) -> list[Path]:
    return [folder / f"{folder.name}{ext}" for ext in SKETCH_EXTENSIONS]


def load(main: Path) -> Sketch:
    folder = main.parent
    others = sorted(p.name for p in folder.iterdir() if p.suffix in SKETCH_EXTENSIONS and p.name != main.name
                    and fileio.is_regular(str(p)))
    files = tuple(_walk_files(folder))
    sources = tuple(compile_order(f for f in files if f.endswith(SOURCE_EXTENSIONS)))
    return Sketch(
        id=main.stem,
        name=main.stem,
        path=str(folder),
        inos=(str(main), *(str(folder / name) for name in others)),
        files=files,
        sources=sources,
    )


def with_ids(sketches: Iterable[Sketch]) -> list[Sketch]:
    """Give each sketch an output folder name: its own name, or its safe form plus a path digest when two
    share it (two libraries that both ship an example `Basic`) or it is no safe folder name (`...ino`)."""
    sketches = sorted(sketches, key=lambda s: (s.name, s.path))
    counts = Counter(s.name for s in sketches)
    return [evolve(s, id=folder_name(s.name, s.path if counts[s.name] > 1 else None)) for s in sketches]


def _walk_files(folder: Path) -> Iterable[str]:
    """Files the IDE copies beside the merged sketch: the root's sources and headers, and all of `src/`."""
    for entry in sorted(os.listdir(folder)):
        if (folder / entry).is_file() and entry.endswith(SOURCE_EXTENSIONS + HEADER_EXTENSIONS):
            yield entry
    src = folder / "src"
    if src.is_dir():
        for root, dirs, files in fileio.walk(str(src)):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(SOURCE_EXTENSIONS + HEADER_EXTENSIONS):
                    yield str((Path(root) / name).relative_to(folder))


def compile_order(paths: Iterable[str]) -> list[str]:
    """arduino-builder's object order: per folder, `.S` then `.c` then `.cpp` files, each C-locale sorted,
    then the subfolders in order. The order reaches the link line and the core archive, so the firmware
    bytes depend on it."""

    def key(path: str) -> tuple:
        folder, name = os.path.split(path)
        rank = next(i for i, ext in enumerate(SOURCE_EXTENSIONS) if name.endswith(ext))
        return (tuple(Path(folder).parts), rank, name)

    return sorted(paths, key=key)


def merged_name(sketch_name: str) -> str:
    """The merged sketch source, named as arduino-builder names it."""
    return f"{sketch_name}.ino.cpp"
