"""Every file fbuild-graph writes appears whole or not at all: written under a temporary name unique to the
process and thread, then renamed into place. An interrupted build leaves no half-written file that a
later build or a reader would trust.

Only regular files are read from the user's folders: opening a FIFO blocks until a writer appears (forever,
with nothing printed), and a socket, a device or a dangling link is no source either. Every listing of a
sketch or library folder goes through `walk` or `is_regular`; `irregular` names what they leave out.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import threading
from typing import Collection, Iterator, Union

from fbuild_graph.errors import FbuildError

# Folders of a sketch or library that no build reads (and no cluster ships).
NOT_READ_DIRS = (".git", "examples", "extras", ".fbuild-graph")


def write_atomic(path: str, data: Union[str, bytes]) -> None:
    tmp = f"{path}.tmp{os.getpid()}.{threading.get_ident()}"
    try:
        try:
            f = _create(tmp, data)
        except FileNotFoundError:  # the folder is made only when missing: a build writes thousands of files
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            f = _create(tmp, data)
        with f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if exc.filename is None:  # a failed write (a full disk) names no file: name the one being written
            raise OSError(exc.errno, exc.strerror, path) from exc
        raise


def _create(path: str, data: Union[str, bytes]):
    return open(path, "wb") if isinstance(data, bytes) else open(path, "w", encoding="utf-8")


def write_if_changed(path: str, text: str) -> None:
    """write_atomic, unless the file already holds exactly `text` (a sketch's log on a build with nothing
    to do: reading it back costs a tenth of writing it anew)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            if f.read() == text:
                return
    except (OSError, UnicodeDecodeError):
        pass
    write_atomic(path, text)


def is_regular(path: str) -> bool:
    """A regular file, or a link to one."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk with only regular files among the files; prune `dirs` in place as with os.walk."""
    for here, dirs, names in os.walk(top):
        yield here, dirs, [name for name in names if is_regular(os.path.join(here, name))]


def irregular(top: str, pruned: Collection[str] = ()) -> list[str]:
    """What `walk` leaves out below `top` (folders named in `pruned` not entered), sorted."""
    found = []
    for here, dirs, names in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in pruned)
        found += [path for path in (os.path.join(here, name) for name in sorted(names)) if not is_regular(path)]
    return found


def ensure_folder(path: str, option: str) -> None:
    """Make the folder an option names, and prove a file can be created in it, before any work is done: a
    file in the way, /proc, /sys or a read-only mount would otherwise fail half way through a build."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except (FileExistsError, NotADirectoryError):
        raise FbuildError(f"{option} {path}: a file is in the way, not a folder; pass a folder") from None
    except OSError as exc:
        raise FbuildError(f"{option} {path}: cannot create files there ({exc.strerror}); pass a writable "
                          "folder") from None


def source_text(data: bytes) -> str:
    """Source bytes as text for the parser. Sources are not always UTF-8 (a Latin-1 string in a sketch must
    reach the compiler as it is), so undecodable bytes become surrogates and `source_bytes` restores them."""
    return data.decode("utf-8", "surrogateescape")


def source_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


# Content digests by (path, size, mtime, inode): a header shared by hundreds of TUs is read once per run.
_digests: dict[tuple, str] = {}
_digests_lock = threading.Lock()


def digest(path: str) -> str:
    st = os.stat(path)
    stamp = (path, st.st_size, st.st_mtime_ns, st.st_ino)
    with _digests_lock:
        known = _digests.get(stamp)
    if known:
        return known
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    with _digests_lock:
        _digests[stamp] = h.hexdigest()
    return _digests[stamp]


def forget_digests() -> None:
    """A new build begins in a process that built before (the build service): its signatures must hash what
    is on disk now, not what a stamp said earlier (a file rewritten within one clock tick keeps its stamp)."""
    with _digests_lock:
        _digests.clear()
