"""Memory deltas: `compare BASE_OUT HEAD_OUT`, and compile-many's `--sketches-report DIR [--base BASE_OUT]`,
read here exactly as arduino/report-size-deltas reads it (`ReportSizeDeltas`, reportsizedeltas.py), so a drift
from the format compile-sketches writes fails a test."""

from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess

import pytest

from conftest import needs_toolchain, run_cli
from fbuild_graph.model import SketchResult
from fbuild_graph.outputs import deltas, sketches_report
from fbuild_graph.outputs.deltas import Change, Memory, MemoryDelta, Usage
from fbuild_graph.outputs.sketches_report import NA, Commit

UNO, LEONARDO = "arduino:avr:uno", "arduino:avr:leonardo"


# ---- report-size-deltas, as its source reads a sketches report (reportsizedeltas.py, arduino/report-size-deltas)

def rsd_get_sketches_reports(folder: pathlib.Path) -> list[dict]:
    """ReportSizeDeltas.get_sketches_reports: every *.json below the folder, sorted; an "old format" report
    (no boards[0].sizes[0].maximum) is skipped; a report is kept when some board has `sizes`."""
    reports = []
    for report_filename in sorted(folder.rglob(pattern="*.json")):
        if report_filename.is_dir():
            continue
        with open(file=report_filename) as report_file:
            report_data = json.load(report_file)
            if (("boards" not in report_data) or ("sizes" not in report_data["boards"][0])
                    or ("maximum" not in report_data["boards"][0]["sizes"][0])):
                continue
            for fqbn_data in report_data["boards"]:
                if "sizes" in fqbn_data:
                    reports.append(report_data)
                    break
    return reports


def rsd_column(report, column_heading: str) -> int:
    """get_report_column_number."""
    try:
        return report[0].index(column_heading, 1)
    except ValueError:
        column_number = len(report[0])
        for heading in (column_heading, "%"):
            report[0].append(heading)
            report[len(report) - 1].append("")
        return column_number


def rsd_summary_value(show_emoji: bool, minimum, maximum) -> str:
    """get_summary_value."""
    value = None
    if minimum == NA:
        value, emoji = NA, None
    elif minimum < 0 and maximum <= 0:
        emoji = ":green_heart:"
    elif minimum == 0 and maximum == 0:
        emoji = None
    elif minimum >= 0 and maximum > 0:
        emoji = ":small_red_triangle:"
    else:
        emoji = ":grey_question:"
    if value is None:
        if minimum > 0:
            minimum = "+" + str(minimum)
        if maximum > 0:
            maximum = "+" + str(maximum)
        value = str(minimum) + " - " + str(maximum)
    if show_emoji and (emoji is not None):
        value = emoji + " " + value
    return value


def rsd_tables(sketches_reports: list[dict]) -> tuple[str, list[list], list[list]]:
    """generate_report's heading, summary table (add_summary_report_row) and full table
    (add_detailed_report_row), before they are turned into Markdown."""
    summary, full = [["Board"]], [["Board"]]
    for fqbns_data in sketches_reports:
        for fqbn_data in fqbns_data["boards"]:
            row_number = len(summary)
            summary.append(["" for _ in range(len(summary[0]))])
            summary[row_number][0] = f"`{fqbn_data['board']}`"
            for size_data in fqbn_data["sizes"]:
                column = rsd_column(summary, size_data["name"])
                if "delta" in size_data:
                    summary[row_number][column] = rsd_summary_value(
                        True, size_data["delta"]["absolute"]["minimum"], size_data["delta"]["absolute"]["maximum"])
                    summary[row_number][column + 1] = rsd_summary_value(
                        False, size_data["delta"]["relative"]["minimum"], size_data["delta"]["relative"]["maximum"])
                else:
                    summary[row_number][column] = rsd_summary_value(True, NA, NA)
                    summary[row_number][column + 1] = rsd_summary_value(False, NA, NA)
    for fqbns_data in sketches_reports:
        for fqbn_data in fqbns_data["boards"]:
            row_number = len(full)
            full.append(["" for _ in range(len(full[0]))])
            full[row_number][0] = f"`{fqbn_data['board']}`"
            for sketch in fqbn_data["sketches"]:
                for size_data in sketch["sizes"]:
                    column = rsd_column(full, "`{sketch_name}`<br>{size_name}".format(
                        sketch_name=sketch["name"], size_name=size_data["name"]))
                    if "delta" in size_data:
                        full[row_number][column] = size_data["delta"]["absolute"]
                        full[row_number][column + 1] = size_data["delta"]["relative"]
                    else:
                        full[row_number][column] = NA
                        full[row_number][column + 1] = NA
    heading = "**Memory usage change @ " + sketches_reports[0]["commit_hash"] + "**\n\n"
    return heading, summary, full


