"""analysis.py on a real build: what each action waited for, the critical path, stage and slot shares; and on
a board matrix's folder written by hand, and one from before the board matrix."""

from __future__ import annotations

import pytest

from conftest import FRAMEWORK_JOBS, SKETCH_JOBS, Build, write_matrix_build
from fbuild_graph.analysis import analysis
from fbuild_graph.analysis.analysis import BoardWork

# No module-wide needs_toolchain: the real build's tests skip through big_build; the hand-written ones need none.


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
    # One board: its id, or "" from an engine that writes no board column yet.
    board = next(t.get("board", "") for t in big_build.tasks if t["sketch"] == "master_reader")
    reader = sum(float(t["seconds"]) for t in big_build.tasks if t["sketch"] == "master_reader" and t["seconds"])
    assert work[board, "master_reader"] == pytest.approx(reader, abs=1e-3)
    assert (board, "syntax_error") in work and all(sketch for _, sketch in work)


@pytest.fixture
def matrix(tmp_path) -> analysis.Build:
    return analysis.load(write_matrix_build(tmp_path / "matrix"))


def test_one_sketch_on_two_boards_is_two_targets(matrix: analysis.Build):
    assert matrix.statuses == {("uno", "Blink"): "ok", ("mega", "Blink"): "failed", ("mega", "Fade"): "skipped"}
    assert matrix.sketch_seconds == {("uno", "Blink"): 1.25, ("mega", "Blink"): 2.75, ("mega", "Fade"): 0.0}
    assert analysis.sketch_work(matrix) == {("uno", "Blink"): 0.75, ("mega", "Blink"): 1.0}


def test_actions_and_per_board_phases_carry_their_board(matrix: analysis.Build):
    assert {t.key: t.board for t in matrix.tasks}["mega/core/core.a"] == "mega"
    assert [p.label for p in matrix.phases if p.name == "discover"] == ["discover uno", "discover mega"]
    assert {p.board for p in matrix.phases if p.name in ("import", "stage1_archives", "total")} == {""}
    # The mega's plan ends the start-up; the uno's, at 0.3125 s, does not.
    assert matrix.startup == 0.5
    shares = analysis.stage_shares(matrix)
    assert shares["plan uno"] == shares["plan mega"] == 0.0625 / 4.0


def test_per_board_counts_each_boards_targets_and_work(matrix: analysis.Build):
    # All actions ran 4.75 s: the uno's 1 + 0.75, the mega's 2 + 1. The cached archive counts for nothing.
    assert analysis.per_board(matrix) == [
        BoardWork("uno", targets=1, ok=1, failed=0, skipped=0, stage1=1.0, stage2=0.75, start=0.5, stop=1.75,
                  share=1.75 / 4.75),
        BoardWork("mega", targets=2, ok=0, failed=1, skipped=1, stage1=2.0, stage2=1.0, start=1.0, stop=3.75,
                  share=3.0 / 4.75)]
    assert [b.span for b in analysis.per_board(matrix)] == [1.25, 2.75]


def test_a_folder_from_before_the_board_matrix_reads_as_one_board_without_an_id(tmp_path):
    out = write_matrix_build(tmp_path / "old", board_columns=False)
    assert "board" not in (out / "tasks.tsv").read_text().split("\n", 1)[0].split("\t")
    build = analysis.load(out)
    assert {t.board for t in build.tasks} == {""} and {p.board for p in build.phases} == {""}
    assert build.statuses == {("", "Blink"): "ok"}
    assert analysis.sketch_work(build) == {("", "Blink"): 0.75}
    assert build.startup == 0.3125
    assert analysis.per_board(build) == [BoardWork("", targets=1, ok=1, failed=0, skipped=0, stage1=1.0, stage2=0.75,
                                                   start=0.5, stop=1.75, share=1.0)]


def test_the_ideal_is_bounded_by_the_busiest_class_and_by_all_slots_together():
    # 8 s of framework work and 2 s of sketch work: one framework slot cannot beat 8 s however many sketch
    # slots there are; with 4 + 4 slots the total, 10 s over 8 slots, bounds it; start-up adds on top.
    assert analysis.ideal_wall(8.0, 2.0, 1, 4) == 8.0
    assert analysis.ideal_wall(8.0, 2.0, 4, 4) == pytest.approx(2.0)
    assert analysis.ideal_wall(8.0, 8.0, 4, 4, startup=0.5) == pytest.approx(2.5)
