"""The build as a networkx DAG of real actions. Pure: it reads no file and runs nothing.

Stage 1 (`framework`): the core's and variant's TUs, the core archive, and every TU of every library any
sketch uses, each compiled once (and archived, for a library that asks for `dot_a_linkage`). Stage 2
(`sketch`): per sketch, preprocessing, its TUs, the link, the objcopy steps and the size report. Edges run
from the action that writes a file to those that read it, so a sketch's TUs depend on nothing from stage 1
and only its link waits for the archives.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Iterable, Mapping, Optional, Sequence

import networkx as nx
from attrs import evolve, frozen

from fbuild_graph.arduino import recipes
from fbuild_graph.planning.layout import Layout
from fbuild_graph.arduino.detection import Discovery
from fbuild_graph.arduino.libraries import Precompiled
from fbuild_graph.model import CORE, FRAMEWORK, HOOK, SKETCH, Action, Board, Library, Owner, Preprocessing, Sketch
from fbuild_graph.names import folder_name
from fbuild_graph.arduino.sketch import SOURCE_EXTENSIONS, compile_order, merged_name

# Objcopy recipes whose output is a firmware file (published, content-cached); others run as checks.
OBJCOPY_KINDS = ("eep", "hex")


@frozen
class BoardPlan:
    """What planning needs of one board: its sketches to build (its targets not skipped), its libraries, where
    its files go, and how its actions are made and identified. `precompiled` holds the board's precompiled
    files of the libraries that have some, by name; `launcher` (ccache) prefixes every compile; `toolchain`
    gives the identity digest an action carries: of the toolchain and of the tool it runs (see tools.py);
    `namespace` prefixes every key, step and owner (a build of several boards: the board's id)."""

    board: Board
    sketches: tuple[Sketch, ...]
    discovery: Discovery
    layout: Layout
    core_sources: tuple[str, ...]
    variant_sources: tuple[str, ...]
    precompiled: Mapping[str, Precompiled]
    launcher: tuple[str, ...] = ()
    toolchain: Callable[[Action], str] = lambda a: ""
    namespace: str = ""


def build_graph(plan: BoardPlan) -> nx.DiGraph:
    """One board's DAG (see board_actions)."""
    return from_actions(board_actions(plan).actions)


@frozen
class BoardActions:
    """A board's actions, and what of each library its links name (its objects or archive): what a board
    whose compiles of the library would be the same links instead (see matrix.py)."""

    actions: tuple[Action, ...]
    linked: Mapping[str, tuple[str, ...]]


def board_actions(plan: BoardPlan, borrowed: Mapping[str, Sequence[str]] = {}) -> BoardActions:
    """Every tool runs in the board's output folder. `borrowed` names the libraries another board compiles
    for this one, with the files its links name instead."""
    board, layout, discovery, precompiled = plan.board, plan.layout, plan.discovery, plan.precompiled
    props = recipes.Recipes.of(board.properties)  # each recipe's words worked out once for all its files
    core = core_dirs(props)
    stage1 = layout.stage1_dir
    core_pre, core_ready = hooks(props, "core.prebuild", stage1, (), CORE, FRAMEWORK, "core")
    actions = [*core_pre, *core_actions(props, core, plan.core_sources, plan.variant_sources, layout, core_ready)]
    core_post, core_done = hooks(props, "core.postbuild", stage1, (os.path.join(layout.core_dir, "core.a"),), CORE,
                                 FRAMEWORK, "core")
    libs_pre, libs_ready = hooks(props, "libraries.prebuild", stage1, (), CORE, FRAMEWORK, "core")
    actions += [*core_post, *libs_pre]
    libs = {lib.name: lib for lib in discovery.libraries}
    linked: dict[str, tuple[str, ...]] = {}  # what of each library a link names, in place of the library
    for lib in discovery.libraries:
        if lib.name in borrowed:
            linked[lib.name] = tuple(borrowed[lib.name])
            continue
        pre = precompiled.get(lib.name)
        lib_actions = library_plan(props, lib, discovery, layout, pre, after=libs_ready)
        archived = [a.outputs[0] for a in lib_actions if a.kind == "archive"]
        # arduino-cli links a precompiled library's archives not named lib* ahead of its objects.
        linked[lib.name] = (*(pre.objects if pre else ()),
                            *(archived or [a.outputs[0] for a in lib_actions if a.kind == "compile"]))
        actions.extend(lib_actions)
    libs_post, libs_done = hooks(props, "libraries.postbuild", stage1,
                                 tuple(obj for objs in linked.values() for obj in objs), CORE, FRAMEWORK, "core")
    actions += libs_post
    variant_objects = [_core_object(layout, src) for src in plan.variant_sources]
    for sk in plan.sketches:
        used = [libs[name] for name in discovery.by_sketch[sk.id]]
        objects = [obj for lib in used for obj in linked[lib.name]]
        actions.extend(sketch_actions(props, sk, [*core, *_dirs(used)], [*objects, *variant_objects], layout,
                                      (*core_done, *libs_done),
                                      [precompiled[lib.name] for lib in used if lib.name in precompiled]))
    placed = (evolve(a, cwd=layout.out, launcher=plan.launcher if a.kind == "compile" else ()) for a in actions)
    identified = [evolve(a, toolchain=plan.toolchain(a)) for a in placed]
    return BoardActions(actions=tuple(within(a, plan.namespace) for a in identified) if plan.namespace
                        else tuple(identified), linked=linked)


def library_plan(props: Mapping[str, str], lib: Library, discovery: Discovery, layout: Layout,
                 pre: Optional[Precompiled], after: Sequence[str] = ()) -> list[Action]:
    """A library's actions for a board: compiled with the core's folders, its own and its dependencies'."""
    deps = {d.name: d for d in discovery.libraries}
    include_dirs = [*core_dirs(props), *lib.include_dirs, *_dirs(deps[name] for name in discovery.closure[lib.name])]
    return list(library_actions(props, lib, include_dirs, layout, compile_sources=pre is None or pre.sources,
                                after=after))


def within(action: Action, namespace: str) -> Action:
    """The action as one board's of several: its key, step and owner prefixed with the board's id."""
    owner = Owner.parse(action.owner)
    return evolve(action, key=f"{namespace}/{action.key}", step=f"{namespace}/{action.step}",
                  owner=str(evolve(owner, board=namespace)))


def hooks(props: Mapping[str, str], phase: str, build_path: str, after: Sequence[str], owner: str, resource: str,
          step: str, sketch_path: str = "") -> tuple[list[Action], tuple[str, ...]]:
    """The platform's `recipe.hooks.PHASE.*` as actions, one after another once the files `after` exist, and
    the files that what comes after the hooks waits for (none when there are no hooks). A hook's stdout is
    its output file: what it writes besides is unknown, so a hook always runs (see signature)."""
    found, waits = [], ()
    for key, argv in recipes.hook_argvs(props, phase, build_path, sketch_path):
        name = key[len("recipe.hooks."):]
        stamp = os.path.join(build_path, "hooks", f"{name}.txt")
        found.append(Action(key=f"{step}/hooks/{name}", kind=HOOK, owner=owner, resource=resource,
                            step=f"{step}:hooks:{name}" if resource == FRAMEWORK else step, argv=argv,
                            inputs=waits or tuple(after), stdout_path=stamp))
        waits = (stamp,)
    return found, waits


def from_actions(actions: Iterable[Action]) -> nx.DiGraph:
    graph = nx.DiGraph()
    producer: dict[str, str] = {}
    actions = list(actions)
    for action in actions:
        graph.add_node(action.key, action=action)
        for out in (*action.outputs, *([action.stdout_path] if action.stdout_path else [])):
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
    variant_sources: Sequence[str], layout: Layout, after: Sequence[str] = (),
) -> Iterable[Action]:
    """`after`: files the compiles wait for (the stamps of `recipe.hooks.core.prebuild`)."""
    objects = []
    for src in core_sources:
        obj = _core_object(layout, src)
        objects.append(obj)
        yield _compile(props, src, obj, core_dirs, key=f"core/{os.path.basename(obj)}", owner=CORE,
                       resource=FRAMEWORK, step=f"core:{os.path.basename(src)}", after=after)
    for src in variant_sources:
        obj = _core_object(layout, src)
        yield _compile(props, src, obj, core_dirs, key=f"core/variant/{os.path.basename(obj)}", owner=CORE,
                       resource=FRAMEWORK, step=f"core:variant:{os.path.basename(src)}", after=after)
    archive = os.path.join(layout.core_dir, "core.a")
    yield Action(key="core/core.a", kind="archive", owner=CORE, resource=FRAMEWORK, step="core:archive",
                 argv=recipes.archive_argv(props, archive, objects), inputs=tuple(objects), outputs=(archive,))