def cell(table: list[list], board: str, heading: str):
    row = next(r for r in table[1:] if r[0] == f"`{board}`")
    return row[table[0].index(heading, 1)], row[table[0].index(heading, 1) + 1]


# ---- toolchain-free: the arithmetic, the N/A rules, pairing, the commit


def result(id: str, board: str = UNO, status: str = "ok", flash=None, ram=None, path: str = "") -> SketchResult:
    built = status == "ok"
    return SketchResult(sketch=id, id=id, path=path or f"/ws/examples/{id}", status=status, seconds=0.1,
                        out_dir="", log="", flash=flash if built else None, flash_max=32256,
                        ram=ram if built else None, ram_max=2048, board=board, board_id=board.split(":")[2])


def test_a_delta_in_bytes_in_percent_of_the_maximum_and_of_the_base():
    d = MemoryDelta(Usage(1000, 32256), Usage(1250, 32256))
    assert (d.absolute, d.relative, d.growth) == (250, round(100 * 250 / 32256, 2), 25.0) == (250, 0.78, 25.0)
    assert d.grew_past(24.99) and not d.grew_past(25)
    shrink = MemoryDelta(Usage(1000, 2048), Usage(900, 2048))
    assert (shrink.absolute, shrink.relative, shrink.growth) == (-100, -4.88, -10.0)
    assert not shrink.grew_past(0)
    assert MemoryDelta(Usage(0, 2048), Usage(16, 2048)).grew_past(1e9)  # from nothing: always past
    assert not MemoryDelta(Usage(9, 2048), Usage(9, 2048)).grew_past(0)


def test_an_unknown_size_gives_no_delta():
    failed = result("Broken", status="failed")
    assert Usage.of(failed, Memory.FLASH) == Usage(None, None)
    assert Usage.of(None, Memory.RAM) == Usage(None, None)
    # A size without the board's maximum: a delta in bytes and of the base, none of the maximum.
    no_max = MemoryDelta(Usage(100, None), Usage(150, None))
    assert (no_max.absolute, no_max.relative, no_max.growth) == (50, None, 50.0)
    for d in (MemoryDelta(Usage(), Usage(10, 2048)), MemoryDelta(Usage(10, 2048), Usage())):
        assert (d.absolute, d.relative, d.growth, d.grew_past(0)) == (None, None, None, False)


def test_compare_pairs_targets_and_names_the_added_and_the_removed():
    base = [result("Same", flash=500, ram=9), result("Grows", flash=500, ram=10), result("Gone", flash=400, ram=9),
            result("Fails", flash=600, ram=9), result("Skip", status="skipped")]
    head = [result("Same", flash=500, ram=9), result("Grows", flash=520, ram=20), result("New", flash=300, ram=9),
            result("Fails", status="failed"), result("Skip", status="skipped"),
            result("Grows", board=LEONARDO, flash=4000, ram=150)]
    compared = deltas.compare(base, head)
    by = {(d.board_id, d.id): d for d in compared}
    assert ("uno", "Skip") not in by  # skipped on both sides: nothing to compare
    assert [d.id for d in compared][:2] == ["Grows", "Same"]  # largest growth first, unknown deltas last
    assert (by["uno", "Grows"].flash.absolute, by["uno", "Grows"].ram.absolute, by["uno", "Grows"].ram.growth) == (20, 10, 100.0)
    assert by["uno", "New"].change == Change.ADDED and by["uno", "New"].flash.absolute is None
    assert by["uno", "Gone"].change == Change.REMOVED and by["uno", "Gone"].flash.base.absolute == 400
    assert by["leonardo", "Grows"].change == Change.ADDED
    assert by["uno", "Fails"].change == Change.BOTH and by["uno", "Fails"].flash.absolute is None
    assert [d.id for d in deltas.grown_past(compared, 99.9)] == ["Grows"]
    assert deltas.grown_past(compared, 100) == []
    table = deltas.format_table(compared)
    assert "+10 (+100.00%)" in table and "added" in table and "removed" in table and "head failed" in table
    document = json.loads(deltas.to_json(compared, 50))
    grows = next(t for t in document["targets"] if t["id"] == "Grows" and t["board"] == UNO)
    assert grows["ram"]["delta"] == {"absolute": 10, "relative": 0.49, "growth": 100.0} and grows["grown_past"]
    assert grows["ram"]["base"] == {"absolute": 10, "maximum": 2048, "relative": 0.49}


