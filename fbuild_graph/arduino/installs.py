"""Where platforms and tools are installed, found as arduino-cli finds them, plus Debian's folders.

Places, searched without flags:
- `--hardware DIR` folders (legacy `VENDOR/ARCH/` layout, arduino-builder's option): named by the user, so they
  win over every default, the first named first;
- the arduino-cli data directory (`ARDUINO_DIRECTORIES_DATA`, else `~/.arduino15`): Boards Manager installs,
  `packages/VENDOR/hardware/ARCH/VERSION/`, and their tools, `packages/VENDOR/tools/NAME/VERSION/`;
- the sketchbook (`ARDUINO_DIRECTORIES_USER`, else `~/Arduino`): `hardware/VENDOR/ARCH/` and its `libraries/`;
- Debian's `/usr/share/arduino/hardware` (arduino-core-avr), last.

Between a Boards Manager install and a sketchbook install of the same `VENDOR:ARCH`, arduino-cli's
`GetInstalledPlatformRelease` takes the Boards Manager one (the newest version), and so do we.
"""

from __future__ import annotations

import json
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

from attrs import field, frozen

from fbuild_graph.arduino import properties
from fbuild_graph.errors import FbuildError

DEBIAN_HARDWARE = "/usr/share/arduino/hardware"


class Origin(StrEnum):
    """Where a platform was found, in the order a choice between places prefers them."""

    HARDWARE_OPTION = "--hardware"
    BOARDS_MANAGER = "Boards Manager"
    SKETCHBOOK = "sketchbook"
    DEBIAN = "Debian"


@frozen
class Directories:
    """The places to look in. `hardware` and `tools` are the user's `--hardware` and `--tools` folders."""

    data: str
    user: str
    hardware: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    system: tuple[str, ...] = (DEBIAN_HARDWARE,)

    @classmethod
    def from_environment(cls, hardware: Sequence[str] = (), tools: Sequence[str] = (),
                         environ: Mapping[str, str] = os.environ) -> "Directories":
        home = environ.get("HOME") or os.path.expanduser("~")
        return cls(data=os.path.abspath(environ.get("ARDUINO_DIRECTORIES_DATA") or os.path.join(home, ".arduino15")),
                   user=os.path.abspath(environ.get("ARDUINO_DIRECTORIES_USER") or os.path.join(home, "Arduino")),
                   # Tools run in --out: a relative folder would name another place.
                   hardware=tuple(map(os.path.abspath, hardware)), tools=tuple(map(os.path.abspath, tools)))

    @property
    def sketchbook_libraries(self) -> str:
        return os.path.join(self.user, "libraries")


@frozen
class ToolDependency:
    packager: str
    name: str
    version: str


@frozen
class Platform:
    """One installed release of a platform. `tools` are the tools its package index entry requires (empty
    for a platform installed by hand: it then gets the best installed release of every tool)."""

    vendor: str
    arch: str
    path: str
    origin: Origin
    version: str = ""
    tools: tuple[ToolDependency, ...] = field(default=(), eq=False)

    @property
    def id(self) -> str:
        return f"{self.vendor}:{self.arch}"


@frozen
class Tool:
    packager: str
    name: str
    version: str
    path: str


def version_key(version: str) -> tuple:
    """Relaxed semantic-version order: numeric parts as numbers, a pre-release (after `-`) before the
    release it precedes."""
    main, _, pre = version.partition("-")
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+]", main))
    return (*parts, (1,) if not pre else (0, pre))


def platforms(dirs: Directories) -> dict[tuple[str, str], list[Platform]]:
    """Every installed platform by (vendor, arch), the one a build takes first."""
    found: dict[tuple[str, str], list[Platform]] = {}
    for folder in dirs.hardware:
        for p in _legacy(folder, Origin.HARDWARE_OPTION):
            found.setdefault((p.vendor, p.arch), []).append(p)
    for p in [*_managed(dirs.data), *_legacy(os.path.join(dirs.user, "hardware"), Origin.SKETCHBOOK),
              *(p for folder in dirs.system for p in _legacy(folder, Origin.DEBIAN))]:
        found.setdefault((p.vendor, p.arch), []).append(p)
    return {key: sorted(candidates, key=_preference) for key, candidates in found.items()}


def _preference(p: Platform) -> tuple:
    """Places in Origin's order; among Boards Manager releases the newest first; otherwise as named."""
    newest_first = _Descending(version_key(p.version) if p.origin == Origin.BOARDS_MANAGER else ())
    return (list(Origin).index(p.origin), newest_first)


class _Descending:
    """Wraps a sort key so that a larger one sorts first."""

    def __init__(self, key: tuple) -> None:
        self.key = key

    def __lt__(self, other: "_Descending") -> bool:
        return self.key > other.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.key == other.key


def _legacy(folder: str, origin: Origin) -> Iterable[Platform]:
    """`FOLDER/VENDOR/ARCH/boards.txt`."""
    root = Path(folder)
    if not root.is_dir():
        return
    for boards_txt in sorted(root.glob("*/*/boards.txt")):
        platform = boards_txt.parent
        yield Platform(vendor=platform.parent.name, arch=platform.name, path=str(platform), origin=origin,
                       version=_platform_version(platform))


