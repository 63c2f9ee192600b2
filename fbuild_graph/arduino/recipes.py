"""Platform recipes -> argv: every command fbuild-graph runs comes from `platform.txt` through here.

Per-command keys (`source_file`, `object_file`, `includes`, `build.path`, ...) are set just before
expansion, as arduino-cli does, and expansion is strict (see `properties.expand`). They and the folders
the board resolves (`RUNTIME_PATHS`) are data: each is one argv word, whatever characters the path holds
(see `properties.expand_command`).
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Sequence

from attrs import frozen

from fbuild_graph.arduino import properties
from fbuild_graph.arduino.board import RUNTIME_PATHS
from fbuild_graph.errors import FbuildError

PROJECT_NAME = "firmware"
_RECIPE_BY_EXTENSION = {".c": "recipe.c.o.pattern", ".cpp": "recipe.cpp.o.pattern", ".S": "recipe.S.o.pattern"}


class Recipes(Mapping[str, str]):
    """A board's properties as its recipes read them: a copy no one changes, so each recipe's words (the
    platform's text expanded, the data keys left as slots) and each `recipe_keys` answer are worked out once
    and only the files differ from one command to the next. Planning makes one per board and build."""

    def __init__(self, props: Mapping[str, str]) -> None:
        self._props = dict(props)
        self._paths = {key: self._props[key] for key in RUNTIME_PATHS if key in self._props}
        self._words: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        self._keys: dict[tuple[str, str], list[str]] = {}

    @classmethod
    def of(cls, props: Mapping[str, str]) -> "Recipes":
        return props if isinstance(props, Recipes) else cls(props)

    def __getitem__(self, key: str) -> str:
        return self._props[key]

    def __contains__(self, key: object) -> bool:
        return key in self._props

    def __iter__(self):
        return iter(self._props)

    def __len__(self) -> int:
        return len(self._props)

    def argv(self, recipe: str, data: Mapping[str, properties.Value]) -> tuple[str, ...]:
        if recipe not in self._props:
            raise FbuildError(f"the platform defines no {recipe}; this core cannot be built by fbuild-graph")
        data = {**self._paths, **data}
        shape = (recipe, tuple(sorted(data)))
        words = self._words.get(shape)
        if words is None:
            words = self._words[shape] = properties.command_words(self._props[recipe], self._props, data, what=recipe)
        return tuple(properties.fill(words, data, what=recipe))

    def keys_of(self, prefix: str, suffix: str) -> list[str]:
        """See recipe_keys."""
        shape = (prefix, suffix)
        if shape not in self._keys:
            props = self._props
            keys = sorted(k for k in props if k.startswith(prefix + ".") and k.endswith(suffix) and props[k])
            self._keys[shape] = keys or ([prefix + suffix] if props.get(prefix + suffix) else [])
        return list(self._keys[shape])


def _argv(props: Mapping[str, str], recipe: str, data: Mapping[str, properties.Value]) -> tuple[str, ...]:
    return Recipes.of(props).argv(recipe, data)


def compile_argv(props: Mapping[str, str], source: str, obj: str, include_dirs: Sequence[str]) -> tuple[str, ...]:
    ext = os.path.splitext(source)[1]
    return _argv(props, _RECIPE_BY_EXTENSION[ext], {
        "source_file": source,
        "object_file": obj,
        "includes": tuple(f"-I{d}" for d in include_dirs),
    })


# arduino-cli's stand-in when a platform has no `recipe.preproc.macros`: the C++ compile recipe, preprocessing.
_PREPROC_MACROS_FLAGS = "-w -x c++ -E -CC"


def detect_argv(props: Mapping[str, str], source: str, include_dirs: Sequence[str],
                quote_dirs: Sequence[str] = ()) -> tuple[str, ...]:
    """The command arduino-cli runs to find the first missing header of a source (`recipe.preproc.macros`,
    every source treated as C++, output to nowhere), without `-MMD` (as arduino-cli: it would write
    `/dev/null.d`), plus `-fdirectives-only` (which headers are reached is decided by directives alone, with
    the same macros; not expanding the rest makes a run 3x faster on FastLED's headers), `-H`, which names
    every header read, and `-iquote` for a source read from stdin."""
    recipe = "recipe.preproc.macros"
    props = {**props, "build.library_discovery_phase": "1"}  # as arduino-cli sets it while detecting
    if recipe not in props and "recipe.cpp.o.pattern" in props:
        pattern = props["recipe.cpp.o.pattern"].replace(
            "{compiler.cpp.flags}", "{compiler.cpp.flags} {preproc.macros.flags}", 1).replace(
            "{object_file}", "{preprocessed_file_path}", 1)
        props = {"preproc.macros.flags": _PREPROC_MACROS_FLAGS, **props, recipe: pattern}
    argv = _argv(props, recipe, {
        "source_file": source,
        "preprocessed_file_path": os.devnull,
        "includes": tuple(f"-I{d}" for d in include_dirs),
    })
    return (*(word for word in argv if word != "-MMD"), "-fdirectives-only", "-H",
            *(w for d in quote_dirs for w in ("-iquote", d)))


def archive_argv(props: Mapping[str, str], archive: str, objects: Sequence[str]) -> tuple[str, ...]:
    # The recipe names one `{object_file}`: we archive all objects with one call, in the member order
    # arduino-builder's one call per object gives.
    return _argv(props, "recipe.ar.pattern", {
        "build.path": os.path.dirname(archive),
        "archive_file": os.path.basename(archive),
        "archive_file_path": archive,
        "object_file": tuple(objects),
    })


def _output_keys(build_path: str, sketch_path: str = "") -> dict[str, str]:
    """The keys of a recipe that writes into a build folder; the sketch's own folder (`sketch_path`,
    `build.source.path`), which arduino-cli sets for every recipe, exists only for a sketch's recipes here
    (stage 1 serves many sketches)."""
    keys = {"build.path": build_path, "build.project_name": PROJECT_NAME}
    return {**keys, "sketch_path": sketch_path, "build.source.path": sketch_path} if sketch_path else keys


def link_argv(props: Mapping[str, str], build_path: str, objects: Sequence[str], archive: str,
              libraries_ldflags: Sequence[str] = (), sketch_path: str = "") -> tuple[str, ...]:
    """`libraries_ldflags` (precompiled libraries' `-L`, `ldflags=` and `-l` words) follow the platform's own
    `compiler.libraries.ldflags`, as arduino-cli appends them to that property."""
    linked_libraries = {}
    if libraries_ldflags:
        own = properties.expand(props["compiler.libraries.ldflags"], props, what="compiler.libraries.ldflags")
        linked_libraries["compiler.libraries.ldflags"] = (*properties.split_command(own), *libraries_ldflags)
    return _argv(props, "recipe.c.combine.pattern", {
        **_output_keys(build_path, sketch_path),
        "object_files": tuple(objects),
        # The recipe names the archive as {build.path}/{archive_file}; ours lives with the stage-1 outputs.
        "archive_file": os.path.relpath(archive, build_path),
        **linked_libraries,
    })


def recipe_keys(props: Mapping[str, str], prefix: str, suffix: str = ".pattern") -> list[str]:
    """The non-empty keys `PREFIX.*SUFFIX` in order, else `PREFIX SUFFIX` itself: arduino-cli's findRecipes,
    which decides which hooks and objcopy recipes run, and in what order."""
    return Recipes.of(props).keys_of(prefix, suffix)


def objcopy_names(props: Mapping[str, str]) -> list[str]:
    """Every `recipe.objcopy.NAME.pattern` (`eep`, `hex`, MegaCore's `progmem`, ...), in the order they run."""
    return [key[len("recipe.objcopy."):-len(".pattern")] for key in recipe_keys(props, "recipe.objcopy")]


def objcopy_argv(props: Mapping[str, str], build_path: str, which: str, sketch_path: str = "") -> tuple[str, ...]:
    return _argv(props, f"recipe.objcopy.{which}.pattern", _output_keys(build_path, sketch_path))


def hook_argvs(props: Mapping[str, str], phase: str, build_path: str,
               sketch_path: str = "") -> list[tuple[str, tuple[str, ...]]]:
    """`recipe.hooks.PHASE.N.pattern` -> (key, argv), in the order they run."""
    return [(key, _argv(props, key, _output_keys(build_path, sketch_path)))
            for key in recipe_keys(props, f"recipe.hooks.{phase}")]


def size_argv(props: Mapping[str, str], build_path: str, sketch_path: str = "") -> tuple[str, ...]:
    return _argv(props, "recipe.size.pattern", _output_keys(build_path, sketch_path))


@frozen
class Size:
    flash: int
    ram: int


def parse_size(props: Mapping[str, str], output: str) -> Size:
    """Sum the sections the platform's `recipe.size.regex*` select, as the IDE does."""

    def total(key: str) -> int:
        pattern = props.get(key)
        if not pattern:
            return 0
        return sum(int(m.group(1)) for m in re.finditer(pattern, output, re.MULTILINE))

    return Size(flash=total("recipe.size.regex"), ram=total("recipe.size.regex.data"))
