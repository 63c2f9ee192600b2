"""Every byte of a sketch reaches the compiler as the IDE passes it on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import arduino_builder_hex, needs_toolchain, run_cli

LATIN1 = b'const char* s = "caf\xe9";\n\nvoid setup() {\n  Serial.begin(9600);\n  Serial.println(s);\n  greet();\n}\n\n' \
         b'void loop() {}\n\n// na\xefve comment\nvoid greet() { Serial.println("\xe0 bient\xf4t"); }\n'


needs_reference = pytest.mark.skipif(not (shutil.which("arduino-builder") and shutil.which("avr-g++")),
                                     reason="needs Debian's arduino-builder and the AVR toolchain")


def _ide_hex(root: Path, sketch: Path) -> bytes:
    return arduino_builder_hex(sketch / f"{sketch.name}.ino", root / "reference")


def _sketch(root: Path, name: str, data: bytes) -> Path:
    folder = root / "sketches" / name
    folder.mkdir(parents=True)
    (folder / f"{name}.ino").write_bytes(data)
    return folder


def _build(root: Path, sketch: Path) -> Path:
    out = root / "out"
    proc = run_cli("compile-many", "--board", "uno", "--cache-mode", "off", "-o", str(out), str(sketch))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / "sketches" / sketch.name


@needs_reference
def test_a_latin1_sketch_gives_the_ide_firmware(tmp_path):
    sketch = _sketch(tmp_path, "Latin", LATIN1)
    built = _build(tmp_path, sketch)
    merged = built / "build" / "sketch" / "Latin.ino.cpp"
    assert b'"caf\xe9"' in merged.read_bytes() and b"\xef\xbf\xbd" not in merged.read_bytes()
    assert (built / "firmware.hex").read_bytes() == _ide_hex(tmp_path, sketch)


@needs_toolchain
def test_a_sketch_starting_with_a_bom_builds(tmp_path):
    sketch = _sketch(tmp_path, "Bom", b"\xef\xbb\xbfvoid setup() { helper(); }\nvoid loop() {}\nvoid helper() {}\n")
    built = _build(tmp_path, sketch)
    assert (built / "firmware.hex").stat().st_size > 0
    assert b"\xef\xbb\xbf" not in (built / "build" / "sketch" / "Bom.ino.cpp").read_bytes()


@needs_reference
def test_file_macro_prints_the_path_the_ide_gives(tmp_path):
    sketch = _sketch(tmp_path, "Where", b"void setup() {\n  Serial.begin(9600);\n  Serial.println(__FILE__);\n}\n"
                                        b"void loop() {}\n")
    built = _build(tmp_path, sketch)
    assert (built / "firmware.hex").read_bytes() == _ide_hex(tmp_path, sketch)


def test_a_sketch_without_file_names_keeps_location_free_line_directives(tmp_path):
    from fbuild_graph.preprocess import merge

    plain = _sketch(tmp_path, "Plain", b"void setup() {}\nvoid loop() {}\n") / "Plain.ino"
    located = _sketch(tmp_path, "Located", b"void setup() { assert(1); }\nvoid loop() {}\n") / "Located.ino"
    assert '#line 1 "Plain/Plain.ino"' in merge((str(plain),))
    assert f'#line 1 "{located}"' in merge((str(located),))


@needs_reference
def test_a_sketch_including_arduino_h_gets_no_second_include(tmp_path):
    sketch = _sketch(tmp_path, "Inc", b"// first\n#include <Arduino.h>\nvoid setup() { later(); }\nvoid loop() {}\n"
                                      b"void later() { pinMode(13, OUTPUT); }\n")
    built = _build(tmp_path, sketch)
    merged = (built / "build" / "sketch" / "Inc.ino.cpp").read_text()
    assert merged.startswith('#line 1 "Inc/Inc.ino"\n// first\n#include <Arduino.h>\n')
    assert merged.count("Arduino.h") == 1
    assert (built / "firmware.hex").read_bytes() == _ide_hex(tmp_path, sketch)
