"""The firmware the Arduino IDE would build: byte-identical `.hex` with Debian's arduino-builder."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import EXAMPLES, Build, needs_toolchain

pytestmark = [
    needs_toolchain,
    pytest.mark.skipif(not shutil.which("arduino-builder"), reason="needs Debian's arduino-builder (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def reference_hexes(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("arduino-builder")
    cache, tools = root / "cache", root / "tools"
    cache.mkdir()
    tools.mkdir()
    hexes = {}
    for ino in EXAMPLES:
        build = root / ino.stem
        build.mkdir()
        proc = subprocess.run(
            ["arduino-builder", "-compile", "-hardware", "/usr/share/arduino-builder", "-hardware",
             "/usr/share/arduino/hardware", "-tools", str(tools), "-fqbn", "arduino:avr:uno", "-build-path", str(build),
             "-build-cache", str(cache), "-core-api-version", "10819", "-warnings", "none",
             "-prefs", "compiler.cpp.extra_flags=-DDECIMAL_DIG=__DECIMAL_DIG__", str(ino)],
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        hexes[ino.stem] = (build / f"{ino.stem}.ino.hex").read_bytes()
    return hexes


@pytest.mark.parametrize("sketch_id", [p.stem for p in EXAMPLES])
def test_hex_is_byte_identical_to_arduino_builder(big_build: Build, reference_hexes: dict[str, bytes], sketch_id: str):
    ours = Path(big_build.by_id[sketch_id]["out_dir"], "firmware.hex").read_bytes()
    assert ours == reference_hexes[sketch_id]


def test_all_nineteen_core_examples_are_compared():
    assert len(EXAMPLES) == 19
