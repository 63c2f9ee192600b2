"""FQBN or short board name -> a Board with every build property layered, as arduino-cli layers them.

Layers, later wins (arduino-cli's `ResolveFQBN`): the `platform.txt` (and `platform.local.txt`) of the platform
the variant comes from, of the one the core comes from (`build.core=VENDOR:CORE` names another platform's), and
of the board's own platform; the board's keys from `boards.txt` (and `boards.local.txt`) with the chosen menu
options (each menu's first option unless the FQBN names another); the runtime keys (`runtime.*`, `build.arch`,
`build.core.path`, the tools' folders, ...); and last `--build-property`. Keys suffixed with the operating
system (`.linux`) replace their plain key as the files are read (see properties.parse).
"""

from __future__ import annotations

import difflib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

from fbuild_graph.arduino import installs
from fbuild_graph.arduino import properties
from fbuild_graph.errors import FbuildError
from fbuild_graph.arduino.installs import Directories, Platform
from fbuild_graph.model import Board

# The Arduino IDE version the Debian core expects (arduino-builder's -core-api-version 10819). arduino-cli says
# 10607 here; arduino-builder, the reference, passes what it is given.
IDE_VERSION = "10819"
CORE_PACKAGES = "apt-get install arduino-core-avr"
# The runtime keys that name folders: data for a recipe, one argv word each (see recipes).
RUNTIME_PATHS = ("runtime.platform.path", "runtime.hardware.path", "build.core.path", "build.system.path",
                 "build.variant.path", "build.core.platform.path", "build.board.platform.path")
TOOL_PATH_PREFIX = "runtime.tools."


def resolve(spec: str, dirs: Directories, overrides: Mapping[str, str],
            say: Callable[[str], None] = lambda line: None) -> Board:
    """`say` hears, once, which install was taken where several exist, and where a tool came from PATH."""
    installed = installs.platforms(dirs)
    if not installed:
        raise FbuildError(f"no Arduino core found (looked in {_places(dirs)}); install one with `{CORE_PACKAGES}`, "
                          "with arduino-cli, or name one with --hardware DIR")
    chosen = {key: candidates[0] for key, candidates in installed.items()}
    boards_by_platform = {key: _boards(p) for key, p in chosen.items()}
    vendor, arch, board_id, options = _parse_spec(spec, boards_by_platform)
    platform = chosen[(vendor, arch)]
    _say_choice(installed[(vendor, arch)], say)
    own = properties.subtree(boards_by_platform[(vendor, arch)], board_id)
    fqbn = f"{vendor}:{arch}:{board_id}"
    board_props = properties.layer({k: v for k, v in own.items() if not k.startswith("menu.")},
                                   *_menu_layers(own, options, fqbn))
    core_platform, core = _referenced(board_props.get("build.core", ""), platform, chosen, fqbn, "build.core")
    variant_platform, variant = _referenced(board_props.get("build.variant", ""), platform, chosen, fqbn,
                                            "build.variant")
    base = properties.layer(_platform_properties(variant_platform), _platform_properties(core_platform),
                            _platform_properties(platform), board_props)
    tools = installs.tools(dirs)
    missing = installs.missing_tool(platform, tools)
    if missing:
        raise FbuildError(f"{platform.id} {platform.version} needs tool {missing.packager}:{missing.name}@"
                          f"{missing.version}, which is not installed; install it with `arduino-cli core install "
                          f"{platform.id}` or name its folder with --tools DIR")
    now = time.time()
    runtime = {
        "runtime.platform.path": platform.path,
        "runtime.hardware.path": str(Path(platform.path).parent),
        "runtime.ide.path": os.path.dirname(sys.executable),
        "runtime.ide.version": IDE_VERSION,
        "ide_version": IDE_VERSION,
        "runtime.os": properties.OS,
        "software": base.get("software", "ARDUINO"),
        "build.arch": arch.upper(),
        "build.fqbn": fqbn,
        "build.board.platform.path": platform.path,
        "build.core.platform.path": core_platform.path,
        "build.core.path": os.path.join(core_platform.path, "cores", core),
        "build.system.path": os.path.join(core_platform.path, "system"),
        "build.variant.path": os.path.join(variant_platform.path, "variants", variant) if variant else "",
        "build.library_discovery_phase": "0",
        "build.board": base.get("build.board") or f"{arch}_{board_id}".upper(),
        "extra.time.utc": str(int(now)),
        "extra.time.local": str(int(now + time.localtime(now).tm_gmtoff)),
        "extra.time.zone": str(-time.timezone),
        "extra.time.dst": str(3600 if time.localtime(now).tm_isdst > 0 else 0),
        **installs.tool_properties(platform, core_platform, tools),
    }
    if properties.truthy(base.get("runtime.use_core_platform_path_for_runtime_platform_path", "")):
        runtime["runtime.platform.path"] = core_platform.path
    merged = properties.layer(base, runtime)
    merged.update(_tools_on_path(merged, say))
    merged.update(overrides)
    full = fqbn + (":" + ",".join(f"{k}={v}" for k, v in options.items()) if options else "")
    return Board(fqbn=full, name=own.get("name", board_id), platform_path=platform.path, properties=merged)