def _managed(data: str) -> Iterable[Platform]:
    """`DATA/packages/VENDOR/hardware/ARCH/VERSION/boards.txt`, with the tools each requires."""
    index = None  # the package indexes run to megabytes: read only for a release without installed.json
    for boards_txt in sorted(Path(data, "packages").glob("*/hardware/*/*/boards.txt")):
        release = boards_txt.parent
        vendor, arch, version = release.parent.parent.parent.name, release.parent.name, release.name
        tools = _installed_dependencies(release)
        if not tools:
            index = _index_dependencies(data) if index is None else index
            tools = index.get((vendor, arch, version), ())
        yield Platform(vendor=vendor, arch=arch, path=str(release), origin=Origin.BOARDS_MANAGER, version=version,
                       tools=tools)


def _platform_version(folder: Path) -> str:
    try:
        return properties.load(folder / "platform.txt").get("version", "")
    except FbuildError:  # an unreadable platform.txt is reported when the platform is used
        return ""


def _dependencies(document: object) -> dict[tuple[str, str, str], tuple[ToolDependency, ...]]:
    """(vendor, arch, version) -> toolsDependencies, from a package index document."""
    found = {}
    packages = document.get("packages", []) if isinstance(document, dict) else []
    for package in packages if isinstance(packages, list) else []:
        for entry in package.get("platforms", []) if isinstance(package, dict) else []:
            try:
                deps = tuple(ToolDependency(d["packager"], d["name"], d["version"]) for d in entry.get("toolsDependencies", []))
                found[(package["name"], entry["architecture"], entry["version"])] = deps
            except (KeyError, TypeError, AttributeError):
                continue
    return found


def _read_json(path: Path) -> object:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _installed_dependencies(release: Path) -> tuple[ToolDependency, ...]:
    """arduino-cli writes the platform's index entry into `installed.json` beside it."""
    found = _dependencies(_read_json(release / "installed.json"))
    return next(iter(found.values()), ())


def _index_dependencies(data: str) -> dict[tuple[str, str, str], tuple[ToolDependency, ...]]:
    found: dict[tuple[str, str, str], tuple[ToolDependency, ...]] = {}
    for index in sorted(Path(data).glob("package*index.json")):
        found.update(_dependencies(_read_json(index)))
    return found


def tools(dirs: Directories) -> list[Tool]:
    """Every installed tool release: the data directory's, the sketchbook's, and the `--tools` folders'
    (an arduino-cli data directory, a `packages/VENDOR/tools` folder, a `NAME/VERSION/` folder, or an IDE's
    bundled `hardware/tools` with its `builtin_tools_versions.txt`)."""
    found: list[Tool] = []
    for top in (dirs.data, os.path.join(dirs.user, "hardware"), *dirs.tools):
        root = Path(top)
        for tools_dir in sorted(root.glob("packages/*/tools")) + sorted(root.glob("*/tools")):
            found += _tool_releases(tools_dir, tools_dir.parent.name)
    for top in dirs.tools:
        root = Path(top)
        found += _tool_releases(root, "")
        for versions in sorted(root.glob("**/builtin_tools_versions.txt")):
            for key, version in properties.load(versions).items():
                packager, _, name = key.partition(".")
                found.append(Tool(packager=packager, name=name, version=version, path=str(versions.parent)))
    return found


def _tool_releases(tools_dir: Path, packager: str) -> list[Tool]:
    """`TOOLS/NAME/VERSION/` folders."""
    if not tools_dir.is_dir():
        return []
    return [Tool(packager=packager, name=release.parent.name, version=release.name, path=str(release))
            for release in sorted(tools_dir.glob("*/*")) if release.is_dir() and not release.name.startswith(".")]


def tool_properties(board_platform: Platform, core_platform: Platform, installed: Sequence[Tool]) -> dict[str, str]:
    """`runtime.tools.NAME.path` and `runtime.tools.NAME-VERSION.path`, as arduino-cli sets them: every
    installed release names its `NAME-VERSION`; `NAME` is the release the platform's index entry requires,
    else the best installed one (the platform's packager, then the core's, then the newest version, then
    the packager first in alphabetical order)."""
    props = {f"runtime.tools.{t.name}-{t.version}.path": t.path for t in installed}
    required = {}
    for dep in sorted(board_platform.tools, key=lambda d: version_key(d.version)):
        match = next((t for t in installed if (t.packager, t.name, t.version) == (dep.packager, dep.name, dep.version)),
                     None) or next((t for t in installed if (t.name, t.version) == (dep.name, dep.version)), None)
        if match is not None:
            required[dep.name] = match
    rank = {core_platform.vendor: 1, board_platform.vendor: 2}
    for name in sorted({t.name for t in installed} - required.keys()):
        required[name] = sorted((t for t in installed if t.name == name), key=lambda t: (
            -rank.get(t.packager, 0), _Descending(version_key(t.version)), t.packager))[0]
    props.update({f"runtime.tools.{name}.path": tool.path for name, tool in required.items()})
    return props


def missing_tool(board_platform: Platform, installed: Sequence[Tool]) -> Optional[ToolDependency]:
    """A tool the platform's index entry requires that is not installed (arduino-cli refuses to build)."""
    have = {(t.name, t.version) for t in installed}
    return next((d for d in board_platform.tools if (d.name, d.version) not in have), None)
