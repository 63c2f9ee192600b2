"""A content-addressed, layered store for build outputs: the stage-1 cache (core archive, library objects).

An entry is a namespace, a hex key and a set of files. In one store directory ROOT:

    ROOT/<namespace>/<key>/manifest.json   {"key": ..., "files": {"rel/path": {"sha256": ..., "size": N}}, "created": T}
    ROOT/<namespace>/<key>/files/<rel/path>
    ROOT/ccache/                           the compiler cache (ccache `file:` storage, which sets no size limit
                                           of its own: prune bounds it with the entries)

Entries are immutable: one appears by renaming a finished temporary directory into place and disappears by
renaming it to a trash name before deleting it, so a reader finds a whole entry or none. Stored files are
read-only, and every get checks sizes and sha256 digests against the manifest: that is what catches an entry
damaged by a crash, a full disk or a hand edit, and why put does not fsync.

Lookups go through layers: ROOT first, then the read-only layers in the order given, each a store directory
or a `.tar.zst` bundle made by `bake`. Modes:
  rw   get reads every layer and, on a hit in ROOT, touches the manifest's mtime (prune's "last used");
       put and prune write ROOT.
  ro   get reads every layer; put and prune do nothing. Nothing is created, changed or touched under ROOT or
       any layer; a hard link from dest to a stored file only raises the file's link count.
  off  get misses, put and prune do nothing; the layers are not even opened.
A bundle layer is unpacked when the Cache opens, into a private temporary folder of this process that close()
removes: no cache folder is written to, in any mode, and no copy outlives the build. Unpacking admits regular
files and folders only, under the bundle's root, and at most max_bundle_bytes of tar stream. With trusted keys,
a bundle is unpacked only from a private copy whose sha256 its detached signature covers (trust.py), and
store-directory layers are refused: a folder carries no signature.

Bundles are tar streams piped through the `zstd` command, which must be installed to bake or open one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator, Mapping, Sequence

from attrs import frozen

from fbuild_graph.errors import FbuildError

if TYPE_CHECKING:  # importing cryptography costs ~50 ms of every start-up; only --trust and --sign pay it
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CACHE_MODES = ("rw", "ro", "off")
CCACHE = "ccache"
MANIFEST = "manifest.json"
FILES = "files"
BUNDLE_SUFFIX = ".tar.zst"
# A bundle of a whole sweep is tens of MB; a few GiB admits any real one and stops a bomb long before the disk.
DEFAULT_MAX_BUNDLE_BYTES = 4 * 1024**3

_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_KEY = re.compile(r"[0-9a-fA-F]+\Z")
_DIGEST = re.compile(r"[0-9a-f]{64}\Z")
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])(i?))?b?\s*\Z", re.IGNORECASE)
_CHUNK = 1 << 20
# A put still unfinished after this long was killed; its temporary directory is debris for prune.
_STALE_SECONDS = 3600
# link() refuses with these when the file cannot be shared from here (another filesystem, another user's file
# under fs.protected_hardlinks, too many links): the answer is a copy, not a failure.
_LINK_REFUSED = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


def print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@frozen
class Hit:
    """A get that found its entry: the layer as given (ROOT, a store directory or a bundle file) and the
    relative paths now under dest, sorted."""

    layer: str
    files: tuple[str, ...]


@frozen
class CacheStats:
    """ROOT's entries per namespace and their bytes on disk, manifests included, and the compiler cache's
    bytes; total_bytes counts both. The temporary directories of unfinished puts are not counted. root is
    None for a cache without a local store."""

    root: str | None
    entries: dict[str, int]
    total_bytes: int
    ccache_bytes: int = 0


@frozen
class _Layer:
    name: str  # as given: what hits and warnings report
    path: str  # the store directory read (for a bundle, its unpack directory)


class _Changed(OSError):
    """A file to store is not what its action produced: another process wrote it since."""


class _Corrupt(Exception):
    """The entry's content disagrees with its manifest, or the manifest is unusable."""


class _TooBig(Exception):
    """A bundle's tar stream went past the size limit while it was being unpacked."""


