"""Every byte of a sketch reaches the compiler as the IDE passes it on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import arduino_builder, arduino_builder_hex, needs_toolchain, read_tsv, run_cli

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
    from fbuild_graph.arduino.preprocess import merge

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


# Library detection: what the preprocessor reaches with the board's macros, not what a text scan finds ------

PORTABLE_H = b"""#pragma once
#include <Arduino.h>
#if defined(ARDUINO_ARCH_ESP8266)
#include <SPI.h>
#include <OtherChipWiFi.h>
#endif
#if defined(ARDUINO_ARCH_AVR)
#include <Wire.h>
#endif
void portableBegin();
"""
PORTABLE_CPP = b"""#include "Portable.h"
#ifdef ESP8266
#include <SoftwareSerial.h>
SoftwareSerial debugPort(2, 3);
#endif
void portableBegin() { Wire.begin(); }
"""
# Defines its own pin-change interrupt: SoftwareSerial's objects, linked in, would define it a second time.
PIN_CHANGE = b"""#include <Portable.h>
volatile int hits;
ISR(PCINT0_vect) { hits++; }
void setup() { portableBegin(); PCICR |= 1; }
void loop() {}
"""


def _library(root: Path, name: str, files: dict[str, bytes], architectures: str = "*") -> None:
    folder = root / name
    (folder / "src").mkdir(parents=True)
    (folder / "library.properties").write_text(
        f"name={name}\nversion=1.0.0\nauthor=fbuild-graph tests\nmaintainer=fbuild-graph tests\nsentence=A test "
        f"library.\nparagraph=\ncategory=Other\nurl=https://example.invalid\narchitectures={architectures}\n")
    for rel, data in files.items():
        (folder / "src" / rel).write_bytes(data)


def _conditional_libraries(root: Path) -> Path:
    """A portable library that reaches Wire only on AVR and SPI, SoftwareSerial and a Wi-Fi library for another
    chip only elsewhere; the Wi-Fi library is installed beside it and does not compile for AVR."""
    libs = root / "libraries"
    _library(libs, "Portable", {"Portable.h": PORTABLE_H, "Portable.cpp": PORTABLE_CPP})
    _library(libs, "OtherChipWiFi", {"OtherChipWiFi.h": b"#pragma once\n#include <user_interface.h>\n",
                                     "OtherChipWiFi.cpp": b"#include \"OtherChipWiFi.h\"\nint wifi_mode = STATION_MODE;\n"},
             architectures="esp8266")
    return libs


def _library_objects(link_line: str) -> list[str]:
    """The library objects a link names, as `NAME/FILE.o`, in link order."""
    return [word.split("libraries/", 1)[1].strip('"') for word in link_line.split() if "libraries/" in word and
            word.strip('"').endswith(".o")]


@needs_reference
def test_a_library_under_a_false_if_is_neither_compiled_nor_linked(tmp_path):
    libs = _conditional_libraries(tmp_path)
    sketch = _sketch(tmp_path, "PinChange", PIN_CHANGE)
    out = tmp_path / "out"
    proc = run_cli("compile-many", "--board", "uno", "--cache-mode", "off", "--library-dir", str(libs), "-o", str(out),
                   str(sketch))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ide_hex, ide_log = arduino_builder(sketch / "PinChange.ino", tmp_path / "reference", libs)
    built = out / "sketches" / "PinChange"
    assert (built / "firmware.hex").read_bytes() == ide_hex
    ours = next(line for line in (built / "build.log").read_text().splitlines() if "firmware.elf" in line and " -o " in line)
    ide = next(line for line in ide_log.splitlines() if "PinChange.ino.elf" in line and " -o " in line)
    assert _library_objects(ours) == _library_objects(ide) == ["Portable/Portable.cpp.o", "Wire/Wire.cpp.o",
                                                               "Wire/utility/twi.c.o"]
    for never in ("SPI", "SoftwareSerial", "OtherChipWiFi"):
        assert not (out / "stage1" / "libraries" / never).exists(), never
        assert not any(row["key"].startswith(f"lib/{never}/") for row in read_tsv(out / "tasks.tsv")), never


@needs_toolchain
def test_detection_is_asked_once_and_again_only_when_a_header_changes(tmp_path):
    libs = _conditional_libraries(tmp_path)
    sketch = _sketch(tmp_path, "PinChange", PIN_CHANGE)
    out = tmp_path / "out"

    def build() -> dict:
        proc = run_cli("compile-many", "--board", "uno", "--library-dir", str(libs), "-o", str(out), str(sketch))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        phases = {row["phase"]: row for row in read_tsv(out / "phases.tsv")}
        assert float(phases["libraries"]["seconds"]) > 0
        return json.loads((out / "results.json").read_text())["library_detection"]

    cold = build()
    assert cold["preprocessor_runs"] > 0 and cold["answers_reused"] == 0
    warm = build()
    assert warm == {"preprocessor_runs": 0, "answers_reused": cold["preprocessor_runs"]}
    # Now the sketch's own preprocessing reads a changed header: its answer is asked again.
    header = libs / "Portable" / "src" / "Portable.h"
    header.write_bytes(header.read_bytes().replace(b"void portableBegin();", b"void portableBegin(); // edited"))
    edited = build()
    assert edited["preprocessor_runs"] >= 1 and edited["answers_reused"] < cold["preprocessor_runs"]


# A whole sketch inside `#if`: arduino-builder's ctags sees the branch the board selects and prototypes it.
WRAPPED = b"""#include <Arduino.h>
#if (F_CPU > 7370000)
void setup() { blink(3); }
void loop() {}
void blink(int n) { for (int i = 0; i < n; i++) { digitalWrite(13, HIGH); delay(100); digitalWrite(13, LOW); } }
#else
void setup() { slow(); }
void loop() {}
void slow() {}
#endif
"""


@needs_reference
def test_functions_inside_a_conditional_get_prototypes_in_their_branch(tmp_path):
    sketch = _sketch(tmp_path, "Wrapped", WRAPPED)
    built = _build(tmp_path, sketch)
    assert (built / "firmware.hex").read_bytes() == _ide_hex(tmp_path, sketch)


@needs_reference
def test_the_merged_sketch_links_in_its_place_among_the_sketch_sources(tmp_path):
    # Both files have a static constructor: the link order decides which runs first, and so the bytes.
    sketch = _sketch(tmp_path, "Order", b"struct Late { Late() { pinMode(4, OUTPUT); } } late;\n"
                                        b"void helper();\nvoid setup() { helper(); }\nvoid loop() {}\n")
    (sketch / "Aux.cpp").write_bytes(b"#include <Arduino.h>\nstruct Early { Early() { pinMode(3, OUTPUT); } } early;\n"
                                     b"void helper() { digitalWrite(3, HIGH); }\n")
    built = _build(tmp_path, sketch)
    assert (built / "firmware.hex").read_bytes() == _ide_hex(tmp_path, sketch)
