"""The stage-1 cache key: one function over everything that can change the framework archives.

Inputs: the toolchain's identity, the board's FQBN, every stage-1 command line, and the content of every
source and header those commands can read (the core, the variant, the used libraries).
"""

from __future__ import annotations

import hashlib
import os
from typing import Iterable, Sequence

from .model import FRAMEWORK, Action


def stage1_key(toolchain_identity: str, fqbn: str, actions: Iterable[Action], source_dirs: Sequence[str]) -> str:
    h = hashlib.sha256()
    h.update(toolchain_identity.encode())
    h.update(b"\0" + fqbn.encode())
    for action in sorted((a for a in actions if a.resource == FRAMEWORK), key=lambda a: a.key):
        h.update(b"\0" + "\x1f".join(action.argv).encode())
    for path in _files(source_dirs):
        h.update(b"\0" + path.encode() + b"\0")
        with open(path, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:16]


def _files(dirs: Sequence[str]) -> list[str]:
    found: set[str] = set()
    for top in dirs:
        for here, subdirs, files in os.walk(top):
            subdirs[:] = [d for d in subdirs if d not in ("examples", "extras", ".git")]
            found.update(os.path.join(here, name) for name in files)
    return sorted(found)