class _NotFileOrFolder(tarfile.FilterError):
    def __init__(self, member: tarfile.TarInfo):
        self.tarinfo = member
        super().__init__(f"{member.name!r} is neither a regular file nor a folder")


@frozen
class CacheSpec:
    """What a Dask task needs to open the same cache as the client: plain data, so it pickles."""

    root: str | None
    mode: str = "rw"
    layers: tuple[str, ...] = ()
    trust: tuple[str, ...] = ()  # public key files; non-empty: only bundles signed by one of them
    max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES

    def open(self, warn: Callable[[str], None] = print_to_stderr) -> "Cache":
        return Cache(self.root, mode=self.mode, read_only_layers=self.layers, trust=self.trust,
                     max_bundle_bytes=self.max_bundle_bytes, warn=warn)


class Cache:
    """The store at `root` (created by the first put) over `read_only_layers`, which are searched in order
    after it and never written. The module docstring describes the modes. A context manager: close() removes
    the unpacked bundles."""

    def __init__(self, root: str | None, *, mode: str = "rw", read_only_layers: Sequence[str] = (),
                 trust: Sequence[str] = (), max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
                 warn: Callable[[str], None] = print_to_stderr):
        if mode not in CACHE_MODES:
            raise FbuildError(f"cache mode {mode!r} is not one of {', '.join(CACHE_MODES)}")
        self.root = os.path.abspath(root) if root else None
        self.mode = mode
        self._warn = warn
        self._scratch: str | None = None  # the private folder of unpacked bundles, made for the first one
        layers = []
        if mode != "off":
            if self.root:
                layers.append(_Layer(self.root, self.root))
            keys = _trusted_keys(trust)
            try:
                layers += [_Layer(path, self._open_layer(path, keys, max_bundle_bytes)) for path in read_only_layers]
            except BaseException:
                self.close()
                raise
        self._layers = tuple(layers)

    def close(self) -> None:
        """Remove the unpacked bundles; files hard-linked from them into a build stay where they were placed."""
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> "Cache":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def spec(self) -> CacheSpec:
        """For Dask tasks in this process while it is open: the same layers, with bundles as their unpacked
        (already verified) store directories, so a task neither unpacks nor verifies again."""
        return CacheSpec(self.root, self.mode, tuple(layer.path for layer in self._layers if layer.path != self.root))

    def _open_layer(self, path: str, keys: Sequence[Ed25519PublicKey], max_bytes: int) -> str:
        """The store directory to read for a layer given as `path`."""
        full = os.path.abspath(path)
        if os.path.isdir(full):
            if keys:
                raise FbuildError(f"cache layer {path} is a folder, which carries no signature; with --trust use "
                                  f"signed {BUNDLE_SUFFIX} bundles only")
            return full
        if not os.path.exists(full):
            raise FbuildError(f"cache layer {path} does not exist; pass an existing store directory or "
                              f"{BUNDLE_SUFFIX} bundle")
        if not full.endswith(BUNDLE_SUFFIX):
            raise FbuildError(f"cache layer {path} is neither a store directory nor a {BUNDLE_SUFFIX} bundle")
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="fbuild-graph-bundles-")
        return _unpack(full, tempfile.mkdtemp(dir=self._scratch), keys, max_bytes)

    @property
    def _writable(self) -> bool:
        return self.mode == "rw" and self.root is not None

    def get(self, namespace: str, key: str, dest: str) -> Hit | None:
        """Materialize the entry's files under dest from the first layer holding a sound copy, or return None.

        Each file is checked (size, sha256) as it is placed, read-only: a hard link when the stored file is
        read-only and on the same filesystem, else a copy. All files go to temporary names first and replace
        whatever dest held only once every one has checked out, so dest is never written in place.
        Per layer: no entry -> next layer, silently; corrupt entry -> warn, next layer (in rw mode a corrupt
        entry in ROOT is also removed, so the next put can store a sound one); dest or layer unreadable
        (OSError) -> warn, next layer.
        """
        rel_entry = _entry_path(namespace, key)
        for layer in self._layers:
            entry = os.path.join(layer.path, rel_entry)
            if not os.path.isdir(entry):
                continue
            in_root = self._writable and layer.path == self.root
            try:
                files = _materialize(entry, key, dest)
            except (_Corrupt, OSError) as exc:
                # A prune in another process renamed the entry away mid-read: a plain miss, not damage.
                if os.path.isdir(entry):
                    what = "is corrupt" if isinstance(exc, _Corrupt) else "cannot be used"
                    self._warn(f"warning: cache entry {namespace}/{key} in {layer.name} {what} ({exc}); skipping it")
                    if in_root and isinstance(exc, _Corrupt):
                        with contextlib.suppress(OSError):  # another user's entry in a shared store: leave it
                            _evict(entry)
                continue
            if in_root:
                _touch(os.path.join(entry, MANIFEST))
            return Hit(layer.name, files)
        return None

    def put(self, namespace: str, key: str, files: Mapping[str, str],
            expected: Mapping[str, str] | None = None) -> bool:
        """Store `files` (relative path -> source path) as the entry, copied, read-only. With `expected`
        (relative path -> sha256, what the producing action saw), each file's digest is taken on the bytes
        as they are copied and must match it: a file rewritten since its action finished is never stored.

        States: ro/off mode or no ROOT -> False, nothing written; entry already in ROOT -> True, kept as is
        (one key names one content); stored -> True; another process stored it meanwhile -> True, theirs kept;
        a file system error (missing source, full disk) or a changed file -> warn, False, no debris.
        """
        rel_entry = _entry_path(namespace, key)
        unsafe = sorted(rel for rel in files if not _safe_rel(rel))
        if unsafe:
            raise ValueError(f"cache entry {namespace}/{key}: file names must be plain relative paths: {unsafe}")
        if not self._writable:
            return False
        final = os.path.join(self.root, rel_entry)
        if os.path.isdir(final):
            return True
        tmp = os.path.join(os.path.dirname(final), f".tmp-{uuid.uuid4().hex}")
        try:
            _stage(tmp, key, files, expected or {})
            _publish(tmp, final)
        except OSError as exc:
            self._warn(f"warning: cannot store cache entry {namespace}/{key} in {self.root} ({exc}); "
                       "continuing without it")
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # nothing left once published
        return True

    def verify(self) -> list[str]:
        """Every entry in ROOT checked against its manifest (sizes, sha256): one line per bad entry."""
        problems = []
        for namespace, key, entry in _entries(self.root) if self.root else ():
            try:
                _verify(entry, key)
            except (_Corrupt, OSError) as exc:
                problems.append(f"{namespace}/{key}: {exc}")
        return problems

    def stats(self) -> CacheStats:
        if self.root is None:
            return CacheStats(None, {}, 0)
        entries: dict[str, int] = {}
        total = 0
        for namespace, _, entry in _entries(self.root):
            entries[namespace] = entries.get(namespace, 0) + 1
            total += _tree_bytes(entry)
        ccache = _tree_bytes(os.path.join(self.root, CCACHE))
        return CacheStats(self.root, entries, total + ccache, ccache)

    def prune(self, max_bytes: int) -> int:
        """Remove the least recently used entries and compiler-cache files of ROOT until together they take at
        most max_bytes; return how many entries and files this call removed.

        Last use of an entry is the manifest's mtime: put sets it, a hit in rw mode touches it; of a ccache
        file, its mtime. Also deletes the debris of killed processes (trash, and temporary directories older
        than an hour). Readers in other processes are safe: an entry is renamed away before it is deleted,
        and a vanished ccache file is a miss. ro/off mode or no ROOT -> 0, nothing touched; read-only layers
        are never touched.
        """
        if not self._writable:
            return 0
        _clear_debris(self.root)
        found = [(_last_use(entry), entry, _tree_bytes(entry)) for _, _, entry in _entries(self.root)]
        for _, path in _regular_files(os.path.join(self.root, CCACHE)):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            found.append((st.st_mtime, path, st.st_size))
        total = sum(size for _, _, size in found)
        removed = 0
        for _, path, size in sorted(found):
            if total <= max_bytes:
                break
            try:
                removed += _evict(path) if os.path.isdir(path) else _remove_file(path)
            except OSError as exc:
                raise FbuildError(f"cannot prune cache entry {path}: {exc.strerror}; check its permissions") from None
            total -= size  # gone either way: removed here or by another process
        return removed

    def ccache_dirs(self) -> tuple[str | None, tuple[str, ...]]:
        """(ROOT/ccache for ccache to write, or None in ro/off mode or without ROOT; the existing ccache/ folders
        of the layers, ROOT included in ro mode, for ccache to read only). Creates nothing: ccache does."""
        writable = os.path.join(self.root, CCACHE) if self._writable else None
        read_only = tuple(path for layer in self._layers
                          if (path := os.path.join(layer.path, CCACHE)) != writable and os.path.isdir(path))
        return writable, read_only


