"""One cache entry on disk: a namespace, a hex key and a set of files. In one store directory ROOT:

    ROOT/<namespace>/<key>/manifest.json   {"key": ..., "files": {"rel/path": {"sha256": ..., "size": N}}, "created": T}
    ROOT/<namespace>/<key>/files/<rel/path>

`ccache` is never a namespace: ROOT/ccache/ holds the compiler cache (cache.py).

Entries are immutable: one appears by renaming a finished temporary directory into place and disappears by
renaming it to a trash name before deleting it, so a reader finds a whole entry or none. Stored files are
read-only, and materialize and verify check sizes and sha256 digests against the manifest: that is what
catches an entry damaged by a crash, a full disk or a hand edit, and why write does not fsync.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import time
import uuid
from typing import BinaryIO, Iterator, Mapping

CCACHE = "ccache"
MANIFEST = "manifest.json"
FILES = "files"
CHUNK = 1 << 20

_NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_KEY = re.compile(r"[0-9a-fA-F]+\Z")
_DIGEST = re.compile(r"[0-9a-f]{64}\Z")
# A write still unfinished after this long was killed; its temporary directory is debris for clear_debris.
_STALE_SECONDS = 3600
# link() refuses with these when the file cannot be shared from here (another filesystem, another user's file
# under fs.protected_hardlinks, too many links): the answer is a copy, not a failure.
_LINK_REFUSED = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


class Corrupt(Exception):
    """The entry's content disagrees with its manifest, or the manifest is unusable."""


class _Changed(OSError):
    """A file to store is not what its action produced: another process wrote it since."""


def entry_path(namespace: str, key: str) -> str:
    if namespace == CCACHE or not _NAMESPACE.match(namespace) or not _KEY.match(key):
        raise ValueError(f"bad cache entry {namespace!r}/{key!r}: the namespace is a plain name other than "
                         f"{CCACHE!r}, the key hex")
    return os.path.join(namespace, key)


def safe_rel(rel: object) -> bool:
    """A relative path that stays inside its directory: no absolute path, '..', '.', empty part or NUL."""
    return (isinstance(rel, str) and "\0" not in rel
            and all(part not in ("", ".", "..") for part in rel.split("/")))


def _read_manifest(entry: str, key: str) -> dict[str, tuple[int, str]]:
    """relative path -> (size, sha256), from an entry's manifest, which is checked for shape and safe paths."""
    try:
        with open(os.path.join(entry, MANIFEST), "rb") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise Corrupt(f"{MANIFEST} is missing") from None
    except ValueError:  # bad JSON or bad UTF-8
        raise Corrupt(f"{MANIFEST} is not valid JSON") from None
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("files"), dict):
        raise Corrupt(f"{MANIFEST} is not this entry's manifest")
    files = {}
    for rel, record in data["files"].items():
        size, digest = (record.get("size"), record.get("sha256")) if isinstance(record, dict) else (None, None)
        if not (safe_rel(rel) and type(size) is int and size >= 0
                and isinstance(digest, str) and _DIGEST.match(digest)):
            raise Corrupt(f"{MANIFEST} has a bad record for {rel!r}")
        files[rel] = (size, digest)
    return files


def verify(entry: str, key: str) -> dict[str, tuple[int, str]]:
    manifest = _read_manifest(entry, key)
    for rel, (size, digest) in manifest.items():
        try:
            with open(os.path.join(entry, FILES, rel), "rb") as f:
                got = hash_copy(f, None)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise Corrupt(f"{rel} is missing") from None
        if got != (digest, size):
            raise Corrupt(f"{rel} does not match its size and sha256")
    return manifest


def materialize(entry: str, key: str, dest: str) -> tuple[str, ...]:
    """Place the entry's files under dest, read-only, each checked (size, sha256) as it is placed: a hard
    link when the stored file is read-only and on the same filesystem, else a copy. All files go to temporary
    names first and replace whatever dest held only once every one has checked out, so dest is never written
    in place. The relative paths placed, sorted; Corrupt or OSError otherwise."""
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
            unlink_missing_ok(tmp)  # only those not moved into place
    return tuple(sorted(manifest))


