"""Up to date means no work: the signature of an action decides whether it runs.

A signature covers the command line, the toolchain's identity, the fbuild-graph version (which shapes
preprocessing), the content of every input and, for a compile, of every header its last depfile listed (as
ninja's deps log does). It is kept on the action's first output, as an extended attribute, only after the
action succeeded; the outputs are removed before the action runs (execute._clear), so an output left by an
interrupted or failed run is a new file that never has a matching signature.

Why an attribute and not a file beside the output: a build makes one signature an action, and on this
project's ext4 disks creating a file cost 0.13-0.6 ms of CPU where setting an attribute cost 0.005 ms (a
new inode each; a third of the files a 100-sketch build created were signatures). Where the filesystem keeps
no user attributes (or the OS has none), or the output is hard-linked (from the content cache's store, which
a build must never write to), the signature goes to a file beside the output (SUFFIX), as it always did.

States of an action's outputs: no signature (never built, or interrupted: run it); signature differs
(something changed: run it); signature matches and every output exists (up to date: skip it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Iterable, Optional, Sequence

from fbuild_graph import __version__
from fbuild_graph import fileio
from fbuild_graph.fileio import write_atomic
from fbuild_graph.model import HOOK, Action

ATTRIBUTE = "user.fbsig"  # short: with the 32-byte digest it fits in an ext4 inode, no block of its own
SUFFIX = ".fbsig"  # the file beside the output, where the attribute cannot be kept
# What a successful tool said (its warnings), kept beside the output: an up-to-date action or a unit from
# the cache reports it again, so a warning count does not depend on what happened to be rebuilt.
OUTPUT_SUFFIX = ".fbout"


def _first_output(action: Action) -> Optional[str]:
    return next(iter((*action.outputs, *([action.stdout_path] if action.stdout_path else []))), None)


def recorded(path: str) -> Optional[str]:
    """The signature kept for the action whose first output is `path`; None when there is none."""
    try:
        return os.getxattr(path, ATTRIBUTE).hex()
    except (OSError, AttributeError):  # none there, no attributes on this filesystem, or none in this OS
        pass
    try:
        with open(path + SUFFIX, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def depfile(action: Action) -> Optional[str]:
    """gcc -MMD writes `X.cpp.d` beside `X.cpp.o`."""
    if action.kind != "compile" or not action.outputs:
        return None
    return os.path.splitext(action.outputs[0])[0] + ".d"


def depfile_headers(path: str) -> list[str]:
    """The prerequisites of a make-syntax depfile (escaped spaces kept), in order."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read().replace("\\\n", " ")
    except OSError:
        return []
    deps: list[str] = []
    for line in text.splitlines():
        if ":" not in line:
            continue
        rest = line.split(":", 1)[1].replace("\\ ", "\0")
        deps += [word.replace("\0", " ") for word in rest.split()]
    return deps


def signature(action: Action, command: str) -> Optional[str]:
    """None when an input is missing: such an action must run (and will report the missing file)."""
    h = hashlib.sha256(f"{__version__}\0{action.toolchain}\0{command}".encode())
    dep = depfile(action)
    inputs: Iterable[str] = (*action.inputs, *(depfile_headers(dep) if dep else ()))
    for path in dict.fromkeys(inputs):
        # ccache's base_dir makes depfile paths relative to the tool's working directory.
        path = os.path.join(action.cwd or "", path)
        try:
            h.update(f"\0{path}\0{fileio.digest(path)}".encode())
        except OSError:
            return None
    return h.hexdigest()


def up_to_date(action: Action, command: str) -> bool:
    """A platform hook is never up to date: what it writes besides its output is unknown (arduino-cli runs
    every hook on every build too)."""
    if action.kind == HOOK:
        return False
    first = _first_output(action)
    if first is None or not all(os.path.exists(p) for p in (*action.outputs, action.stdout_path) if p):
        return False
    kept = recorded(first)
    return kept is not None and kept == signature(action, command)


def output_path(action: Action) -> Optional[str]:
    """Where a successful action's output text is kept; None for an action whose output is its stdout file."""
    first = _first_output(action)
    return None if first is None or action.stdout_path else first + OUTPUT_SUFFIX


def forget(action: Action) -> None:
    """No signature and no kept output text for the action, whether or not its outputs stay."""
    first = _first_output(action)
    if first is None:
        return
    # Also on an output hard-linked elsewhere (the firmware in the sketch's folder). A file of the cache's
    # store never carries the attribute (see record), so removing it there writes nothing.
    with contextlib.suppress(OSError, AttributeError):
        os.removexattr(first, ATTRIBUTE)
    for path in (first + SUFFIX, output_path(action)):
        if path:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)


def record(action: Action, command: str, output: str = "") -> None:
    """The signature of an action that succeeded, and what its tool said when it said anything."""
    first, sig = _first_output(action), signature(action, command)
    kept = output_path(action)
    if kept and output:
        write_atomic(kept, output)
    if first is None or sig is None:
        return
    try:
        # An output hard-linked from the content cache's store shares its inode with the stored file: an
        # attribute set there would write into the store, which a read-only build must never do.
        if os.stat(first).st_nlink == 1:
            os.setxattr(first, ATTRIBUTE, bytes.fromhex(sig))
            return
    except (OSError, AttributeError):
        pass
    write_atomic(first + SUFFIX, sig)


def recorded_output(action: Action) -> str:
    kept = output_path(action)
    try:
        with open(kept, encoding="utf-8", errors="replace") as f:
            return f.read()
    except (TypeError, OSError):
        return ""


def content_key(chain: Sequence[Action], commands: Sequence[str]) -> Optional[str]:
    """A key for the outputs of a chain of actions in one working directory (the output folder), each
    reading what the ones before it wrote, that holds in any checkout: every command with the working
    directory replaced by a name, and the content, not the place, of every input the chain does not write
    itself."""
    cwd = chain[0].cwd or ""
    h = hashlib.sha256(__version__.encode())
    written: set[str] = set()
    for action, command in zip(chain, commands):
        h.update(f"\0{action.toolchain}\0{command.replace(cwd, '$OUT') if cwd else command}".encode())
        for path in action.inputs:
            name = os.path.relpath(path, cwd) if cwd else path
            try:
                h.update(f"\0{name}\0{'written' if path in written else fileio.digest(path)}".encode())
            except OSError:
                return None
        written.update(action.outputs)
        written.update([action.stdout_path] if action.stdout_path else [])
    return h.hexdigest()
