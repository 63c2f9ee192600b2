"""Issue 10, items 8 (files) and 9: bad input ends in one line and exit 2, never a traceback, never a hang.

Every case runs the real command line with a timeout, so a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import needs_toolchain, run_cli

TIMEOUT = 120
BLINK = "void setup() { pinMode(13, OUTPUT); }\nvoid loop() {}\n"


def sketch(parent: Path, name: str, text: str = BLINK) -> Path:
    folder = parent / name
    folder.mkdir(parents=True)
    (folder / f"{name}.ino").write_text(text)
    return folder


def library(parent: Path, name: str = "Foo") -> Path:
    root = parent / name
    (root / "src").mkdir(parents=True)
    (root / "library.properties").write_text(f"name={name}\nversion=1.0\n")
    (root / "src" / f"{name}.h").write_text("int foo();\n")
    (root / "src" / f"{name}.cpp").write_text(f'#include "{name}.h"\nint foo() {{ return 1; }}\n')
    return root


def uses_foo(parent: Path) -> Path:
    return sketch(parent, "UsesFoo", "#include <Foo.h>\nvoid setup() { foo(); }\nvoid loop() {}\n")


def one_error(proc: subprocess.CompletedProcess, *named: str) -> str:
    """Exit 2, no traceback, and exactly one error line, naming each of `named`."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("fbuild-graph: error:")]
    assert len(errors) == 1, proc.stderr
    for text in named:
        assert text in errors[0], errors[0]
    return errors[0]