def _place(src: str, tmp: str, rel: str, size: int, digest: str) -> None:
    """A read-only copy of the stored file at tmp, checked against the manifest."""
    try:
        f = open(src, "rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise Corrupt(f"{rel} is missing") from None
    with f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise Corrupt(f"{rel} is not a regular file")
        if st.st_size != size:
            raise Corrupt(f"{rel} has {st.st_size} bytes, the manifest says {size}")
        # A link shares the inode, so only an already read-only file may be linked: making the link read-only
        # would chmod the stored file. The check reads the linked inode itself.
        if not st.st_mode & 0o222 and _link(src, tmp):
            got = hash_copy(f, None)[0]
        else:
            got = hash_copy(f, tmp)[0]
    if got != digest:
        raise Corrupt(f"{rel} does not match its sha256")


def _link(src: str, dest: str) -> bool:
    try:
        os.link(src, dest)
    except OSError as exc:
        if exc.errno in _LINK_REFUSED:
            return False
        raise
    return True


def hash_copy(source: BinaryIO, dest: str | None) -> tuple[str, int]:
    """(sha256, size) of what is read from source; also written to a new read-only file dest, if given."""
    h = hashlib.sha256()
    size = 0
    out = open(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") if dest else None
    try:
        while chunk := source.read(CHUNK):
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


def write(final: str, key: str, files: Mapping[str, str], expected: Mapping[str, str]) -> None:
    """Make the entry directory final from `files` (relative path -> source path), built whole in a temporary
    sibling and renamed into place, which leaves no debris. OSError when a source cannot be read, the disk is
    full or a copy's digest is not its `expected` one; no error when another process published it first."""
    tmp = os.path.join(os.path.dirname(final), f".tmp-{uuid.uuid4().hex}")
    try:
        _stage(tmp, key, files, expected)
        _publish(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing left once published


def _stage(tmp: str, key: str, files: Mapping[str, str], expected: Mapping[str, str]) -> None:
    """Build a whole entry in tmp. Sources are copied, never linked: they are build outputs, which the build
    may rewrite in place. A copy whose digest is not the `expected` one raises _Changed."""
    os.makedirs(tmp)  # and ROOT and the namespace folder, on the first write
    records = {}
    for rel, source in sorted(files.items()):
        target = os.path.join(tmp, FILES, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(source, "rb") as f:
            digest, size = hash_copy(f, target)
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


def evict(entry: str) -> bool:
    """Delete an entry, renaming it away first so that no reader finds part of it. False if it was gone."""
    trash = os.path.join(os.path.dirname(entry), f".trash-{uuid.uuid4().hex}")
    try:
        os.rename(entry, trash)
    except FileNotFoundError:
        return False
    shutil.rmtree(trash, ignore_errors=True)
    return True


def touch(entry: str) -> None:
    """Mark the entry used now (see last_use)."""
    try:
        os.utime(os.path.join(entry, MANIFEST))
    except OSError:
        pass  # another user's entry in a shared store: prune then sees its creation time, which is still sound


def last_use(entry: str) -> float:
    """The manifest's mtime: set when the entry is written, moved on by touch."""
    for path in (os.path.join(entry, MANIFEST), entry):
        try:
            return os.stat(path).st_mtime
        except FileNotFoundError:
            continue
    return 0.0


def clear_debris(root: str) -> None:
    """Delete what killed processes left in the store: trash, and temporary directories older than an hour."""
    now = time.time()
    for namespace in _subdirs(root):
        if namespace == CCACHE or not _NAMESPACE.match(namespace):
            continue
        for name in _subdirs(os.path.join(root, namespace)):
            path = os.path.join(root, namespace, name)
            if name.startswith(".trash-") or (name.startswith(".tmp-") and now - last_use(path) > _STALE_SECONDS):
                shutil.rmtree(path, ignore_errors=True)


def in_store(store: str) -> Iterator[tuple[str, str, str]]:
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


def regular_files(top: str) -> list[tuple[str, str]]:
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


def tree_bytes(top: str) -> int:
    total = 0
    for _, path in regular_files(top):
        try:
            total += os.lstat(path).st_size
        except FileNotFoundError:
            continue
    return total


def unlink_missing_ok(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
