"""Sound cache keys: a header outside a library's folder, a `-include` file and every tool are part of
what a cached result is keyed on, so changing one is never answered with the old firmware."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conftest import needs_toolchain, read_tsv, run_cli, target_results

from fbuild_graph.caches import tools
from fbuild_graph.memo import Stamped
from fbuild_graph.model import Action

HEX = Path("sketches") / "blink_cfg" / "firmware.hex"


def project(root: Path) -> Path:
    """A library whose source includes ../../cfg.h (outside the library folder) and a sketch using it."""
    lib = root / "libs" / "Cfg"
    (lib / "src").mkdir(parents=True)
    (lib / "library.properties").write_text("name=Cfg\nversion=1.0\n")
    (lib / "src" / "Cfg.h").write_text("#pragma once\nint cfgPin();\n")
    (lib / "src" / "Cfg.cpp").write_text('#include "Cfg.h"\n#include "../../cfg.h"\nint cfgPin() { return CFG_PIN; }\n')
    (root / "libs" / "cfg.h").write_text("#define CFG_PIN 3\n")
    sketch = root / "sketches" / "blink_cfg"
    sketch.mkdir(parents=True)
    (sketch / "blink_cfg.ino").write_text(
        "#include <Cfg.h>\nvoid setup() { pinMode(cfgPin(), OUTPUT); }\nvoid loop() { digitalWrite(cfgPin(), HIGH); }\n")
    return root


def build(root: Path, cache: Path, out: str, *extra: str) -> dict:
    proc = run_cli("compile-many", "--board", "uno", "--library-dir", str(root / "libs" / "Cfg"), "--cache-dir", str(cache),
                   "-o", str(root / out), *extra, str(root / "sketches"))
    assert proc.returncode == 0, proc.stderr
    phases = {row["phase"]: row for row in read_tsv(root / out / "phases.tsv")}
    tasks = read_tsv(root / out / "tasks.tsv")
    return {"cache": phases["stage1_archives"]["cache"], "hex": (root / out / HEX).read_bytes(),
            "ran": {t["key"] for t in tasks if t["status"] == "ok"}}


@needs_toolchain
def test_a_header_outside_the_library_folder_is_part_of_the_stage1_key(tmp_path):
    root, cache = project(tmp_path / "p"), tmp_path / "cache"
    first = build(root, cache, "out")
    assert first["cache"] == "miss"
    assert build(root, cache, "out-warm")["cache"] == "hit"  # nothing changed: the entry is found
    (root / "libs" / "cfg.h").write_text("#define CFG_PIN 7\n")
    edited = build(root, cache, "out")
    assert edited["cache"] == "partial" and "lib/Cfg/Cfg.cpp.o" in edited["ran"]
    clean = build(root, tmp_path / "clean-cache", "out-clean")
    assert edited["hex"] == clean["hex"] != first["hex"]
    # Back to the first content: the first entry answers again, and the edited one stays for its content.
    (root / "libs" / "cfg.h").write_text("#define CFG_PIN 3\n")
    back = build(root, cache, "out-back")
    assert back["cache"] == "hit" and back["hex"] == first["hex"]


@needs_toolchain
def test_a_forced_include_file_is_part_of_the_stage1_key(tmp_path):
    root, cache = project(tmp_path / "p"), tmp_path / "cache"
    (root / "libs" / "cfg.h").write_text("#ifndef CFG_PIN\n#define CFG_PIN 3\n#endif\n")
    forced = tmp_path / "forced.h"
    forced.write_text("#define CFG_PIN 4\n")
    flag = f"compiler.cpp.extra_flags=-include {forced}"
    first = build(root, cache, "out", "--build-property", flag)
    forced.write_text("#define CFG_PIN 9\n")
    edited = build(root, cache, "out", "--build-property", flag)
    assert edited["cache"] in ("miss", "partial") and "lib/Cfg/Cfg.cpp.o" in edited["ran"]
    clean = build(root, tmp_path / "clean-cache", "out-clean", "--build-property", flag)
    assert edited["hex"] == clean["hex"] != first["hex"]


def toolchain_copy(folder: Path, objcopy_script: str) -> Path:
    """A compiler.path folder: the real tools by symlink, avr-objcopy a script of our own."""
    folder.mkdir(exist_ok=True)
    for name in ("avr-gcc", "avr-g++", "avr-gcc-ar", "avr-size"):
        if not (folder / name).exists():
            (folder / name).symlink_to(shutil.which(name))
    script = folder / "avr-objcopy"
    script.write_text(objcopy_script)
    script.chmod(0o755)
    return folder


REAL_OBJCOPY = f'#!/bin/sh\nexec {shutil.which("avr-objcopy") or "avr-objcopy"} "$@"\n'
# The same objcopy, then one more (empty) record at the end of what it wrote: a different .hex.
OTHER_OBJCOPY = (f'#!/bin/sh\n{shutil.which("avr-objcopy") or "avr-objcopy"} "$@" || exit $?\n'
                 'for last; do :; done\necho ":00000001FF" >> "$last"\n')


@needs_toolchain
def test_swapping_objcopy_never_returns_the_old_hex(tmp_path):
    root, cache = project(tmp_path / "p"), tmp_path / "cache"
    bin_dir = toolchain_copy(tmp_path / "bin", REAL_OBJCOPY)
    prop = f"compiler.path={bin_dir}/"
    first = build(root, cache, "out", "--build-property", prop)
    toolchain_copy(bin_dir, OTHER_OBJCOPY)
    again = build(root, cache, "out", "--build-property", prop)  # same --out: the up-to-date check
    assert again["hex"] == first["hex"] + b":00000001FF\n"
    elsewhere = build(root, cache, "out2", "--build-property", prop)  # new --out: the content cache of hex
    assert elsewhere["hex"] == again["hex"]


@needs_toolchain
def test_a_firmware_chain_is_one_cache_entry_that_a_new_out_takes_whole(tmp_path):
    root, cache = project(tmp_path / "p"), tmp_path / "cache"
    first = build(root, cache, "out")
    assert len([e for e in os.listdir(cache / "actions") if not e.startswith(".")]) == 1  # link, eep, hex, size
    elsewhere = build(root, cache, "out2")
    rows = {t["kind"]: t for t in read_tsv(root / "out2" / "tasks.tsv") if "blink_cfg" in t["key"]}
    chain = [rows[k] for k in ("link", "eep", "hex", "size")]
    assert [t["status"] for t in chain] == ["cached"] * 4
    # Spans one after another, as if run in its slot: tasks.tsv's concurrency is never overstated.
    assert all(float(a["stop"]) <= float(b["start"]) for a, b in zip(chain, chain[1:]))
    assert elsewhere["hex"] == first["hex"]
    sizes = [{k: t[k] for k in ("flash", "ram")} for t in (target_results(root / out)[("uno", "blink_cfg")]
                                                         for out in ("out", "out2"))]
    assert sizes[0] == sizes[1] and sizes[0]["flash"] > 0


@needs_toolchain
def test_a_link_identity_covers_the_linker_plugin_and_libc(tmp_path):
    gcc = shutil.which("avr-gcc")
    link = Action(key="l", kind="link", owner="sketch:x", resource="sketch", step="s", cwd=str(tmp_path),
                  argv=(gcc, "-Os", "-flto", "-fuse-linker-plugin", "-mmcu=atmega328p", "-o", f"{tmp_path}/x.elf",
                        f"{tmp_path}/a.o", "-lm"), inputs=(f"{tmp_path}/a.o",))
    names = {os.path.basename(p) for p in tools.driver_files(link)}
    assert {"collect2", "ld", "lto1", "lto-wrapper", "liblto_plugin.so.0.0.0", "libm.a", "libc.a",
            "crtatmega328p.o", "specs-atmega328p"} <= names
    compile_ = Action(key="c", kind="compile", owner="core", resource="framework", step="s", cwd=str(tmp_path),
                      argv=(shutil.which("avr-g++"), "-c", "-mmcu=atmega328p", "-flto", f"{tmp_path}/a.cpp", "-o",
                            f"{tmp_path}/a.o"), inputs=(f"{tmp_path}/a.cpp",))
    assert {"cc1plus", "as"} <= {os.path.basename(p) for p in tools.driver_files(compile_)}


def test_a_changed_system_header_changes_every_compile_identity(tmp_path):
    """-MMD depfiles leave out system headers (avr-libc's), so the compile identity keys them itself."""
    system = tmp_path / "include"
    system.mkdir()
    (system / "stdlib.h").write_text("/* v1 */\n")
    compiler = tmp_path / "fake-g++"
    compiler.write_text(f"#!/bin/sh\nprintf '#include <...> search starts here:\\n {system}\\nEnd of search list.\\n' >&2\n")
    compiler.chmod(0o755)
    action = Action(key="k", kind="compile", owner="core", resource="framework", step="s",
                    argv=(str(compiler), "-c", "x.cpp", "-o", "x.o"), inputs=("x.cpp",), outputs=("x.o",))
    before = tools.Tools().identity(action)
    assert tools.system_include_dirs(str(compiler)) == [str(system)]
    (system / "stdlib.h").write_text("/* version 2 */\n")
    assert tools.Tools().identity(action) != before


def test_the_tools_memo_holds_only_while_the_files_it_names_are_unchanged(tmp_path, monkeypatch):
    """A no-op build takes the tool files and digests the last build kept; a tool rewritten since, even
    with the same size, is hashed anew."""
    objcopy = tmp_path / "avr-objcopy"
    objcopy.write_text("#!/bin/sh\necho one\n")
    action = Action(key="k", kind="hex", owner="sketch:s", resource="sketch", step="s",
                    argv=(str(objcopy), "-O", "ihex", "x.elf", "x.hex"), inputs=("x.elf",), outputs=("x.hex",))
    memo = str(tmp_path / "tools.cache")
    first = tools.Tools(memo)
    before = first.identity(action)
    first.save()

    def no_hashing(path):
        raise AssertionError(f"{path} hashed again")

    with monkeypatch.context() as patched:
        patched.setattr(tools.fileio, "digest", no_hashing)
        assert tools.Tools(memo).identity(action) == before
    objcopy.write_text("#!/bin/sh\necho two\n")  # the same size
    assert tools.Tools(memo).identity(action) != before


def test_a_probe_kept_in_the_output_folder_holds_only_while_its_program_is_unchanged(tmp_path):
    """A build in a process of its own takes the toolchain probes' answers the last one kept (memo.Stamped in
    a file), until the program they came from is rewritten or replaced."""
    program = tmp_path / "avr-g++"
    program.write_text("#!/bin/sh\necho one\n")
    kept = str(tmp_path / "probes.cache")
    runs = []

    def probe():
        runs.append(1)
        return ("/usr/lib/avr/include", f"answer {len(runs)}")

    first = Stamped.in_file(kept)
    assert first.get(("dirs", str(program)), [str(program)], probe) == ("/usr/lib/avr/include", "answer 1")
    first.save()
    again = Stamped.in_file(kept)
    assert again.get(("dirs", str(program)), [str(program)], probe) == ("/usr/lib/avr/include", "answer 1")
    assert len(runs) == 1 and again.reused == 1
    (tmp_path / "new").write_text("#!/bin/sh\necho two\n")  # the same size, another file (an upgrade)
    os.replace(tmp_path / "new", program)
    assert Stamped.in_file(kept).get(("dirs", str(program)), [str(program)], probe) == ("/usr/lib/avr/include",
                                                                                          "answer 2")
    (tmp_path / "probes.cache").write_text("[[not json")
    assert Stamped.in_file(kept).get(("dirs", str(program)), [str(program)], probe)[1] == "answer 3"