def parse_size(text: str, option: str = "--max-size") -> int:
    """Bytes from "1024", "500M", "2G", "1.5GiB": K, M, G, T are powers of 1000 and Ki, Mi, Gi, Ti powers of
    1024 (ccache's convention); a trailing B and case are ignored; no suffix means bytes. `option` is what
    an error names."""
    match = _SIZE.match(text)
    if not match:
        raise FbuildError(f"{option} {text!r} is not a size; use e.g. 500M or 2G")
    number, unit, binary = match.groups()
    power = "kmgt".index(unit.lower()) + 1 if unit else 0
    return int(Decimal(number) * (1024 if binary else 1000) ** power)


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
        _unlink_missing_ok(tmp)


def _entry_path(namespace: str, key: str) -> str:
    if namespace == CCACHE or not _NAMESPACE.match(namespace) or not _KEY.match(key):
        raise ValueError(f"bad cache entry {namespace!r}/{key!r}: the namespace is a plain name other than "
                         f"{CCACHE!r}, the key hex")
    return os.path.join(namespace, key)


def _safe_rel(rel: object) -> bool:
    """A relative path that stays inside its directory: no absolute path, '..', '.', empty part or NUL."""
    return (isinstance(rel, str) and "\0" not in rel
            and all(part not in ("", ".", "..") for part in rel.split("/")))


