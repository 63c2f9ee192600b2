"""Where every file of a build goes under `--out`. One place, so graph, results and tests agree.

    OUT/stage1/core/            core objects and core.a          OUT/stage1/core.log
    OUT/stage1/libraries/NAME/  a library's objects              OUT/stage1/libraries/NAME.log
    OUT/sketches/ID/build/      a sketch's intermediate files; build/sketch/: its merged source and copies
    OUT/sketches/ID/            firmware.elf/.hex/.eep, build.log, result.json
    OUT/results.json  OUT/phases.tsv  OUT/tasks.tsv
    OUT/includes.cache          library detection's preprocessor answers (include_probe.py)
"""

from __future__ import annotations

import os

from attrs import frozen

from fbuild_graph.model import Owner, OwnerKind
from fbuild_graph.names import folder_name


@frozen
class Layout:
    out: str

    @property
    def stage1_dir(self) -> str:
        """Stage 1's `{build.path}`: it holds `core/` and `libraries/` as a sketch's build folder would."""
        return os.path.join(self.out, "stage1")

    @property
    def core_dir(self) -> str:
        return os.path.join(self.stage1_dir, "core")

    @property
    def includes_cache(self) -> str:
        return os.path.join(self.out, "includes.cache")

    @property
    def core_log(self) -> str:
        return os.path.join(self.out, "stage1", "core.log")

    def library_dir(self, name: str) -> str:
        """A library's `name=` is data: `../../x` gets a folder of its own under --out (see names)."""
        return os.path.join(self.out, "stage1", "libraries", folder_name(name))

    def library_log(self, name: str) -> str:
        return os.path.join(self.out, "stage1", "libraries", f"{folder_name(name)}.log")

    def owner_log(self, owner: str) -> str:
        """The log of a stage-1 owner (`core` or `lib:NAME`)."""
        parsed = Owner.parse(owner)
        return self.core_log if parsed.kind == OwnerKind.CORE else self.library_log(parsed.name)

    def sketch_dir(self, sketch_id: str) -> str:
        return os.path.join(self.out, "sketches", sketch_id)

    def sketch_build_dir(self, sketch_id: str) -> str:
        return os.path.join(self.sketch_dir(sketch_id), "build")

    def sketch_copies_dir(self, sketch_id: str) -> str:
        """The merged `.ino.cpp` and copies of the sketch's other files, compiled there (not in the sketch)."""
        return os.path.join(self.sketch_build_dir(sketch_id), "sketch")

    def sketch_log(self, sketch_id: str) -> str:
        return os.path.join(self.sketch_dir(sketch_id), "build.log")
