"""FQBN or short board name -> a Board with every build property layered, as arduino-cli layers them.

Layers, later wins: the platform's `platform.txt` (and `platform.local.txt`), the board's own keys from
`boards.txt`, the chosen menu options (each menu's first option unless the FQBN names another), runtime
keys the IDE sets (`runtime.*`, `build.arch`, `build.core.path`, ...), and last `--build-property`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Mapping, Sequence

from . import properties
from .errors import FbuildError
from .model import Board

DEFAULT_HARDWARE = "/usr/share/arduino/hardware"
# The Arduino IDE version the Debian core expects (arduino-builder's -core-api-version 10819).
IDE_VERSION = "10819"
CORE_PACKAGES = "apt-get install arduino-core-avr"
# The runtime keys that name folders: data for a recipe, one argv word each (see recipes).
RUNTIME_PATHS = ("runtime.platform.path", "runtime.hardware.path", "build.core.path", "build.system.path",
                 "build.variant.path")


def find_platforms(hardware_dirs: Sequence[str]) -> dict[tuple[str, str], Path]:
    """(vendor, arch) -> platform folder, for every `<hardware>/<vendor>/<arch>/boards.txt`."""
    found: dict[tuple[str, str], Path] = {}
    for hw in hardware_dirs:
        root = Path(hw)
        if not root.is_dir():
            raise FbuildError(f"hardware folder {hw} does not exist; pass an existing folder to --hardware")
        for boards_txt in sorted(root.glob("*/*/boards.txt")):
            platform = boards_txt.parent
            found.setdefault((platform.parent.name, platform.name), platform)
    if not found:
        raise FbuildError(
            f"no Arduino core found under {', '.join(hardware_dirs)}; install it with `{CORE_PACKAGES}` "
            "or name a core with --hardware DIR"
        )
    return found


def resolve(spec: str, hardware_dirs: Sequence[str], overrides: Mapping[str, str]) -> Board:
    platforms = find_platforms(hardware_dirs)
    boards_by_platform = {key: properties.load(path / "boards.txt") for key, path in platforms.items()}
    vendor, arch, board_id, options = _parse_spec(spec, boards_by_platform)
    platform = platforms[(vendor, arch)]
    boards = boards_by_platform[(vendor, arch)]
    own = properties.subtree(boards, board_id)
    menus = _menu_layers(own, options, f"{vendor}:{arch}:{board_id}")
    platform_props = properties.load(platform / "platform.txt")
    local = platform / "platform.local.txt"
    if local.is_file():
        platform_props.update(properties.load(local))
    base = properties.layer(platform_props, {k: v for k, v in own.items() if not k.startswith("menu.")}, *menus)
    core = base.get("build.core", "")
    if ":" in core:
        raise FbuildError(f"board {board_id} uses a core from another platform ({core}); that is not supported yet")
    runtime = {
        "runtime.platform.path": str(platform),
        "runtime.hardware.path": str(platform.parent),
        "runtime.ide.version": IDE_VERSION,
        "build.arch": arch.upper(),
        "build.core.path": str(platform / "cores" / core),
        "build.system.path": str(platform / "system"),
        "build.fqbn": f"{vendor}:{arch}:{board_id}",
    }
    if "build.variant" in base:
        runtime["build.variant.path"] = str(platform / "variants" / base["build.variant"])
    merged = properties.layer(base, runtime, overrides)
    fqbn = f"{vendor}:{arch}:{board_id}" + (
        ":" + ",".join(f"{k}={v}" for k, v in options.items()) if options else ""
    )
    return Board(fqbn=fqbn, name=own.get("name", board_id), platform_path=str(platform), properties=merged)


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
        raise FbuildError(f"board {spec!r}: no platform {vendor}:{arch} is installed (installed: {known})")
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


def _menu_layers(own: Mapping[str, str], options: Mapping[str, str], fqbn: str) -> list[dict[str, str]]:
    menus: dict[str, list[str]] = {}
    for key in own:
        parts = key.split(".")
        if parts[0] == "menu" and len(parts) == 3:
            menus.setdefault(parts[1], []).append(parts[2])
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
    return f"unknown board {spec!r}; {hint}"