def library_actions(props: Mapping[str, str], lib: Library, include_dirs: Sequence[str], layout: Layout,
                    compile_sources: bool = True, after: Sequence[str] = ()) -> Iterable[Action]:
    """Its compiles (none when `compile_sources` is false: a precompiled=full library with files for the
    board), then, for `dot_a_linkage`, the archive of their objects that links in their place. `after`:
    files the compiles wait for (the stamps of `recipe.hooks.libraries.prebuild`)."""
    owner, folder = str(Owner.library(lib.name)), folder_name(lib.name)
    objects = []
    for src in lib.sources if compile_sources else ():
        rel = os.path.relpath(src, lib.source_dir)
        obj = os.path.join(layout.library_dir(lib.name), rel + ".o")
        objects.append(obj)
        yield _compile(props, src, obj, include_dirs, key=f"lib/{folder}/{rel}.o", owner=owner, resource=FRAMEWORK,
                       step=f"lib:{folder}:{rel}", after=after)
    if lib.dot_a_linkage and objects:
        # Named after the library's folder, as arduino-cli names it (builder/libraries.go: compileLibrary).
        name = folder_name(os.path.basename(lib.root)) + ".a"
        archive = os.path.join(layout.library_dir(lib.name), name)
        yield Action(key=f"lib/{folder}/{name}", kind="archive", owner=owner, resource=FRAMEWORK,
                     step=f"lib:{folder}:archive", argv=recipes.archive_argv(props, archive, objects),
                     inputs=tuple(objects), outputs=(archive,))


