"""The firmware the Arduino IDE would build: byte-identical `.hex` with Debian's arduino-builder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import EXAMPLES, Build, arduino_builder_hex, needs_toolchain

pytestmark = [
    needs_toolchain,
    pytest.mark.skipif(not shutil.which("arduino-builder"), reason="needs Debian's arduino-builder (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def reference_hexes(tmp_path_factory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("arduino-builder")
    return {ino.stem: arduino_builder_hex(ino, root) for ino in EXAMPLES}


@pytest.mark.parametrize("sketch_id", [p.stem for p in EXAMPLES])
def test_hex_is_byte_identical_to_arduino_builder(big_build: Build, reference_hexes: dict[str, bytes], sketch_id: str):
    ours = Path(big_build.by_id[sketch_id]["out_dir"], "firmware.hex").read_bytes()
    assert ours == reference_hexes[sketch_id]
