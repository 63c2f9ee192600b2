"""Up to date means no work: unchanged actions do not run; a change reruns exactly what depends on it."""

from __future__ import annotations

import shutil

import pytest

from conftest import PLATFORM, needs_toolchain, read_tsv, run_cli, signed

pytestmark = needs_toolchain
TOOL_KINDS = {"compile", "archive", "link", "eep", "hex", "size"}


@pytest.fixture
def workspace(tmp_path):
    """A private copy of the core and of three example sketches, so the tests can edit them."""
    hardware = tmp_path / "hardware"
    shutil.copytree(PLATFORM, hardware / "arduino" / "avr", symlinks=False)
    sketches = tmp_path / "sketches"
    for name in ("master_reader", "eeprom_clear", "SoftwareSerialExample"):
        shutil.copytree(next(PLATFORM.glob(f"libraries/*/examples/{name}")), sketches / name)
    return hardware, sketches, tmp_path / "out"


def build(workspace) -> dict[str, dict[str, str]]:
    hardware, sketches, out = workspace
    proc = run_cli("compile-many", "--board", "uno", "--hardware", str(hardware), "-o", str(out), str(sketches))
    assert proc.returncode == 0, proc.stderr
    return {row["key"]: row for row in read_tsv(out / "tasks.tsv")}


def ran(tasks: dict[str, dict[str, str]]) -> set[str]:
    return {key for key, row in tasks.items() if row["status"] == "ok" and row["kind"] in TOOL_KINDS}


def test_a_second_build_with_nothing_changed_runs_no_tool(workspace):
    first = build(workspace)
    assert len(ran(first)) > 30
    # Each action's signature is on its first output: no file of its own (the disk's costliest operation).
    assert len(signed(workspace[2])) >= len(ran(first)) and not list(workspace[2].rglob("*.fbsig"))
    hexes = {p: p.read_bytes() for p in workspace[2].glob("sketches/*/firmware.hex")}
    second = build(workspace)
    assert ran(second) == set()
    assert {row["status"] for row in second.values()} == {"up-to-date", "cached"}  # stage 1 from the cache
    assert {p: p.read_bytes() for p in workspace[2].glob("sketches/*/firmware.hex")} == hexes
    # What each sketch's result says is the same (an up-to-date action took no time), so the file is left as it is.
    said = {p: (p.stat().st_ino, p.read_text()) for p in workspace[2].glob("sketches/*/result.json")}
    build(workspace)
    assert {p: (p.stat().st_ino, p.read_text()) for p in workspace[2].glob("sketches/*/result.json")} == said
    assert all('"seconds": 0.0,' in text for _, text in said.values())


def test_editing_one_sketch_rebuilds_only_that_sketch(workspace):
    build(workspace)
    ino = workspace[1] / "eeprom_clear" / "eeprom_clear.ino"
    ino.write_text(ino.read_text().replace("digitalWrite(13, HIGH);", "digitalWrite(12, HIGH);"))
    again = ran(build(workspace))
    assert again and all(key.startswith("sketch/eeprom_clear/") for key in again)
    assert {"sketch/eeprom_clear/eeprom_clear.ino.cpp.o", "sketch/eeprom_clear/link"} <= again


def test_editing_a_core_header_rebuilds_what_includes_it(workspace):
    build(workspace)
    header = workspace[0] / "arduino" / "avr" / "cores" / "arduino" / "new.h"
    header.write_text(header.read_text() + "\n// edited\n")
    again = ran(build(workspace))
    assert "core/new.cpp.o" in again  # new.h is included by new.cpp alone
    assert not any(key.startswith("core/") and key.endswith(".o") and key != "core/new.cpp.o" for key in again)


def test_an_interrupted_output_without_signature_is_rebuilt(workspace):
    build(workspace)
    out = workspace[2]
    obj = out / "sketches" / "master_reader" / "build" / "sketch" / "master_reader.ino.cpp.o"
    # What a killed compiler leaves behind: a new, partial file (the old one was removed before it ran).
    partial = obj.read_bytes()[:100]
    obj.unlink()
    obj.write_bytes(partial)
    assert "sketch/master_reader/master_reader.ino.cpp.o" in ran(build(workspace))