def test_sketches_of_one_name_pair_by_their_path_in_another_checkout():
    base = [result("Basic", path="/ci/base/libs/A/examples/Basic", flash=1, ram=1),
            result("Basic", path="/ci/base/libs/B/examples/Basic", flash=2, ram=2)]
    head = [result("Basic", path="/ci/head/libs/B/examples/Basic", flash=3, ram=3),
            result("Basic", path="/ci/head/libs/A/examples/Basic", flash=4, ram=4)]
    assert [(b.flash, h.flash) for b, h in deltas.pair(base, head)] == [(2, 3), (1, 4)]


def report_of(head, base=None, boards=(UNO,)) -> dict:
    reports = sketches_report.build(head, boards, Commit("abc", "https://github.com/o/r/commit/abc"), "/ws", base)
    return reports


def test_the_report_is_compile_sketches_format_with_its_na_rules(tmp_path):
    head = [result("Grows", flash=520, ram=20), result("Broken", status="failed"), result("New", flash=300, ram=9),
            result("Skip", status="skipped")]
    base = [result("Grows", flash=500, ram=10), result("Broken", flash=600, ram=9)]
    reports = report_of(head, base)
    assert list(reports) == ["arduino-avr-uno.json"]
    report = reports["arduino-avr-uno.json"]
    assert list(report) == ["commit_hash", "commit_url", "boards"]
    assert report["commit_hash"] == "abc"
    board = report["boards"][0]
    assert list(board) == ["board", "sketches", "sizes"]
    sketches = {s["name"]: s for s in board["sketches"]}
    assert list(sketches) == ["examples/Broken", "examples/Grows", "examples/New"]  # skipped: not reported
    grows = sketches["examples/Grows"]
    assert grows["compilation_success"] is True
    assert grows["sizes"] == [
        {"name": "flash", "maximum": 32256, "current": {"absolute": 520, "relative": 1.61},
         "previous": {"absolute": 500, "relative": 1.55}, "delta": {"absolute": 20, "relative": 0.06}},
        {"name": "RAM for global variables", "maximum": 2048, "current": {"absolute": 20, "relative": 0.98},
         "previous": {"absolute": 10, "relative": 0.49}, "delta": {"absolute": 10, "relative": 0.49}}]
    # A failed sketch: no sizes, and no base build (compile-sketches builds the base only for a built head).
    broken = sketches["examples/Broken"]
    assert broken["compilation_success"] is False
    assert broken["sizes"][0] == {"name": "flash", "maximum": NA, "current": {"absolute": NA, "relative": NA}}
    # A sketch the base lacks: its base build would fail, so previous and delta are N/A.
    assert sketches["examples/New"]["sizes"][1]["previous"] == {"absolute": NA, "relative": NA}
    assert sketches["examples/New"]["sizes"][1]["delta"] == {"absolute": NA, "relative": NA}
    # The summary: the first known maximum; the smallest and largest known delta (N/A ones do not count).
    assert board["sizes"] == [
        {"name": "flash", "maximum": 32256,
         "delta": {"absolute": {"minimum": 20, "maximum": 20}, "relative": {"minimum": 0.06, "maximum": 0.06}}},
        {"name": "RAM for global variables", "maximum": 2048,
         "delta": {"absolute": {"minimum": 10, "maximum": 10}, "relative": {"minimum": 0.49, "maximum": 0.49}}}]
    written = sketches_report.write(str(tmp_path / "reports"), reports)
    assert written == [str(tmp_path / "reports" / "arduino-avr-uno.json")]
    heading, summary, full = rsd_tables(rsd_get_sketches_reports(tmp_path / "reports"))
    assert heading == "**Memory usage change @ abc**\n\n"
    assert summary[1] == ["`arduino:avr:uno`", ":small_red_triangle: +20 - +20", "+0.06 - +0.06",
                          ":small_red_triangle: +10 - +10", "+0.49 - +0.49"]
    assert cell(full, UNO, "`examples/Broken`<br>flash") == (NA, NA)
    assert cell(full, UNO, "`examples/New`<br>flash") == (NA, NA)
    assert cell(full, UNO, "`examples/Grows`<br>RAM for global variables") == (10, 0.49)


