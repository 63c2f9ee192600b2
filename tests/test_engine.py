"""The stateful core without a toolchain: steps planned from a graph of made-up actions run through the real
executor, the real Dask scheduler and the real tally, with a fake command runner in place of the tools (ninja's
FakeCommandRunner is the model): it records every command, writes the outputs a tool would, and fails where
the test says so."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fbuild_graph.execution import execute
from fbuild_graph.execution import head_start
from fbuild_graph.planning import graph
from fbuild_graph.planning import plan
from fbuild_graph.execution import runner
from fbuild_graph.caches import signature
from fbuild_graph.outputs.collect import Collector
from fbuild_graph.planning.layout import Layout
from fbuild_graph.model import FRAMEWORK, SKETCH, Action, Board, Owner, Sketch, SketchStatus
from fbuild_graph.outputs.tally import Tally
from fbuild_graph.planning.targets import Target

BOARD = Board(fqbn="test:avr:board", name="Test", platform_path="/nonexistent", properties={
    "recipe.size.regex": r"^\.text\s+(\d+)", "recipe.size.regex.data": r"^\.data\s+(\d+)",
    "upload.maximum_size": "32256", "upload.maximum_data_size": "2048"})


# Dask pickles a task's arguments even for an in-process cluster: a fake travels as a reference to itself.
_LIVE: dict[int, "FakeCommandRunner"] = {}


def _live(key: int) -> "FakeCommandRunner":
    return _LIVE[key]


class FakeCommandRunner:
    """Writes every output of the action it is given; fails the commands naming a file in `fail`; reports
    `sizes[sketch]` bytes of program for a size command; holds each command `seconds` long."""

    def __init__(self, fail: dict[str, str] = {}, sizes: dict[str, int] = {}, seconds: float = 0.0):
        self.fail, self.sizes, self.seconds = fail, sizes, seconds
        _LIVE[id(self)] = self
        self.commands: list[tuple[str, ...]] = []
        self.running = {FRAMEWORK: 0, SKETCH: 0}
        self.most = {FRAMEWORK: 0, SKETCH: 0}
        self.lock = threading.Lock()

    def __reduce__(self):
        return _live, (id(self),)

    def __call__(self, action: Action, cancelled) -> tuple[int | None, str]:
        with self.lock:
            self.commands.append(action.argv)
            self.running[action.resource] += 1
            self.most[action.resource] = max(self.most[action.resource], self.running[action.resource])
        try:
            if self.seconds:  # sleep(0) still yields the processor: ~0.3 ms a call on a virtual machine
                time.sleep(self.seconds)
            failing = next((message for name, message in self.fail.items()
                            if any(name in word for word in action.argv)), None)
            if failing:
                return 1, failing
            for out in action.outputs:
                with open(out, "w") as f:  # not pathlib: benchmarks/scale.py times our work, not the fake's
                    f.write(f"made by {action.key}\n")
            if action.kind == "size":
                return 0, f".text {self.sizes.get(action.owner.split(':', 1)[1], 1000)}\n.data 100\n"
            return 0, ""
        finally:
            with self.lock:
                self.running[action.resource] -= 1


def _compile(src: str, obj: str, owner: str, resource: str) -> Action:
    return Action(key=obj, kind="compile", owner=owner, resource=resource, step=f"{owner}:{Path(src).name}",
                  argv=("cc", "-c", src, "-o", obj), inputs=(src,), outputs=(obj,))


def _world(root: Path, libs: dict[str, str], sketches: dict[str, list[str]]):
    """A core, `libs` (name -> source file name) and `sketches` (id -> libraries), as actions."""
    layout = Layout(str(root / "out"))
    src = root / "src"
    src.mkdir()
    actions = []
    core_objects = []
    for name in ("wiring.c", "main.cpp"):
        (src / name).write_text("core\n")
        obj = f"{layout.core_dir}/{name}.o"
        core_objects.append(obj)
        actions.append(_compile(str(src / name), obj, "core", FRAMEWORK))
    archive = f"{layout.core_dir}/core.a"
    actions.append(Action(key="core/core.a", kind="archive", owner="core", resource=FRAMEWORK, step="core:archive",
                          argv=("ar", archive, *core_objects), inputs=tuple(core_objects), outputs=(archive,)))
    lib_objects = {}
    for lib, name in libs.items():
        (src / name).write_text("lib\n")
        lib_objects[lib] = f"{layout.library_dir(lib)}/{name}.o"
        actions.append(_compile(str(src / name), lib_objects[lib], f"lib:{lib}", FRAMEWORK))
    found = []
    for sk_id, used in sketches.items():
        folder = root / "sketches" / sk_id
        folder.mkdir(parents=True)
        (folder / f"{sk_id}.ino").write_text("void setup() {}\nvoid loop() {}\n")
        found.append(Sketch(id=sk_id, name=sk_id, path=str(folder), inos=(str(folder / f"{sk_id}.ino"),), files=(),
                            sources=()))
        owner, build = f"sketch:{sk_id}", layout.sketch_build_dir(sk_id)
        obj, elf = f"{build}/{sk_id}.ino.cpp.o", f"{build}/firmware.elf"
        objects = (obj, *(lib_objects[lib] for lib in used))
        firmware = graph.firmware_step(owner)
        actions += [
            _compile(str(folder / f"{sk_id}.ino"), obj, owner, SKETCH),
            Action(key=f"sketch/{sk_id}/link", kind="link", owner=owner, resource=SKETCH, step=firmware,
                   argv=("ld", "-o", elf, *objects, archive), inputs=(*objects, archive), outputs=(elf,)),
            Action(key=f"sketch/{sk_id}/hex", kind="hex", owner=owner, resource=SKETCH, step=firmware,
                   argv=("objcopy", elf, f"{build}/firmware.hex"), inputs=(elf,), outputs=(f"{build}/firmware.hex",)),
            Action(key=f"sketch/{sk_id}/size", kind="size", owner=owner, resource=SKETCH, step=firmware,
                   argv=("size", elf), inputs=(elf,), stdout_path=f"{build}/size.txt"),
        ]
    for out in (a for action in actions for a in action.outputs):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    return layout, found, graph.from_actions(actions)


def _targets(sketches, layout, board=BOARD, namespace=""):
    return [Target(sketch=sk, board=board, board_id=namespace or "board", layout=layout, namespace=namespace)
            for sk in sketches]


def _by_id(collector: Collector, namespace: str = "") -> dict:
    return {Owner.parse(owner).name: r for owner, r in collector.results.items() if Owner.parse(owner).board == namespace}


class Quiet:
    def stage1_done(self, *args) -> None:
        pass

    def sketch_done(self, *args) -> None:
        pass


def _run_in_order(steps, commands) -> list:
    results = {}
    for step in steps:
        results[step.key] = execute.run_step(step, *(results[d] for d in step.deps), commands=commands)
    return list(results.values())


LIBS = {"Good": "good.cpp", "Bad": "bad.cpp"}
SKETCHES = {"fine": ["Good"], "typo": [], "uses_bad": ["Bad"], "huge": []}
FAILURES = {"typo.ino": "typo/typo.ino:3:1: error: expected ';' before '}' token",
            "bad.cpp": "bad.cpp:1:1: error: 'nope' was not declared in this scope"}


def test_each_sketch_gets_its_own_outcome_from_the_tally(tmp_path):
    layout, sketches, dag = _world(tmp_path, LIBS, SKETCHES)
    fake = FakeCommandRunner(fail=FAILURES, sizes={"huge": 40000})
    collector = Collector(_targets(sketches, layout), steps := plan.steps(dag, 1, 2), Quiet())
    for result in _run_in_order(steps, fake):
        assert collector.on_result(result)
    by_id = _by_id(collector)
    assert by_id["fine"].status == SketchStatus.OK and by_id["fine"].artifacts == ("firmware.elf", "firmware.hex")
    assert Path(layout.sketch_dir("fine"), "firmware.hex").read_text() == "made by sketch/fine/hex\n"
    # The error names the user's own file, as arduino-cli does, not the `#line` name the compiler read.
    assert by_id["typo"].status == "failed"
    assert by_id["typo"].error == f"{tmp_path}/sketches/{FAILURES['typo.ino']}"
    assert by_id["uses_bad"].error == f"library Bad failed to compile; see {layout.library_log('Bad')}"
    assert by_id["huge"].error == "sketch too big: 40000 bytes of program storage, the board has 32256"
    for failed in ("typo", "uses_bad", "huge"):
        assert not Path(layout.sketch_dir(failed), "firmware.hex").exists()
    # A library that failed never reaches a link; a sketch that failed links nothing.
    assert not [argv for argv in fake.commands if argv[0] == "ld" and any("Bad" in a or "typo" in a for a in argv)]
    assert "bad.cpp:1:1: error" in Path(layout.library_log("Bad")).read_text()


def test_a_broken_core_fails_every_sketch_with_its_message(tmp_path):
    layout, sketches, dag = _world(tmp_path, {}, {"a": [], "b": []})
    fake = FakeCommandRunner(fail={"wiring.c": "wiring.c:9:1: error: stray '@'"})
    tally = Tally(_targets(sketches, layout), steps := plan.steps(dag, 1, 1))
    done = [d for result in _run_in_order(steps, fake) for d in tally.add(result)]
    assert tally.core_errors == {"": "wiring.c:9:1: error: stray '@'"} and tally.every_core_failed
    assert {d.target.sketch.id: d.error for d in done if hasattr(d, "target")} == {
        sk: f"the core failed to compile; see {layout.core_log}" for sk in ("a", "b")}
    assert not [argv for argv in fake.commands if argv[0] in ("ld", "ar")]  # nothing links a broken core


def test_a_broken_core_fails_only_the_targets_of_its_own_board(tmp_path):
    worlds = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        worlds[name] = _world(tmp_path / name, {"Good": "good.cpp"}, {"x": ["Good"], "y": []})
    dag = graph.from_actions(graph.within(action, name) for name, (_, _, board_dag) in worlds.items()
                             for action in graph.actions_of(board_dag))
    fake = FakeCommandRunner(fail={"b/src/wiring.c": "wiring.c:9:1: error: stray '@'"})
    collector = Collector([t for name, (layout, found, _) in worlds.items() for t in _targets(found, layout, namespace=name)],
                          steps := plan.steps(dag, 1, 2), Quiet())
    assert all(collector.on_result(result) for result in _run_in_order(steps, fake))  # board a still links
    assert {r.status for r in _by_id(collector, "a").values()} == {"ok"}
    assert {sk: r.error for sk, r in _by_id(collector, "b").items()} == {
        sk: f"the core failed to compile; see {worlds['b'][0].core_log}" for sk in ("x", "y")}
    links = [argv for argv in fake.commands if argv[0] == "ld"]
    assert len(links) == 2 and all(str(tmp_path / "a") in argv[2] for argv in links)


def test_an_interrupted_run_gives_every_unfinished_sketch_a_result(tmp_path):
    layout, sketches, dag = _world(tmp_path, {}, {"done": [], "never": []})
    steps = plan.steps(dag, 1, 1)
    collector = Collector(_targets(sketches, layout), steps, Quiet())
    fake = FakeCommandRunner()
    results = {}
    for step in steps:
        if step.owner == "sketch:never":
            break
        results[step.key] = execute.run_step(step, *(results[d] for d in step.deps), commands=fake)
        collector.on_result(results[step.key])
    collector.finish_unfinished(SketchStatus.INTERRUPTED, "interrupted")
    assert _by_id(collector)["never"].status == "interrupted"
    assert "# interrupted: interrupted" in Path(_by_id(collector)["never"].log).read_text()


def test_a_killed_tool_cancels_its_sketch(tmp_path):
    layout, sketches, dag = _world(tmp_path, {}, {"s": []})
    steps = plan.steps(dag, 1, 1)

    def killed_on_link(action, cancelled):
        return (None, "# killed: the run was superseded\n") if action.kind == "link" else FakeCommandRunner()(action, cancelled)

    collector = Collector(_targets(sketches, layout), steps, Quiet())
    for result in _run_in_order(steps, killed_on_link):
        collector.on_result(result)
    assert _by_id(collector)["s"].status == "cancelled"


def test_the_scheduler_holds_both_limits_and_batched_steps_keep_their_own_outcome(tmp_path):
    # 40 sketches on 2 slots: the first tasks take several sketches each (runner.batch_size).
    layout, found, dag = _world(tmp_path, {f"L{i}": f"l{i}.cpp" for i in range(4)},
                                {f"s{i:02}": [f"L{i % 4}"] for i in range(40)})
    steps = plan.steps(dag, 1, 2)
    assert runner.batch_size(len(steps), 2) > 1
    fake = FakeCommandRunner(fail={"s07.ino": "s07/s07.ino:1:1: error: nope", "s30.ino": "s30/s30.ino:2:1: error: nope"},
                             seconds=0.01)
    collector = Collector(_targets(found, layout), steps, Quiet())
    with runner.cluster(1, 2) as client:
        runner.run(client, steps, collector.on_result, None, commands=fake)
    by_id = _by_id(collector)
    assert {sk for sk, r in by_id.items() if r.status != "ok"} == {"s07", "s30"}
    assert by_id["s30"].error == f"{tmp_path}/sketches/s30/s30.ino:2:1: error: nope"
    assert len(fake.commands) == len(set(fake.commands)) and fake.most == {FRAMEWORK: 1, SKETCH: 2}


@pytest.mark.parametrize("queued,slots,size", [(100_000, 2, runner.MAX_LONG_BATCH), (2000, 2, 31), (300, 2, runner.MAX_BATCH),
                                               (16, 2, 2), (7, 2, 1), (0, 4, 1)])
def test_tasks_take_fewer_steps_as_the_queue_empties(queued, slots, size):
    # Many steps a task on a queue of thousands, as many as a real build's hundreds took, single at the tail.
    assert runner.batch_size(queued, slots) == size


def test_the_cluster_starts_without_numpy_or_a_memory_monitor():
    # In a fresh interpreter: this one may hold numpy already, which the cluster then leaves alone.
    script = ("import sys; from fbuild_graph.execution import runner\n"
              "with runner.cluster(1, 1) as client:\n"
              "    print(client.submit(len, 'ab', resources={'sketch': 1}).result())\n"
              "    print(sorted(w['memory_limit'] for w in client.scheduler_info()['workers'].values()))\n"
              "print('numpy' in sys.modules); import numpy; print(numpy.empty(1).size)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    # No memory monitor either: the workers' memory is this process's (runner._local).
    assert out.stdout.split() == ["2", "[0,", "0]", "False", "1"], out.stderr[-2000:]


def test_a_head_start_hands_over_to_the_cluster_without_running_a_step_twice(tmp_path):
    layout, found, dag = _world(tmp_path, {f"L{i}": f"l{i}.cpp" for i in range(3)},
                                {f"s{i}": [f"L{i % 3}"] for i in range(12)})
    steps = plan.steps(dag, 1, 2)
    fake = FakeCommandRunner(seconds=0.02)
    collector = Collector(_targets(found, layout), steps, Quiet())
    with head_start.HeadStart(steps, {FRAMEWORK: 1, SKETCH: 2}, functools.partial(execute.run_step, commands=fake),
                              collector.on_result) as early:
        time.sleep(0.15)
        finished = early.stop()
    ran = len(fake.commands)
    assert 0 < len(finished) < len(steps) and ran == sum(len(s.actions) for s in steps if s.key in finished)
    with runner.cluster(1, 2) as client:
        runner.run(client, steps, collector.on_result, None, commands=fake, finished=finished)
    assert {r.status for r in collector.results.values()} == {"ok"}
    assert len(fake.commands) == len(set(fake.commands)) == sum(len(s.actions) for s in steps)
    assert fake.most == {FRAMEWORK: 1, SKETCH: 2}
    # tasks.tsv names the slots' worker for what the head start ran, as for the cluster's own.
    assert {r.worker for result in finished.values() for r in result.records} <= {FRAMEWORK, SKETCH}


def test_a_head_start_begun_with_the_framework_alone_takes_the_plan_and_reports_in_order(tmp_path):
    # build.CoreFirst: the cores' steps run before the rest is planned, their results held for the collector.
    layout, found, dag = _world(tmp_path, {f"L{i}": f"l{i}.cpp" for i in range(3)},
                                {f"s{i}": [f"L{i % 3}"] for i in range(12)})
    steps = plan.steps(dag, 1, 2)
    fake = FakeCommandRunner(seconds=0.02)
    relay = head_start.Relay()
    framework = [s for s in steps if s.resource == FRAMEWORK]
    with head_start.HeadStart(framework, {FRAMEWORK: 1}, functools.partial(execute.run_step, commands=fake),
                              relay) as early:
        time.sleep(0.1)
        assert fake.commands and fake.most[SKETCH] == 0  # the framework alone, so far
        collector = Collector(_targets(found, layout), steps, Quiet())
        early.take(steps, {FRAMEWORK: 1, SKETCH: 2}, {})
        assert relay.attach(collector.on_result)
        time.sleep(0.1)
        finished = early.stop()
    with runner.cluster(1, 2) as client:
        runner.run(client, steps, collector.on_result, None, commands=fake, finished=finished)
    assert {r.status for r in collector.results.values()} == {"ok"}
    assert len(fake.commands) == len(set(fake.commands)) == sum(len(s.actions) for s in steps)
    assert fake.most == {FRAMEWORK: 1, SKETCH: 2}


def test_an_interrupted_head_start_reports_nothing_that_finishes_after_the_interruption(tmp_path):
    layout, found, dag = _world(tmp_path, {}, {"s": []})
    steps = plan.steps(dag, 1, 1)
    started = threading.Event()

    def killed_when_interrupted(action, cancelled):  # what kill_running makes of a real tool
        started.set()
        time.sleep(0.2)
        return None, "# killed\n"

    reported = []
    with pytest.raises(KeyboardInterrupt):
        with head_start.HeadStart(steps, {FRAMEWORK: 1, SKETCH: 1},
                                  functools.partial(execute.run_step, commands=killed_when_interrupted),
                                  lambda result: reported.append(result) or True):
            started.wait(5)
            raise KeyboardInterrupt
    assert reported == []


# the planner and the depfile reader ------------------------------------------------------------------------

def test_the_plan_fuses_strict_chains_into_exact_steps(tmp_path):
    layout, _, dag = _world(tmp_path, {"Good": "good.cpp"}, {"a": ["Good"]})
    steps = plan.steps(dag, 1, 1)
    assert [(s.key, s.deps, [a.key.rsplit("/", 1)[-1] for a in s.actions]) for s in steps] == [
        ("core:main.cpp", (), ["main.cpp.o"]),
        ("core:wiring.c", (), ["wiring.c.o"]),
        ("core:archive", ("core:main.cpp", "core:wiring.c"), ["core.a"]),
        ("lib:Good:good.cpp", (), ["good.cpp.o"]),
        ("sketch:a:a.ino", (), ["a.ino.cpp.o"]),
        ("sketch:a:firmware", ("core:archive", "lib:Good:good.cpp", "sketch:a:a.ino"), ["link", "hex", "size"]),
    ]


@pytest.mark.parametrize("text,headers", [
    ("a.o: a.cpp /core/Arduino.h \\\n /lib/x.h\n", ["a.cpp", "/core/Arduino.h", "/lib/x.h"]),
    ("b.o: b.cpp /my\\ libs/y.h\n/my\\ libs/y.h:\n", ["b.cpp", "/my libs/y.h"]),
    ("", []),
])
def test_depfiles_are_read_as_make_reads_them(tmp_path, text, headers):
    path = tmp_path / "x.d"
    path.write_text(text)
    assert signature.depfile_headers(str(path)) == headers


def _signed_action(tmp_path: Path) -> Action:
    source, obj = tmp_path / "a.cpp", tmp_path / "a.cpp.o"
    source.write_text("int a;\n")
    obj.write_bytes(b"object")
    return Action(key="sketch:a:a.cpp", kind="compile", owner="sketch:a", resource=SKETCH, step="sketch:a:a.cpp",
                  argv=("avr-g++", "-c", str(source), "-o", str(obj)), inputs=(str(source),), outputs=(str(obj),))


def test_a_signature_is_kept_on_the_output_and_changes_with_an_input(tmp_path):
    action = _signed_action(tmp_path)
    signature.record(action, action.command_line)
    assert signature.up_to_date(action, action.command_line)
    assert not list(tmp_path.glob("*" + signature.SUFFIX))  # no file of its own
    (tmp_path / "a.cpp").write_text("int a = 1;\n")
    assert not signature.up_to_date(action, action.command_line)
    signature.record(action, action.command_line)
    signature.forget(action)
    assert not signature.up_to_date(action, action.command_line)


def test_without_attributes_a_signature_goes_to_a_file_beside_the_output(tmp_path, monkeypatch):
    def unsupported(*args):
        raise OSError(95, "Operation not supported")  # EOPNOTSUPP: a filesystem without user attributes

    monkeypatch.setattr(signature.os, "setxattr", unsupported)
    monkeypatch.setattr(signature.os, "getxattr", unsupported)
    action = _signed_action(tmp_path)
    signature.record(action, action.command_line)
    assert (tmp_path / ("a.cpp.o" + signature.SUFFIX)).is_file()
    assert signature.up_to_date(action, action.command_line)
    signature.forget(action)
    assert not (tmp_path / ("a.cpp.o" + signature.SUFFIX)).exists()
    assert not signature.up_to_date(action, action.command_line)


def test_an_output_linked_from_a_store_gets_its_signature_in_a_file_not_on_the_stored_file(tmp_path):
    action = _signed_action(tmp_path)
    stored = tmp_path / "store-entry"
    obj = Path(action.outputs[0])
    obj.unlink()
    stored.write_bytes(b"object")
    os.link(stored, obj)  # as the content cache places a read-only stored file
    signature.record(action, action.command_line)
    assert signature.up_to_date(action, action.command_line)
    assert (tmp_path / ("a.cpp.o" + signature.SUFFIX)).is_file()
    with pytest.raises(OSError):
        os.getxattr(stored, signature.ATTRIBUTE)


def test_forgetting_removes_the_signature_of_an_output_linked_elsewhere(tmp_path):
    action = _signed_action(tmp_path)
    signature.record(action, action.command_line)
    os.link(action.outputs[0], tmp_path / "firmware-copy")  # as the firmware is linked into the sketch's folder
    signature.forget(action)
    assert not signature.up_to_date(action, action.command_line)
