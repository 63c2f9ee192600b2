"""Library detection without a toolchain: the arduino-cli loop against a fake preprocessor, the include scan
that spares runs, and the reading of gcc's answers."""

from __future__ import annotations

from pathlib import Path

from fbuild_graph.arduino import recipes
from fbuild_graph.arduino.detection import Source, detect
from fbuild_graph.arduino.include_probe import AnswerCache, Answer, missing_header, parse
from fbuild_graph.arduino.include_scan import IncludeScan, scan
from fbuild_graph.arduino.libraries import Choice, priority, resolve
from fbuild_graph.model import Library, LibraryLocation, Sketch

CORE = "/core"


def _lib(name: str, *headers: str, sources: tuple[str, ...] = (), folder: str = "", **declared) -> Library:
    root = f"/libs/{folder or name}"
    return Library(name=name, root=root, layout="recursive", include_dirs=(f"{root}/src",),
                   sources=tuple(f"{root}/src/{s}" for s in sources), headers=headers, **declared)


def _sketch(name: str, *sources: str) -> Sketch:
    return Sketch(id=name, name=name, path=f"/sk/{name}", inos=(f"/sk/{name}/{name}.ino",), files=sources,
                  sources=sources)


class FakePreprocessor:
    """Each file reaches the headers `reaches` lists, in order (what the real preprocessor finds under the
    board's macros); a header is found when a folder on the include path provides it."""

    def __init__(self, libraries: list[Library], reaches: dict[str, list[str]]):
        self.provides = {d: set(lib.headers) for lib in libraries for d in lib.include_dirs}
        self.reaches = reaches
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    def __call__(self, source: Source, include_dirs) -> str | None:
        self.asked.append((source.path, tuple(include_dirs)))
        for header in self.reaches.get(source.path, []):
            if not any(header in self.provides.get(d, ()) for d in include_dirs):
                return header
        return None


def _detect(sketches, libraries, reaches):
    fake = FakePreprocessor(libraries, reaches)
    return detect(sketches, lambda sk: b"", libraries, [CORE], fake, "avr"), fake


def test_only_what_the_preprocessor_reaches_is_linked_in_the_order_found():
    libs = [_lib("Portable", "Portable.h", sources=("Portable.cpp",)), _lib("Wire", "Wire.h", sources=("Wire.cpp",)),
            _lib("SPI", "SPI.h"), _lib("OtherChipWiFi", "OtherChipWiFi.h", sources=("wifi.cpp",))]
    reaches = {"/sk/A/A.ino": ["Portable.h"], "/libs/Portable/src/Portable.cpp": ["Portable.h", "Wire.h"]}
    d, fake = _detect([_sketch("A")], libs, reaches)
    assert d.by_sketch == {"A": ("Portable", "Wire")}
    assert d.closure == {"Portable": ("Wire",), "Wire": ()}
    assert [lib.name for lib in d.libraries] == ["Portable", "Wire"]
    # The Wi-Fi library no sketch reaches is never preprocessed, let alone compiled.
    assert not any(path.startswith("/libs/OtherChipWiFi") for path, _ in fake.asked)


def test_each_missing_header_grows_the_include_path_and_the_file_is_asked_again():
    libs = [_lib("A", "A.h"), _lib("B", "B.h")]
    d, fake = _detect([_sketch("S", "extra.cpp")], libs, {"/sk/S/S.ino": ["A.h", "B.h"], "/sk/S/extra.cpp": ["B.h"]})
    assert d.by_sketch["S"] == ("A", "B")
    assert fake.asked == [("/sk/S/S.ino", (CORE,)), ("/sk/S/S.ino", (CORE, "/libs/A/src")),
                          ("/sk/S/S.ino", (CORE, "/libs/A/src", "/libs/B/src")),
                          ("/sk/S/extra.cpp", (CORE, "/libs/A/src", "/libs/B/src"))]


def test_a_header_nobody_provides_stops_that_file_only():
    libs = [_lib("A", "A.h")]
    d, _ = _detect([_sketch("S", "extra.cpp")], libs, {"/sk/S/S.ino": ["Nowhere.h", "Never.h"],
                                                       "/sk/S/extra.cpp": ["A.h"]})
    assert d.by_sketch["S"] == ("A",)


def test_libraries_of_libraries_follow_breadth_first_as_arduino_cli_queues_them():
    libs = [_lib("Top", "Top.h", sources=("top.cpp",)), _lib("Mid", "Mid.h", sources=("mid.cpp",)),
            _lib("Leaf", "Leaf.h"), _lib("Side", "Side.h")]
    reaches = {"/sk/S/S.ino": ["Top.h", "Side.h"], "/libs/Top/src/top.cpp": ["Mid.h"],
               "/libs/Mid/src/mid.cpp": ["Leaf.h", "Top.h"]}
    d, _ = _detect([_sketch("S")], libs, reaches)
    assert d.by_sketch["S"] == ("Top", "Side", "Mid", "Leaf")
    assert d.closure["Mid"] == ("Leaf", "Top")  # a cycle back to Top: Mid compiles with Top's folder too
    assert d.closure["Top"] == ("Mid", "Leaf")


