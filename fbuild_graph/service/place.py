"""Where a user's build service lives and which one a client may talk to.

The key covers the package version, the content of the package's own source files and the interpreter, so
an upgrade, an edit of the code or another virtualenv never talks to a service running older code: each key
has its own socket. The folder is the user's: `$XDG_RUNTIME_DIR/fbuild-graph`, else
`~/.cache/fbuild-graph/service` (`$XDG_CACHE_HOME`), mode 0700; a folder owned by someone else, or anything
but a folder there, is refused. Standard library only (the console entry imports this before deciding).
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Mapping

import fbuild_graph

# A Unix socket's path must fit in sockaddr_un.sun_path (108 bytes on Linux, the final NUL included).
MAX_SOCKET_PATH = 107


class Unavailable(Exception):
    """The service cannot be used (its folder, its start, its answer): the build runs in this process."""


class Place:
    """One service's files: `socket` it listens on, `lock` a starting client holds, `log` its output."""

    def __init__(self, folder: str, key: str) -> None:
        self.folder, self.key = folder, key

    @property
    def socket(self) -> str:
        return os.path.join(self.folder, f"{self.key}.sock")

    @property
    def lock(self) -> str:
        return os.path.join(self.folder, f"{self.key}.lock")

    @property
    def log(self) -> str:
        return os.path.join(self.folder, f"{self.key}.log")


def key() -> str:
    """The package version, a digest of its own .py files (path and content) and sys.executable."""
    root = os.path.dirname(os.path.abspath(fbuild_graph.__file__))
    h = hashlib.sha256(f"{fbuild_graph.__version__}\0{os.path.realpath(sys.executable)}\0".encode())
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(here, name)
                with open(path, "rb") as f:
                    h.update(f"{os.path.relpath(path, root)}\0{hashlib.sha256(f.read()).hexdigest()}\0".encode())
    return h.hexdigest()[:16]


def folder(env: Mapping[str, str]) -> str:
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "fbuild-graph")
    cache = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "fbuild-graph", "service")


def prepare(env: Mapping[str, str], service_key: str) -> Place:
    """The user's service folder, made if missing (0700) and checked: ours, a folder, closed to others."""
    where = folder(env)
    try:
        os.makedirs(where, mode=0o700, exist_ok=True)
        st = os.lstat(where)
    except OSError as exc:
        raise Unavailable(f"cannot make the service folder {where}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise Unavailable(f"{where} is not a folder")
    if st.st_uid != os.getuid():
        raise Unavailable(f"{where} belongs to user {st.st_uid}, not to this user; remove it or set XDG_RUNTIME_DIR")
    if stat.S_IMODE(st.st_mode) & 0o077:
        try:
            os.chmod(where, 0o700)
        except OSError as exc:
            raise Unavailable(f"cannot close {where} to other users: {exc.strerror}") from None
    if not os.access(where, os.W_OK | os.X_OK):
        raise Unavailable(f"the service folder {where} is not writable")
    place = Place(where, service_key)
    if len(place.socket.encode()) > MAX_SOCKET_PATH:
        raise Unavailable(f"the socket path {place.socket} is longer than a Unix socket allows; set "
                          "XDG_RUNTIME_DIR to a shorter folder")
    return place