def _places(dirs: Directories) -> str:
    return ", ".join([*dirs.hardware, os.path.join(dirs.data, "packages"), os.path.join(dirs.user, "hardware"),
                      *dirs.system])


def _say_choice(candidates: Sequence[Platform], say: Callable[[str], None]) -> None:
    if len(candidates) > 1:
        taken, *others = candidates
        say(f"note: using {taken.id} {taken.version} ({taken.origin}) from {taken.path}; also installed: "
            + "; ".join(f"{p.version} ({p.origin}) in {p.path}" for p in others))


def _boards(platform: Platform) -> dict[str, str]:
    return _with_local(Path(platform.path), "boards")


def _platform_properties(platform: Platform) -> dict[str, str]:
    return _with_local(Path(platform.path), "platform")


def _with_local(folder: Path, name: str) -> dict[str, str]:
    """`NAME.txt` with `NAME.local.txt` over it, as arduino-cli loads both."""
    props = properties.load(folder / f"{name}.txt")
    local = folder / f"{name}.local.txt"
    if local.is_file():
        props.update(properties.load(local))
    return props


def _referenced(value: str, platform: Platform, chosen: Mapping[tuple[str, str], Platform], fqbn: str,
                key: str) -> tuple[Platform, str]:
    """`build.core=arduino:arduino` names the `arduino` core of the installed `arduino:ARCH` platform."""
    if ":" not in value:
        return platform, value
    vendor, name = value.split(":", 1)
    other = chosen.get((vendor, platform.arch))
    if other is None:
        raise FbuildError(f"board {fqbn}: {key}={value} refers to platform {vendor}:{platform.arch}, which is not "
                          f"installed; install it (arduino-cli core install {vendor}:{platform.arch})")
    return other, name


def _tools_on_path(props: Mapping[str, str], say: Callable[[str], None]) -> dict[str, str]:
    """A `{runtime.tools.NAME.path}` the platform names but no tools folder provides, taken from the
    toolchain on PATH (Debian's `avr-gcc` -> `/usr`), as Debian's arduino-builder rewrites `compiler.path`."""
    found = {}
    named = {key for value in props.values() for key in properties.references(value)
             if key.startswith(TOOL_PATH_PREFIX) and key.endswith(".path") and key not in props}
    for key in sorted(named):
        name = key[len(TOOL_PATH_PREFIX):-len(".path")]
        program = shutil.which(name)
        if program:
            found[key] = os.path.dirname(os.path.dirname(os.path.realpath(program)))
            say(f"note: no {name} tool is installed for this platform; using the one on PATH ({program}), "
                f"so {{{key}}} = {found[key]}")
    return found