def test_among_providers_the_library_named_like_the_header_wins():
    libs = [_lib("Clone", "Servo.h"), _lib("Servo", "Servo.h")]
    d, _ = _detect([_sketch("S")], libs, {"/sk/S/S.ino": ["Servo.h"]})
    assert d.by_sketch["S"] == ("Servo",)


# the choice among providers, as arduino-cli's ComputePriority and ResolveFor make it ----------------------

USER, PLATFORM, UNMANAGED = LibraryLocation.USER, LibraryLocation.PLATFORM, LibraryLocation.UNMANAGED


def test_compatible_beats_named_like_the_header_which_beats_made_for_the_board_which_beats_location():
    esp_motor = _lib("Motor", "Motor.h", architectures=("esp32",))
    avr_motor = _lib("AvrMotor", "Motor.h", architectures=("avr",), location=PLATFORM)
    any_motor = _lib("AnyMotor", "Motor.h", architectures=("*",))
    assert resolve("Motor.h", [esp_motor, any_motor, avr_motor], "avr") is avr_motor
    assert resolve("Motor.h", [esp_motor, any_motor, avr_motor], "esp32") is esp_motor
    assert resolve("Motor.h", [esp_motor, any_motor], "avr") is any_motor
    # A better name outranks being made for the board; among equal names, the user's outranks the platform's.
    kit = _lib("MotorKit", "Motor.h", architectures=("*",))
    assert resolve("Motor.h", [avr_motor, kit], "avr") is kit
    assert resolve("Motor.h", [kit, _lib("Motor", "Motor.h", folder="Motor-1.2")], "avr").name == "Motor"
    mine, bundled = _lib("Motor", "Motor.h", location=USER), _lib("Motor", "Motor.h", location=PLATFORM)
    assert resolve("Motor.h", [bundled, mine], "avr") is mine
    # A library named on the command line (one library's root) outranks everything, architecture included.
    named = _lib("Motor", "Motor.h", architectures=("esp32",), location=UNMANAGED)
    assert resolve("Motor.h", [avr_motor, named], "avr") is named
    assert resolve("Motor.h", [], "avr") is None


def test_name_matches_rank_as_arduino_cli_ranks_them():
    ranked = [_lib("Fast LED", folder="fast_led"), _lib("fast_led", folder="elsewhere"), _lib("Fast_LED-main"),
              _lib("fast_led-master"), _lib("Fast LED Pro"), _lib("Not Fast LED"), _lib("A fast_led kit"), _lib("Other")]
    scores = [priority(lib, "fast_led.h", "avr") for lib in ranked]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
    assert scores[0] - scores[-1] == 700 and scores[-1] == 1000 + 3  # any architecture, a user's folder
    assert priority(_lib("Servo", architectures=("avr", "sam")), "Servo.h", "avr") == 1010 + 700 + 3
    assert priority(_lib("Servo", architectures=("sam",), location=PLATFORM), "Servo.h", "avr") == 0 + 700 + 2
    assert priority(_lib("fl"), "fl/ui.h", "avr") == priority(_lib("Other"), "fl/ui.h", "avr")  # "fl_ui" is no name


def test_equal_priorities_go_to_the_closest_name_else_the_first_by_name():
    unified, zeta = _lib("Graphics Unified Kit"), _lib("Zeta")
    assert priority(unified, "graphics_kit.h", "avr") == priority(zeta, "graphics_kit.h", "avr")
    assert resolve("graphics_kit.h", [zeta, unified], "avr") is unified
    alpha, beta = _lib("beta"), _lib("Alpha")
    assert resolve("XYZ.h", [alpha, beta], "avr") is beta  # no shared letters: byte order, upper case first


def test_a_header_several_libraries_provide_is_noted_with_the_ones_not_used():
    esp_motor = _lib("Motor", "Motor.h", architectures=("esp32",))
    avr_motor = _lib("AvrMotor", "Motor.h", architectures=("avr",))
    d, _ = _detect([_sketch("S"), _sketch("T")], [esp_motor, avr_motor, _lib("Wire", "Wire.h")],
                   {"/sk/S/S.ino": ["Motor.h", "Wire.h"], "/sk/T/T.ino": ["Motor.h"]})
    assert d.by_sketch == {"S": ("AvrMotor", "Wire"), "T": ("AvrMotor",)}
    assert d.choices == (Choice("Motor.h", avr_motor, (esp_motor,)),)
    assert d.choices[0].note() == 'Multiple libraries were found for "Motor.h"\n  Used: /libs/AvrMotor\n  Not used: /libs/Motor'


# the include scan -------------------------------------------------------------------------------------