def test_without_a_base_the_report_has_no_deltas():
    report = report_of([result("Grows", flash=520, ram=20)])["arduino-avr-uno.json"]
    assert all("delta" not in size and "previous" not in size
               for size in report["boards"][0]["sketches"][0]["sizes"] + report["boards"][0]["sizes"])
    assert report["boards"][0]["sizes"][0] == {"name": "flash", "maximum": 32256}


def test_names_and_file_names_as_compile_sketches_writes_them(tmp_path):
    assert sketches_report.report_file_name("arduino:avr:mega:cpu=atmega2560") == "arduino-avr-mega-cpu=atmega2560.json"
    (tmp_path / "ws" / "examples" / "A").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "ws" / "examples", tmp_path / "link")
    ws = str(tmp_path / "ws")
    assert sketches_report.sketch_name(str(tmp_path / "ws" / "examples" / "A"), ws) == "examples/A"
    assert sketches_report.sketch_name(str(tmp_path / "link" / "A"), ws) == "examples/A"  # resolved, as pathlib's
    assert sketches_report.sketch_name(str(tmp_path / "elsewhere"), ws) == str((tmp_path / "elsewhere").resolve())


def test_the_commit_is_the_pull_requests_head_then_github_sha_then_git(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7, "head": {"sha": "headsha"}}}))
    env = {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event), "GITHUB_SHA": "mergesha",
           "GITHUB_REPOSITORY": "o/r"}
    assert sketches_report.commit_from_environment(env, str(tmp_path)) == Commit(
        "headsha", "https://github.com/o/r/commit/headsha")
    push = {"GITHUB_EVENT_NAME": "push", "GITHUB_SHA": "pushsha", "GITHUB_REPOSITORY": "o/r",
            "GITHUB_SERVER_URL": "https://ghe.example.com"}
    assert sketches_report.commit_from_environment(push, str(tmp_path)) == Commit(
        "pushsha", "https://ghe.example.com/o/r/commit/pushsha")
    assert sketches_report.commit_from_environment({}, str(tmp_path)) == Commit("", "")  # no checkout, no CI
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert sketches_report.commit_from_environment({}, str(tmp_path)) == Commit(head, "")