def build(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("compile-many", "--board", "uno", "--framework-jobs", "1", "--sketch-jobs", "2", *args,
                   timeout=TIMEOUT)


# --- item 8: FIFOs are skipped, named once, and the rest builds ---

@needs_toolchain
def test_fifo_ino_beside_a_sketch_is_skipped_and_named(tmp_path):
    root = tmp_path / "sketches"
    blink = sketch(root, "Blink")
    sketch(root, "Other")
    os.mkfifo(blink / "Extra.ino")
    proc = build(tmp_path, "-o", str(tmp_path / "out"), str(root))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(f"skipped {blink / 'Extra.ino'}") == 1, proc.stderr
    for name in ("Blink", "Other"):
        assert (tmp_path / "out" / "sketches" / name / "firmware.hex").is_file()


@needs_toolchain
def test_fifo_main_ino_is_no_sketch_and_the_others_build(tmp_path):
    root = tmp_path / "sketches"
    sketch(root, "Blink")
    (root / "Fifo").mkdir()
    os.mkfifo(root / "Fifo" / "Fifo.ino")
    proc = build(tmp_path, "-o", str(tmp_path / "out"), str(root))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(f"skipped {root / 'Fifo' / 'Fifo.ino'}") == 1, proc.stderr
    assert (tmp_path / "out" / "sketches" / "Blink" / "firmware.hex").is_file()
    assert not (tmp_path / "out" / "sketches" / "Fifo").exists()


def test_fifo_main_ino_named_directly_is_an_error(tmp_path):
    (tmp_path / "Fifo").mkdir()
    os.mkfifo(tmp_path / "Fifo" / "Fifo.ino")
    one_error(build(tmp_path, "-o", str(tmp_path / "out"), str(tmp_path / "Fifo")), "Fifo.ino")


@needs_toolchain
@pytest.mark.parametrize("where", ["README.fifo", "src/Fifo.h", "src/Fifo.cpp", "src/sub/deep.fifo"])
def test_fifo_in_a_used_library_is_skipped_and_named(tmp_path, where):
    lib = library(tmp_path / "libs")
    fifo = lib / where
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    uses_foo(tmp_path / "sketches")
    sketch(tmp_path / "sketches", "Blink")
    proc = build(tmp_path, "--library-dir", str(lib.parent), "-o", str(tmp_path / "out"), str(tmp_path / "sketches"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(f"skipped {fifo}") == 1, proc.stderr
    for name in ("Blink", "UsesFoo"):
        assert (tmp_path / "out" / "sketches" / name / "firmware.hex").is_file()


# --- item 9: one line, exit 2 ---

def test_out_that_is_a_file(tmp_path):
    sketch(tmp_path, "Blink")
    (tmp_path / "afile").write_text("")
    one_error(build(tmp_path, "-o", str(tmp_path / "afile"), str(tmp_path / "Blink")), str(tmp_path / "afile"))


@pytest.mark.parametrize("out", ["/proc/fbuild-graph-out", "/sys/fbuild-graph-out", "/proc"])
def test_out_under_proc_or_sys(tmp_path, out):
    sketch(tmp_path, "Blink")
    one_error(build(tmp_path, "-o", out, str(tmp_path / "Blink")), out)
    assert not os.path.exists(os.path.join(out, "sketches"))


@needs_toolchain
def test_out_on_a_full_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        sketch(tmp_path, "Blink")
        # Which write meets the full disk first varies; the line says what happened either way.
        one_error(build(tmp_path, "-o", str(disk / "out"), str(tmp_path / "Blink")), "No space left on device")
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@needs_toolchain
@pytest.mark.parametrize("inside", ["out", "src/out"])
def test_out_inside_a_sketch_folder_is_refused(tmp_path, inside):
    blink = sketch(tmp_path, "Blink")
    (blink / "src").mkdir()
    out = blink / inside
    for _ in range(2):  # the second build is the one that used to read the first one's copies
        one_error(build(tmp_path, "-o", str(out), str(tmp_path)), str(out), str(blink))
    assert not out.exists()


@needs_toolchain
def test_out_inside_a_used_library_is_refused(tmp_path):
    lib = library(tmp_path / "libs")
    uses_foo(tmp_path / "sketches")
    out = lib / "src" / "out"
    one_error(build(tmp_path, "--library-dir", str(lib), "-o", str(out), str(tmp_path / "sketches")), str(out))


@needs_toolchain
def test_dangling_link_in_a_used_library_is_skipped_and_named(tmp_path):
    lib = library(tmp_path / "libs")
    odd = lib / "src" / "Odd.h"
    odd.symlink_to(tmp_path / "nowhere.h")
    uses_foo(tmp_path / "sketches")
    proc = build(tmp_path, "--library-dir", str(lib), "-o", str(tmp_path / "out"), str(tmp_path / "sketches"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count(f"skipped {odd}") == 1, proc.stderr
    assert (tmp_path / "out" / "sketches" / "UsesFoo" / "firmware.hex").is_file()


def test_worker_with_a_bad_address():
    one_error(run_cli("worker", "notanaddress", timeout=TIMEOUT), "notanaddress")


@needs_toolchain
def test_scheduler_with_a_bad_address(tmp_path):
    sketch(tmp_path, "Blink")
    one_error(run_cli("compile-many", "--board", "uno", "--scheduler", "garbage://", "-o", str(tmp_path / "out"),
                      str(tmp_path / "Blink"), timeout=TIMEOUT), "garbage://")


def test_bake_output_under_a_file(tmp_path):
    sketch(tmp_path, "Blink")
    (tmp_path / "afile").write_text("")
    bundle = tmp_path / "afile" / "x.tar.zst"
    proc = run_cli("cache", "bake", "--board", "uno", "-o", str(bundle), str(tmp_path / "Blink"), timeout=TIMEOUT)
    one_error(proc, str(tmp_path / "afile"))


def test_debug_shows_the_traceback():
    proc = run_cli("--debug", "worker", "notanaddress", timeout=TIMEOUT)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and proc.stderr.rstrip().splitlines()[-1].startswith("fbuild-graph: error:")


def test_os_error_line_names_the_path_and_what_to_do():
    import errno

    from fbuild_graph.errors import os_error_line

    line = os_error_line(OSError(errno.ENOSPC, "No space left on device", "/full/x.o"))
    assert line.startswith("/full/x.o: No space left on device; free space")
