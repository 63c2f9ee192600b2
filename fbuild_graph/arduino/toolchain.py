"""Check the toolchain a board's recipes name, and adapt to known faults of the installed compiler.

Debian bookworm's gcc-avr 5.4 defines `DECIMAL_DIG` in `float.h` for C only, so the core's `WString.cpp`
does not compile as `platform.txt` stands. We probe for that once per run and, when the probe fails but
`__DECIMAL_DIG__` works, add `-DDECIMAL_DIG=__DECIMAL_DIG__` to the C++ flags, which is what
arduino-builder users pass by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from typing import Mapping, Optional

from fbuild_graph.arduino import properties
from fbuild_graph.errors import FbuildError

TOOLCHAIN_PACKAGES = "apt-get install gcc-avr avr-libc binutils-avr"
DECIMAL_DIG_FLAG = "-DDECIMAL_DIG=__DECIMAL_DIG__"
_PROBE = "#include <float.h>\nint probe = DECIMAL_DIG;\n"


def compiler(props: Mapping[str, str], which: str = "cpp") -> str:
    return properties.value(props, "compiler.path") + properties.value(props, f"compiler.{which}.cmd")


def check(props: Mapping[str, str]) -> None:
    """Every tool the build recipes run exists, or a one-line error says which packages to install."""
    for key in ("c", "cpp", "ar", "objcopy", "size"):
        tool = compiler(props, key)
        if not tool:
            continue
        if not (shutil.which(tool) or os.access(tool, os.X_OK)):
            raise FbuildError(f"toolchain program {tool} not found; install it with `{TOOLCHAIN_PACKAGES}`")


def decimal_dig_fix(props: Mapping[str, str]) -> Optional[str]:
    """The flag to add to C++ compiles, or None when the compiler needs no fix."""
    cxx = compiler(props, "cpp")
    mcu = properties.value(props, "build.mcu")
    base = [cxx, "-x", "c++", "-fsyntax-only", *([f"-mmcu={mcu}"] if mcu else []), "-"]
    if _compiles(base, _PROBE):
        return None
    return DECIMAL_DIG_FLAG if _compiles([*base[:-1], DECIMAL_DIG_FLAG, "-"], _PROBE) else None


def _compiles(argv: list[str], source: str) -> bool:
    try:
        return subprocess.run(argv, input=source.encode(), capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def identity(props: Mapping[str, str]) -> str:
    """What makes this toolchain this toolchain: resolved compiler path, its --version text, its bytes."""
    cxx = os.path.realpath(shutil.which(compiler(props, "cpp")) or compiler(props, "cpp"))
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, timeout=60).stdout.decode(errors="replace")
        with open(cxx, "rb") as f:
            binary = hashlib.sha256(f.read()).hexdigest()
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FbuildError(f"cannot run {cxx}: {exc}; install it with `{TOOLCHAIN_PACKAGES}`") from None
    return f"{cxx}\n{version}\n{binary}"
