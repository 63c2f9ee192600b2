"""The pure parts, one module at a time: properties, board, sketches, libraries, the DAG, the plan, export."""

from __future__ import annotations

import shutil

import attrs
import networkx as nx
import pytest

from conftest import DEBIAN_ONLY, PLATFORM, TEST_LIBRARIES, TEST_SKETCHES, needs_toolchain
from fbuild_graph.arduino import board as boards
from fbuild_graph.planning import graph
from fbuild_graph.arduino import libraries
from fbuild_graph.planning import plan
from fbuild_graph.arduino import properties
from fbuild_graph.arduino import sketch
from fbuild_graph.errors import FbuildError
from fbuild_graph.model import SketchResult, SketchStatus
from fbuild_graph.outputs import results
from fbuild_graph.planning.export import to_ninja
from fbuild_graph.planning.layout import Layout

needs_core = pytest.mark.skipif(not PLATFORM.is_dir(), reason="needs arduino-core-avr")


# properties ---------------------------------------------------------------------------------------------

def test_split_command_keeps_quoted_words_whole_and_inner_quotes():
    argv = properties.split_command('"/usr/bin/avr-g++" -c \'-DUSB_PRODUCT="Arduino Leonardo"\' "-I/a b/c"  x')
    assert argv == ["/usr/bin/avr-g++", "-c", '-DUSB_PRODUCT="Arduino Leonardo"', "-I/a b/c", "x"]


def test_split_command_rejects_an_unterminated_quote():
    with pytest.raises(FbuildError, match="unterminated"):
        properties.split_command('"/usr/bin/avr-gcc -c')


def test_expand_is_recursive_and_strict():
    props = {"a": "{b}-{c}", "b": "B", "c": "{b}{b}"}
    assert properties.expand("x {a}", props, what="t") == "x B-BB"
    with pytest.raises(FbuildError, match=r"\{missing\}.*--build-property missing=VALUE"):
        properties.expand("{missing}", props, what="t")
    with pytest.raises(FbuildError, match="loop"):
        properties.expand("{x}", {"x": "{y}", "y": "{x}"}, what="t")


def test_parse_skips_comments_and_keeps_equals_in_values():
    assert properties.parse("# c\n a.b = x=y \n\nbad line\n") == {"a.b": "x=y"}


# board --------------------------------------------------------------------------------------------------

@needs_core
@pytest.mark.parametrize("spec,mcu,flash", [
    ("uno", "atmega328p", 32256),
    ("arduino:avr:uno", "atmega328p", 32256),
    ("mega", "atmega2560", 253952),  # a menu's first option is the default
    ("arduino:avr:mega:cpu=atmega1280", "atmega1280", 126976),
    ("leonardo", "atmega32u4", 28672),
])
def test_board_resolves_short_names_fqbns_and_menus(spec, mcu, flash):
    b = boards.resolve(spec, DEBIAN_ONLY, {})
    assert b.properties["build.mcu"] == mcu
    assert b.flash_max == flash


@needs_core
def test_build_property_overrides_the_board():
    b = boards.resolve("uno", DEBIAN_ONLY, {"build.f_cpu": "8000000L"})
    assert b.properties["build.f_cpu"] == "8000000L"


@needs_core
def test_compile_recipe_gives_the_flags_the_ide_uses():
    from fbuild_graph.arduino import recipes

    b = boards.resolve("uno", DEBIAN_ONLY, {})
    argv = recipes.compile_argv(b.properties, "/s/x.cpp", "/o/x.cpp.o", ["/inc one"])
    assert argv[0] == "/usr/bin/avr-g++"
    for flag in ("-mmcu=atmega328p", "-DF_CPU=16000000L", "-DARDUINO=10819", "-DARDUINO_AVR_UNO", "-DARDUINO_ARCH_AVR",
                 "-flto", "-std=gnu++11", "-I/inc one"):
        assert flag in argv
    assert argv[-3:] == ("/s/x.cpp", "-o", "/o/x.cpp.o")


# sketches -----------------------------------------------------------------------------------------------