def _read_manifest(entry: str, key: str) -> dict[str, tuple[int, str]]:
    """relative path -> (size, sha256), from an entry's manifest, which is checked for shape and safe paths."""
    try:
        with open(os.path.join(entry, MANIFEST), "rb") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise _Corrupt(f"{MANIFEST} is missing") from None
    except ValueError:  # bad JSON or bad UTF-8
        raise _Corrupt(f"{MANIFEST} is not valid JSON") from None
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("files"), dict):
        raise _Corrupt(f"{MANIFEST} is not this entry's manifest")
    files = {}
    for rel, record in data["files"].items():
        size, digest = (record.get("size"), record.get("sha256")) if isinstance(record, dict) else (None, None)
        if not (_safe_rel(rel) and type(size) is int and size >= 0
                and isinstance(digest, str) and _DIGEST.match(digest)):
            raise _Corrupt(f"{MANIFEST} has a bad record for {rel!r}")
        files[rel] = (size, digest)
    return files


def _materialize(entry: str, key: str, dest: str) -> tuple[str, ...]:
    manifest = _read_manifest(entry, key)
    placed: list[tuple[str, str]] = []  # (temporary, final)
    try:
        for rel, (size, digest) in sorted(manifest.items()):
            final = os.path.join(dest, rel)
            folder, name = os.path.split(final)
            os.makedirs(folder, exist_ok=True)
            tmp = os.path.join(folder, f".{name}.tmp-{uuid.uuid4().hex}")
            placed.append((tmp, final))
            _place(os.path.join(entry, FILES, rel), tmp, rel, size, digest)
        for tmp, final in placed:
            os.replace(tmp, final)
    finally:
        for tmp, _ in placed:
            _unlink_missing_ok(tmp)  # only those not moved into place
    return tuple(sorted(manifest))


