"""Files between hosts that share no disk: by content, through Dask.

On a remote cluster a worker keeps a mirror of the client's files under its own local directory: the
client path P is MIRROR/P. What the build reads of the sketches and the user libraries travels once per
build, as one mapping of path to bytes that a task returns on every worker (runner._everywhere), and stays
in the mirror between builds (rewritten only when their content changes); every step returns its outputs'
bytes in its result, so a step on another worker materializes what it lacks, checked by digest, and the
client writes them into its --out. The installed core and toolchain are not mirrored: every worker host
has its own.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import socket
import threading
from typing import Callable, Mapping, Sequence

from attrs import evolve, frozen

from fbuild_graph.fileio import NOT_READ_DIRS, walk, write_atomic
from fbuild_graph.model import Action, Preprocessing

_written: dict[str, str] = {}  # mirror path -> sha256 of what this process last wrote or checked there
_written_lock = threading.Lock()


MIRROR_ENV = "FBUILD_GRAPH_MIRROR"


@frozen
class Mirror:
    """The client folders whose files are mirrored (the output folder, the sketches, the user libraries),
    and the client's host name: two clients with the same paths never share a mirror."""

    roots: tuple[str, ...]
    host: str = socket.gethostname()

    def base(self) -> str:
        """`fbuild-graph worker` names a folder that outlives its workers (MIRROR_ENV), so sources and
        up-to-date outputs stay between builds; a plain `dask worker` gets its own scratch folder."""
        top = os.environ.get(MIRROR_ENV)
        if not top:
            from distributed import get_worker

            top = os.path.join(get_worker().local_directory, "fbuild-graph-mirror")
        return os.path.join(top, self.host)

    def localize(self, action: Action, base: str) -> Action:
        """The same action with every mirrored client path moved under `base`."""
        move = _mover(self.roots, base)
        return evolve(action, argv=tuple(map(move, action.argv)), inputs=tuple(map(move, action.inputs)),
                      outputs=tuple(map(move, action.outputs)), launcher=tuple(map(move, action.launcher)),
                      stdout_path=move(action.stdout_path) if action.stdout_path else None,
                      cwd=move(action.cwd) if action.cwd else None,
                      preprocessing=action.preprocessing and Preprocessing(move(action.preprocessing.main),
                                                                           move(action.preprocessing.dest)))


@functools.lru_cache(maxsize=8)
def _mover(roots: tuple[str, ...], base: str) -> Callable[[str], str]:
    """A word with every root in it moved under `base`. The words of a build's commands repeat from action
    to action (flags, include folders), and matching a hundred roots against one costs ~10 us: each is
    moved once a worker process."""
    pattern = re.compile("|".join(re.escape(r) for r in sorted(roots, key=len, reverse=True)))

    @functools.lru_cache(maxsize=1 << 14)
    def move(text: str) -> str:
        return pattern.sub(lambda m: base + m.group(0), text)

    return move


@frozen
class Shipment:
    """What a remote build sends its workers: the mirror's roots, the client files they need, and those
    files' digests, computed once here so that a worker need not hash them again on every step."""

    mirror: Mirror
    sources: dict[str, bytes]
    digests: dict[str, str]


def read_sources(paths: Sequence[str]) -> tuple[dict[str, bytes], dict[str, str]]:
    """What workers need from the client's disk: every file below the given files and folders, and the
    sha256 of each."""
    found: dict[str, bytes] = {}
    for path in paths:
        if os.path.isfile(path):
            found[path] = _read(path)
            continue
        for here, dirs, files in walk(path):
            dirs[:] = [d for d in dirs if d not in NOT_READ_DIRS]
            for name in files:
                found[os.path.join(here, name)] = _read(os.path.join(here, name))
    return found, {path: hashlib.sha256(data).hexdigest() for path, data in found.items()}


def materialize(files: Mapping[str, bytes], base: str, digests: Mapping[str, str] = {}) -> None:
    """Write each client file under `base` unless the mirror already holds exactly its content. A file
    whose bytes disagree with the digest its producer recorded (`digests`) is refused, not used. A file this
    process already wrote with its recorded digest is skipped without hashing: the same sources reach every
    step of a build."""
    for path, data in files.items():
        target = base + path
        recorded = digests.get(path)
        with _written_lock:
            if recorded and _written.get(target) == recorded and os.path.exists(target):
                continue
        digest = hashlib.sha256(data).hexdigest()
        if recorded and recorded != digest:
            raise ValueError(f"{path} arrived with digest {digest[:12]}, its producer recorded {recorded[:12]}")
        if not (os.path.isfile(target) and hashlib.sha256(_read(target)).hexdigest() == digest):
            write_atomic(target, data)
        with _written_lock:
            _written[target] = digest


def returned(value):
    """A task's body that returns what the task was given: how the client hands every worker the sources
    (runner._everywhere)."""
    return value


def collect(outputs: Sequence[str], base: str) -> dict[str, bytes]:
    """The bytes of a step's outputs, under their client paths."""
    return {path[len(base):]: _read(path) for path in outputs if os.path.isfile(path)}


def write_back(files: Mapping[str, bytes]) -> None:
    """On the client: put a step's outputs where a local build would have them."""
    for path, data in files.items():
        write_atomic(path, data)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