def listing(dirs: Directories) -> list[tuple[str, str, dict[str, list[str]], Platform]]:
    """Every board of every installed platform: (FQBN, name, menus -> options, platform), by FQBN."""
    rows = []
    for (vendor, arch), candidates in sorted(installs.platforms(dirs).items()):
        boards = _boards(candidates[0])
        for key in sorted(k for k in boards if k.count(".") == 1 and k.endswith(".name")):
            board_id = key[:-len(".name")]
            rows.append((f"{vendor}:{arch}:{board_id}", boards[key], _menus(properties.subtree(boards, board_id)),
                         candidates[0]))
    return rows


def _parse_spec(spec: str, boards_by_platform: Mapping[tuple[str, str], Mapping[str, str]]):
    parts = spec.split(":")
    if len(parts) == 1:
        board_id, options = spec, {}
        owners = [key for key, boards in boards_by_platform.items() if f"{board_id}.name" in boards]
        if not owners:
            raise FbuildError(_unknown_board(spec, boards_by_platform))
        # Prefer Arduino's own platform when several vendors define the same short name.
        owners.sort(key=lambda key: key[0] != "arduino")
        vendor, arch = owners[0]
        return vendor, arch, board_id, options
    if len(parts) not in (3, 4) or not all(parts[:3]):
        raise FbuildError(f"board {spec!r} is neither a short name (uno) nor an FQBN (arduino:avr:uno[:menu=option])")
    vendor, arch, board_id = parts[:3]
    if (vendor, arch) not in boards_by_platform:
        known = ", ".join(f"{v}:{a}" for v, a in sorted(boards_by_platform))
        raise FbuildError(f"board {spec!r}: platform {vendor}:{arch} is not installed (installed: {known}); install it "
                          f"with `arduino-cli core install {vendor}:{arch}` or name its folder with --hardware DIR")
    if f"{board_id}.name" not in boards_by_platform[(vendor, arch)]:
        raise FbuildError(_unknown_board(spec, {(vendor, arch): boards_by_platform[(vendor, arch)]}))
    options: dict[str, str] = {}
    if len(parts) == 4:
        for pair in filter(None, parts[3].split(",")):
            if "=" not in pair:
                raise FbuildError(f"board {spec!r}: menu option {pair!r} must be MENU=OPTION (e.g. cpu=atmega2560)")
            menu, option = pair.split("=", 1)
            options[menu] = option
    return vendor, arch, board_id, options


def _menus(own: Mapping[str, str]) -> dict[str, list[str]]:
    menus: dict[str, list[str]] = {}
    for key in own:
        parts = key.split(".")
        if parts[0] == "menu" and len(parts) == 3:
            menus.setdefault(parts[1], []).append(parts[2])
    return menus


def _menu_layers(own: Mapping[str, str], options: Mapping[str, str], fqbn: str) -> list[dict[str, str]]:
    menus = _menus(own)
    for menu, option in options.items():
        if menu not in menus:
            raise FbuildError(f"board {fqbn} has no menu {menu!r} (menus: {', '.join(menus) or 'none'})")
        if option not in menus[menu]:
            raise FbuildError(f"board {fqbn}: menu {menu} has no option {option!r} (options: {', '.join(menus[menu])})")
    return [
        properties.subtree(own, f"menu.{menu}.{options.get(menu, choices[0])}") for menu, choices in menus.items()
    ]


def _unknown_board(spec: str, boards_by_platform: Mapping[tuple[str, str], Mapping[str, str]]) -> str:
    ids = sorted({k[: -len(".name")] for boards in boards_by_platform.values() for k in boards if k.count(".") == 1 and k.endswith(".name")})
    wanted = spec.split(":")[2] if spec.count(":") >= 2 else spec
    close = difflib.get_close_matches(wanted, ids, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known boards: {', '.join(ids)}"
    return f"unknown board {spec!r}; {hint} (`fbuild-graph boards` lists every installed board)"
