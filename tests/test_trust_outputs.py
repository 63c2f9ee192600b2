"""Outputs: nothing a build writes under a temporary name stays behind, build after build."""

from __future__ import annotations

from conftest import PLATFORM, needs_toolchain, run_cli

SKETCHES = [str(PLATFORM / "libraries" / "EEPROM" / "examples" / name) for name in ("eeprom_read", "eeprom_clear")]


@needs_toolchain
def test_warm_builds_leave_no_temporary_files(tmp_path):
    out = tmp_path / "out"
    for _ in range(3):
        proc = run_cli("compile-many", "--board", "uno", "--cache-dir", str(tmp_path / "cache"), "-o", str(out),
                       *SKETCHES)
        assert proc.returncode == 0, proc.stderr
    assert sorted(p.relative_to(out) for p in out.rglob("*") if ".tmp" in p.name) == []
    assert (out / "sketches" / "eeprom_read" / "firmware.hex").stat().st_size > 0


@needs_toolchain
def test_the_default_out_inside_the_sketch_folder_builds_twice(tmp_path):
    import shutil

    sketch = tmp_path / "eeprom_read"
    shutil.copytree(SKETCHES[0], sketch)
    for _ in range(2):
        proc = run_cli("compile-many", "--board", "uno", ".", cwd=sketch)
        assert proc.returncode == 0, proc.stderr
    assert (sketch / ".fbuild-graph" / "uno" / "sketches" / "eeprom_read" / "firmware.hex").is_file()