def test_bad_bases_are_one_line_usage_errors(tmp_path):
    sketch = tmp_path / "S"
    sketch.mkdir()
    (sketch / "S.ino").write_text("void setup(){}\nvoid loop(){}\n")
    for argv, fragment in (
            (("compile-many", "-b", "uno", "--base", str(tmp_path), str(sketch)), "--sketches-report"),
            (("compile-many", "-b", "uno", "--sketches-report", str(tmp_path / "r"), "--base", str(tmp_path / "nope"),
              str(sketch)), "no results.json"),
            (("compare", str(tmp_path), str(tmp_path)), "no results.json"),
            (("compare", str(tmp_path), str(tmp_path), "--fail-on-growth", "-1"), "0 or more")):
        proc = run_cli(*argv)
        assert proc.returncode == 2 and fragment in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    old = {"board": UNO, "exit_code": 0, "stage1_cache_key": "", "stage1_cache": "off", "peak_rss_mb": 1.0,
           "phases": [], "sketches": [{"sketch": "A", "id": "A", "path": "/x/A", "status": "ok", "seconds": 1.0,
                                       "out_dir": "", "log": "", "flash": 500, "ram": 9}]}
    (tmp_path / "old.json").write_text(json.dumps(old))  # before targets named their board
    new = dict(old, sketches=[dict(old["sketches"][0], board=UNO, board_id="uno", flash=510)])
    (tmp_path / "new.json").write_text(json.dumps(new))
    proc = run_cli("compare", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--json")
    assert [t["flash"]["delta"]["absolute"] for t in json.loads(proc.stdout)["targets"]] == [10], proc.stderr
    (tmp_path / "results.json").write_text('{"sketches": 3}')
    proc = run_cli("compare", str(tmp_path), str(tmp_path))
    assert proc.returncode == 2 and "not a results.json" in proc.stderr and "Traceback" not in proc.stderr


# ---- real builds: a base and a head checkout; in the head, Grows holds a volatile array of PAD bytes more

PAD = 100
SKETCHES = {
    "base": {"Blinky": "void setup(){pinMode(13,OUTPUT);}\nvoid loop(){digitalWrite(13,HIGH);}\n",
             "Grows": "void setup(){}\nvoid loop(){}\n",
             "Gone": "void setup(){Serial.begin(9600);}\nvoid loop(){}\n"},
    "head": {"Blinky": "void setup(){pinMode(13,OUTPUT);}\nvoid loop(){digitalWrite(13,HIGH);}\n",
             "Grows": f"volatile char pad[{PAD}];\nvoid setup(){{pad[0]=1;}}\nvoid loop(){{}}\n",
             "New": "void setup(){}\nvoid loop(){}\n"},
}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}


@pytest.fixture(scope="module")
def pair_of_builds(tmp_path_factory):
    """Base and head, each its own git checkout built from inside it (as CI does) for the uno and the
    leonardo, the head with --sketches-report and --base; the base's own report too."""
    root = tmp_path_factory.mktemp("deltas")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    procs = {}
    for side in ("base", "head"):
        checkout = root / side
        for name, text in SKETCHES[side].items():
            (checkout / "examples" / name).mkdir(parents=True)
            (checkout / "examples" / name / f"{name}.ino").write_text(text)
        subprocess.run([*git, "init", "-q", str(checkout)], check=True)
        subprocess.run([*git, "-C", str(checkout), "add", "-A"], check=True)
        subprocess.run([*git, "-C", str(checkout), "commit", "-q", "-m", side], check=True)
        base_args = ("--base", str(root / "out-base")) if side == "head" else ()
        procs[side] = run_cli("compile-many", "--board", "uno", "--board", "leonardo", "--framework-jobs", "1",
                              "--sketch-jobs", "2", "--exclude", "leonardo:New", "-o", str(root / f"out-{side}"),
                              "--sketches-report", str(root / f"reports-{side}"), *base_args, "examples",
                              cwd=checkout, env=_env())
        assert procs[side].returncode == 0, procs[side].stdout + procs[side].stderr
    return root


def _results(root: pathlib.Path, side: str) -> dict[tuple[str, str], dict]:
    report = json.loads((root / f"out-{side}" / "results.json").read_text())
    return {(s["board_id"], s["id"]): s for s in report["sketches"]}


