"""Real builds of what library.properties asks for: the choice among libraries that provide one header,
`dot_a_linkage` and `precompiled`, against Debian's arduino-builder where it supports them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import arduino_builder, needs_toolchain, read_tsv, run_cli

needs_reference = pytest.mark.skipif(not (shutil.which("arduino-builder") and shutil.which("avr-g++")),
                                     reason="needs Debian's arduino-builder and the AVR toolchain")


def _library(libs: Path, name: str, files: dict[str, str], **declared: str) -> Path:
    folder = libs / name
    (folder / "src").mkdir(parents=True)
    fields = {"name": name, "version": "1.0.0", "author": "fbuild-graph tests", "maintainer": "fbuild-graph tests",
              "sentence": "A test library.", "paragraph": "", "category": "Other", "url": "https://example.invalid",
              **declared}
    (folder / "library.properties").write_text("".join(f"{key}={value}\n" for key, value in fields.items()))
    for rel, text in files.items():
        (folder / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / "src" / rel).write_text(text)
    return folder


def _sketch(root: Path, name: str, text: str) -> Path:
    folder = root / "sketches" / name
    folder.mkdir(parents=True)
    (folder / f"{name}.ino").write_text(text)
    return folder


def _build(tmp_path: Path, libs: Path, sketch: Path) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path / "out"
    proc = run_cli("compile-many", "--board", "uno", "--cache-mode", "off", "--library-dir", str(libs), "-o", str(out),
                   str(sketch))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / "sketches" / sketch.name, proc


def _link_line(built: Path) -> list[str]:
    return next(line for line in (built / "build.log").read_text().splitlines() if "firmware.elf" in line and " -o " in line).split()


@needs_reference
def test_a_library_made_for_the_board_is_used_over_one_named_like_the_header_and_the_choice_is_said(tmp_path):
    libs = tmp_path / "libraries"
    # Named like the header, but for another chip: its header does not even compile here.
    _library(libs, "Motor", {"Motor.h": '#pragma once\n#error "Motor is for the ESP32"\n'}, architectures="esp32")
    _library(libs, "AvrMotor", {"Motor.h": "#pragma once\nvoid motorStart();\n",
                                "Motor.cpp": '#include <Arduino.h>\n#include "Motor.h"\n'
                                             "void motorStart() { pinMode(9, OUTPUT); digitalWrite(9, HIGH); }\n"},
             architectures="avr")
    sketch = _sketch(tmp_path, "Drive", "#include <Motor.h>\nvoid setup() { motorStart(); }\nvoid loop() {}\n")
    built, proc = _build(tmp_path, libs, sketch)
    ide_hex, ide_log = arduino_builder(sketch / "Drive.ino", tmp_path / "reference", libs)
    assert (built / "firmware.hex").read_bytes() == ide_hex
    assert f"Used: {libs / 'AvrMotor'}" in ide_log and f"Not used: {libs / 'Motor'}" in ide_log
    # arduino-cli's words (arduino-builder 1.3.25 indents by one space), once for the batch.
    assert proc.stderr.count('Multiple libraries were found for "Motor.h"\n'
                             f"  Used: {libs / 'AvrMotor'}\n  Not used: {libs / 'Motor'}\n") == 1


@needs_reference
def test_dot_a_linkage_links_the_library_archive_as_arduino_builder_does(tmp_path):
    libs = tmp_path / "libraries"
    # Boot.cpp's static constructor is linked only if its object is: as an archive member nothing pulls it in.
    _library(libs, "Tally", {"Tally.h": "#pragma once\nunsigned tally();\n",
                             "Tally.cpp": '#include "Tally.h"\nvolatile unsigned count;\nunsigned tally() { return ++count; }\n',
                             "Boot.cpp": "#include <Arduino.h>\nstruct Boot { Boot() { pinMode(13, OUTPUT); } } boot;\n"},
             dot_a_linkage="true")
    sketch = _sketch(tmp_path, "UseTally", "#include <Tally.h>\n"
                                           "void setup() { Serial.begin(9600); Serial.println(tally()); }\nvoid loop() {}\n")
    built, _ = _build(tmp_path, libs, sketch)
    archive = tmp_path / "out" / "stage1" / "libraries" / "Tally" / "Tally.a"
    link = _link_line(built)
    assert str(archive) in link and not any(word.endswith(("Tally.cpp.o", "Boot.cpp.o")) for word in link)
    assert link.index(str(archive)) < next(i for i, word in enumerate(link) if word.endswith("core.a"))
    assert (built / "firmware.hex").read_bytes() == arduino_builder(sketch / "UseTally.ino", tmp_path / "reference", libs)[0]
    kinds = {row["key"]: row["kind"] for row in read_tsv(tmp_path / "out" / "tasks.tsv")}
    assert kinds["lib/Tally/Tally.a"] == "archive"


# Debian's arduino-builder 1.3.25 predates `precompiled` (arduino-builder 1.4.0): no reference build here.
@needs_toolchain
def test_a_precompiled_library_links_its_archive_for_the_mcu_with_its_ldflags_instead_of_its_sources(tmp_path):
    libs = tmp_path / "libraries"
    header = '#pragma once\n#ifdef __cplusplus\nextern "C"\n#endif\nunsigned char secret(void);\n'
    secret = _library(libs, "Secret", {"Secret.h": header, "Secret.c": "volatile unsigned char secret_from_source;\n"
                                       "unsigned char secret(void) { return ++secret_from_source; }\n"},
                      architectures="avr", precompiled="full", ldflags="-lm")
    source = tmp_path / "archive.c"
    source.write_text("volatile unsigned char secret_from_archive;\n"
                      "unsigned char secret(void) { return ++secret_from_archive; }\n")
    (secret / "src" / "atmega328p").mkdir()
    subprocess.run(["avr-gcc", "-c", "-Os", "-mmcu=atmega328p", str(source), "-o", str(tmp_path / "archive.o")], check=True)
    subprocess.run(["avr-ar", "rcs", str(secret / "src" / "atmega328p" / "libSecret.a"), str(tmp_path / "archive.o")],
                   check=True)
    sketch = _sketch(tmp_path, "Keep", "#include <Secret.h>\n"
                                       "void setup() { Serial.begin(9600); Serial.println(secret()); }\nvoid loop() {}\n")
    built, _ = _build(tmp_path, libs, sketch)
    link = _link_line(built)
    flags = [f"-L{secret / 'src' / 'atmega328p'}", "-lm", "-lSecret"]
    start = link.index(flags[0])
    assert link[start:start + 3] == flags and start < next(i for i, word in enumerate(link) if word.endswith("core.a"))
    symbols = subprocess.run(["avr-nm", str(built / "firmware.elf")], capture_output=True, text=True, check=True).stdout
    assert "secret_from_archive" in symbols and "secret_from_source" not in symbols
    assert not any(row["key"].startswith("lib/Secret/") for row in read_tsv(tmp_path / "out" / "tasks.tsv"))