def sketch_actions(
    props: Mapping[str, str], sk: Sketch, include_dirs: Sequence[str], link_objects: Sequence[str], layout: Layout,
    stage1_done: Sequence[str] = (), precompiled: Sequence[Precompiled] = (),
) -> Iterable[Action]:
    """In arduino-cli's order: prebuild hooks, preprocessing, sketch prebuild hooks, compiles, sketch
    postbuild and prelink hooks, link, postlink and preobjcopy hooks, every objcopy recipe, postobjcopy
    and postbuild hooks; the size report. `stage1_done`: the stamps of stage 1's postbuild hooks;
    `precompiled`: the precompiled libraries the sketch uses, in link order, whose flags its link takes."""
    owner = str(Owner.sketch(sk.id))
    build = layout.sketch_build_dir(sk.id)
    dest = layout.sketch_copies_dir(sk.id)
    merged = os.path.join(dest, merged_name(sk.name))
    copies = tuple(os.path.join(dest, rel) for rel in sk.files)
    compile_step = f"{owner}:compile"
    firmware = firmware_step(owner)

    def chain(phase: str, after: Sequence[str], step: str) -> tuple[str, ...]:
        found, waits = hooks(props, phase, build, after, owner, SKETCH, step, sk.path)
        actions.extend(found)
        return waits

    actions: list[Action] = []
    ready = chain("prebuild", (), compile_step)
    actions.append(Action(key=f"sketch/{sk.id}/preprocess", kind="preprocess", owner=owner, resource=SKETCH,
                          step=compile_step, argv=(sys.executable, "-m", "fbuild_graph.arduino.preprocess", sk.inos[0], dest),
                          preprocessing=Preprocessing(main=sk.inos[0], dest=dest),
                          inputs=(*sk.inos, *(os.path.join(sk.path, rel) for rel in sk.files), *ready),
                          outputs=(merged, *copies)))
    ready = chain("sketch.prebuild", (merged, *copies), compile_step)
    objects = []
    # The merged .ino.cpp is one of the sketch folder's .cpp files to arduino-builder: its object takes its
    # place in their order on the link line, which decides the firmware's bytes.
    for src in compile_order([merged, *(c for c in copies if c.endswith(SOURCE_EXTENSIONS))]):
        obj = src + ".o"
        objects.append(obj)
        rel = os.path.relpath(src, dest)
        step = compile_step if src == merged else f"{owner}:{rel}"
        actions.append(_compile(props, src, obj, include_dirs, key=f"sketch/{sk.id}/{rel}.o", owner=owner,
                                resource=SKETCH, step=step, after=ready))
    archive = os.path.join(layout.core_dir, "core.a")
    elf = os.path.join(build, f"{recipes.PROJECT_NAME}.elf")
    all_objects = [*objects, *link_objects]
    ready = chain("sketch.postbuild", objects, firmware)
    ready = chain("linking.prelink", ready or all_objects, firmware) or ready
    ldflags = [flag for pre in precompiled for flag in pre.ldflags]
    read = dict.fromkeys([*all_objects, *(path for pre in precompiled for path in pre.archives), archive,
                          *stage1_done, *ready])
    actions.append(Action(key=f"sketch/{sk.id}/link", kind="link", owner=owner, resource=SKETCH, step=firmware,
                          argv=recipes.link_argv(props, build, all_objects, archive, ldflags, sk.path), inputs=tuple(read),
                          outputs=(elf,)))
    ready = chain("linking.postlink", (elf,), firmware)
    ready = chain("objcopy.preobjcopy", ready or (elf,), firmware) or ready
    made = []
    for which in recipes.objcopy_names(props):
        known = which in OBJCOPY_KINDS  # the firmware files: their names are the recipes' own
        output = os.path.join(build, f"{recipes.PROJECT_NAME}.{which}")
        actions.append(Action(key=f"sketch/{sk.id}/{which}", kind=which if known else "objcopy", owner=owner,
                              resource=SKETCH, step=firmware, argv=recipes.objcopy_argv(props, build, which, sk.path),
                              inputs=(elf, *ready), outputs=(output,) if known else (),
                              stdout_path=None if known else os.path.join(build, "objcopy", f"{which}.txt")))
        made.append(output if known else actions[-1].stdout_path)
    ready = chain("objcopy.postobjcopy", made or (elf,), firmware)
    # No savehex hooks: arduino-cli runs them only to --export-binaries into the sketch's folder, and
    # arduino-builder never; they copy files into the user's sketch.
    chain("postbuild", ready or made or (elf,), firmware)
    actions.append(Action(key=f"sketch/{sk.id}/size", kind="size", owner=owner, resource=SKETCH, step=firmware,
                          argv=recipes.size_argv(props, build, sk.path), inputs=(elf,), outputs=(),
                          stdout_path=os.path.join(build, "size.txt")))
    return actions


def firmware_step(owner: str) -> str:
    """The step of a sketch's link, objcopy and size actions."""
    return f"{owner}:firmware"


def _compile(props, src, obj, include_dirs, *, key, owner, resource, step, after: Sequence[str] = ()) -> Action:
    return Action(key=key, kind="compile", owner=owner, resource=resource, step=step,
                  argv=recipes.compile_argv(props, src, obj, include_dirs), inputs=(src, *after), outputs=(obj,))


def _core_object(layout: Layout, src: str) -> str:
    return os.path.join(layout.core_dir, os.path.basename(src) + ".o")


def core_dirs(props: Mapping[str, str]) -> list[str]:
    """The core's folder, then the variant's (a board may have none)."""
    return [props["build.core.path"], *([props["build.variant.path"]] if props.get("build.variant.path") else [])]


def _dirs(libs: Iterable[Library]) -> list[str]:
    return [d for lib in libs for d in lib.include_dirs]