def test_multi_file_sketch_lists_inos_main_first_and_sources_in_builder_order():
    sk = sketch.find([str(TEST_SKETCHES / "multi_file")])[0]
    assert [p.rsplit("/", 1)[1] for p in sk.inos] == ["multi_file.ino", "helpers.ino"]
    assert sk.sources == ("src/util/counter.cpp",)
    assert set(sk.files) == {"config.h", "src/util/counter.h", "src/util/counter.cpp"}


def test_compile_order_is_S_then_c_then_cpp_per_folder_then_subfolders():
    order = sketch.compile_order(["z.cpp", "utility/twi.c", "a.cpp", "b.c", "w.S", "src/x.cpp"])
    assert order == ["w.S", "b.c", "a.cpp", "z.cpp", "src/x.cpp", "utility/twi.c"]


def test_a_pde_sketch_is_a_sketch_as_arduino_cli_takes_it(tmp_path):
    folder = tmp_path / "examples" / "Old"
    folder.mkdir(parents=True)
    for name in ("Old.pde", "b.ino", "a.pde"):
        (folder / name).write_text("void f() {}\n")
    found = sketch.find([str(tmp_path / "examples")])
    assert [(s.name, [p.rsplit("/", 1)[1] for p in s.inos]) for s in found] == [("Old", ["Old.pde", "a.pde", "b.ino"])]
    assert sketch.find([str(folder / "Old.pde")]) == found


def test_an_ino_file_argument_and_its_folder_are_one_sketch():
    folder = TEST_SKETCHES / "multi_file"
    assert len(sketch.find([str(folder), str(folder / "multi_file.ino")])) == 1


# libraries ----------------------------------------------------------------------------------------------

def _detect(b, found, offered):
    from fbuild_graph import build
    from fbuild_graph.arduino import include_probe
    from fbuild_graph.arduino import toolchain
    from fbuild_graph.caches import tools

    return build.detect_libraries(b, found, offered, toolchain.identity(b.properties), tools.Tools(),
                                  include_probe.AnswerCache(None))


@needs_toolchain
def test_library_discovery_is_transitive_and_handles_both_layouts():
    b = boards.resolve("uno", DEBIAN_ONLY, {})
    found = sketch.find([str(TEST_SKETCHES / "uses_libs")])
    d = _detect(b, found, libraries.index([str(TEST_LIBRARIES)], b.platform_path))
    # fl/ui.h lives in a subfolder of FancyLed's src/; OldSchool (flat layout) includes Wire.
    assert d.by_sketch["uses_libs"] == ("FancyLed", "OldSchool", "Wire")
    assert d.closure["OldSchool"] == ("Wire",)
    old = next(lib for lib in d.libraries if lib.name == "OldSchool")
    assert old.layout == "flat" and [s.rsplit("/", 1)[1] for s in old.sources] == ["OldSchool.cpp", "helper.c"]


@needs_core
def test_a_single_library_root_is_accepted_as_library_dir():
    b = boards.resolve("uno", DEBIAN_ONLY, {})
    names = [lib.name for lib in libraries.index([str(TEST_LIBRARIES / "FancyLed")], b.platform_path)]
    assert names[0] == "FancyLed" and "Wire" in names


