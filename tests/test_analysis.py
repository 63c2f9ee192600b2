"""analysis.py on a real build: what each action waited for, the critical path, stage and slot shares."""

from __future__ import annotations

import pytest

from conftest import FRAMEWORK_JOBS, SKETCH_JOBS, Build, needs_toolchain
from fbuild_graph.analysis import analysis

pytestmark = needs_toolchain


@pytest.fixture(scope="module")
def build(big_build: Build) -> analysis.Build:
    return analysis.load(big_build.out)


def test_tasks_tsv_says_what_each_action_waited_for(big_build: Build):
    after = {t["key"]: set(t["after"].split("|")) - {""} for t in big_build.tasks}
    assert "core/core.a" in after["sketch/master_reader/link"]
    assert "sketch/master_reader/master_reader.ino.cpp.o" in after["sketch/master_reader/link"]
    assert "lib/Wire/Wire.cpp.o" in after["sketch/master_reader/link"]
    assert after["sketch/master_reader/hex"] >= {"sketch/master_reader/link"}
    # Every name in `after` is an action of the same build.
    assert set().union(*after.values()) <= set(after)


def test_results_json_records_the_slots_of_each_class(build: analysis.Build):
    assert build.slots == {"framework": FRAMEWORK_JOBS, "sketch": SKETCH_JOBS}


def test_the_critical_path_is_a_chain_that_ends_with_the_build(build: analysis.Build):
    path = analysis.critical_path(build)
    assert path[-1].stop == max(t.stop for t in build.ran)
    for before, task in zip(path, path[1:]):
        assert before.stop <= task.start + analysis.CLOCK_SLACK
        assert before.key in task.after or before.worker == task.worker
    # The last sketch to finish linked against the core archive, so the path runs through stage 1.
    assert any(t.key == "core/core.a" for t in path)
    shares = analysis.path_shares(build, path)
    assert sum(shares.values()) == pytest.approx(1.0, abs=0.01)
    assert shares["framework"] > 0 and shares["sketch"] > 0


def test_stage_shares_are_phase_spans_over_the_wall_time(build: analysis.Build):
    shares = analysis.stage_shares(build)
    stage2 = next(p for p in build.phases if p.name == "stage2_sketches")
    assert shares["stage2_sketches"] == pytest.approx(stage2.seconds / build.wall)
    assert 0 < shares["stage1_archives"] < 1


def test_slots_are_never_busier_than_they_are_many(build: analysis.Build):
    uses = {u.resource: u for u in analysis.slot_use(build)}
    assert set(uses) == {"framework", "sketch"}
    for use in uses.values():
        assert 0 < use.busy <= use.slots * use.span + analysis.CLOCK_SLACK * len(build.tasks)
        assert 0 <= use.idle_in_span <= use.idle_in_build <= 1
    # The framework slots have nothing to do once stage 1 is over.
    assert uses["framework"].idle_in_build > uses["framework"].idle_in_span


def test_lanes_never_put_two_overlapping_actions_on_one_slot(build: analysis.Build):
    rows = analysis.lanes(build.ran)
    by_row: dict[tuple[str, int], list[analysis.Task]] = {}
    for t in build.ran:
        by_row.setdefault(rows[t.key], []).append(t)
    for tasks in by_row.values():
        tasks.sort(key=lambda t: t.start)
        assert all(a.stop <= b.start for a, b in zip(tasks, tasks[1:]))
    per_worker = {}
    for worker, lane in rows.values():
        per_worker[worker] = max(per_worker.get(worker, 0), lane + 1)
    assert per_worker == {"framework": FRAMEWORK_JOBS, "sketch": SKETCH_JOBS}


def test_sketch_work_counts_only_that_sketchs_actions(build: analysis.Build, big_build: Build):
    work = analysis.sketch_work(build)
    reader = sum(float(t["seconds"]) for t in big_build.tasks if t["sketch"] == "master_reader" and t["seconds"])
    assert work["master_reader"] == pytest.approx(reader, abs=1e-3)
    assert "syntax_error" in work and "core" not in work


def test_the_ideal_is_bounded_by_the_busiest_class_and_by_all_slots_together():
    # 8 s of framework work and 2 s of sketch work: one framework slot cannot beat 8 s however many sketch
    # slots there are; with 4 + 4 slots the total, 10 s over 8 slots, bounds it; start-up adds on top.
    assert analysis.ideal_wall(8.0, 2.0, 1, 4) == 8.0
    assert analysis.ideal_wall(8.0, 2.0, 4, 4) == pytest.approx(2.0)
    assert analysis.ideal_wall(8.0, 8.0, 4, 4, startup=0.5) == pytest.approx(2.5)