def _place(src: str, tmp: str, rel: str, size: int, digest: str) -> None:
    """A read-only copy of the stored file at tmp, checked against the manifest."""
    try:
        f = open(src, "rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise _Corrupt(f"{rel} is missing") from None
    with f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _Corrupt(f"{rel} is not a regular file")
        if st.st_size != size:
            raise _Corrupt(f"{rel} has {st.st_size} bytes, the manifest says {size}")
        # A link shares the inode, so only an already read-only file may be linked: making the link read-only
        # would chmod the stored file. The check reads the linked inode itself.
        if not st.st_mode & 0o222 and _link(src, tmp):
            got = _hash_copy(f, None)[0]
        else:
            got = _hash_copy(f, tmp)[0]
    if got != digest:
        raise _Corrupt(f"{rel} does not match its sha256")


def _link(src: str, dest: str) -> bool:
    try:
        os.link(src, dest)
    except OSError as exc:
        if exc.errno in _LINK_REFUSED:
            return False
        raise
    return True


def _hash_copy(source: BinaryIO, dest: str | None) -> tuple[str, int]:
    """(sha256, size) of what is read from source; also written to a new read-only file dest, if given."""
    h = hashlib.sha256()
    size = 0
    out = open(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") if dest else None
    try:
        while chunk := source.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
            if out:
                out.write(chunk)
        if out:
            os.fchmod(out.fileno(), 0o444)
    finally:
        if out:
            out.close()
    return h.hexdigest(), size


def _stage(tmp: str, key: str, files: Mapping[str, str], expected: Mapping[str, str]) -> None:
    """Build a whole entry in tmp. Sources are copied, never linked: they are build outputs, which the build
    may rewrite in place. A copy whose digest is not the `expected` one raises _Changed."""
    os.makedirs(tmp)  # and ROOT and the namespace folder, on the first put
    records = {}
    for rel, source in sorted(files.items()):
        target = os.path.join(tmp, FILES, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(source, "rb") as f:
            digest, size = _hash_copy(f, target)
        if rel in expected and expected[rel] != digest:
            raise _Changed(f"{source} changed after the action that made it finished; not stored")
        records[rel] = {"sha256": digest, "size": size}
    manifest = os.path.join(tmp, MANIFEST)
    with open(manifest, "w", encoding="utf-8") as f:
        json.dump({"key": key, "files": records, "created": time.time()}, f, indent=2, sort_keys=True)
    os.chmod(manifest, 0o444)


def _publish(tmp: str, final: str) -> None:
    """Rename the finished directory tmp to final; if another process got there first, keep theirs (tmp stays
    for the caller to delete): both hold the same content."""
    try:
        os.rename(tmp, final)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not os.path.isdir(final):
            raise


def _evict(entry: str) -> bool:
    """Delete an entry, renaming it away first so that no reader finds part of it. False if it was gone."""
    trash = os.path.join(os.path.dirname(entry), f".trash-{uuid.uuid4().hex}")
    try:
        os.rename(entry, trash)
    except FileNotFoundError:
        return False
    shutil.rmtree(trash, ignore_errors=True)
    return True


def _remove_file(path: str) -> bool:
    try:
        os.remove(path)
        return True
    except FileNotFoundError:
        return False


def _touch(path: str) -> None:
    try:
        os.utime(path)
    except OSError:
        pass  # another user's entry in a shared store: prune then sees its creation time, which is still sound


def _last_use(entry: str) -> float:
    for path in (os.path.join(entry, MANIFEST), entry):
        try:
            return os.stat(path).st_mtime
        except FileNotFoundError:
            continue
    return 0.0


def _clear_debris(root: str) -> None:
    now = time.time()
    for namespace in _subdirs(root):
        if namespace == CCACHE or not _NAMESPACE.match(namespace):
            continue
        for name in _subdirs(os.path.join(root, namespace)):
            path = os.path.join(root, namespace, name)
            if name.startswith(".trash-") or (name.startswith(".tmp-") and now - _last_use(path) > _STALE_SECONDS):
                shutil.rmtree(path, ignore_errors=True)


def _entries(store: str) -> Iterator[tuple[str, str, str]]:
    """(namespace, key, entry directory) of every entry in a store, sorted; skips ccache/ and temporaries."""
    for namespace in _subdirs(store):
        if namespace != CCACHE and _NAMESPACE.match(namespace):
            for key in _subdirs(os.path.join(store, namespace)):
                if _KEY.match(key):
                    yield namespace, key, os.path.join(store, namespace, key)


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as found:
            return sorted(e.name for e in found if e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _regular_files(top: str) -> list[tuple[str, str]]:
    """(path relative to top with '/', path) of the regular files under top, sorted; symlinks are skipped."""
    found = []
    for here, _, names in os.walk(top):
        for name in names:
            path = os.path.join(here, name)
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):
                    found.append((os.path.relpath(path, top).replace(os.sep, "/"), path))
            except FileNotFoundError:
                continue  # removed meanwhile (an evicted entry, ccache's own cleanup)
    return sorted(found)


def _tree_bytes(top: str) -> int:
    total = 0
    for _, path in _regular_files(top):
        try:
            total += os.lstat(path).st_size
        except FileNotFoundError:
            continue
    return total


def _unlink_missing_ok(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _trusted_keys(paths: Sequence[str]) -> tuple[Ed25519PublicKey, ...]:
    if not paths:
        return ()
    from fbuild_graph.caches import trust

    return trust.load_public_keys(paths)


def _unpack(bundle: str, into: str, keys: Sequence[Ed25519PublicKey], max_bytes: int) -> str:
    """The bundle's store directory, unpacked under `into` (a private folder). With keys, the signature is
    checked before anything is unpacked, against a private copy, which is what is then unpacked: the bundle
    file may change meanwhile, the copy cannot."""
    source = bundle
    try:
        if keys:
            from fbuild_graph.caches import trust

            source = os.path.join(into, "bundle" + BUNDLE_SUFFIX)
            with open(bundle, "rb") as f:
                trust.verify(bundle, _hash_copy(f, source)[0], keys)
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
            _unlink_missing_ok(source)
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
            while stream.read(_CHUNK):
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


def _bundle_members(sources: Sequence[str], warn: Callable[[str], None]) -> list[tuple[str, str]]:
    """(name in the bundle, path) of every file bake writes: whole sound entries, then ccache files; the first
    source to hold an entry or a ccache file provides it."""
    entries: dict[str, list[tuple[str, str]]] = {}
    ccache: dict[str, str] = {}
    for source in sources:
        if not os.path.isdir(source):
            raise FbuildError(f"cache store {source} does not exist; bake reads store directories")
        for namespace, key, entry in _entries(source):
            name = f"{namespace}/{key}"
            if name in entries:
                continue
            try:
                manifest = _verify(entry, key)
            except _Corrupt as exc:
                warn(f"warning: cache entry {name} in {source} is corrupt ({exc}); leaving it out of the bundle")
                continue
            entries[name] = [(f"{name}/{MANIFEST}", os.path.join(entry, MANIFEST))] + [
                (f"{name}/{FILES}/{rel}", os.path.join(entry, FILES, rel)) for rel in sorted(manifest)]
        for rel, path in _regular_files(os.path.join(source, CCACHE)):
            ccache.setdefault(f"{CCACHE}/{rel}", path)
    return [m for name in sorted(entries) for m in entries[name]] + sorted(ccache.items())


def _verify(entry: str, key: str) -> dict[str, tuple[int, str]]:
    manifest = _read_manifest(entry, key)
    for rel, (size, digest) in manifest.items():
        try:
            with open(os.path.join(entry, FILES, rel), "rb") as f:
                got = _hash_copy(f, None)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise _Corrupt(f"{rel} is missing") from None
        if got != (digest, size):
            raise _Corrupt(f"{rel} does not match its size and sha256")
    return manifest
