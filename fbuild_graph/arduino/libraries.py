"""The libraries on offer: found in the library folders, indexed by the headers they provide, and the choice
among several that provide the same header, as arduino-cli makes it (its librariesresolver/cpp.go:
ComputePriority, ResolveFor). Which libraries a sketch uses is detection.py's; how a library links
(`dot_a_linkage`, `precompiled`) is graph.py's, from `precompiled` here for the board's folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

from attrs import evolve, frozen

from fbuild_graph import fileio
from fbuild_graph.arduino import properties
from fbuild_graph.arduino import recipes
from fbuild_graph.errors import FbuildError
from fbuild_graph.model import Library, LibraryLocation
from fbuild_graph.arduino.sketch import HEADER_EXTENSIONS, SOURCE_EXTENSIONS, compile_order

_NOT_LIBRARY_CODE = {"examples", "extras", "test", "tests", "docs", ".git", ".github"}


def index(library_dirs: Sequence[str], platform_path: str, core_platform_path: str = "") -> list[Library]:
    """Every library on offer: user dirs in the order given, then the platform's, then those of the platform
    whose core the board uses, when that is another (`build.core=VENDOR:CORE`). A library whose name an
    earlier folder already offers is skipped, because names key the build's outputs and logs (`lib:NAME`):
    the user's copy of a platform library replaces it, where arduino-cli would weigh both for each header
    (and take the user's unless it is declared for other architectures only)."""
    libraries: list[Library] = []
    seen: set[str] = set()
    platforms = [(platform_path, LibraryLocation.PLATFORM)]
    if core_platform_path and core_platform_path != platform_path:
        platforms.append((core_platform_path, LibraryLocation.REFERENCED_PLATFORM))
    folders = [*library_dirs, *(os.path.join(path, "libraries") for path, _ in platforms)]
    for position, folder in enumerate(folders):
        user = position < len(library_dirs)
        root = Path(os.path.abspath(folder))  # tools run in --out: a relative folder would name another place
        if not root.is_dir():
            if user:
                raise FbuildError(f"library folder {folder} does not exist; pass an existing folder to --library-dir")
            continue
        if user and _is_library(root):
            candidates, location = [root], LibraryLocation.UNMANAGED
        else:
            candidates = [p for p in sorted(root.iterdir()) if p.is_dir()]
            location = LibraryLocation.USER if user else platforms[position - len(library_dirs)][1]
        for lib_root in candidates:
            lib = load(lib_root, location)
            if lib is not None and lib.name not in seen:
                seen.add(lib.name)
                libraries.append(lib)
    return libraries


def _is_library(folder: Path) -> bool:
    return (folder / "library.properties").is_file() or any(
        p.suffix in HEADER_EXTENSIONS for p in folder.iterdir() if p.is_file()
    )


def load(root: Path, location: LibraryLocation) -> Library | None:
    declared = root / "library.properties"
    props = properties.load(declared) if declared.is_file() else {}
    src = root / "src"
    if declared.is_file() and src.is_dir():
        files = list(_walk(src))
        lib = Library(
            name=props.get("name") or root.name,
            root=str(root),
            layout="recursive",
            include_dirs=(str(src),),
            sources=tuple(str(src / f) for f in compile_order(f for f in files if f.endswith(SOURCE_EXTENSIONS))),
            headers=tuple(f for f in files if f.endswith(HEADER_EXTENSIONS)),
        )
    else:
        top = [p.name for p in sorted(root.iterdir()) if p.is_file()]
        if not any(name.endswith(HEADER_EXTENSIONS) for name in top):
            return None
        utility = root / "utility"
        util_files = [f"utility/{f}" for f in _walk(utility)] if utility.is_dir() else []
        files = [*top, *util_files]
        lib = Library(
            name=props.get("name") or root.name,
            root=str(root),
            layout="flat",
            include_dirs=(str(root), *((str(utility),) if utility.is_dir() else ())),
            sources=tuple(str(root / f) for f in compile_order(f for f in files if f.endswith(SOURCE_EXTENSIONS))),
            # Flat libraries put utility/ on the include path too, so its headers resolve by bare name.
            headers=(*(f for f in files if f.endswith(HEADER_EXTENSIONS)),
                     *(f[len("utility/"):] for f in util_files if f.endswith(HEADER_EXTENSIONS))),
        )
    # Read as arduino-cli's loader reads them (libraries/loader.go): values trimmed, no architectures
    # meaning all, dot_a_linkage a case-blind `true` honoured for the 1.5 layout only (its flat branch
    # compiles objects and never archives), precompiled exactly `true` or `full`.
    return evolve(
        lib,
        location=location,
        architectures=tuple(arch.strip() for arch in (props.get("architectures") or "*").split(",")),
        dot_a_linkage=lib.layout == "recursive" and props.get("dot_a_linkage", "").lower() == "true",
        precompiled=props.get("precompiled", "") if props.get("precompiled") in ("true", "full") else "",
        ldflags=props.get("ldflags", ""),
    )


def _walk(folder: Path) -> Iterable[str]:
    for here, dirs, files in fileio.walk(str(folder)):
        dirs[:] = sorted(d for d in dirs if d not in _NOT_LIBRARY_CODE)
        for name in sorted(files):
            yield str((Path(here) / name).relative_to(folder))


def providers(libraries: Sequence[Library]) -> dict[str, list[Library]]:
    """Header (as `#include` names it) -> the libraries that provide it, in index order (`resolve` ranks them)."""
    offered: dict[str, list[Library]] = {}
    for lib in libraries:
        for header in lib.headers:
            offered.setdefault(header, []).append(lib)
    return offered


# ComputePriority's bonus for where a library was found: a library named on the command line outranks every
# other, architecture included; a user's outranks the platform's only where all else is equal.
_LOCATION_BONUS = {LibraryLocation.REFERENCED_PLATFORM: 1, LibraryLocation.PLATFORM: 2, LibraryLocation.USER: 3,
                   LibraryLocation.UNMANAGED: 10000}


def priority(lib: Library, header: str, arch: str) -> int:
    """How well `lib` suits `#include <header>` on a board of architecture `arch` (the platform's folder name,
    `avr`), as arduino-cli's ComputePriority scores it: made for `arch` (1010) over made for every
    architecture (1000) over not declared for it (0, yet still usable); then its name and folder name
    against the header's name (both equal 700, one equal 600, `-main` 500, `-master` 400, prefix 300, suffix
    200, inside 100; compared simplified: lower case, other characters than letters, digits and inner
    `-`/`.` as `_`); then its location. No version term: arduino-cli has none."""
    wanted = _simplify(header[: len(header) - len(_extension(header))])
    names = (_simplify(lib.name), _simplify(os.path.basename(lib.root)))
    score = 1010 if arch in lib.architectures else 1000 if "*" in lib.architectures else 0
    if names[0] == wanted and names[1] == wanted:
        score += 700
    elif wanted in names:
        score += 600
    elif f"{wanted}-main" in names:
        score += 500
    elif f"{wanted}-master" in names:
        score += 400
    elif any(n.startswith(wanted) for n in names):
        score += 300
    elif any(n.endswith(wanted) for n in names):
        score += 200
    elif any(wanted in n for n in names):
        score += 100
    return score + _LOCATION_BONUS[lib.location]


def resolve(header: str, candidates: Sequence[Library], arch: str) -> Optional[Library]:
    """The library that provides `header` (arduino-cli's ResolveFor): the highest priority; among equals the
    one whose name is closest to the header's, else the first by name."""
    scores = [priority(lib, header, arch) for lib in candidates]
    best = [lib for lib, score in zip(candidates, scores) if score == max(scores)]
    if len(best) <= 1:
        return best[0] if best else None
    return _closest(header, best) or min(best, key=lambda lib: lib.name)


def _extension(header: str) -> str:
    """Go's filepath.Ext: from the last dot of the last path element."""
    base = header.rsplit("/", 1)[-1]
    return base[base.rfind("."):] if "." in base else ""


def _simplify(name: str) -> str:
    """arduino-cli's utils.SanitizeName (which cuts a longer name to 64 characters), lower-cased."""
    kept = "".join(c if (c.isascii() and c.isalnum()) or (i > 0 and c in "-.") else "_" for i, c in enumerate(name))
    return kept[:64].lower()


def _closest(header: str, libraries: Sequence[Library]) -> Optional[Library]:
    """arduino-cli's tie-break, findLibraryWithNameBestDistance, computed as its closestmatch (v2.1.0, bags
    of 2) computes it: a word's pieces are its two-byte slices but the last; the header is taken as written,
    the names simplified. Each piece a name shares with the header doubles its score (closestmatch's merge
    adds a score to itself), which starts at 200000 // (pieces of the header + pieces of the name), times
    the names that simplify alike. None when no name shares a piece. Equal best scores come out in
    random order there; here the first name in byte order wins."""
    wanted = _pieces(header)
    words = [_simplify(lib.name) for lib in libraries]
    scores = {}
    for word in dict.fromkeys(words):
        pieces = _pieces(word)
        shared = len(wanted & pieces)
        if shared:
            scores[word] = (200000 // (len(wanted) + len(pieces))) * words.count(word) << (shared - 1)
    if not scores:
        return None
    winner = min(word for word, score in scores.items() if score == max(scores.values()))
    return libraries[words.index(winner)]


def _pieces(word: str) -> set[bytes]:
    data = word.encode()
    return {data[i:i + 2] for i in range(len(data) - 2)}


@frozen
class Choice:
    """A header that several libraries provide, and the one detection took for it."""

    header: str
    used: Library
    not_used: tuple[Library, ...]

    def note(self) -> str:
        """arduino-cli's words for it (detector.go: PrintUsedAndNotUsedLibraries)."""
        return "\n".join([f'Multiple libraries were found for "{self.header}"', f"  Used: {self.used.root}",
                          *(f"  Not used: {lib.root}" for lib in self.not_used)])


@frozen
class Precompiled:
    """A precompiled library's files for the board, from `folder`, linked as arduino-cli links them
    (builder/libraries.go: compileLibrary): `ldflags` (`-L` the folder, the library's `ldflags=`, `-lNAME`
    for each `libNAME.a` or `.so`) join the link's `compiler.libraries.ldflags`; `objects`, the archives
    not named `lib*`, are linked where the library's objects go; `archives` are every archive the link
    reads. `sources`: the library's sources compile too (precompiled=true; `full` compiles them only where
    no folder exists for the board)."""

    folder: str
    ldflags: tuple[str, ...]
    objects: tuple[str, ...]
    archives: tuple[str, ...]
    sources: bool


LIBRARIES_LDFLAGS = "compiler.libraries.ldflags"


def precompiled(lib: Library, props: Mapping[str, str]) -> Optional[Precompiled]:
    """`lib`'s precompiled files for the board (arduino-cli's findExpectedPrecompiledLibFolder):
    `SRC/{build.mcu}/{fpu}-{float-abi}/` when it holds a file, else `SRC/{build.mcu}/`. The FPU pair is
    `build.fpu` and `build.float-abi`, or else read from `-mfpu=` and `-mfloat-abi=` in the C++ compile
    command. None when the library is not precompiled, neither folder holds a file, or the platform has no
    `compiler.libraries.ldflags` to link with (arduino-cli then compiles the sources as for any library)."""
    if not lib.precompiled or LIBRARIES_LDFLAGS not in props:
        return None
    mcu = os.path.join(lib.source_dir, props.get("build.mcu", ""))
    fpu, float_abi = props.get("build.fpu"), props.get("build.float-abi")
    if fpu is None or float_abi is None:
        argv = recipes.compile_argv(props, "probe.cpp", "probe.cpp.o", ())
        fpu, float_abi = _flag_value(argv, "fpu"), _flag_value(argv, "float-abi")
    tried = [os.path.join(mcu, f"{fpu}-{float_abi}")] if fpu and float_abi else []
    folder = next((f for f in [*tried, mcu] if _holds_a_file(f)), None)
    if folder is None:
        return None
    archives = sorted(name for name in os.listdir(folder) if name.endswith((".a", ".so")))
    stems = [name.rsplit(".", 1)[0] for name in archives]
    by_path = [name for name in archives if name.endswith(".a") and not name.startswith("lib")]  # no -l finds them
    return Precompiled(
        folder=folder,
        ldflags=(f"-L{folder}", *properties.split_command(lib.ldflags),
                 *(f"-l{stem[3:]}" for stem in stems if stem.startswith("lib"))),
        objects=tuple(os.path.join(folder, name) for name in by_path),
        archives=tuple(os.path.join(folder, name) for name in archives),
        sources=lib.precompiled == "true",
    )


def _flag_value(argv: Iterable[str], flag: str) -> str:
    """The value after `=` of the first word naming `flag` that has one, as arduino-cli reads it."""
    return next((word.split("=")[1].strip() for word in argv if flag in word and "=" in word), "")


def _holds_a_file(folder: str) -> bool:
    return os.path.isdir(folder) and any(os.path.isfile(os.path.join(folder, n)) for n in os.listdir(folder))


def warnings(used: Iterable[Library], props: Mapping[str, str], arch: str) -> list[str]:
    """What arduino-cli says about the libraries a build uses: one declared for other architectures only
    (warnAboutArchIncompatibleLibraries, with `architecture.override_check`), and a precompiled one on a
    platform that cannot link it."""
    archs = board_architectures(props, arch)
    lines = []
    for lib in used:
        if not runs_on(lib, archs):
            lines.append(f"warning: library {lib.name} claims to run on {', '.join(lib.architectures)} "
                         f"architecture(s) and may be incompatible with your current board which runs on "
                         f"{', '.join(archs)} architecture(s).")
        if lib.precompiled and LIBRARIES_LDFLAGS not in props:
            lines.append(f"note: the platform does not support '{LIBRARIES_LDFLAGS}' for precompiled libraries; "
                         f"{lib.name} is compiled from its sources")
    return lines


def board_architectures(props: Mapping[str, str], arch: str) -> list[str]:
    """The architectures a board's libraries may declare: its own and `architecture.override_check`'s."""
    return [arch, *(a for a in props.get("architecture.override_check", "").split(",") if a)]


def runs_on(lib: Library, archs: Sequence[str]) -> bool:
    """Whether `architectures=` in library.properties admits one of `archs` (arduino-cli's
    IsArchitectureIndependent / IsCompatibleWith)."""
    return "*" in lib.architectures or any(a == "*" or a in lib.architectures for a in archs)
