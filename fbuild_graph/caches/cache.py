"""A content-addressed, layered store for build outputs: the stage-1 cache (core archive, library objects).

A store directory ROOT holds entries (entries.py) and the compiler cache:

    ROOT/<namespace>/<key>/                an entry
    ROOT/ccache/                           the compiler cache (ccache `file:` storage, which sets no size limit
                                           of its own: prune bounds it with the entries)

Lookups go through layers: ROOT first, then the read-only layers in the order given, each a store directory
or a `.tar.zst` bundle made by `bundles.bake`. Modes:
  rw   get reads every layer and, on a hit in ROOT, touches the manifest's mtime (prune's "last used");
       put and prune write ROOT.
  ro   get reads every layer; put and prune do nothing. Nothing is created, changed or touched under ROOT or
       any layer; a hard link from dest to a stored file only raises the file's link count.
  off  get misses, put and prune do nothing; the layers are not even opened.
A bundle layer is unpacked when the Cache opens, into a private temporary folder of this process that close()
removes: no cache folder is written to, in any mode, and no copy outlives the build. With trusted keys,
store-directory layers are refused: a folder carries no signature.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from decimal import Decimal
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from attrs import frozen

from fbuild_graph.caches import bundles
from fbuild_graph.caches import entries
from fbuild_graph.errors import FbuildError

if TYPE_CHECKING:  # see bundles.py: only --trust and --sign pay for importing cryptography
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CACHE_MODES = ("rw", "ro", "off")
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])(i?))?b?\s*\Z", re.IGNORECASE)


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


@frozen
class CacheSpec:
    """What a Dask task needs to open the same cache as the client: plain data, so it pickles."""

    root: str | None
    mode: str = "rw"
    layers: tuple[str, ...] = ()
    trust: tuple[str, ...] = ()  # public key files; non-empty: only bundles signed by one of them
    max_bundle_bytes: int = bundles.DEFAULT_MAX_BUNDLE_BYTES

    def open(self, warn: Callable[[str], None] = bundles.print_to_stderr) -> "Cache":
        return Cache(self.root, mode=self.mode, read_only_layers=self.layers, trust=self.trust,
                     max_bundle_bytes=self.max_bundle_bytes, warn=warn)


class Cache:
    """The store at `root` (created by the first put) over `read_only_layers`, which are searched in order
    after it and never written. The module docstring describes the modes. A context manager: close() removes
    the unpacked bundles."""

    def __init__(self, root: str | None, *, mode: str = "rw", read_only_layers: Sequence[str] = (),
                 trust: Sequence[str] = (), max_bundle_bytes: int = bundles.DEFAULT_MAX_BUNDLE_BYTES,
                 warn: Callable[[str], None] = bundles.print_to_stderr):
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
            keys = bundles.trusted_keys(trust)
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
                                  f"signed {bundles.BUNDLE_SUFFIX} bundles only")
            return full
        if not os.path.exists(full):
            raise FbuildError(f"cache layer {path} does not exist; pass an existing store directory or "
                              f"{bundles.BUNDLE_SUFFIX} bundle")
        if not full.endswith(bundles.BUNDLE_SUFFIX):
            raise FbuildError(f"cache layer {path} is neither a store directory nor a {bundles.BUNDLE_SUFFIX} bundle")
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="fbuild-graph-bundles-")
        return bundles.unpack(full, tempfile.mkdtemp(dir=self._scratch), keys, max_bytes)

    @property
    def _writable(self) -> bool:
        return self.mode == "rw" and self.root is not None

    def get(self, namespace: str, key: str, dest: str) -> Hit | None:
        """Materialize the entry's files under dest (entries.materialize) from the first layer holding a sound
        copy, or return None.

        Per layer: no entry -> next layer, silently; corrupt entry -> warn, next layer (in rw mode a corrupt
        entry in ROOT is also removed, so the next put can store a sound one); dest or layer unreadable
        (OSError) -> warn, next layer.
        """
        rel_entry = entries.entry_path(namespace, key)
        for layer in self._layers:
            entry = os.path.join(layer.path, rel_entry)
            if not os.path.isdir(entry):
                continue
            in_root = self._writable and layer.path == self.root
            try:
                files = entries.materialize(entry, key, dest)
            except (entries.Corrupt, OSError) as exc:
                # A prune in another process renamed the entry away mid-read: a plain miss, not damage.
                if os.path.isdir(entry):
                    what = "is corrupt" if isinstance(exc, entries.Corrupt) else "cannot be used"
                    self._warn(f"warning: cache entry {namespace}/{key} in {layer.name} {what} ({exc}); skipping it")
                    if in_root and isinstance(exc, entries.Corrupt):
                        with contextlib.suppress(OSError):  # another user's entry in a shared store: leave it
                            entries.evict(entry)
                continue
            if in_root:
                entries.touch(entry)
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
        rel_entry = entries.entry_path(namespace, key)
        unsafe = sorted(rel for rel in files if not entries.safe_rel(rel))
        if unsafe:
            raise ValueError(f"cache entry {namespace}/{key}: file names must be plain relative paths: {unsafe}")
        if not self._writable:
            return False
        final = os.path.join(self.root, rel_entry)
        if os.path.isdir(final):
            return True
        try:
            entries.write(final, key, files, expected or {})
        except OSError as exc:
            self._warn(f"warning: cannot store cache entry {namespace}/{key} in {self.root} ({exc}); "
                       "continuing without it")
            return False
        return True

    def verify(self) -> list[str]:
        """Every entry in ROOT checked against its manifest (sizes, sha256): one line per bad entry."""
        problems = []
        for namespace, key, entry in entries.in_store(self.root) if self.root else ():
            try:
                entries.verify(entry, key)
            except (entries.Corrupt, OSError) as exc:
                problems.append(f"{namespace}/{key}: {exc}")
        return problems

    def stats(self) -> CacheStats:
        if self.root is None:
            return CacheStats(None, {}, 0)
        counts: dict[str, int] = {}
        total = 0
        for namespace, _, entry in entries.in_store(self.root):
            counts[namespace] = counts.get(namespace, 0) + 1
            total += entries.tree_bytes(entry)
        ccache = entries.tree_bytes(os.path.join(self.root, entries.CCACHE))
        return CacheStats(self.root, counts, total + ccache, ccache)

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
        entries.clear_debris(self.root)
        found = [(entries.last_use(entry), entry, entries.tree_bytes(entry))
                 for _, _, entry in entries.in_store(self.root)]
        for _, path in entries.regular_files(os.path.join(self.root, entries.CCACHE)):
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
                removed += entries.evict(path) if os.path.isdir(path) else _remove_file(path)
            except OSError as exc:
                raise FbuildError(f"cannot prune cache entry {path}: {exc.strerror}; check its permissions") from None
            total -= size  # gone either way: removed here or by another process
        return removed

    def ccache_dirs(self) -> tuple[str | None, tuple[str, ...]]:
        """(ROOT/ccache for ccache to write, or None in ro/off mode or without ROOT; the existing ccache/ folders
        of the layers, ROOT included in ro mode, for ccache to read only). Creates nothing: ccache does."""
        writable = os.path.join(self.root, entries.CCACHE) if self._writable else None
        read_only = tuple(path for layer in self._layers
                          if (path := os.path.join(layer.path, entries.CCACHE)) != writable and os.path.isdir(path))
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


def _remove_file(path: str) -> bool:
    try:
        os.remove(path)
        return True
    except FileNotFoundError:
        return False
