"""The layered build cache, on real files: round trips, modes, corruption, layers, concurrency, prune, bundles."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from fbuild_graph.caches.bundles import bake
from fbuild_graph.caches.cache import Cache, parse_size
from fbuild_graph.errors import FbuildError

KEY = "0123abcd"
NS = "stage1"
CONTENT = {"core/core.a": b"!<arch>\n" + bytes(range(256)) * 40, "libraries/Servo/Servo.cpp.o": b"\x7fELF object"}

needs_zstd = pytest.mark.skipif(not shutil.which("zstd"), reason="bundles need the zstd command")


def sources(tmp_path: Path, content: dict[str, bytes] = CONTENT) -> dict[str, str]:
    """The build outputs to store: relative path -> absolute source path."""
    build = tmp_path / f"build-{len(list(tmp_path.glob('build-*')))}"
    files = {}
    for rel, data in content.items():
        path = build / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[rel] = str(path)
    return files


def stored(root: Path, rel: str, key: str = KEY) -> Path:
    return root / NS / key / "files" / rel


def read_tree(dest: Path) -> dict[str, bytes]:
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in sorted(dest.rglob("*")) if p.is_file()}


def snapshot(top: Path) -> dict[str, tuple]:
    """Every path under top with its bytes (files) and mtime: any write, temporary or touch changes it."""
    found = {".": (None, os.stat(top).st_mtime_ns)}
    for p in top.rglob("*"):
        found[p.relative_to(top).as_posix()] = (p.read_bytes() if p.is_file() else None, os.lstat(p).st_mtime_ns)
    return found


class Warnings(list):
    def __call__(self, message: str) -> None:
        self.append(message)


def filled_store(tmp_path: Path, name: str, content: dict[str, bytes] = CONTENT) -> Path:
    root = tmp_path / name
    assert Cache(str(root)).put(NS, KEY, sources(tmp_path, content))
    return root


# round trip ---------------------------------------------------------------------------------------------

def test_put_then_get_round_trips_read_only_hard_links_that_a_replace_at_dest_does_not_reach(tmp_path):
    root, dest = tmp_path / "store", tmp_path / "dest"
    cache = Cache(str(root))
    assert cache.put(NS, KEY, sources(tmp_path))

    hit = cache.get(NS, KEY, str(dest))
    assert hit is not None and hit.layer == str(root)
    assert hit.files == tuple(sorted(CONTENT))
    assert read_tree(dest) == CONTENT
    for rel in CONTENT:
        assert stat.S_IMODE(os.stat(dest / rel).st_mode) == 0o444
        assert os.stat(dest / rel).st_ino == os.stat(stored(root, rel)).st_ino

    new = tmp_path / "new.a"
    new.write_bytes(b"rebuilt")
    os.replace(new, dest / "core/core.a")
    assert stored(root, "core/core.a").read_bytes() == CONTENT["core/core.a"]
    assert cache.get(NS, KEY, str(dest)) is not None  # the store still verifies
    assert read_tree(dest) == CONTENT  # and the existing file was replaced


def test_stored_files_and_manifest_are_read_only_and_the_manifest_records_digests(tmp_path):
    root = filled_store(tmp_path, "store")
    manifest = json.loads((root / NS / KEY / "manifest.json").read_text())
    assert manifest["key"] == KEY
    assert manifest["files"] == {rel: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                                 for rel, data in CONTENT.items()}
    for path in [root / NS / KEY / "manifest.json", *(stored(root, rel) for rel in CONTENT)]:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o444
    assert sorted(os.listdir(root / NS)) == [KEY]  # no temporary left behind


def test_a_stored_file_that_is_writable_is_copied_not_linked(tmp_path):
    # Linking it and making the link read-only would chmod the store's own file.
    root = filled_store(tmp_path, "store")
    os.chmod(stored(root, "core/core.a"), 0o644)
    dest = tmp_path / "dest"
    assert Cache(str(root), mode="ro").get(NS, KEY, str(dest)) is not None
    assert os.stat(dest / "core/core.a").st_ino != os.stat(stored(root, "core/core.a")).st_ino
    assert stat.S_IMODE(os.stat(dest / "core/core.a").st_mode) == 0o444
    assert stat.S_IMODE(os.stat(stored(root, "core/core.a")).st_mode) == 0o644


def test_put_of_a_missing_source_warns_and_leaves_no_debris(tmp_path):
    warnings = Warnings()
    cache = Cache(str(tmp_path / "store"), warn=warnings)
    assert not cache.put(NS, KEY, {"core.a": str(tmp_path / "missing.a")})
    assert len(warnings) == 1 and f"{NS}/{KEY}" in warnings[0]
    assert os.listdir(tmp_path / "store" / NS) == []


def test_bad_names_are_refused(tmp_path):
    cache = Cache(str(tmp_path / "store"))
    with pytest.raises(ValueError):
        cache.put(NS, "not-hex", {})
    with pytest.raises(ValueError):
        cache.get("ccache", KEY, str(tmp_path))
    with pytest.raises(ValueError):
        cache.put(NS, KEY, {"../escape": str(tmp_path)})


# modes --------------------------------------------------------------------------------------------------

def test_get_misses_an_unknown_key_and_does_not_create_the_store(tmp_path):
    root = tmp_path / "store"
    assert Cache(str(root)).get(NS, KEY, str(tmp_path / "dest")) is None
    assert not root.exists() and not (tmp_path / "dest").exists()


def test_off_mode_misses_and_never_writes(tmp_path):
    root = filled_store(tmp_path, "store")
    layer = filled_store(tmp_path, "layer")
    before = snapshot(root)
    cache = Cache(str(root), mode="off", read_only_layers=[str(layer)])
    assert cache.get(NS, KEY, str(tmp_path / "dest")) is None
    assert not cache.put(NS, "ff", sources(tmp_path))
    assert cache.prune(0) == 0
    assert cache.ccache_dirs() == (None, ())
    assert snapshot(root) == before


def test_ro_mode_reads_but_leaves_the_store_byte_for_byte_unchanged(tmp_path):
    root = filled_store(tmp_path, "store")
    (root / "ccache").mkdir()
    before = snapshot(root)
    cache = Cache(str(root), mode="ro")
    hit = cache.get(NS, KEY, str(tmp_path / "dest"))
    assert hit is not None and read_tree(tmp_path / "dest") == CONTENT
    assert not cache.put(NS, "ff", sources(tmp_path))
    assert not cache.put(NS, KEY, sources(tmp_path))
    assert cache.prune(0) == 0
    assert cache.ccache_dirs() == (None, (str(root / "ccache"),))
    assert snapshot(root) == before


def test_an_unknown_mode_is_a_user_error(tmp_path):
    with pytest.raises(FbuildError, match="'rx' is not one of rw, ro, off"):
        Cache(str(tmp_path), mode="rx")


# corruption ---------------------------------------------------------------------------------------------

def truncate(root: Path) -> None:
    path = stored(root, "core/core.a")
    os.chmod(path, 0o644)
    path.write_bytes(CONTENT["core/core.a"][:100])


def flip_a_byte(root: Path) -> None:
    path = stored(root, "core/core.a")
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[500] ^= 0x01
    path.write_bytes(bytes(data))


def delete_a_file(root: Path) -> None:
    stored(root, "libraries/Servo/Servo.cpp.o").unlink()


def delete_the_manifest(root: Path) -> None:
    (root / NS / KEY / "manifest.json").unlink()


def garble_the_manifest(root: Path) -> None:
    manifest = root / NS / KEY / "manifest.json"
    os.chmod(manifest, 0o644)
    manifest.write_text(manifest.read_text()[:40])


def escape_through_the_manifest(root: Path) -> None:
    manifest = root / NS / KEY / "manifest.json"
    data = json.loads(manifest.read_text())
    data["files"]["../../outside"] = data["files"].pop("core/core.a")
    os.chmod(manifest, 0o644)
    manifest.write_text(json.dumps(data))


CORRUPTIONS = [truncate, flip_a_byte, delete_a_file, delete_the_manifest, garble_the_manifest,
               escape_through_the_manifest]


@pytest.mark.parametrize("corrupt", CORRUPTIONS)
def test_a_corrupt_entry_warns_misses_and_is_replaced_by_the_next_put(tmp_path, corrupt):
    root = filled_store(tmp_path, "store")
    corrupt(root)
    warnings = Warnings()
    cache = Cache(str(root), warn=warnings)
    dest = tmp_path / "dest"
    assert cache.get(NS, KEY, str(dest)) is None
    assert len(warnings) == 1 and f"{NS}/{KEY}" in warnings[0] and str(root) in warnings[0]
    assert read_tree(dest) == {}  # nothing half-materialized
    assert not (tmp_path / "outside").exists()
    # rw mode removed the bad entry, so a put can store a sound one again.
    assert cache.put(NS, KEY, sources(tmp_path))
    assert cache.get(NS, KEY, str(dest)).layer == str(root)
    assert read_tree(dest) == CONTENT


@pytest.mark.parametrize("corrupt", CORRUPTIONS)
def test_a_corrupt_entry_falls_through_to_a_sound_copy_in_a_lower_layer(tmp_path, corrupt):
    root = filled_store(tmp_path, "store")
    layer = filled_store(tmp_path, "layer")
    corrupt(root)
    before = snapshot(root)
    warnings = Warnings()
    hit = Cache(str(root), mode="ro", read_only_layers=[str(layer)], warn=warnings).get(NS, KEY, str(tmp_path / "d"))
    assert hit is not None and hit.layer == str(layer)
    assert read_tree(tmp_path / "d") == CONTENT
    assert len(warnings) == 1 and str(root) in warnings[0]
    assert snapshot(root) == before  # ro mode does not remove the bad entry


# layers -------------------------------------------------------------------------------------------------

def test_a_miss_in_root_hits_a_read_only_layer_which_is_never_written(tmp_path):
    layer = filled_store(tmp_path, "layer")
    (layer / "ccache").mkdir()
    before = snapshot(layer)
    root = tmp_path / "store"
    cache = Cache(str(root), read_only_layers=[str(layer)])
    hit = cache.get(NS, KEY, str(tmp_path / "dest"))
    assert hit is not None and hit.layer == str(layer)
    assert read_tree(tmp_path / "dest") == CONTENT
    assert cache.put(NS, "ff", sources(tmp_path))  # puts go to root only
    assert cache.prune(0) == 1
    assert cache.ccache_dirs() == (str(root / "ccache"), (str(layer / "ccache"),))
    assert snapshot(layer) == before


def test_a_missing_layer_is_a_user_error(tmp_path):
    with pytest.raises(FbuildError, match=f"cache layer {tmp_path / 'nope'} does not exist"):
        Cache(str(tmp_path / "store"), mode="ro", read_only_layers=[str(tmp_path / "nope")])


# concurrency --------------------------------------------------------------------------------------------

def _put_after(barrier, root: str, files: dict[str, str], results) -> None:
    barrier.wait()
    results.put(Cache(root).put(NS, KEY, files))


def test_concurrent_puts_of_one_key_both_succeed_and_leave_one_sound_entry(tmp_path):
    big = {f"obj/{i}.o": os.urandom(200_000) for i in range(8)}
    root = tmp_path / "store"
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_put_after, args=(barrier, str(root), sources(tmp_path, big), results))
               for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert [w.exitcode for w in workers] == [0] * 4
    assert [results.get(timeout=5) for _ in workers] == [True] * 4
    assert os.listdir(root / NS) == [KEY]
    warnings = Warnings()
    assert Cache(str(root), warn=warnings).get(NS, KEY, str(tmp_path / "dest")) is not None
    assert warnings == [] and read_tree(tmp_path / "dest") == big


# prune --------------------------------------------------------------------------------------------------

def test_prune_removes_the_least_recently_used_entries(tmp_path):
    root = tmp_path / "store"
    cache = Cache(str(root))
    keys = ["aa", "bb", "cc"]
    for age, key in zip((300, 200, 100), keys):
        assert cache.put(NS, key, sources(tmp_path))
        manifest = root / NS / key / "manifest.json"
        os.utime(manifest, (manifest.stat().st_mtime - age,) * 2)
    one = cache.stats().total_bytes // 3
    assert cache.stats().entries == {NS: 3}

    assert cache.get(NS, "aa", str(tmp_path / "dest")) is not None  # the oldest put, now the latest used
    assert cache.prune(one + 100) == 2
    assert cache.stats().entries == {NS: 1}
    assert cache.stats().total_bytes <= one + 100
    assert os.listdir(root / NS) == ["aa"]
    assert cache.prune(one + 100) == 0


def test_prune_clears_debris_of_killed_processes_and_bounds_ccache_too(tmp_path):
    root = filled_store(tmp_path, "store")
    (root / "ccache" / "a").mkdir(parents=True)
    old_result, new_result = root / "ccache" / "a" / "old.result", root / "ccache" / "a" / "new.result"
    old_result.write_bytes(b"x" * 10_000)
    new_result.write_bytes(b"y" * 10_000)
    os.utime(old_result, (1, 1))  # the least recently used file of all
    (root / NS / ".trash-1").mkdir()
    stale, fresh = root / NS / ".tmp-old", root / NS / ".tmp-new"
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (0, 0))
    cache = Cache(str(root))
    assert cache.stats().ccache_bytes == 20_000
    assert cache.prune(10**9) == 0
    assert sorted(os.listdir(root / NS)) == [".tmp-new", KEY]
    entry_bytes = cache.stats().total_bytes - 20_000
    assert cache.prune(entry_bytes + 10_000) == 1  # the oldest ccache file goes first
    assert not old_result.exists() and new_result.exists() and cache.stats().entries == {NS: 1}
    assert cache.prune(0) == 2
    assert cache.stats().entries == {} and cache.stats().total_bytes == 0


# bundles ------------------------------------------------------------------------------------------------

@needs_zstd
def test_bake_then_open_as_a_read_only_layer(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    first = filled_store(tmp_path, "first")
    (first / "ccache" / "3").mkdir(parents=True)
    (first / "ccache" / "3" / "a.result").write_bytes(b"first")
    # The same key and ccache file in a later source do not override the earlier ones.
    second = filled_store(tmp_path, "second", {"core/core.a": b"other"})
    (second / "ccache" / "3").mkdir(parents=True)
    (second / "ccache" / "3" / "a.result").write_bytes(b"second")
    (second / "ccache" / "3" / "b.result").write_bytes(b"only second")
    assert Cache(str(second)).put(NS, "bb", sources(tmp_path, {"x.o": b"x"}))
    bundle = tmp_path / "out" / "stage1.tar.zst"
    bundle.parent.mkdir()
    bake(str(bundle), [str(first), str(second)])
    assert os.listdir(bundle.parent) == ["stage1.tar.zst"]

    empty = tmp_path / "empty"
    cache = Cache(str(empty), mode="ro", read_only_layers=[str(bundle)])
    hit = cache.get(NS, KEY, str(tmp_path / "dest"))
    assert hit is not None and hit.layer == str(bundle)
    assert read_tree(tmp_path / "dest") == CONTENT
    assert cache.get(NS, "bb", str(tmp_path / "dest2")) is not None
    assert read_tree(tmp_path / "dest2") == {"x.o": b"x"}
    assert not empty.exists()

    writable, (unpacked,) = cache.ccache_dirs()
    assert writable is None
    assert read_tree(Path(unpacked)) == {"3/a.result": b"first", "3/b.result": b"only second"}
    # Unpacked into a private temporary folder, never under $XDG_CACHE_HOME, and gone once the cache closes.
    assert not (tmp_path / "xdg").exists()
    cache.close()
    assert not os.path.exists(unpacked)


@needs_zstd
def test_bake_leaves_corrupt_entries_out(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    store = filled_store(tmp_path, "store")
    flip_a_byte(store)
    warnings = Warnings()
    bundle = tmp_path / "b.tar.zst"
    bake(str(bundle), [str(store)], warn=warnings)
    assert len(warnings) == 1 and f"{NS}/{KEY}" in warnings[0]
    assert Cache(None, read_only_layers=[str(bundle)]).get(NS, KEY, str(tmp_path / "dest")) is None


@needs_zstd
@pytest.mark.parametrize("data", [b"not a bundle", b"", b"\x28\xb5\x2f\xfd"])
def test_a_bundle_that_does_not_unpack_is_a_user_error_naming_it(tmp_path, monkeypatch, data):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    bundle = tmp_path / "broken.tar.zst"
    bundle.write_bytes(data)
    with pytest.raises(FbuildError, match=f"cache bundle {bundle} cannot be unpacked"):
        Cache(None, mode="ro", read_only_layers=[str(bundle)])
    assert not (tmp_path / "xdg").exists()


@needs_zstd
def test_a_truncated_bundle_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    store = filled_store(tmp_path, "store", {"big.o": os.urandom(300_000)})
    bundle = tmp_path / "b.tar.zst"
    bake(str(bundle), [str(store)])
    bundle.write_bytes(bundle.read_bytes()[:150_000])
    with pytest.raises(FbuildError, match="cannot be unpacked"):
        Cache(None, read_only_layers=[str(bundle)])


@needs_zstd
def test_a_bundle_with_long_padding_after_the_tar_end_opens(tmp_path, monkeypatch):
    # As other tar writers make them (GNU tar -b 2048): tarfile stops reading at the end marker.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    bundle = tmp_path / "b.tar.zst"
    bake(str(bundle), [str(filled_store(tmp_path, "store"))])
    tar = subprocess.run(["zstd", "-d", "-c", str(bundle)], capture_output=True, check=True).stdout
    padded = subprocess.run(["zstd", "-c"], input=tar + bytes(1 << 20), capture_output=True, check=True).stdout
    bundle.write_bytes(padded)
    assert Cache(None, read_only_layers=[str(bundle)]).get(NS, KEY, str(tmp_path / "dest")) is not None


def test_bake_refuses_a_name_that_would_not_open_as_a_bundle(tmp_path):
    with pytest.raises(FbuildError, match=r"must end in \.tar\.zst"):
        bake(str(tmp_path / "b.tar.gz"), [])


# sizes --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,size", [
    ("1024", 1024), ("500M", 500_000_000), ("2G", 2_000_000_000), ("1.5GiB", 1_610_612_736), ("10k", 10_000),
    ("64KiB", 65_536), ("2 GB", 2_000_000_000), ("0", 0), ("1T", 10**12),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["12X", "", "M", "-1", "1.2.3", "5 M B"])
def test_parse_size_refuses_garbage(text):
    with pytest.raises(FbuildError, match=re.escape(f"--max-size {text!r} is not a size; use e.g. 500M or 2G")):
        parse_size(text)
