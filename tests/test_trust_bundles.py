"""The trust model of bundle layers: an ro build writes nothing to any cache folder and leaves no unpacked
copy behind; a bundle's expanded size is bounded and it holds only files and folders; a bundle's digests
catch accidents, only its signature catches tampering (`cache keygen`, `cache bake --sign`, `--trust`)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import PLATFORM, needs_toolchain, read_tsv, run_cli
from fbuild_graph.caches.bundles import bake
from fbuild_graph.caches.cache import Cache
from fbuild_graph.errors import FbuildError

needs_zstd = pytest.mark.skipif(not shutil.which("zstd"), reason="bundles need the zstd command")
SKETCH = PLATFORM / "libraries" / "EEPROM" / "examples" / "eeprom_clear"
CORE = "core/core.a"
# Dask's own scratch folder, which it keeps in the temporary folder between runs: not ours to remove.
DASK_SCRATCH = "dask-scratch-space"


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """$TMPDIR and $XDG_CACHE_HOME of their own, for this process and the builds it starts."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("tempfile.tempdir", None)  # gettempdir() reads $TMPDIR again
    return tmp


def leftovers(tmp: Path) -> set[str]:
    return {p.name for p in tmp.iterdir()} - {DASK_SCRATCH}


def tree(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under folder, folders included: (mode, size, mtime in ns)."""
    return {str(p.relative_to(folder)): (st.st_mode, st.st_size, st.st_mtime_ns)
            for p in sorted(folder.rglob("*")) for st in [p.lstat()]}


def compile_many(out: Path, *extra: str):
    return run_cli("compile-many", "--board", "uno", "-o", str(out), *extra, str(SKETCH))


def stage1_cache(out: Path) -> str:
    return next(row["cache"] for row in read_tsv(out / "phases.tsv") if row["phase"] == "stage1_archives")


def assert_one_line_error(proc, *parts: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fbuild-graph: error: "), proc.stderr
    for part in parts:
        assert part in lines[0], lines[0]


def write_bundle(bundle: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] = {}) -> None:
    """A .tar.zst of `members`, a file member's bytes from `data` (default: /dev/zero, its size long)."""
    with open(bundle, "wb") as out, subprocess.Popen(["zstd", "-q", "-c"], stdin=subprocess.PIPE, stdout=out) as zstd:
        with tarfile.open(fileobj=zstd.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for member in members:
                if not member.isreg():
                    tar.addfile(member)
                elif member.name in data:
                    tar.addfile(member, io.BytesIO(data[member.name]))
                else:
                    with open("/dev/zero", "rb") as zeros:
                        tar.addfile(member, zeros)
        zstd.stdin.close()
    assert zstd.returncode == 0


def file_member(name: str, size: int) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size, member.mode = size, 0o444
    return member


def unpack(bundle: Path, dest: Path) -> None:
    tar = subprocess.run(["zstd", "-d", "-c", str(bundle)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as t:
        t.extractall(dest, filter="data")


def repack(src: Path, bundle: Path) -> None:
    files = [p for p in sorted(src.rglob("*")) if p.is_file()]
    members = [file_member(str(p.relative_to(src)), p.stat().st_size) for p in files]
    write_bundle(bundle, members, {str(p.relative_to(src)): p.read_bytes() for p in files})


# the bundles the real builds use -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> dict:
    """A bundle baked without --sign over a stale BUNDLE.sig, which bake must remove."""
    if not (shutil.which("avr-g++") and PLATFORM.is_dir() and shutil.which("zstd")):
        pytest.skip("needs the AVR toolchain, arduino-core-avr and zstd")
    root = tmp_path_factory.mktemp("plain")
    bundle = root / "b.tar.zst"
    stale = root / "b.tar.zst.sig"
    stale.write_text("a signature of another bundle")
    proc = run_cli("cache", "bake", "--board", "uno", "-o", str(bundle), str(SKETCH))
    assert proc.returncode == 0, proc.stderr
    return {"bundle": bundle, "stale_signature_left": stale.exists()}


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> dict:
    if not (shutil.which("avr-g++") and PLATFORM.is_dir() and shutil.which("zstd")):
        pytest.skip("needs the AVR toolchain, arduino-core-avr and zstd")
    root = tmp_path_factory.mktemp("signed")
    key, other = root / "bake.key", root / "other.key"
    for path in (key, other):
        proc = run_cli("cache", "keygen", "-o", str(path))
        assert proc.returncode == 0, proc.stderr
    bundle = root / "b.tar.zst"
    proc = run_cli("cache", "bake", "--board", "uno", "--sign", str(key), "-o", str(bundle), str(SKETCH))
    assert proc.returncode == 0, proc.stderr
    assert Path(f"{bundle}.sig").is_file()
    return {"bundle": bundle, "key": key, "pub": Path(f"{key}.pub"), "other_pub": Path(f"{other}.pub")}


# 10: ro writes nothing, and no unpacked copy outlives the build -------------------------------------------

@needs_toolchain
def test_an_ro_build_with_a_bundle_layer_changes_nothing_under_the_cache_home(tmp_path, private_tmp, plain):
    xdg = tmp_path / "xdg"
    first = compile_many(tmp_path / "out-rw")  # the local cache, stage-1 entries and ccache files, in rw mode
    assert first.returncode == 0, first.stderr
    assert (xdg / "fbuild-graph" / "stage1").is_dir() and list((xdg / "fbuild-graph" / "ccache").rglob("*.*"))
    before = tree(xdg)

    ro = compile_many(tmp_path / "out-ro", "--cache-mode", "ro", "--cache-ro", str(plain["bundle"]))
    assert ro.returncode == 0, ro.stderr
    assert stage1_cache(tmp_path / "out-ro") == "hit"
    assert tree(xdg) == before  # no bundles/ folder, no touched manifest, no ccache write
    assert leftovers(private_tmp) == set()
    stats = json.loads(run_cli("cache", "stats").stdout)
    assert "bundles" not in stats["entries"]


@needs_toolchain
def test_a_bundle_layer_alone_in_rw_mode_leaves_no_unpacked_copy(tmp_path, private_tmp, plain):
    proc = compile_many(tmp_path / "out", "--cache-dir", str(tmp_path / "cache"), "--cache-ro", str(plain["bundle"]))
    assert proc.returncode == 0, proc.stderr
    assert stage1_cache(tmp_path / "out") == "hit"
    assert leftovers(private_tmp) == set()
    assert not (tmp_path / "xdg").exists()
    # The restored archive is a file of the build's own, not a link into a removed folder.
    assert (tmp_path / "out" / "stage1" / CORE).stat().st_size > 1000


def test_bake_without_sign_removes_the_signature_of_the_bundle_it_replaced(plain):
    assert not plain["stale_signature_left"]


# 11: bounded size, files and folders only ----------------------------------------------------------------

@needs_zstd
def test_a_zip_bomb_bundle_is_refused_with_one_line_and_leaves_nothing(tmp_path, private_tmp):
    bomb = tmp_path / "bomb.tar.zst"
    write_bundle(bomb, [file_member("stage1/ab/files/zeros", 64 << 20)])
    assert bomb.stat().st_size < 100_000
    proc = compile_many(tmp_path / "out", "--cache-mode", "ro", "--cache-ro", str(bomb), "--max-bundle-size", "16M")
    assert_one_line_error(proc, str(bomb), "more than 16000000 bytes", "--max-bundle-size")
    assert leftovers(private_tmp) == set()
    assert not (tmp_path / "xdg").exists()


@needs_zstd
def test_the_size_limit_counts_the_padding_after_the_archive_too(tmp_path, private_tmp):
    store = tmp_path / "store"
    Cache(str(store)).put("stage1", "ab", {"x.o": str(SKETCH / "eeprom_clear.ino")})
    bundle = tmp_path / "b.tar.zst"
    bake(str(bundle), [str(store)])
    tar = subprocess.run(["zstd", "-d", "-c", str(bundle)], capture_output=True, check=True).stdout
    padded = subprocess.run(["zstd", "-q", "-c"], input=tar + bytes(32 << 20), capture_output=True, check=True).stdout
    bundle.write_bytes(padded)
    with pytest.raises(FbuildError, match="more than 16777216 bytes"):
        Cache(None, read_only_layers=[str(bundle)], max_bundle_bytes=16 << 20)
    assert leftovers(private_tmp) == set()
    with Cache(None, read_only_layers=[str(bundle)]) as cache:  # under the default limit it opens
        assert cache.get("stage1", "ab", str(tmp_path / "dest")) is not None


def _member(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, linkname
    return member


@needs_zstd
@pytest.mark.parametrize("member,why", [
    (_member("stage1/ab/files/x.o", tarfile.SYMTYPE, "../manifest.json"), "neither a regular file nor a folder"),
    (_member("stage1/ab/files/y.o", tarfile.LNKTYPE, "stage1/ab/manifest.json"), "neither a regular file"),
    (_member("stage1/ab/files/tty", tarfile.CHRTYPE), "neither a regular file"),
    (_member("stage1/ab/files/fifo", tarfile.FIFOTYPE), "neither a regular file"),
    (file_member("../outside", 1), "outside the destination"),
    (file_member("/tmp/absolute", 1), "absolute path"),
])
def test_a_bundle_member_other_than_a_file_or_folder_inside_it_is_refused(tmp_path, private_tmp, member, why):
    bundle = tmp_path / "b.tar.zst"
    write_bundle(bundle, [file_member("stage1/ab/manifest.json", 2), member], {"stage1/ab/manifest.json": b"{}"})
    with pytest.raises(FbuildError, match=f"cache bundle {bundle} cannot be unpacked .*{why}"):
        Cache(None, read_only_layers=[str(bundle)])
    assert leftovers(private_tmp) == set()
    assert not (tmp_path / "outside").exists() and not Path("/tmp/absolute").exists()


def test_a_bad_max_bundle_size_is_a_one_line_error(tmp_path):
    proc = compile_many(tmp_path / "out", "--max-bundle-size", "lots")
    assert_one_line_error(proc, "--max-bundle-size", "'lots'")


# 12: digests catch accidents, signatures catch tampering ------------------------------------------------

def tamper(bundle: Path, tmp_path: Path) -> tuple[Path, bytes]:
    """The bundle with core.a changed and its manifest fixed to match, as an attacker would; the original
    signature stays beside it (nobody else can make a new one)."""
    src = tmp_path / "unpacked"
    unpack(bundle, src)
    (manifest_path,) = [p for p in src.glob("stage1/*/manifest.json") if (p.parent / "files" / CORE).exists()]
    archive = manifest_path.parent / "files" / CORE
    # An extra archive member the linker never loads: the firmware still links, with the attacker's archive.
    member = b"evil.txt/       0           0     0     644     5         `\n" + b"evil\n\n"
    archive.write_bytes(archive.read_bytes() + member)
    manifest = json.loads(manifest_path.read_text())
    data = archive.read_bytes()
    manifest["files"][CORE] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest_path.write_text(json.dumps(manifest))
    tampered = tmp_path / "tampered.tar.zst"
    repack(src, tampered)
    shutil.copy(f"{bundle}.sig", f"{tampered}.sig")
    return tampered, data


@needs_toolchain
def test_a_tampered_bundle_is_used_without_trust_and_refused_with_it(tmp_path, private_tmp, signed):
    tampered, data = tamper(signed["bundle"], tmp_path)
    cache = ("--cache-dir", str(tmp_path / "cache"), "--cache-mode", "ro", "--cache-ro", str(tampered))
    # Without --trust the digests match, so the entry is taken: what README says only a signature prevents.
    used = compile_many(tmp_path / "out", *cache)
    assert used.returncode == 0, used.stderr
    assert stage1_cache(tmp_path / "out") == "hit"
    assert (tmp_path / "out" / "stage1" / CORE).read_bytes() == data

    refused = compile_many(tmp_path / "out-trust", *cache, "--trust", str(signed["pub"]))
    assert_one_line_error(refused, str(tampered), "changed after it was signed")
    assert not (tmp_path / "out-trust" / "stage1").exists()
    assert leftovers(private_tmp) == set()


@needs_toolchain
def test_an_unsigned_bundle_is_refused_with_trust(tmp_path, private_tmp, signed):
    unsigned = tmp_path / "unsigned.tar.zst"
    shutil.copy(signed["bundle"], unsigned)
    proc = compile_many(tmp_path / "out", "--cache-ro", str(unsigned), "--trust", str(signed["pub"]))
    assert_one_line_error(proc, str(unsigned), "is not signed")
    assert leftovers(private_tmp) == set() and not (tmp_path / "out" / "stage1").exists()


@needs_toolchain
def test_a_bundle_signed_by_another_key_is_refused(tmp_path, private_tmp, signed):
    proc = compile_many(tmp_path / "out", "--cache-ro", str(signed["bundle"]), "--trust", str(signed["other_pub"]))
    assert_one_line_error(proc, str(signed["bundle"]), "not a signature by a --trust key")
    assert leftovers(private_tmp) == set()


@needs_toolchain
def test_a_correctly_signed_bundle_builds_and_hits(tmp_path, private_tmp, signed):
    # Either of two trusted keys will do.
    proc = compile_many(tmp_path / "out", "--cache-dir", str(tmp_path / "cache"), "--cache-mode", "ro",
                        "--cache-ro", str(signed["bundle"]), "--trust", str(signed["other_pub"]),
                        "--trust", str(signed["pub"]))
    assert proc.returncode == 0, proc.stderr
    assert stage1_cache(tmp_path / "out") == "hit"
    assert leftovers(private_tmp) == set() and not (tmp_path / "cache").exists()


@needs_toolchain
def test_with_trust_a_cache_folder_layer_is_refused(tmp_path, signed):
    folder = tmp_path / "store"
    folder.mkdir()
    proc = compile_many(tmp_path / "out", "--cache-ro", str(folder), "--trust", str(signed["pub"]))
    assert_one_line_error(proc, str(folder), "carries no signature")


@needs_toolchain
@pytest.mark.parametrize("content", ["garbage", "{}", '{"format": "fbuild-graph bundle signature 1", "sha256": "00",'
                                     ' "ed25519": "%%%"}'])
def test_a_malformed_signature_is_a_one_line_error(tmp_path, signed, content):
    bundle = tmp_path / "b.tar.zst"
    shutil.copy(signed["bundle"], bundle)
    Path(f"{bundle}.sig").write_text(content)
    proc = compile_many(tmp_path / "out", "--cache-ro", str(bundle), "--trust", str(signed["pub"]))
    assert_one_line_error(proc, f"{bundle}.sig", "is not an fbuild-graph bundle signature")


def test_keygen_writes_a_private_key_only_its_owner_reads_and_refuses_to_replace_it(tmp_path):
    key = tmp_path / "k"
    proc = run_cli("cache", "keygen", "-o", str(key))
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in key.read_bytes() and b"PUBLIC KEY" in Path(f"{key}.pub").read_bytes()
    before = key.read_bytes()
    again = run_cli("cache", "keygen", "-o", str(key))
    assert_one_line_error(again, str(key), "already exists")
    assert key.read_bytes() == before


def test_a_key_that_is_not_one_is_a_one_line_error_before_anything_builds(tmp_path):
    bad = tmp_path / "not-a-key"
    bad.write_text("hello")
    sign = run_cli("cache", "bake", "--board", "uno", "--sign", str(bad), "-o", str(tmp_path / "b.tar.zst"), str(SKETCH))
    assert_one_line_error(sign, str(bad), "not an unencrypted Ed25519 private key")
    assert not (tmp_path / "b.tar.zst").exists()
    trust = compile_many(tmp_path / "out", "--cache-ro", str(tmp_path), "--trust", str(bad))
    assert_one_line_error(trust, str(bad), "not an Ed25519 public key")
    missing = compile_many(tmp_path / "out", "--cache-ro", str(tmp_path), "--trust", str(tmp_path / "nope.pub"))
    assert_one_line_error(missing, "nope.pub", "cannot be read")
