"""One build per output folder: an OS file lock on `OUT/.fbuild-graph.lock`, held for the whole build.

Two builds writing one `--out` would link each other's half-written objects and could hand them to the
shared cache. The lock is flock(2): the kernel drops it when its process ends, however it ends, so a
killed build never leaves a stale lock behind. The file's text names the holder, for the second build's
error; it is a note, not the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from typing import Callable, Iterator, Optional

from fbuild_graph.errors import FbuildError

LOCK_FILE = ".fbuild-graph.lock"


@contextlib.contextmanager
def holding(out: str, wait: Optional[Callable[[str], None]] = None) -> Iterator[None]:
    """Hold `out` for this process. When another build holds it: with `wait`, say so through it and block
    until that build ends; without, raise FbuildError naming the holder."""
    os.makedirs(out, exist_ok=True)
    fd = os.open(os.path.join(out, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another build"
            if wait is None:
                raise FbuildError(f"output folder {out} is in use by {holder}; wait for it (--wait) or pass "
                                  "another --out") from None
            wait(f"note: output folder {out} is in use by {holder}; waiting for it")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        os.pwrite(fd, f"build {os.getpid()} on {socket.gethostname()} started {started}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