@needs_toolchain
def test_the_report_is_read_by_report_size_deltas_with_the_known_deltas(pair_of_builds):
    root = pair_of_builds
    base, head = _results(root, "base"), _results(root, "head")
    folder = root / "reports-head"
    assert sorted(p.name for p in folder.iterdir()) == ["arduino-avr-leonardo.json", "arduino-avr-uno.json"]
    reports = rsd_get_sketches_reports(folder)
    assert [r["boards"][0]["board"] for r in reports] == [LEONARDO, UNO]
    commit = subprocess.run(["git", "-C", str(root / "head"), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    assert all(r["commit_hash"] == commit and r["commit_url"] == "" for r in reports)
    heading, summary, full = rsd_tables(reports)
    assert heading == f"**Memory usage change @ {commit}**\n\n"
    for board_id, fqbn in (("uno", UNO), ("leonardo", LEONARDO)):
        grows_flash = head[board_id, "Grows"]["flash"] - base[board_id, "Grows"]["flash"]
        assert grows_flash > 0
        ram_max = head[board_id, "Grows"]["ram_max"]
        assert cell(full, fqbn, "`examples/Grows`<br>RAM for global variables") == (PAD, round(100 * PAD / ram_max, 2))
        assert cell(full, fqbn, "`examples/Grows`<br>flash")[0] == grows_flash
        assert cell(full, fqbn, "`examples/Blinky`<br>flash") == (0, 0.0)
        # The summary: Blinky's 0 to Grows' growth, in bytes and in percent of the maximum.
        assert cell(summary, fqbn, "RAM for global variables") == (
            f":small_red_triangle: 0 - +{PAD}", f"0.0 - +{round(100 * PAD / ram_max, 2)}")
    assert cell(full, UNO, "`examples/New`<br>flash") == (NA, NA)  # not in the base: N/A, as compile-sketches
    leonardo = json.loads((folder / "arduino-avr-leonardo.json").read_text())["boards"][0]
    assert [s["name"] for s in leonardo["sketches"]] == ["examples/Blinky", "examples/Grows"]  # New: skipped
    uno = json.loads((folder / "arduino-avr-uno.json").read_text())["boards"][0]
    new = next(s for s in uno["sketches"] if s["name"] == "examples/New")
    assert new["compilation_success"] is True and new["sizes"][0]["current"]["absolute"] == head["uno", "New"]["flash"]
    # The base's report (no --base): sizes, and every delta N/A in report-size-deltas' tables.
    _, base_summary, base_full = rsd_tables(rsd_get_sketches_reports(root / "reports-base"))
    assert cell(base_summary, UNO, "flash") == (NA, NA)
    assert cell(base_full, UNO, "`examples/Gone`<br>flash") == (NA, NA)


@needs_toolchain
def test_compare_gives_the_known_deltas_and_fails_on_growth_past_the_limit(pair_of_builds):
    root = pair_of_builds
    base, head = _results(root, "base"), _results(root, "head")
    proc = run_cli("compare", str(root / "out-base"), str(root / "out-head"), "--json")
    assert proc.returncode == 0, proc.stderr
    targets = {(t["board_id"], t["id"]): t for t in json.loads(proc.stdout)["targets"]}
    assert set(targets) == {("uno", "Blinky"), ("uno", "Grows"), ("uno", "Gone"), ("uno", "New"),
                            ("leonardo", "Blinky"), ("leonardo", "Grows"), ("leonardo", "Gone")}
    for board_id in ("uno", "leonardo"):
        grows = targets[board_id, "Grows"]
        assert grows["ram"]["delta"]["absolute"] == PAD
        assert grows["flash"]["delta"]["absolute"] == head[board_id, "Grows"]["flash"] - base[board_id, "Grows"]["flash"]
        assert grows["ram"]["delta"]["growth"] == round(100 * PAD / base[board_id, "Grows"]["ram"], 2)
        assert targets[board_id, "Blinky"]["flash"]["delta"]["absolute"] == 0
        assert targets[board_id, "Gone"]["change"] == "removed"
    assert targets["uno", "New"]["change"] == "added"
    table = run_cli("compare", str(root / "out-base"), str(root / "out-head"))
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["BOARD", "SKETCH", "FLASH"] and "Grows" in lines[1] and "Grows" in lines[2]
    assert f"+{PAD} (" in lines[1]
    # The largest growth is the uno's RAM: just below it fails, at it passes.
    largest = max(t[m]["delta"]["growth"] for t in targets.values() for m in ("flash", "ram")
                  if t[m]["delta"]["growth"] is not None)
    assert largest == targets["uno", "Grows"]["ram"]["delta"]["growth"]
    below = run_cli("compare", str(root / "out-base"), str(root / "out-head"), "--fail-on-growth", str(math.floor(largest) - 1))
    assert below.returncode == 1 and "uno Grows grew past" in below.stderr
    above = run_cli("compare", str(root / "out-base"), str(root / "out-head"), "--fail-on-growth", str(math.ceil(largest)))
    assert above.returncode == 0, above.stderr
