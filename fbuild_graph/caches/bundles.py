"""Cache bundles: store directories merged into one `.tar.zst` file by `bake`, a read-only cache layer.

Unpacking admits regular files and folders only, under the bundle's root, and at most max_bundle_bytes of tar
stream. With trusted keys, a bundle is unpacked only from a private copy whose sha256 its detached signature
covers (trust.py).

Bundles are tar streams piped through the `zstd` command, which must be installed to bake or open one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from typing import TYPE_CHECKING, BinaryIO, Callable, Sequence

from fbuild_graph.caches import entries
from fbuild_graph.errors import FbuildError

if TYPE_CHECKING:  # importing cryptography costs ~50 ms of every start-up; only --trust and --sign pay it
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

BUNDLE_SUFFIX = ".tar.zst"
# A bundle of a whole sweep is tens of MB; a few GiB admits any real one and stops a bomb long before the disk.
DEFAULT_MAX_BUNDLE_BYTES = 4 * 1024**3


def print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _TooBig(Exception):
    """A bundle's tar stream went past the size limit while it was being unpacked."""


class _NotFileOrFolder(tarfile.FilterError):
    def __init__(self, member: tarfile.TarInfo):
        self.tarinfo = member
        super().__init__(f"{member.name!r} is neither a regular file nor a folder")


def bake(bundle: str, sources: Sequence[str], *, warn: Callable[[str], None] = print_to_stderr) -> None:
    """Write `bundle` (a .tar.zst, through a temporary name) holding the sound entries and the ccache/ files of
    the `sources` store directories, merged: an entry or a ccache file already taken from an earlier source is
    not taken again. A corrupt entry is left out, with a warning."""
    if not bundle.endswith(BUNDLE_SUFFIX):
        raise FbuildError(f"cache bundle {bundle} must end in {BUNDLE_SUFFIX}: that is how a cache layer is "
                          "recognized as a bundle")
    members = _bundle_members(sources, warn)
    tmp = f"{bundle}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as out:
            # Unbuffered stdin: if zstd dies, no buffered bytes are left to fail again when the pipe is closed.
            with _start_zstd(["-c", "-T0"], stdin=subprocess.PIPE, stdout=out, bufsize=0) as proc:
                try:
                    with tarfile.open(fileobj=proc.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                        for arcname, path in members:
                            tar.add(path, arcname, recursive=False)
                    proc.stdin.close()
                except BaseException:
                    proc.kill()
                    raise
                _check_zstd(proc)
        os.replace(tmp, bundle)
    except (OSError, tarfile.TarError) as exc:
        raise FbuildError(f"cannot write cache bundle {bundle}: {exc}") from None
    finally:
        entries.unlink_missing_ok(tmp)


def _bundle_members(sources: Sequence[str], warn: Callable[[str], None]) -> list[tuple[str, str]]:
    """(name in the bundle, path) of every file bake writes: whole sound entries, then ccache files; the first
    source to hold an entry or a ccache file provides it."""
    taken: dict[str, list[tuple[str, str]]] = {}
    ccache: dict[str, str] = {}
    for source in sources:
        if not os.path.isdir(source):
            raise FbuildError(f"cache store {source} does not exist; bake reads store directories")
        for namespace, key, entry in entries.in_store(source):
            name = f"{namespace}/{key}"
            if name in taken:
                continue
            try:
                manifest = entries.verify(entry, key)
            except entries.Corrupt as exc:
                warn(f"warning: cache entry {name} in {source} is corrupt ({exc}); leaving it out of the bundle")
                continue
            taken[name] = [(f"{name}/{entries.MANIFEST}", os.path.join(entry, entries.MANIFEST))] + [
                (f"{name}/{entries.FILES}/{rel}", os.path.join(entry, entries.FILES, rel)) for rel in sorted(manifest)]
        for rel, path in entries.regular_files(os.path.join(source, entries.CCACHE)):
            ccache.setdefault(f"{entries.CCACHE}/{rel}", path)
    return [m for name in sorted(taken) for m in taken[name]] + sorted(ccache.items())


def trusted_keys(paths: Sequence[str]) -> tuple[Ed25519PublicKey, ...]:
    if not paths:
        return ()
    from fbuild_graph.caches import trust

    return trust.load_public_keys(paths)


def unpack(bundle: str, into: str, keys: Sequence[Ed25519PublicKey], max_bytes: int) -> str:
    """The bundle's store directory, unpacked under `into` (a private folder). With keys, the signature is
    checked before anything is unpacked, against a private copy, which is what is then unpacked: the bundle
    file may change meanwhile, the copy cannot."""
    source = bundle
    try:
        if keys:
            from fbuild_graph.caches import trust

            source = os.path.join(into, "bundle" + BUNDLE_SUFFIX)
            with open(bundle, "rb") as f:
                trust.verify(bundle, entries.hash_copy(f, source)[0], keys)
        store = os.path.join(into, "store")
        os.mkdir(store)
        _extract(source, store, max_bytes)
    except _TooBig:
        raise FbuildError(f"cache bundle {bundle} unpacks to more than {max_bytes} bytes (--max-bundle-size); "
                          "raise the limit if you trust the bundle, or leave it out of the cache layers") from None
    except (OSError, tarfile.TarError) as exc:
        raise FbuildError(f"cache bundle {bundle} cannot be unpacked ({exc}); bake it again or leave it out of "
                          "the cache layers") from None
    finally:
        if source != bundle:
            entries.unlink_missing_ok(source)
    return store


class _Bounded:
    """A read-only stream that raises _TooBig once more than `limit` bytes have been read through it."""

    def __init__(self, stream: BinaryIO, limit: int):
        self._stream = stream
        self._left = limit

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._left -= len(data)
        if self._left < 0:
            raise _TooBig
        return data


def _only_files_and_folders(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """The "data" filter (no '..', no device files, safe modes) that also refuses every link and absolute
    name, where it would strip the '/': bake writes neither, and a link can point a later read elsewhere."""
    if not (member.isreg() or member.isdir()):
        raise _NotFileOrFolder(member)
    if member.name.startswith("/"):
        raise tarfile.AbsolutePathError(member)
    return tarfile.data_filter(member, dest)


def _extract(bundle: str, dest: str, max_bytes: int) -> None:
    with _start_zstd(["-d", "-c", "--", bundle], stdout=subprocess.PIPE) as proc:
        # Counted as the bytes leave zstd, headers and padding included, before tarfile writes any of them.
        stream = _Bounded(proc.stdout, max_bytes)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                tar.extractall(dest, filter=_only_files_and_folders)
            # tarfile stops at the end-of-archive marker; zstd must not die writing the padding after it.
            while stream.read(entries.CHUNK):
                pass
        except (tarfile.TarError, _TooBig):
            proc.kill()
            proc.wait()
            if proc.returncode > 0:  # zstd failed first (not a zstd file, truncated): its message says more
                _check_zstd(proc)
            raise
        _check_zstd(proc)


def _start_zstd(args: list[str], **streams) -> subprocess.Popen:
    try:
        return subprocess.Popen(["zstd", "-q", *args], stderr=subprocess.PIPE, **streams)
    except FileNotFoundError:
        raise FbuildError("cache bundles need the zstd command; install it (Debian, Ubuntu: apt-get install zstd)") \
            from None


def _check_zstd(proc: subprocess.Popen) -> None:
    message = proc.stderr.read().decode(errors="replace").strip()
    if proc.wait() != 0:
        raise OSError(f"zstd exited with code {proc.returncode}: {message}")
