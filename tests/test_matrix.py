"""The board matrix: every sketch for every board in one graph, each target the firmware its board built alone
would be; shared library compiles only where they are the same compile; skipped targets with their reasons."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from attrs import evolve

from conftest import DEBIAN_ONLY, EXAMPLES, PLATFORM, make_sketch, needs_toolchain, read_tsv, run_cli, target_results
from fbuild_graph.arduino import board as boards
from fbuild_graph.arduino import libraries
from fbuild_graph.arduino.detection import Discovery
from fbuild_graph.errors import FbuildError
from fbuild_graph.model import Action, Board, Library, Owner, OwnerKind, Sketch
from fbuild_graph.planning import graph, matrix
from fbuild_graph.planning.layout import Layout
from fbuild_graph.planning.targets import Exclusion, architecture_reason, board_ids, marker_reason, markers

BOARDS = ("uno", "mega", "leonardo", "nano")
FRAMEWORK_JOBS, SKETCH_JOBS = 2, 2


def _board(fqbn: str, **props: str) -> Board:
    return Board(fqbn=fqbn, name=fqbn, platform_path="/nonexistent", properties=props)


# the vocabulary, without a toolchain ---------------------------------------------------------------------

@pytest.mark.parametrize("owner", [Owner.core(), Owner.library("../x:y"), Owner.sketch("Blink", "uno"),
                                   Owner.library("a/b:c", "mega-atmega1280"), Owner.core("leonardo")])
def test_an_owner_reads_back_as_written(owner):
    assert Owner.parse(str(owner)) == owner


def test_owners_of_a_single_board_build_read_as_they_always_have():
    assert str(Owner.library("Wire")) == "lib:Wire" and str(Owner.sketch("Blink", "uno")) == "uno/sketch:Blink"
    assert Owner.parse("uno/core") == Owner(OwnerKind.CORE, "", "uno")


def test_board_ids_are_readable_and_unique():
    assert board_ids([_board("arduino:avr:uno"), _board("arduino:avr:mega:cpu=atmega2560"),
                      _board("arduino:avr:mega:cpu=atmega1280"), _board("other:avr:uno")]) == [
        "arduino-avr-uno", "mega-atmega2560", "mega-atmega1280", "other-avr-uno"]
    assert board_ids([_board("arduino:avr:uno"), _board("arduino:avr:leonardo")]) == ["uno", "leonardo"]
    with pytest.raises(FbuildError, match="arduino:avr:uno is given twice"):
        board_ids([_board("arduino:avr:uno"), _board("arduino:avr:uno")])


def test_marker_files_skip_a_board_or_keep_only_some(tmp_path):
    (tmp_path / ".uno.test.skip").touch()
    assert marker_reason(markers(str(tmp_path)), "uno") == "skipped: the sketch folder holds .uno.test.skip"
    assert marker_reason(markers(str(tmp_path)), "mega") is None
    (tmp_path / ".leonardo.test.only").touch()
    assert marker_reason(markers(str(tmp_path)), "mega") == (
        "skipped: the sketch folder holds .leonardo.test.only and no .mega.test.only")
    assert marker_reason(markers(str(tmp_path)), "leonardo") is None


def test_exclusions_name_a_board_and_a_sketch_glob():
    sketch = Sketch(id="eeprom_read", name="eeprom_read", path="/x/EEPROM/examples/eeprom_read", inos=(), files=(),
                    sources=())
    assert Exclusion.parse("mega:eeprom_*").matches("mega", sketch)
    assert not Exclusion.parse("mega:eeprom_*").matches("uno", sketch)
    assert Exclusion.parse("*:*/EEPROM/*").matches("uno", sketch)
    with pytest.raises(FbuildError, match="--exclude uno: expected BOARD:GLOB"):
        Exclusion.parse("uno")


def test_a_library_for_other_architectures_skips_the_target():
    lib = Library(name="SamdOnly", root="/l", layout="flat", include_dirs=("/l",), sources=(), headers=(),
                  architectures=("samd",))
    assert architecture_reason([lib], _board("arduino:avr:uno")) == (
        "skipped: library SamdOnly is for samd (architectures= in its library.properties), not avr")
    assert architecture_reason([lib], _board("arduino:avr:uno", **{"architecture.override_check": "samd"})) is None


def _compile(*argv: str) -> Action:
    return Action(key="k", kind="compile", owner="lib:L", resource="framework", step="s", argv=argv)


def test_compiles_differ_in_macros_only_when_every_other_token_is_the_same():
    uno = _compile("g++", "-mmcu=atmega328p", "-DARDUINO_AVR_UNO", "-DF_CPU=16000000L", "a.cpp")
    assert matrix.differing_macros([uno], [uno]) == frozenset()
    assert matrix.differing_macros([uno], [_compile("g++", "-mmcu=atmega328p", "-DARDUINO_AVR_NANO",
                                                    "-DF_CPU=16000000L", "a.cpp")]) == {"ARDUINO_AVR_UNO",
                                                                                        "ARDUINO_AVR_NANO"}
    assert matrix.differing_macros([uno], [_compile("g++", "-mmcu=atmega328p", "-DARDUINO_AVR_UNO",
                                                    "-DF_CPU=8000000L", "a.cpp")]) == {"F_CPU"}
    assert matrix.differing_macros([uno], [_compile("g++", "-mmcu=atmega2560", "-DARDUINO_AVR_UNO",
                                                    "-DF_CPU=16000000L", "a.cpp")]) is None


def _plan(fqbn: str, lib: Library, out: Path) -> graph.BoardPlan:
    board = boards.resolve(fqbn, DEBIAN_ONLY, {})
    namespace = board.board_id
    discovery = Discovery(libraries=(lib,), by_sketch={}, closure={lib.name: ()}, choices=())
    return graph.BoardPlan(board=board, sketches=(), discovery=discovery, layout=Layout(str(out / namespace)),
                            core_sources=(), variant_sources=(), precompiled={}, launcher=(),
                            toolchain=lambda a: "avr-gcc", namespace=namespace)


@pytest.mark.skipif(not PLATFORM.is_dir(), reason="needs arduino-core-avr")
def test_a_library_is_compiled_once_for_boards_whose_compiles_are_the_same(tmp_path):
    wire = next(lib for lib in libraries.index([], str(PLATFORM), str(PLATFORM)) if lib.name == "Wire")
    uno, diecimila, mega = (_plan(fqbn, wire, tmp_path) for fqbn in
                            ("arduino:avr:uno", "arduino:avr:diecimila:cpu=atmega328", "arduino:avr:mega"))
    asked = []

    def unmentioned(names, actions):
        asked.append(names)
        return True

    planned = matrix.matrix_actions([uno, diecimila, mega], unmentioned)
    compiled = {Owner.parse(a.owner).board for a in planned.actions if Owner.parse(a.owner).kind == OwnerKind.LIBRARY}
    assert compiled == {"uno", "mega"}
    assert planned.library_owners == {"uno": {"Wire": "uno/lib:Wire"}, "diecimila": {"Wire": "uno/lib:Wire"},
                                      "mega": {"Wire": "mega/lib:Wire"}}
    assert asked == [{"ARDUINO_AVR_UNO", "ARDUINO_AVR_DUEMILANOVE"}]
    # A file that names a differing macro keeps the compiles apart, and so does another tool.
    planned = matrix.matrix_actions([uno, diecimila], lambda names, actions: False)
    assert planned.library_owners["diecimila"] == {"Wire": "diecimila/lib:Wire"}
    planned = matrix.matrix_actions([uno, evolve(diecimila, toolchain=lambda a: "another avr-gcc")], unmentioned)
    assert planned.library_owners["diecimila"] == {"Wire": "diecimila/lib:Wire"}


# real builds ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def matrix_build(tmp_path_factory):
    if not shutil.which("avr-g++") or not PLATFORM.is_dir():
        pytest.skip("needs the AVR toolchain and arduino-core-avr")
    root = tmp_path_factory.mktemp("matrix")
    extra = root / "sketches"
    make_sketch(extra, "usb_only", "void setup() { USBDevice.attach(); }\nvoid loop() {}\n")
    make_sketch(extra, "not_on_uno", "void setup() {}\nvoid loop() {}\n", (".uno.test.skip",))
    make_sketch(extra, "leonardo_only", "void setup() {}\nvoid loop() {}\n", (".leonardo.test.only",))
    make_sketch(extra, "uses_samd", "#include <SamdOnly.h>\nvoid setup() {}\nvoid loop() {}\n")
    lib = root / "libs" / "SamdOnly"
    (lib / "src").mkdir(parents=True)
    (lib / "src" / "SamdOnly.h").write_text("#pragma once\n")
    (lib / "library.properties").write_text("name=SamdOnly\nversion=1.0\narchitectures=samd\n")
    out = root / "out"
    proc = run_cli("compile-many", *(a for b in BOARDS for a in ("--board", b)), "--exclude", "mega:eeprom_c*",
                   "--framework-jobs", str(FRAMEWORK_JOBS), "--sketch-jobs", str(SKETCH_JOBS),
                   "--library-dir", str(root / "libs"), "-o", str(out), str(PLATFORM / "libraries"), str(extra))
    return out, proc


@needs_toolchain
def test_each_target_is_the_firmware_its_board_builds_alone(matrix_build, tmp_path):
    out, proc = matrix_build
    assert proc.returncode == 1, proc.stderr  # usb_only fails on three boards
    targets = target_results(out)
    assert len(targets) == len(BOARDS) * (len(EXAMPLES) + 4)
    for board in BOARDS:
        alone = tmp_path / board
        single = run_cli("compile-many", "--board", board, "--cache-mode", "off", "--no-ccache", "-o", str(alone),
                         str(PLATFORM / "libraries"))
        assert single.returncode == 0, single.stderr
        for ino in EXAMPLES:
            target = targets[(board, ino.stem)]
            if target["status"] == "skipped":
                continue
            assert target["status"] == "ok" and target["board"].startswith("arduino:avr:"), target
            assert target["out_dir"] == str(out / board / "sketches" / ino.stem)
            assert (Path(target["out_dir"]) / "firmware.hex").read_bytes() == (
                alone / "sketches" / ino.stem / "firmware.hex").read_bytes(), (board, ino.stem)


@needs_toolchain
def test_a_usb_sketch_builds_for_the_leonardo_only(matrix_build):
    targets = target_results(matrix_build[0])
    assert targets[("leonardo", "usb_only")]["status"] == "ok"
    for board in ("uno", "mega", "nano"):
        assert targets[(board, "usb_only")]["status"] == "failed"
        assert "USBDevice" in targets[(board, "usb_only")]["error"]
        assert not (matrix_build[0] / board / "sketches" / "usb_only" / "firmware.hex").exists()


@needs_toolchain
def test_skipped_targets_say_why_and_build_nothing(matrix_build):
    out = matrix_build[0]
    targets = target_results(out)
    reasons = {key: t["error"] for key, t in targets.items() if t["status"] == "skipped"}
    assert reasons[("uno", "not_on_uno")] == "skipped: the sketch folder holds .uno.test.skip"
    assert targets[("mega", "not_on_uno")]["status"] == "ok"
    assert {b for (b, sk) in reasons if sk == "leonardo_only"} == {"uno", "mega", "nano"}
    assert {b for (b, sk) in reasons if sk == "uses_samd"} == set(BOARDS)
    assert reasons[("nano", "uses_samd")].startswith("skipped: library SamdOnly is for samd")
    assert {sk for (b, sk) in reasons if b == "mega" and sk.startswith("eeprom_c")} == {"eeprom_clear", "eeprom_crc"}
    assert reasons[("mega", "eeprom_crc")] == "skipped: --exclude mega:eeprom_c*"
    tasks = read_tsv(out / "tasks.tsv")
    assert not [t for t in tasks if t["sketch"] in ("uses_samd", "not_on_uno") and t["board"] == "uno"]
    assert not [t for t in tasks if "SamdOnly" in t["key"]]
    assert not (out / "uno" / "sketches" / "not_on_uno" / "firmware.hex").exists()


@needs_toolchain
def test_the_limits_held_over_the_whole_matrix(matrix_build):
    from test_compile_many import _max_concurrency

    tasks = read_tsv(matrix_build[0] / "tasks.tsv")
    assert {t["board"] for t in tasks} == set(BOARDS)
    ran = [t for t in tasks if t["start"]]
    assert _max_concurrency([t for t in ran if t["resource"] == "framework"]) <= FRAMEWORK_JOBS
    assert _max_concurrency([t for t in ran if t["resource"] == "sketch"]) <= SKETCH_JOBS
    phases = read_tsv(matrix_build[0] / "phases.tsv")
    assert [p["board"] for p in phases if p["phase"] == "discover"] == list(BOARDS)


@needs_toolchain
def test_a_broken_core_fails_only_its_own_boards_targets(tmp_path):
    broken = tmp_path / "hw" / "broken" / "avr"
    shutil.copytree(PLATFORM, broken, ignore=shutil.ignore_patterns("libraries"))
    with open(broken / "cores" / "arduino" / "wiring.c", "a") as f:
        f.write("\nthis is not C;\n")
    blink = make_sketch(tmp_path / "sketches", "Blink", "void setup() {}\nvoid loop() {}\n")
    out = tmp_path / "out"
    proc = run_cli("compile-many", "--board", "uno", "--board", "broken:avr:uno", "--hardware", str(tmp_path / "hw"),
                   "-o", str(out), str(blink))
    assert proc.returncode == 1, proc.stderr
    targets = target_results(out)
    assert targets[("arduino-avr-uno", "Blink")]["status"] == "ok"
    failed = targets[("broken-avr-uno", "Blink")]
    assert failed["status"] == "failed" and "core" in failed["error"]
    assert str(out / "broken-avr-uno" / "stage1" / "core.log") in failed["error"]
    assert "this is not C" in (out / "broken-avr-uno" / "stage1" / "core.log").read_text()


@needs_toolchain
def test_boards_come_from_a_file_too(tmp_path):
    listing = tmp_path / "boards.txt"
    listing.write_text("# the boards CI builds\narduino:avr:uno\n\n  leonardo  # USB\n")
    blink = make_sketch(tmp_path / "sketches", "Blink", "void setup() {}\nvoid loop() {}\n")
    proc = run_cli("graph", "--format", "ninja", "--boards", str(listing), "-o", str(tmp_path / "out"), str(blink))
    assert proc.returncode == 0, proc.stderr
    for board in ("uno", "leonardo"):
        assert f"build {tmp_path}/out/{board}/sketches/Blink/build/firmware.hex:" in proc.stdout
    assert proc.stdout.count("pool = framework") > 0
    missing = run_cli("graph", "--format", "ninja", "--boards", str(tmp_path / "nope.txt"), str(blink))
    assert missing.returncode == 2 and "--boards" in missing.stderr and len(missing.stderr.splitlines()) == 1


@needs_toolchain
def test_a_shared_library_links_the_same_firmware_as_its_own_compile(tmp_path):
    """The Diecimila's compiles of Wire differ from the Uno's only in -DARDUINO_AVR_DUEMILANOVE: the Uno's
    objects link into its firmware, which is byte for byte what it builds alone."""
    wire = PLATFORM / "libraries" / "Wire" / "examples"
    diecimila = "arduino:avr:diecimila:cpu=atmega328"
    out = tmp_path / "out"
    proc = run_cli("compile-many", "--board", "uno", "--board", diecimila, "-o", str(out), str(wire))
    assert proc.returncode == 0, proc.stderr
    tasks = read_tsv(out / "tasks.tsv")
    assert {t["board"] for t in tasks if "/lib/Wire/" in t["key"]} == {"uno"}
    assert "# library Wire: " + str(out / "uno" / "stage1" / "libraries" / "Wire.log") in (
        out / "diecimila" / "sketches" / "master_reader" / "build.log").read_text()
    alone = tmp_path / "alone"
    assert run_cli("compile-many", "--board", diecimila, "--cache-mode", "off", "--no-ccache", "-o", str(alone),
                   str(wire)).returncode == 0
    examples = sorted(p.name for p in wire.iterdir())
    for name in examples:
        assert (out / "diecimila" / "sketches" / name / "firmware.hex").read_bytes() == (
            alone / "sketches" / name / "firmware.hex").read_bytes(), name
