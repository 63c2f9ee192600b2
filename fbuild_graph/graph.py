"""The build as a networkx DAG of real actions. Pure: it reads no file and runs nothing.

Stage 1 (`framework`): the core's and variant's TUs, the core archive, and every TU of every library any
sketch uses, each compiled once. Stage 2 (`sketch`): per sketch, preprocessing, its TUs, the link, the
objcopy steps and the size report. Edges run from the action that writes a file to those that read it,
so a sketch's TUs depend on nothing from stage 1 and only its link waits for the archives.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Iterable, Mapping, Sequence

import networkx as nx
from attrs import evolve

from . import recipes
from .layout import Layout, merged_name
from .detection import Discovery
from .model import FRAMEWORK, SKETCH, Action, Board, Library, Sketch
from .names import folder_name
from .sketch import SOURCE_EXTENSIONS, compile_order

CORE = "core"


def build_graph(
    board: Board, sketches: Sequence[Sketch], discovery: Discovery, layout: Layout, core_sources: Sequence[str],
    variant_sources: Sequence[str], launcher: tuple[str, ...] = (), toolchain: Callable[[Action], str] = lambda a: "",
) -> nx.DiGraph:
    """`launcher` (ccache) prefixes every compile. Every tool runs in the output folder. `toolchain` gives
    the identity digest an action carries: of the toolchain and of the tool it runs (see tools.py)."""
    props = board.properties
    core_dirs = _core_dirs(props)
    actions = [*core_actions(props, core_dirs, core_sources, variant_sources, layout)]
    libs = {lib.name: lib for lib in discovery.libraries}
    lib_objects: dict[str, list[str]] = {}
    for lib in discovery.libraries:
        deps = [libs[name] for name in discovery.closure[lib.name]]
        lib_actions = list(library_actions(props, lib, [*core_dirs, *lib.include_dirs, *_dirs(deps)], layout))
        lib_objects[lib.name] = [a.outputs[0] for a in lib_actions]
        actions.extend(lib_actions)
    variant_objects = [_core_object(layout, src) for src in variant_sources]
    for sk in sketches:
        used = [libs[name] for name in discovery.by_sketch[sk.id]]
        objects = [obj for lib in used for obj in lib_objects[lib.name]]
        actions.extend(sketch_actions(props, sk, [*core_dirs, *_dirs(used)], [*objects, *variant_objects], layout))
    placed = (evolve(a, cwd=layout.out, launcher=launcher if a.kind == "compile" else ()) for a in actions)
    return from_actions(evolve(a, toolchain=toolchain(a)) for a in placed)


def from_actions(actions: Iterable[Action]) -> nx.DiGraph:
    graph = nx.DiGraph()
    producer: dict[str, str] = {}
    actions = list(actions)
    for action in actions:
        graph.add_node(action.key, action=action)
        for out in action.outputs:
            producer[out] = action.key
    for action in actions:
        for path in action.inputs:
            if path in producer:
                graph.add_edge(producer[path], action.key)
    return graph


def actions_of(graph: nx.DiGraph) -> list[Action]:
    """All actions in a stable topological order."""
    return [graph.nodes[key]["action"] for key in nx.lexicographical_topological_sort(graph)]


def core_actions(
    props: Mapping[str, str], core_dirs: Sequence[str], core_sources: Sequence[str],
    variant_sources: Sequence[str], layout: Layout,
) -> Iterable[Action]:
    objects = []
    for src in core_sources:
        obj = _core_object(layout, src)
        objects.append(obj)
        yield _compile(props, src, obj, core_dirs, key=f"core/{os.path.basename(obj)}", owner=CORE,
                       resource=FRAMEWORK, step=f"core:{os.path.basename(src)}")
    for src in variant_sources:
        obj = _core_object(layout, src)
        yield _compile(props, src, obj, core_dirs, key=f"core/variant/{os.path.basename(obj)}", owner=CORE,
                       resource=FRAMEWORK, step=f"core:variant:{os.path.basename(src)}")
    archive = os.path.join(layout.core_dir, "core.a")
    yield Action(key="core/core.a", kind="archive", owner=CORE, resource=FRAMEWORK, step="core:archive",
                 argv=recipes.archive_argv(props, archive, objects), inputs=tuple(objects), outputs=(archive,))


def library_actions(props: Mapping[str, str], lib: Library, include_dirs: Sequence[str], layout: Layout) -> Iterable[Action]:
    base = lib.include_dirs[0] if lib.layout == "recursive" else lib.root
    for src in lib.sources:
        rel = os.path.relpath(src, base)
        obj = os.path.join(layout.library_dir(lib.name), rel + ".o")
        yield _compile(props, src, obj, include_dirs, key=f"lib/{folder_name(lib.name)}/{rel}.o", owner=f"lib:{lib.name}",
                       resource=FRAMEWORK, step=f"lib:{folder_name(lib.name)}:{rel}")


def sketch_actions(
    props: Mapping[str, str], sk: Sketch, include_dirs: Sequence[str], link_objects: Sequence[str], layout: Layout,
) -> Iterable[Action]:
    owner = f"sketch:{sk.id}"
    build = layout.sketch_build_dir(sk.id)
    dest = os.path.join(build, "sketch")
    merged = os.path.join(dest, merged_name(sk.name))
    copies = tuple(os.path.join(dest, rel) for rel in sk.files)
    compile_step = f"sketch:{sk.id}:compile"
    yield Action(key=f"sketch/{sk.id}/preprocess", kind="preprocess", owner=owner, resource=SKETCH, step=compile_step,
                 argv=(sys.executable, "-m", "fbuild_graph.preprocess", sk.inos[0], dest),
                 inputs=(*sk.inos, *(os.path.join(sk.path, rel) for rel in sk.files)), outputs=(merged, *copies))
    objects = []
    for src in [merged, *compile_order(c for c in copies if c.endswith(SOURCE_EXTENSIONS))]:
        obj = src + ".o"
        objects.append(obj)
        rel = os.path.relpath(src, dest)
        step = compile_step if src == merged else f"sketch:{sk.id}:{rel}"
        yield _compile(props, src, obj, include_dirs, key=f"sketch/{sk.id}/{rel}.o", owner=owner, resource=SKETCH, step=step)
    archive = os.path.join(layout.core_dir, "core.a")
    elf = os.path.join(build, f"{recipes.PROJECT_NAME}.elf")
    firmware = firmware_step(owner)
    all_objects = [*objects, *link_objects]
    yield Action(key=f"sketch/{sk.id}/link", kind="link", owner=owner, resource=SKETCH, step=firmware,
                 argv=recipes.link_argv(props, build, all_objects, archive), inputs=(*all_objects, archive), outputs=(elf,))
    for which in ("eep", "hex"):
        argv = recipes.objcopy_argv(props, build, which)
        if argv:
            yield Action(key=f"sketch/{sk.id}/{which}", kind=which, owner=owner, resource=SKETCH, step=firmware, argv=argv,
                         inputs=(elf,), outputs=(os.path.join(build, f"{recipes.PROJECT_NAME}.{which}"),))
    yield Action(key=f"sketch/{sk.id}/size", kind="size", owner=owner, resource=SKETCH, step=firmware,
                 argv=recipes.size_argv(props, build), inputs=(elf,), outputs=(), stdout_path=os.path.join(build, "size.txt"))


def firmware_step(owner: str) -> str:
    """The step of a sketch's link, objcopy and size actions."""
    return f"{owner}:firmware"


def _compile(props, src, obj, include_dirs, *, key, owner, resource, step) -> Action:
    return Action(key=key, kind="compile", owner=owner, resource=resource, step=step,
                  argv=recipes.compile_argv(props, src, obj, include_dirs), inputs=(src,), outputs=(obj,))


def _core_object(layout: Layout, src: str) -> str:
    return os.path.join(layout.core_dir, os.path.basename(src) + ".o")


def _core_dirs(props: Mapping[str, str]) -> list[str]:
    return [props["build.core.path"], *([props["build.variant.path"]] if "build.variant.path" in props else [])]


def _dirs(libs: Iterable[Library]) -> list[str]:
    return [d for lib in libs for d in lib.include_dirs]