def test_scan_reads_literal_includes_and_flags_what_it_cannot_follow():
    text = b'#include <a.h>\n  #  include "b/c.h"\n#define X \\\n 1\n#include HEADER\n#include_next <d.h>\n# /* */ include <e.h>\n'
    assert scan(text) == (("?", ""), ("<", "a.h"), ('"', "b/c.h"), ("?", ""), ("?", ""))


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_scan_finds_a_library_header_behind_a_false_if_and_spares_files_that_reach_none(tmp_path):
    _tree(tmp_path, {"core/Arduino.h": "#include <stdlib.h>\n#include \"pins.h\"\n", "core/pins.h": "",
                     "sys/stdlib.h": "#include <SPI.h>\n",  # a system header is not followed
                     "lib/Portable.h": "#ifdef ESP8266\n#include <SPI.h>\n#endif\n", "spi/SPI.h": ""})
    s = IncludeScan([str(tmp_path / "sys")], frozenset({"SPI.h", "Portable.h"}))
    core = [str(tmp_path / "core")]
    assert not s.may_reach_library([("<", "Arduino.h"), ("<", "NoSuchLib.h")], str(tmp_path), core)
    assert s.may_reach_library([("<", "Portable.h")], str(tmp_path), core)  # not on the path yet: missing
    assert s.may_reach_library([("<", "Portable.h")], str(tmp_path), [*core, str(tmp_path / "lib")])
    assert not s.may_reach_library([("<", "Portable.h")], str(tmp_path),
                                   [*core, str(tmp_path / "lib"), str(tmp_path / "spi")])


def test_a_quote_include_is_searched_beside_the_including_file_first(tmp_path):
    _tree(tmp_path, {"sketch/SPI.h": "", "lib/SPI.h": "#include <Other.h>\n"})
    s = IncludeScan([], frozenset({"SPI.h", "Other.h"}))
    assert not s.may_reach_library([('"', "SPI.h")], str(tmp_path / "sketch"), [str(tmp_path / "lib")])
    assert s.may_reach_library([("<", "SPI.h")], str(tmp_path / "sketch"), [str(tmp_path / "lib")])


# reading gcc's answers --------------------------------------------------------------------------------

GCC_STDERR = """. /core/Arduino.h
.. /usr/lib/avr/include/stdlib.h
. /sk/S/config h.h
<stdin>:6:21: fatal error: FastLED.h: No such file or directory
compilation terminated.
"""


def test_the_first_missing_header_and_every_header_read_come_from_one_run():
    assert parse(GCC_STDERR) == ("FastLED.h", ("/core/Arduino.h", "/usr/lib/avr/include/stdlib.h", "/sk/S/config h.h"))
    assert parse(". /core/Arduino.h\n") == (None, ("/core/Arduino.h",))
    assert missing_header("x.ino:1:27: fatal error: NoSuchLibrary.h: No such file or directory") == "NoSuchLibrary.h"


def test_the_detection_command_is_arduino_clis_preprocessor_recipe():
    props = {"compiler.path": "/usr/bin/", "compiler.cpp.cmd": "avr-g++", "compiler.cpp.flags": "-c -g -Os -MMD -flto",
             "preproc.macros.flags": "-w -x c++ -E -CC",
             "recipe.preproc.macros": '"{compiler.path}{compiler.cpp.cmd}" {compiler.cpp.flags} {preproc.macros.flags} '
                                      '-mmcu=atmega328p {includes} "{source_file}" -o "{preprocessed_file_path}"'}
    assert recipes.detect_argv(props, "/s/a b.cpp", ["/core"]) == (
        "/usr/bin/avr-g++", "-c", "-g", "-Os", "-flto", "-w", "-x", "c++", "-E", "-CC", "-mmcu=atmega328p", "-I/core",
        "/s/a b.cpp", "-o", "/dev/null", "-fdirectives-only", "-H")
    # A platform without the recipe gets arduino-cli's stand-in, made from its C++ compile recipe.
    del props["recipe.preproc.macros"], props["preproc.macros.flags"]
    props["recipe.cpp.o.pattern"] = '"{compiler.path}{compiler.cpp.cmd}" {compiler.cpp.flags} {includes} "{source_file}" -o "{object_file}"'
    assert recipes.detect_argv(props, "-", ["/core"], ["/sk"]) == (
        "/usr/bin/avr-g++", "-c", "-g", "-Os", "-flto", "-w", "-x", "c++", "-E", "-CC", "-I/core", "-", "-o", "/dev/null",
        "-fdirectives-only", "-H", "-iquote", "/sk")


def test_a_kept_answer_is_reused_only_while_every_header_it_read_is_unchanged(tmp_path):
    header = tmp_path / "Portable.h"
    header.write_text("#include <Wire.h>\n")
    from fbuild_graph import fileio

    first = AnswerCache(str(tmp_path / "includes.cache"))
    first.put("k", Answer(missing="Wire.h", read=((str(header), fileio.digest(str(header))),)))
    first.save()
    assert AnswerCache(str(tmp_path / "includes.cache")).get("k") == Answer("Wire.h", ((str(header), fileio.digest(str(header))),))
    header.write_text("#include <SPI.h>\n")
    again = AnswerCache(str(tmp_path / "includes.cache"))
    assert again.get("k") is None and again.reused == 0
    (tmp_path / "includes.cache").write_text("{not json")
    assert AnswerCache(str(tmp_path / "includes.cache")).get("k") is None