def _write(root, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_library_properties_and_locations_are_read_as_arduino_cli_reads_them(tmp_path):
    from fbuild_graph.model import LibraryLocation

    _write(tmp_path / "libs", {
        "Led/library.properties": "name=Led\narchitectures= avr , megaavr\ndot_a_linkage=True\nprecompiled=full\nldflags=-lm\n",
        "Led/src/Led.h": "",
        "Any/library.properties": "name=Any Name\nprecompiled=yes\n", "Any/src/Any.h": "",
        # A flat library: dot_a_linkage is for the 1.5 layout only.
        "Flat/library.properties": "name=Flat\ndot_a_linkage=true\n", "Flat/Flat.h": "",
    })
    _write(tmp_path / "one", {"library.properties": "name=One\n", "src/One.h": ""})
    _write(tmp_path / "platform" / "libraries", {"Bundled/library.properties": "name=Bundled\n", "Bundled/src/B.h": ""})
    found = {lib.name: lib for lib in libraries.index([str(tmp_path / "libs"), str(tmp_path / "one")],
                                                      str(tmp_path / "platform"))}
    led, any_, flat = found["Led"], found["Any Name"], found["Flat"]
    assert (led.architectures, led.dot_a_linkage, led.precompiled, led.ldflags) == (("avr", "megaavr"), True, "full", "-lm")
    assert (any_.architectures, any_.dot_a_linkage, any_.precompiled) == (("*",), False, "")
    assert flat.layout == "flat" and not flat.dot_a_linkage
    assert {name: lib.location for name, lib in found.items()} == {
        "Led": LibraryLocation.USER, "Any Name": LibraryLocation.USER, "Flat": LibraryLocation.USER,
        "One": LibraryLocation.UNMANAGED, "Bundled": LibraryLocation.PLATFORM}


def test_a_precompiled_library_is_linked_from_the_boards_folder_fpu_first(tmp_path):
    from fbuild_graph.model import Library

    _write(tmp_path / "Lib" / "src", {"cortex-m4/libLib.a": "", "cortex-m4/fpv4-sp-d16-softfp/libLib.a": "",
                                      "cortex-m4/fpv4-sp-d16-softfp/extra.a": "", "cortex-m4/fpv4-sp-d16-softfp/notes.txt": ""})
    src = tmp_path / "Lib" / "src"
    lib = Library(name="Lib", root=str(tmp_path / "Lib"), layout="recursive", include_dirs=(str(src),), sources=(),
                  headers=(), precompiled="true", ldflags="-lm -Wl,--as-needed")
    base = {"compiler.libraries.ldflags": "", "build.mcu": "cortex-m4",
            "recipe.cpp.o.pattern": "g++ -mcpu=cortex-m4 {includes} {source_file} -o {object_file}"}
    fpu = src / "cortex-m4" / "fpv4-sp-d16-softfp"
    found = libraries.precompiled(lib, {**base, "build.fpu": "fpv4-sp-d16", "build.float-abi": "softfp"})
    assert found == libraries.Precompiled(
        folder=str(fpu), ldflags=(f"-L{fpu}", "-lm", "-Wl,--as-needed", "-lLib"), objects=(str(fpu / "extra.a"),),
        archives=(str(fpu / "extra.a"), str(fpu / "libLib.a")), sources=True)
    # Without build.fpu, the compile command's -mfpu= and -mfloat-abi= say which folder.
    recipe = {"recipe.cpp.o.pattern": "g++ -mfpu=fpv4-sp-d16 -mfloat-abi=softfp {includes} {source_file} -o {object_file}"}
    assert libraries.precompiled(lib, {**base, **recipe}).folder == str(fpu)
    assert libraries.precompiled(lib, base).folder == str(src / "cortex-m4")
    assert libraries.precompiled(lib, {**base, "build.mcu": "atmega2560"}) is None  # sources compile instead
    cannot_link = {k: v for k, v in base.items() if k != "compiler.libraries.ldflags"}
    assert libraries.precompiled(lib, cannot_link) is None  # the platform has nowhere to put the flags


def test_what_arduino_cli_says_about_the_libraries_used():
    from fbuild_graph.model import Library

    lib = Library(name="Wifi", root="/l/Wifi", layout="recursive", include_dirs=("/l/Wifi/src",), sources=(), headers=(),
                  architectures=("esp32", "esp8266"), precompiled="full")
    assert libraries.warnings([lib], {"compiler.libraries.ldflags": ""}, "avr") == [
        "warning: library Wifi claims to run on esp32, esp8266 architecture(s) and may be incompatible with your "
        "current board which runs on avr architecture(s)."]
    assert libraries.warnings([lib], {"architecture.override_check": "esp8266"}, "avr") == [
        "note: the platform does not support 'compiler.libraries.ldflags' for precompiled libraries; Wifi is compiled "
        "from its sources"]


# graph and plan -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dag():
    if not (PLATFORM.is_dir() and shutil.which("avr-g++")):
        pytest.skip("needs arduino-core-avr and gcc-avr")
    b = boards.resolve("uno", DEBIAN_ONLY, {})
    found = sketch.find([str(PLATFORM / "libraries" / "Wire" / "examples"), str(TEST_SKETCHES / "multi_file")])
    core_dirs = [b.properties["build.core.path"], b.properties["build.variant.path"]]
    d = _detect(b, found, libraries.index([], b.platform_path))
    from fbuild_graph.build import _sources

    return graph.build_graph(graph.BoardPlan(board=b, sketches=tuple(found), discovery=d, layout=Layout("/out"),
                                             core_sources=tuple(_sources(core_dirs[0])),
                                             variant_sources=tuple(_sources(core_dirs[1])), precompiled={}))


def test_graph_is_a_dag_of_real_actions_with_resource_classes(dag):
    assert nx.is_directed_acyclic_graph(dag)
    actions = graph.actions_of(dag)
    assert {a.resource for a in actions if a.owner == "core" or a.owner.startswith("lib:")} == {"framework"}
    assert {a.resource for a in actions if a.owner.startswith("sketch:")} == {"sketch"}
    assert sum(a.kind == "archive" for a in actions) == 1


def test_sketch_compiles_depend_on_no_stage1_action_and_links_wait_for_archives(dag):
    compile_ino = "sketch/master_reader/master_reader.ino.cpp.o"
    assert [dag.nodes[p]["action"].kind for p in dag.predecessors(compile_ino)] == ["preprocess"]
    link_preds = set(dag.predecessors("sketch/master_reader/link"))
    assert {"core/core.a", "lib/Wire/Wire.cpp.o", "lib/Wire/utility/twi.c.o", compile_ino} == link_preds


def test_core_archive_members_are_S_then_c_then_cpp_and_made_with_gcc_ar(dag):
    argv = dag.nodes["core/core.a"]["action"].argv
    assert argv[0].endswith("avr-gcc-ar")
    members = [a.rsplit("/", 1)[1] for a in argv if a.endswith(".o")]
    kinds = [m.rsplit(".", 2)[1] for m in members]
    assert kinds == sorted(kinds, key=["S", "c", "cpp"].index)
    assert members[:2] == ["wiring_pulse.S.o", "WInterrupts.c.o"]


def test_link_line_orders_sketch_then_library_objects_then_core(dag):
    argv = dag.nodes["sketch/master_reader/link"]["action"].argv
    objects = [a for a in argv if a.endswith((".o", ".a"))]
    assert [o.rsplit("/", 1)[1] for o in objects] == ["master_reader.ino.cpp.o", "Wire.cpp.o", "twi.c.o", "core.a"]


def test_plan_fuses_only_strict_chains_and_orders_dependencies_first(dag):
    steps = plan.steps(dag, framework_jobs=2, sketch_jobs=100)
    position = {s.key: i for i, s in enumerate(steps)}
    for s in steps:
        assert all(position[d] < position[s.key] for d in s.deps)
        assert len({a.resource for a in s.actions}) == 1
    firmware = next(s for s in steps if s.key == "sketch:master_reader:firmware")
    assert [a.kind for a in firmware.actions] == ["link", "eep", "hex", "size"]
    compile_step = next(s for s in steps if s.key == "sketch:master_reader:compile")
    assert [a.kind for a in compile_step.actions] == ["preprocess", "compile"]
    assert compile_step.deps == ()
    assert firmware.priority > compile_step.priority


def test_compiles_outside_the_overlap_window_join_their_firmware_step(dag):
    stage1 = sum(a.resource == "framework" for a in graph.actions_of(dag))
    assert plan.overlap_window(stage1, 2, 1) == -(-stage1 // 2)
    sketches = {a.owner for a in graph.actions_of(dag) if a.owner.startswith("sketch:")}
    steps = plan.steps(dag, framework_jobs=stage1, sketch_jobs=2)  # a window of two sketches
    separate = {s.owner for s in steps if s.key.endswith(":compile")}
    assert len(separate) == 2
    for owner in sketches - separate:
        firmware = next(s for s in steps if s.key == f"{owner}:firmware")
        kinds = [a.kind for a in firmware.actions]
        assert kinds[0] == "preprocess" and kinds[-4:] == ["link", "eep", "hex", "size"]
        assert firmware.deps and all(not d.startswith(owner) for d in firmware.deps)
    assert len({a.key for s in steps for a in s.actions}) == dag.number_of_nodes()


def test_ninja_export_has_pools_and_every_toolchain_command(dag, monkeypatch):
    import fbuild_graph.planning.export as export

    monkeypatch.setattr(export, "preprocess", lambda main, dest: None)  # the export's only side effect
    text = to_ninja(dag, 1, 3)
    assert "pool framework\n  depth = 1" in text and "pool sketch\n  depth = 3" in text
    toolchain_actions = [a for a in graph.actions_of(dag) if a.kind != "preprocess"]
    assert text.count("\nbuild ") == len(toolchain_actions)
    assert "avr-gcc-ar" in text and "pool = framework" in text and "pool = sketch" in text


# transfer -----------------------------------------------------------------------------------------------

def test_transferred_files_are_checked_against_the_digest_their_producer_recorded(tmp_path):
    import hashlib

    from fbuild_graph.execution import transfer

    transfer.materialize({"/out/a.o": b"good"}, str(tmp_path), {"/out/a.o": hashlib.sha256(b"good").hexdigest()})
    assert (tmp_path / "out" / "a.o").read_bytes() == b"good"
    with pytest.raises(ValueError, match="digest"):
        transfer.materialize({"/out/b.o": b"damaged"}, str(tmp_path), {"/out/b.o": hashlib.sha256(b"sent").hexdigest()})
    assert not (tmp_path / "out" / "b.o").exists()


def test_a_mirror_moves_only_the_client_roots(tmp_path):
    from fbuild_graph.model import Action
    from fbuild_graph.execution.transfer import Mirror

    action = Action(key="k", kind="compile", owner="core", resource="framework", step="s",
                    argv=("/usr/bin/avr-g++", "-I/usr/share/arduino/x", "-I/home/ci/libs/A/src", "/home/ci/out/a.cpp"),
                    inputs=("/home/ci/out/a.cpp",), outputs=("/home/ci/out/a.cpp.o",), cwd="/home/ci/out")
    moved = Mirror(roots=("/home/ci/out", "/home/ci/libs/A")).localize(action, "/m")
    assert moved.argv == ("/usr/bin/avr-g++", "-I/usr/share/arduino/x", "-I/m/home/ci/libs/A/src", "/m/home/ci/out/a.cpp")
    assert moved.outputs == ("/m/home/ci/out/a.cpp.o",) and moved.cwd == "/m/home/ci/out"


def test_an_owner_is_read_back_whatever_its_name_holds():
    from fbuild_graph.model import Owner, OwnerKind

    owner = Owner.library("Vendor:Lib")  # `name=` is data: a colon in it must not split it
    assert str(owner) == "lib:Vendor:Lib" and Owner.parse(str(owner)) == owner
    assert Owner.parse("core").kind == OwnerKind.CORE


# outputs ------------------------------------------------------------------------------------------------

def test_a_result_json_is_rewritten_only_when_what_it_says_changed(tmp_path):
    """A build with nothing to do leaves each sketch's result.json as it was (the same file, not a copy)."""
    result = SketchResult(sketch="Blink", id="Blink", path="/s/Blink", status=SketchStatus.OK, seconds=0.0,
                          out_dir=str(tmp_path), log="", flash=930, flash_max=32256)
    results.write_sketch(str(tmp_path), result)
    written = (tmp_path / "result.json").stat()
    results.write_sketch(str(tmp_path), result)
    assert (tmp_path / "result.json").stat().st_ino == written.st_ino
    results.write_sketch(str(tmp_path), attrs.evolve(result, flash=932))
    assert (tmp_path / "result.json").stat().st_ino != written.st_ino
    assert '"flash": 932' in (tmp_path / "result.json").read_text()
