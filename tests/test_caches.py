"""Caches: relocatable stage-1 hits, corrupt entries rebuilt, ro mode writes nothing, concurrent builds,
baked bundles, and the cache command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PLATFORM, TEST_LIBRARIES, TEST_SKETCHES, needs_toolchain, read_tsv, run_cli

pytestmark = [needs_toolchain, pytest.mark.skipif(not shutil.which("zstd"), reason="bundles need zstd")]


def project(root: Path) -> Path:
    """A checkout-like folder: two sketches (one using a user library that pulls in Wire) and the library."""
    shutil.copytree(TEST_SKETCHES / "uses_libs", root / "examples" / "uses_libs")
    shutil.copytree(next(PLATFORM.glob("libraries/*/examples/eeprom_clear")), root / "examples" / "eeprom_clear")
    for lib in ("FancyLed", "OldSchool"):
        shutil.copytree(TEST_LIBRARIES / lib, root / "libraries" / lib)
    return root


def build(root: Path, cache: Path, *extra: str, out: str = "out") -> dict:
    proc = run_cli("compile-many", "--board", "uno", "--library-dir", str(root / "libraries"), "--cache-dir", str(cache),
                   "-o", str(root / out), *extra, str(root / "examples"))
    assert proc.returncode == 0, proc.stderr
    phases = {row["phase"]: row for row in read_tsv(root / out / "phases.tsv")}
    tasks = read_tsv(root / out / "tasks.tsv")
    return {"stderr": proc.stderr, "cache": phases["stage1_archives"]["cache"], "key": phases["stage1_archives"]["cache_key"],
            "ran": {t["key"] for t in tasks if t["status"] == "ok"}, "report": json.loads((root / out / "results.json").read_text())}


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def ccache_entries(cache: Path) -> int:
    return sum(1 for p in (cache / "ccache").rglob("*") if p.is_file())


def test_stage1_and_compiler_cache_hit_from_another_checkout(tmp_path):
    cache = tmp_path / "cache"
    first = build(project(tmp_path / "checkout-a"), cache)
    assert first["cache"] == "miss" and "core/core.a" in first["ran"]
    entries = ccache_entries(cache)
    assert entries > 0
    second = build(project(tmp_path / "somewhere" / "else" / "checkout-b"), cache)
    assert second["cache"] == "hit" and second["key"] == first["key"]
    assert not any(key.startswith(("core/", "lib/")) for key in second["ran"])
    assert second["report"]["stage1_cache"] == "hit"
    # The sketches compiled again in the new checkout, but every compile was a ccache hit: nothing new stored.
    assert "sketch/uses_libs/uses_libs.ino.cpp.o" in second["ran"]
    assert ccache_entries(cache) == entries
    # With the same objects, the link, objcopy and size outputs come from the cache by content.
    assert not any(key.endswith(("/link", "/hex", "/eep", "/size")) for key in second["ran"])
    for sketch in ("uses_libs", "eeprom_clear"):
        hexes = [(tmp_path / where / "out" / "sketches" / sketch / "firmware.hex").read_bytes()
                 for where in ("checkout-a", "somewhere/else/checkout-b")]
        assert hexes[0] == hexes[1]


def test_the_compile_launcher_names_its_programs_by_path(tmp_path):
    from fbuild_graph.caches import ccache

    # A bare name is looked for along PATH on every compile: a failed exec for each folder before its own.
    launcher = ccache.launcher(str(tmp_path / "cache"), [], None, str(tmp_path / "state"))
    assert os.path.basename(launcher[0]) == "env" and os.path.basename(launcher[-1]) == "ccache"
    assert os.path.isabs(launcher[0]) and os.path.isabs(launcher[-1])


def test_a_corrupt_entry_is_reported_ignored_and_rebuilt(tmp_path):
    cache = tmp_path / "cache"
    root = project(tmp_path / "p")
    build(root, cache)
    archive = next(cache.glob("stage1/*/files/core/core.a"))
    archive.chmod(0o644)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    again = build(root, cache, out="out2")
    assert "core/core.a" in again["ran"] and again["cache"] == "partial"
    assert any("corrupt" in line.lower() or "digest" in line.lower() for line in again["stderr"].splitlines())
    assert all(s["status"] == "ok" for s in again["report"]["sketches"])
    assert build(root, cache, out="out3")["cache"] == "hit"  # the rebuilt entry was stored again


def test_ro_mode_leaves_the_cache_byte_for_byte_unchanged(tmp_path):
    cache = tmp_path / "cache"
    root = project(tmp_path / "p")
    build(root, cache)
    before = snapshot(cache)
    (root / "libraries" / "FancyLed" / "src" / "fl" / "ui.cpp").write_text(
        '#include <Arduino.h>\n#include "ui.h"\nnamespace fl { void uiBegin() { pinMode(12, OUTPUT); } }\n')
    ro = build(root, cache, "--cache-mode", "ro", out="out-ro")
    assert ro["cache"] == "partial" and "lib/FancyLed/fl/ui.cpp.o" in ro["ran"]
    assert snapshot(cache) == before


def test_cache_mode_off_uses_no_cache(tmp_path):
    cache = tmp_path / "cache"
    off = build(project(tmp_path / "p"), cache, "--cache-mode", "off")
    assert off["cache"] == "off" and "core/core.a" in off["ran"]
    assert not cache.exists() or not list(cache.rglob("manifest.json"))


def test_two_builds_at_once_on_one_cache_both_succeed(tmp_path):
    cache = tmp_path / "cache"
    roots = [project(tmp_path / name) for name in ("a", "b")]
    procs = [subprocess.Popen([sys.executable, "-m", "fbuild_graph", "compile-many", "--board", "uno", "--library-dir",
                               str(root / "libraries"), "--cache-dir", str(cache), "-o", str(root / "out"),
                               str(root / "examples")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for root in roots]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    third = build(project(tmp_path / "c"), cache)
    assert third["cache"] == "hit"
    assert "corrupt" not in third["stderr"].lower()


def test_a_baked_bundle_gives_stage1_hits_on_a_fresh_cache(tmp_path):
    root = project(tmp_path / "p")
    bundle = tmp_path / "bundle.tar.zst"
    proc = run_cli("cache", "bake", "--board", "uno", "--library-dir", str(root / "libraries"), "-o", str(bundle),
                   str(root / "examples"))
    assert proc.returncode == 0, proc.stderr
    assert bundle.stat().st_size > 1000
    fresh = tmp_path / "fresh-cache"
    hit = build(root, fresh, "--cache-ro", str(bundle))
    assert hit["cache"] == "hit"
    assert not list(fresh.glob("stage1/*/manifest.json"))  # layer hits are not copied into the local cache


def test_cache_stats_and_prune(tmp_path):
    cache = tmp_path / "cache"
    build(project(tmp_path / "p"), cache)
    stats = json.loads(run_cli("cache", "stats", "--cache-dir", str(cache)).stdout)
    assert stats["entries"]["stage1"] >= 3 and stats["total_bytes"] > 0
    proc = run_cli("cache", "prune", "--cache-dir", str(cache), "--max-size", "0")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["entries"].get("stage1", 0) == 0
    bad = run_cli("cache", "prune", "--cache-dir", str(cache), "--max-size", "12X")
    assert bad.returncode == 2 and "12X" in bad.stderr and "Traceback" not in bad.stderr


def test_a_missing_cache_layer_is_a_usage_error(tmp_path):
    proc = run_cli("compile-many", "--board", "uno", "--cache-ro", str(tmp_path / "nope.tar.zst"), "-o", str(tmp_path / "o"),
                   str(TEST_SKETCHES / "dup_a"))
    assert proc.returncode == 2 and "nope.tar.zst" in proc.stderr and "Traceback" not in proc.stderr
    assert os.path.exists(TEST_SKETCHES / "dup_a")


def test_another_toolchain_is_a_miss_never_a_wrong_hit(tmp_path):
    cache = tmp_path / "cache"
    root = project(tmp_path / "p")
    build(root, cache)
    # Another toolchain: wrappers at another path (another binary) around the same tools.
    bin_dir = tmp_path / "toolchain" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("avr-gcc", "avr-g++", "avr-gcc-ar", "avr-objcopy", "avr-size"):
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/{tool} "$@"\n')
        wrapper.chmod(0o755)
    other = build(root, cache, "--build-property", f"compiler.path={bin_dir}/", out="out-other")
    assert other["cache"] == "miss"
    assert {"core/core.a", "sketch/eeprom_clear/link"} <= other["ran"]
