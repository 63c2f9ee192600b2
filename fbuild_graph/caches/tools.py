"""What each action's tool is: every program and file a tool run reads besides the action's inputs.

A tool is more than its argv[0]. The gcc driver runs cc1plus (or cc1) and as for a compile; for a link it
runs collect2, which runs ld with the LTO plugin, whose lto-wrapper runs lto1 and as again, and the link
reads avr-libc's start file, its libraries (`-lm`, `-lc`, the device library), libgcc and the device's
specs file. avr-gcc-ar runs ar with the LTO plugin. An action's tool identity is the resolved path and
content digest of each of those, so swapping any one of them changes the action's signature, its content
cache key and its stage-1 unit's key.

The driver says what it would run without running it (`-###`), once per command shape (a compile of one
language, a link: the paths of sources and objects do not change what it runs), and every file is hashed
once per build (a `Tools` lives for one build).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from typing import Iterable, Optional, Sequence

from fbuild_graph import fileio
from fbuild_graph.memo import Stamped, stamp
from fbuild_graph.model import Action, Kind

# Kinds whose argv[0] is the gcc driver, asked with -### what it runs.
DRIVER_KINDS = frozenset({"compile", "link"})
# Programs collect2 and lto-wrapper run that the driver's -### output does not name: found, as they find
# them, in the driver's COMPILER_PATH.
LINK_PROGRAMS = ("ld", "lto1", "as")
PLUGIN = "liblto_plugin.so"
GCC_AR_SUFFIX = "gcc-ar"
_LIBRARY_FORMS = ("lib{}.a", "lib{}.so")


class Tools:
    """One build's memo: tool files per command shape, digests per file. With `memo` (a file in the output
    folder), what the last build learnt is kept there and taken again only while every file it names has
    the same stamp (path, size, mtime, ctime, inode: what replacing or editing a file changes) and the
    variables the driver reads are the same: a no-op build then runs no driver and reads no 20 MB compiler,
    and a tool replaced between two builds is still probed and hashed anew."""

    def __init__(self, memo: Optional[str] = None, stamped: Optional[Stamped] = None) -> None:
        self._shapes: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._identities: dict[tuple[str, ...], str] = {}  # by shape: its files and their digests hold for the build
        self._digests: dict[str, str] = {}
        self._headers: dict[str, str] = {}
        self._dirs: dict[str, tuple[str, ...]] = {}
        self._memo = memo
        self._stamped = stamped or Stamped(keep=False)  # the probes' answers: the build service's, or a file's
        self._known_shapes, self._known_digests = _load_memo(memo)

    def save(self) -> None:
        """Keep what this build learnt for the next (by whoever holds the output folder's lock), the probes'
        answers too when they are kept in a file."""
        self._stamped.save()
        if self._memo is None:
            return
        shapes = [[list(shape), {path: stamp(path) for path in files}] for shape, files in self._shapes.items()]
        digests = [[path, stamp(path), digest] for path, digest in self._digests.items()]
        fileio.write_if_changed(self._memo, json.dumps({"env": _driver_env(), "shapes": shapes, "digests": digests}))

    def identity(self, action: Action) -> str:
        """A digest of every file the action's tool reads besides its inputs ("" for the in-process
        preprocessing, which the fbuild-graph version covers)."""
        if action.kind == Kind.PREPROCESS or not action.argv:
            return ""
        shape = _shape(action)
        if shape not in self._identities:
            if shape not in self._shapes:
                known = self._known_shapes.get(shape)
                if known is not None and all(stamp(path) == kept for path, kept in known.items()):
                    self._shapes[shape] = tuple(known)
                else:
                    self._shapes[shape] = tuple(sorted(set(self._files(action))))
            h = hashlib.sha256()
            for path in self._shapes[shape]:
                h.update(f"{path}\0{self._digest(path)}\0".encode())
            if action.kind == Kind.COMPILE:
                h.update(self.system_headers(action.argv[0]).encode())
            self._identities[shape] = h.hexdigest()[:16]
        return self._identities[shape]

    def system_dirs(self, compiler: str) -> tuple[str, ...]:
        if compiler not in self._dirs:
            program = resolve(compiler) or compiler
            self._dirs[compiler] = self._stamped.get(("system_dirs", compiler, program, os.environ.get("PATH", "")),
                                                     [program], lambda: tuple(system_include_dirs(compiler)))
        return self._dirs[compiler]

    def system_headers(self, compiler: str) -> str:
        """The compiler's system header folders (avr-libc's among them), which `-MMD` depfiles leave out:
        keyed by each file's path, size, mtime, ctime and inode, which a package upgrade or an edit changes,
        so that a build does not read their 20 MB to notice."""
        if compiler not in self._headers:
            h = hashlib.sha256()
            for folder in self.system_dirs(compiler):
                for here, dirs, files in os.walk(folder):
                    dirs.sort()
                    for name in sorted(files):
                        path = os.path.join(here, name)
                        try:
                            st = os.stat(path)
                        except OSError:
                            continue
                        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\0".encode())
            self._headers[compiler] = h.hexdigest()
        return self._headers[compiler]

    def _files(self, action: Action) -> list[str]:
        program = resolve(action.argv[0])
        if program is None:
            return [action.argv[0]]  # the run fails and says so; the name is all there is to key on
        if action.kind in DRIVER_KINDS:
            return [program, *driver_files(action)]
        if os.path.basename(action.argv[0]).endswith(GCC_AR_SUFFIX):
            return [program, *_gcc_ar_files(action.argv[0])]
        return [program]

    def _digest(self, path: str) -> str:
        if path not in self._digests:
            known = self._known_digests.get(path)
            if known is not None and known[0] == stamp(path):
                self._digests[path] = known[1]
            else:
                try:
                    self._digests[path] = fileio.digest(path)
                except OSError:
                    self._digests[path] = "missing"
        return self._digests[path]


# What the gcc driver reads from the environment to find its programs and libraries.
_DRIVER_VARIABLES = ("PATH", "GCC_EXEC_PREFIX", "COMPILER_PATH", "LIBRARY_PATH")


def _driver_env() -> list[Optional[str]]:
    return [os.environ.get(name) for name in _DRIVER_VARIABLES]


def _load_memo(memo: Optional[str]) -> tuple[dict, dict]:
    """The shapes and digests an earlier build kept, when they were made in the same environment; a memo
    that cannot be read is no memo."""
    try:
        with open(memo, encoding="utf-8") as f:  # type: ignore[arg-type]
            data = json.load(f)
        if data["env"] != _driver_env():
            return {}, {}
        shapes = {tuple(shape): {path: _tupled(kept) for path, kept in files.items()} for shape, files in data["shapes"]}
        return shapes, {path: (_tupled(kept), digest) for path, kept, digest in data["digests"]}
    except (TypeError, OSError, ValueError, KeyError):
        return {}, {}


def _tupled(kept: Optional[list[int]]) -> Optional[tuple[int, ...]]:
    """A kept stamp as memo.stamp gives it (JSON keeps it as a list)."""
    return None if kept is None else tuple(kept)


def resolve(program: str) -> Optional[str]:
    """The file a program name runs: looked up on PATH when it has no slash, symlinks resolved."""
    found = shutil.which(program) if os.sep not in program else (program if os.path.isfile(program) else None)
    return os.path.realpath(found) if found else None


def _shape(action: Action) -> tuple[str, ...]:
    """What decides which programs and files the tool reads: its kind, argv[0] and flags, without the
    paths that differ between sketches and libraries (sources, objects, outputs, include folders,
    defines). Inputs keep their suffix: a .S compile runs other programs than a .cpp compile."""
    inputs = {os.path.normpath(p) for p in action.inputs}
    under = (action.cwd + os.sep) if action.cwd else None
    shape = [action.kind, action.argv[0]]
    for token in action.argv[1:]:
        # A flag is no input (a file named `-x` would only make a shape of its own: one more probe).
        if token in inputs or (token[:1] != "-" and os.path.normpath(token) in inputs):
            shape.append("$IN" + os.path.splitext(token)[1])
        elif token.startswith(("-I", "-D")):
            continue
        elif under and under in token:
            shape.append("$OUT")
        else:
            shape.append(token)
    return tuple(shape)


def driver_files(action: Action) -> list[str]:
    """The programs and files the gcc driver would use for this action, from its -### output; inputs
    stand in as empty files (the driver checks that they exist) in a private folder."""
    with tempfile.TemporaryDirectory(prefix="fbuild-graph-tools-") as probe:
        stand_ins = {}
        for path in map(os.path.normpath, action.inputs):
            stand_ins[path] = os.path.join(probe, f"in{len(stand_ins)}{os.path.splitext(path)[1]}")
            open(stand_ins[path], "wb").close()
        # Inputs may not exist yet (a sketch's objects, the core archive); the driver only needs a file there.
        argv = [action.argv[0], "-###", *(stand_ins.get(os.path.normpath(t), t) for t in action.argv[1:])]
        try:
            out = subprocess.run(argv, capture_output=True, text=True, cwd=probe, timeout=60).stderr
        except (OSError, subprocess.TimeoutExpired):
            return []
        return parse_driver_output(out, skip=[probe, *([action.cwd] if action.cwd else [])])


def system_include_dirs(compiler: str) -> list[str]:
    """The folders `#include <...>` searches by default, as the compiler lists them (`-E -v`)."""
    try:
        text = subprocess.run([compiler, "-E", "-v", "-x", "c++", os.devnull, "-o", os.devnull],
                              capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_search_dirs(text)


def parse_search_dirs(text: str) -> list[str]:
    lines = text.splitlines()
    try:
        start = lines.index("#include <...> search starts here:") + 1
    except ValueError:
        return []
    dirs = []
    for line in lines[start:]:
        if not line.startswith(" "):
            break
        dirs.append(os.path.realpath(line.strip()))
    return dirs


def parse_driver_output(text: str, skip: Sequence[str] = ()) -> list[str]:
    """Files named by `gcc -###` output: the specs file it read, every program of every command it would
    run and every existing file a command names (plugin, lto-wrapper, start files), the libraries `-l`
    names found in its `-L` folders and, for a link, the programs collect2 runs. Paths under `skip` (the
    build's own files, the probe's stand-ins) are left out: they are inputs, not the tool."""
    prefixes = tuple(os.path.join(s, "") for s in skip)
    files: list[str] = []
    compiler_path: list[str] = []
    for line in text.splitlines():
        if line.startswith("Reading specs from "):
            files.append(line.split(" from ", 1)[1].strip())
        elif line.startswith("COMPILER_PATH="):
            compiler_path = [d for d in line.split("=", 1)[1].split(":") if d]
        elif line.startswith(" "):
            try:
                command = shlex.split(line)
            except ValueError:
                continue
            files += _command_files(command)
            if command and os.path.basename(command[0]) == "collect2":
                files += [p for p in (_find(name, compiler_path) or resolve(name) for name in LINK_PROGRAMS) if p]
    real = [(p, os.path.realpath(p)) for p in files]
    return [r for p, r in real if not p.startswith(prefixes) and not r.startswith(prefixes)]


def _command_files(command: Sequence[str]) -> list[str]:
    found = [command[0]] if command else []
    dirs = [t[2:] for t in command if t.startswith("-L") and len(t) > 2]
    for token in command[1:]:
        if token.startswith("-l") and len(token) > 2:
            found += [p for p in [_library(token[2:], dirs)] if p]
            continue
        for candidate in {token, token.split("=", 1)[-1]}:
            if os.path.isabs(candidate) and os.path.isfile(candidate):
                found.append(candidate)
    return found


def _library(name: str, dirs: Iterable[str]) -> Optional[str]:
    for folder in dirs:
        for form in _LIBRARY_FORMS:
            path = os.path.join(folder, form.format(name))
            if os.path.isfile(path):
                return path
    return None


def _find(name: str, dirs: Iterable[str]) -> Optional[str]:
    return next((os.path.join(d, name) for d in dirs if os.path.isfile(os.path.join(d, name))), None)


def _gcc_ar_files(gcc_ar: str) -> list[str]:
    """gcc-ar runs its target's ar with the compiler's LTO plugin; the compiler beside it says which."""
    driver = gcc_ar[: -len(GCC_AR_SUFFIX)] + "gcc"
    found = []
    for query in ("-print-prog-name=ar", f"-print-file-name={PLUGIN}"):
        try:
            answer = subprocess.run([driver, query], capture_output=True, text=True, timeout=60).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            continue
        path = answer if os.sep in answer else resolve(answer)
        if path and os.path.isfile(path):
            found.append(os.path.realpath(path))
    return found
