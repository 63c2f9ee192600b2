"""Commands are built from tokens, never from pasted text: a path is one argv word whatever it holds, a
name is never expanded as a property, and a library's name never becomes a path outside --out."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import needs_toolchain, run_cli
from fbuild_graph.arduino import properties
from fbuild_graph.arduino import recipes
from fbuild_graph.errors import FbuildError
from fbuild_graph.planning.export import to_ninja
from fbuild_graph.planning.graph import from_actions
from fbuild_graph.planning.layout import Layout
from fbuild_graph.model import FRAMEWORK, Action
from fbuild_graph.names import folder_name, is_safe
from fbuild_graph.arduino.preprocess import c_string
from fbuild_graph.arduino.sketch import with_ids

# The folder name of issue 10: pasted into the recipe text and split afterwards, it made avr-g++ run
# `sh -c id` through gcc's -wrapper option.
HOSTILE = '" -wrapper sh,-c,id>pwned -v -o .zz "-DJ'

# The uno's recipes as Debian's platform.txt writes them (quoted and unquoted placeholders, flags of
# several words, a quoted define with a space inside, as the Leonardo's USB flags have).
PROPS = {
    "compiler.path": "/usr/bin/",
    "compiler.cpp.cmd": "avr-g++",
    "compiler.ar.cmd": "avr-gcc-ar",
    "compiler.c.elf.cmd": "avr-gcc",
    "compiler.cpp.flags": "-c -g -Os -w -std=gnu++11 -MMD -flto",
    "compiler.cpp.extra_flags": "",
    "compiler.ar.flags": "rcs",
    "compiler.c.elf.flags": "-w -Os -g -flto -fuse-linker-plugin -Wl,--gc-sections",
    "build.mcu": "atmega328p",
    "build.extra_flags": "{build.usb_flags}",
    "build.usb_flags": "-DUSB_VID=0x2341 '-DUSB_PRODUCT={build.usb_product}'",
    "build.usb_product": '"Arduino Leonardo"',
    "build.core.path": "/cores/arduino",
    "recipe.cpp.o.pattern": '"{compiler.path}{compiler.cpp.cmd}" {compiler.cpp.flags} -mmcu={build.mcu} '
                            '{compiler.cpp.extra_flags} {build.extra_flags} {includes} "{source_file}" -o "{object_file}"',
    "recipe.ar.pattern": '"{compiler.path}{compiler.ar.cmd}" {compiler.ar.flags} "{archive_file_path}" "{object_file}"',
    "recipe.c.combine.pattern": '"{compiler.path}{compiler.c.elf.cmd}" {compiler.c.elf.flags} -mmcu={build.mcu} '
                                '-o "{build.path}/{build.project_name}.elf" {object_files} "{build.path}/{archive_file}" '
                                '"-L{build.path}" -lm',
}
FLAGS = ["-c", "-g", "-Os", "-w", "-std=gnu++11", "-MMD", "-flto", "-mmcu=atmega328p", "-DUSB_VID=0x2341",
         '-DUSB_PRODUCT="Arduino Leonardo"']


# ---- the recipe expander --------------------------------------------------------------------------------

def test_platform_text_splits_into_words_and_each_path_stays_one_word():
    src, obj = f"/s/{HOSTILE}/{HOSTILE}.ino.cpp", f"/o/{HOSTILE}.o"
    argv = recipes.compile_argv(PROPS, src, obj, ["/a b", HOSTILE])
    assert argv == ("/usr/bin/avr-g++", *FLAGS, "-I/a b", f"-I{HOSTILE}", src, "-o", obj)


def test_data_is_never_expanded_again():
    argv = recipes.compile_argv(PROPS, "/s/br{build.mcu}/br{build.mcu}.cpp", "/o/br{nope}.o", ["/l/{includes}"])
    assert argv[-4:] == ("-I/l/{includes}", "/s/br{build.mcu}/br{build.mcu}.cpp", "-o", "/o/br{nope}.o")


def test_a_runtime_folder_is_data_too():
    props = {**PROPS, "build.core.path": "/my cores/{x}", "compiler.cpp.extra_flags": "-I{build.core.path}/api"}
    argv = recipes.compile_argv(props, "/s/a.cpp", "/o/a.o", [])
    assert "-I/my cores/{x}/api" in argv


def test_object_lists_give_one_word_per_object():
    objects = [f"/b/{HOSTILE}.o", "/b/two words.o"]
    assert recipes.archive_argv(PROPS, "/c d/core.a", objects) == (
        "/usr/bin/avr-gcc-ar", "rcs", "/c d/core.a", *objects)
    link = recipes.link_argv(PROPS, f"/out/{HOSTILE}", objects, "/out/core.a")
    assert link[link.index("-o") + 1] == f"/out/{HOSTILE}/firmware.elf"
    assert link[link.index("-o") + 2:][:3] == (*objects, f"/out/{HOSTILE}/../core.a")
    assert f"-L/out/{HOSTILE}" in link


def test_a_list_inside_a_longer_word_is_an_error_naming_the_recipe():
    with pytest.raises(FbuildError, match=r"recipe.x: \{includes\} names several files and must be a word"):
        properties.expand_command("gcc -X{includes}", {}, {"includes": ("-Ia",)}, what="recipe.x")


def test_an_unknown_platform_key_is_still_an_error():
    with pytest.raises(FbuildError, match=r"\{nope\} is not defined"):
        properties.expand_command('gcc {nope} "{source_file}"', {}, {"source_file": "a.c"}, what="recipe.x")


# Any character but NUL, with those that matter to a shell, a recipe or gcc drawn often (st.text draws
# them too rarely to find `" ` or `{x}`).
_SPECIAL = list(' "\'{}$;-\\\t\n/.=')
paths = st.lists(st.one_of(st.sampled_from(_SPECIAL), st.characters(blacklist_characters="\x00")), min_size=1).map("".join)


@settings(max_examples=300, deadline=None)
@given(path=paths, dirs=st.lists(paths, max_size=4))
def test_any_path_is_exactly_one_argv_element(path: str, dirs: list[str]):
    src, obj = path + "/a.cpp", path + ".o"
    argv = recipes.compile_argv(PROPS, src, obj, dirs)
    assert argv == ("/usr/bin/avr-g++", *FLAGS, *(f"-I{d}" for d in dirs), src, "-o", obj)


@settings(max_examples=200, deadline=None)
@given(path=paths)
def test_any_build_folder_is_one_word_in_the_link(path: str):
    link = recipes.link_argv(PROPS, path, [path + ".o"], "/core.a")
    assert link[link.index("-o") + 1:][:2] == (f"{path}/firmware.elf", path + ".o")


# ---- names as data ----------------------------------------------------------------------------------------

def test_a_line_directive_names_the_file_as_a_c_string():
    assert c_string('a"b\\c/a"b.ino') == '"a\\"b\\\\c/a\\"b.ino"'
    assert c_string("x\ny") == '"x\\012y"'


@pytest.mark.parametrize("name", ["../../../../tmp/x", "..", ".", "", "a\tb", "a\nb", "a/b", "x" * 300])
def test_an_unsafe_name_gets_a_safe_folder_name(name: str):
    folder = folder_name(name)
    assert is_safe(folder) and os.path.basename(folder) == folder
    assert folder != folder_name(name + "!")


def test_a_library_folder_stays_under_out(tmp_path: Path):
    layout = Layout(str(tmp_path / "out"))
    for path in (layout.library_dir("../../../../tmp/x"), layout.library_log("../../../../tmp/x")):
        assert os.path.dirname(os.path.abspath(path)) == str(tmp_path / "out" / "stage1" / "libraries")


def test_safe_names_are_kept_and_sketch_ids_are_safe():
    assert folder_name("Adafruit GFX Library") == "Adafruit GFX Library"
    assert folder_name(HOSTILE) == HOSTILE
    sketches = with_ids([_sketch("...", "/a/..."), _sketch("Basic", "/a/Basic"), _sketch("Basic", "/b/Basic")])
    ids = [s.id for s in sketches]
    assert all(is_safe(i) for i in ids) and len(set(ids)) == 3


def _sketch(name: str, path: str):
    from fbuild_graph.model import Sketch
    return Sketch(id=name, name=name, path=path, inos=(f"{path}/{name}.ino",), files=(), sources=())


# ---- the ninja export -----------------------------------------------------------------------------------

def test_the_ninja_command_shell_parses_back_to_the_argv(tmp_path: Path):
    src, obj = f"/s/{HOSTILE} $x;y/a.cpp", f"/o/{HOSTILE} $x;y/a.o"
    argv = recipes.compile_argv(PROPS, src, obj, [f"/i/{HOSTILE}$"])
    action = Action(key=f"sketch/{HOSTILE}/a.o", kind="compile", owner="sketch:x", resource=FRAMEWORK, step="s",
                    argv=argv, inputs=(src,), outputs=(obj,))
    text = to_ninja(from_actions([action]), 1, 1)
    cmd = next(line for line in text.splitlines() if line.startswith("  cmd = "))[len("  cmd = "):]
    words = shlex.split(cmd.replace("$$", "$"))
    assert words == ["rm", "-f", obj, "&&", *argv]


def test_the_ninja_export_refuses_a_path_it_cannot_carry():
    action = Action(key="k", kind="compile", owner="o", resource=FRAMEWORK, step="s", argv=("cc",),
                    inputs=("/a|b.c",), outputs=("/x.o",))
    with pytest.raises(FbuildError, match="cannot be named in build.ninja"):
        to_ninja(from_actions([action]), 1, 1)


# ---- real builds ----------------------------------------------------------------------------------------

SKETCH_NAMES = [HOSTILE, "br{nope}", "br{build.mcu}", 'a"b', "plain"]


def _sketches(root: Path, names=SKETCH_NAMES) -> Path:
    parent = root / "sketches"
    for name in names:
        folder = parent / "nested" / name
        folder.mkdir(parents=True)
        # __FILE__ is the #line name: a `"` in it must reach the firmware as a string, not end it early.
        (folder / f"{name}.ino").write_text('void setup() { Serial.begin(9600); Serial.println(__FILE__); }\n'
                                            'void loop() {}\n')
    return parent


def _no_pwned(*roots: Path) -> None:
    for root in roots:
        assert not list(root.rglob("pwned*")), f"a command ran from a file name under {root}"


def _build_all(tmp_path: Path, names: list[str], *options: str) -> Path:
    """Build `names` found by a recursive search, from a working folder of their own; each must build
    under its own name, and no command may have run from a name."""
    parent = _sketches(tmp_path, names)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = tmp_path / "out"
    proc = run_cli("compile-many", "--board", "uno", *options, "-o", str(out), str(parent), cwd=cwd)
    _no_pwned(tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "results.json").read_text())
    by_name = {s["sketch"]: s for s in report["sketches"]}
    assert sorted(by_name) == sorted(names)
    for name, result in by_name.items():
        assert result["status"] == "ok", result
        assert result["id"] == name and Path(result["out_dir"]) == out / "sketches" / name
        assert (out / "sketches" / name / "firmware.hex").is_file()
    return out


@needs_toolchain
@pytest.mark.parametrize("mode", ["rw", "ro"])
def test_a_sketch_folder_name_runs_no_command(tmp_path: Path, mode: str):
    _build_all(tmp_path, [HOSTILE, "plain"], "--cache-mode", mode)


@needs_toolchain
def test_sketch_names_are_never_expanded_and_a_quote_builds(tmp_path: Path):
    out = _build_all(tmp_path, ["br{nope}", "br{build.mcu}", 'a"b', "plain"])
    merged = out / "sketches" / 'a"b' / "build" / "sketch" / 'a"b.ino.cpp'
    # The sketch prints __FILE__, so #line holds its absolute path, as arduino-builder writes it.
    ino = next((tmp_path / "sketches").rglob('a"b.ino'))
    assert '#line 1 "' + str(ino).replace('"', '\\"') + '"' in merged.read_text()


@needs_toolchain
def test_the_ninja_export_of_hostile_names_runs_under_ninja(tmp_path: Path):
    if not shutil.which("ninja"):
        pytest.skip("needs ninja (apt-get install ninja-build)")
    parent = _sketches(tmp_path)
    out = tmp_path / "out"
    proc = run_cli("graph", "--format", "ninja", "--board", "uno", "-o", str(out), str(parent), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "build.ninja").write_text(proc.stdout)
    ran = subprocess.run(["ninja", "-j", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    _no_pwned(tmp_path)
    assert ran.returncode == 0, ran.stdout[-3000:]
    for name in SKETCH_NAMES:
        assert (out / "sketches" / name / "build" / "firmware.hex").is_file(), name


@needs_toolchain
def test_a_library_name_that_climbs_out_writes_nothing_outside_out(tmp_path: Path):
    escape = f"fbuild-graph-escape-{uuid.uuid4().hex}"
    lib = tmp_path / "libs" / "Evil"
    (lib / "src").mkdir(parents=True)
    (lib / "library.properties").write_text(f"name=../../../../../../../../tmp/{escape}\nversion=1.0\n")
    (lib / "src" / "Evil.h").write_text("#pragma once\nint evil();\n")
    (lib / "src" / "Evil.cpp").write_text('#include "Evil.h"\nint evil() { return 42; }\n')
    sketch = tmp_path / "sketches" / "uses_evil"
    sketch.mkdir(parents=True)
    (sketch / "uses_evil.ino").write_text("#include <Evil.h>\nvoid setup() { evil(); }\nvoid loop() {}\n")
    out = tmp_path / "out"
    proc = run_cli("compile-many", "--board", "uno", "--library-dir", str(tmp_path / "libs"), "-o", str(out),
                   str(sketch), cwd=tmp_path)
    assert not list(Path("/tmp").glob(f"{escape}*")), "a library name wrote outside --out"
    assert not list(tmp_path.glob(f"{escape}*")) and not list(tmp_path.parent.glob(f"{escape}*"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    libraries = out / "stage1" / "libraries"
    objects = [p for p in libraries.rglob("Evil.cpp.o")]
    assert len(objects) == 1 and objects[0].parent.parent == libraries
    assert re.fullmatch(r"_?[^/]*tmp_" + escape + r"-[0-9a-f]{8}", objects[0].parent.name)
    assert json.loads((out / "results.json").read_text())["sketches"][0]["status"] == "ok"
