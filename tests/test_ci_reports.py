"""CI reports (issue 14): JUnit XML read back by a real JUnit parser, GitHub Actions workflow commands and the
job summary, from a real two-board build of sketches made to fail in each way; the formatting alone on
records made by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from conftest import needs_toolchain, run_cli
from fbuild_graph.model import BuildReport, Phase, SketchResult
from fbuild_graph.outputs import diagnostics, github, junit

SKETCHES = {
    "Syntax": "void setup() {\n  int x = 1\n}\nvoid loop() {}\n",
    "NoLib": "#include <NoSuchLibrary.h>\nvoid setup() {}\nvoid loop() {}\n",
    # 40000 bytes of flash: more than the uno's 32256 and the leonardo's 28672; each array is within the
    # compiler's limit on one object.
    "TooBig": "const char a[20000] PROGMEM = {1};\nconst char b[20000] PROGMEM = {2};\n"
              "void setup() { Serial.print(pgm_read_byte(&a[millis() % 20000]) +\n"
              "                            pgm_read_byte(&b[millis() % 20000])); }\n"
              "void loop() {}\n",
    "NotOnUno": "void setup() {}\nvoid loop() {}\n",
    "UsesBroken": "#include <Broken.h>\nvoid setup() { broken(); }\nvoid loop() {}\n",
    "Good": "void setup() { pinMode(13, OUTPUT); }\nvoid loop() {}\n",
}
BOARDS = {"uno": "arduino:avr:uno", "leonardo": "arduino:avr:leonardo"}


class CiBuild:
    def __init__(self, root: Path):
        self.workspace = root / "workspace"
        for name, text in SKETCHES.items():
            folder = self.workspace / "sketches" / name
            folder.mkdir(parents=True)
            (folder / f"{name}.ino").write_text(text)
        (self.workspace / "sketches" / "NotOnUno" / ".uno.test.skip").write_text("")
        broken = self.workspace / "libs" / "Broken"
        (broken / "src").mkdir(parents=True)
        (broken / "library.properties").write_text("name=Broken\nversion=1.0\n")
        (broken / "src" / "Broken.h").write_text("void broken();\n")
        (broken / "src" / "Broken.cpp").write_text("void broken() { this is not C++ }\n")
        self.junit = root / "reports" / "junit.xml"
        self.summary = root / "summary.md"
        self.summary.write_text("# an earlier step's summary\n")


@pytest.fixture(scope="module")
def ci_build(tmp_path_factory) -> CiBuild:
    build = CiBuild(tmp_path_factory.mktemp("ci"))
    with pytest.MonkeyPatch.context() as env:  # the build's process inherits these
        env.setenv("GITHUB_ACTIONS", "true")
        env.setenv("GITHUB_WORKSPACE", str(build.workspace))
        env.setenv("GITHUB_STEP_SUMMARY", str(build.summary))
        build.proc = run_cli("compile-many", "--board", "uno", "--board", "leonardo", "--sketch-jobs", "2",
                             "--framework-jobs", "1", "-o", str(build.workspace.parent / "out"),
                             "--library-dir", str(build.workspace / "libs"),
                             "--junit", str(build.junit), str(build.workspace / "sketches"))
    return build


@needs_toolchain
def test_junit_holds_one_suite_per_board_and_the_right_result_per_target(ci_build):
    assert ci_build.proc.returncode == 1, ci_build.proc.stderr
    suites = list(JUnitXml.fromfile(str(ci_build.junit)))
    assert [s.name for s in suites] == list(BOARDS.values())
    for suite, board in zip(suites, BOARDS):
        outcomes = {}
        for case in suite:
            assert case.classname == board
            outcomes[case.name] = type(case.result[0]).__name__ if case.result else "passed"
        skipped = "Skipped" if board == "uno" else "passed"
        assert outcomes == {"Syntax": "Failure", "NoLib": "Failure", "TooBig": "Failure", "NotOnUno": skipped,
                            "UsesBroken": "Failure", "Good": "passed"}
        assert (suite.tests, suite.failures, suite.skipped, suite.errors) == (6, 4, int(board == "uno"), 0)
        assert suite.time == pytest.approx(sum(case.time for case in suite), abs=0.01) and suite.time > 0
    uno = {case.name: case for case in suites[0]}
    failure = uno["Syntax"].result[0]
    assert "expected" in failure.message
    assert failure.message.startswith(f"{ci_build.workspace}/sketches/Syntax/Syntax.ino:3:")
    assert "Syntax/Syntax.ino:3:1: error:" in failure.text and "full log: " in failure.text
    assert "NoSuchLibrary.h" in uno["NoLib"].result[0].message
    assert ".uno.test.skip" in uno["NotOnUno"].result[0].message
    assert uno["UsesBroken"].result[0].message.startswith("library Broken failed to compile; see ")


@needs_toolchain
def test_github_annotations_name_the_users_file_and_line_after_the_build(ci_build):
    out = ci_build.proc.stdout.splitlines()
    commands = [i for i, line in enumerate(out) if line.startswith("::")]
    summary_line = next(i for i, line in enumerate(out) if re.match(r"12 sketches for 2 boards", line))
    assert commands and min(commands) > summary_line  # after every progress line, none between them
    errors = [line for line in out if line.startswith("::error ")]
    for board in BOARDS:
        assert any(re.fullmatch(rf"::error file=sketches/Syntax/Syntax\.ino,line=3,col=\d+,title={board} Syntax::"
                                r"expected .* before .*", line) for line in errors), errors
        assert any(line.startswith("::error file=sketches/NoLib/NoLib.ino,line=1,col=") and
                   f"title={board} NoLib::NoSuchLibrary.h: No such file or directory" in line for line in errors)
        # A link that overflows the flash names no source line: its first error stands alone.
        assert any(line.startswith(f"::error title={board} TooBig::") for line in errors), errors
        assert any(line.startswith(f"::error title={board} UsesBroken::library Broken failed to compile")
                   for line in errors), errors
        assert f"::group::{board} Syntax" in out and f"::group::{board} Good" not in out
    assert out.count("::endgroup::") == 8


@needs_toolchain
def test_the_job_summary_is_appended_with_one_row_per_board(ci_build):
    text = ci_build.summary.read_text()
    assert text.startswith("# an earlier step's summary\n")
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| arduino:avr:")]
    assert [[cell.strip() for cell in row] for row in rows] == [["arduino:avr:uno", "1", "4", "1", "0"],
                                                               ["arduino:avr:leonardo", "2", "4", "0", "0"]]
    # The user's file, relative to the workspace: not the `#line` name the compiler read.
    assert re.search(r"^\| uno \| Syntax \| sketches/Syntax/Syntax\.ino:3:1: error: ", text, re.MULTILINE)
    assert re.search(r"^\| leonardo \| Good \| \d+ / 28672 \(\d+\.\d%\) \| \d+ / 2560 ", text, re.MULTILINE)


@needs_toolchain
def test_annotations_none_prints_no_workflow_command(ci_build, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    proc = run_cli("compile-many", "--board", "uno", "--annotations", "none", "-o", str(tmp_path / "out"),
                   str(ci_build.workspace / "sketches" / "Syntax"))
    assert proc.returncode == 1
    assert "Syntax" in proc.stdout and not [line for line in proc.stdout.splitlines() if line.startswith("::")]
    assert not (tmp_path / "summary.md").exists()


def test_workflow_commands_escape_messages_and_properties():
    line = github.command("error", "100% sure: a\r\nb", file="dir,x/a:b.ino", line=3, col=None, title="uno: x")
    assert line == "::error file=dir%2Cx/a%3Ab.ino,line=3,title=uno%3A x::100%25 sure: a%0D%0Ab\n"
    assert github.command("endgroup", "") == "::endgroup::\n"


def _result(tmp_path: Path, **fields) -> SketchResult:
    values = dict(sketch="S", id="S", path=str(tmp_path / "ws" / "S"), status="failed", seconds=0.5,
                  out_dir=str(tmp_path / "out" / "uno" / "sketches" / "S"), log=str(tmp_path / "S.log"),
                  board="arduino:avr:uno", board_id="uno", error="boom")
    return SketchResult(**{**values, **fields})


def _report(*results: SketchResult) -> BuildReport:
    return BuildReport(board="", exit_code=1, stage1_cache_key="", stage1_cache="off", peak_rss_mb=0.0,
                       phases=(Phase("total", 0.0, 1.0),), sketches=results, boards=("arduino:avr:uno",))


def test_a_log_cannot_issue_workflow_commands(tmp_path):
    result = _result(tmp_path)
    log = "$ avr-g++ x\n::error::forged\n::add-mask::x\n"
    text = github.annotations(_report(result), {result.log: log}, None)
    stop = re.search(r"^::stop-commands::(\w+)$", text, re.MULTILINE)
    assert stop and text.index("::error::forged") > stop.end()
    assert text.index(f"::{stop[1]}::") > text.index("::add-mask::x")
    assert stop[1] not in log


def test_diagnostics_are_mapped_to_the_users_files(tmp_path):
    result = _result(tmp_path)
    out, ws = tmp_path / "out" / "uno", tmp_path / "ws"
    log = ("S/S.ino:3:1: error: expected ';'\n"
           "sketches/S/build/sketch/helper.cpp:2:25: warning: unused variable\n"
           f"{out}/sketches/S/build/sketch/sub/x.h:7:1: error: absolute copy\n"
           "sketches/S/build/sketch/S.ino.cpp:1:1: error: in the merged file\n"
           "../../lib/L/src/L.h:1:30: fatal error: in a library\n"
           "/tmp/cc1.ltrans0.o:5: undefined reference to `f'\n"
           "# error: S/S.ino:3:1: error: expected ';'\n")
    found = diagnostics.parse(log)
    assert [(diagnostics.user_path(d.path, result), d.line, d.column, d.severity) for d in found] == [
        (str(ws / "S" / "S.ino"), 3, 1, "error"),
        (str(ws / "S" / "helper.cpp"), 2, 25, "warning"),
        (str(ws / "S" / "sub" / "x.h"), 7, 1, "error"),
        (str(out / "sketches" / "S" / "build" / "sketch" / "S.ino.cpp"), 1, 1, "error"),
        (str(tmp_path / "lib" / "L" / "src" / "L.h"), 1, 30, "error"),
        ("/tmp/cc1.ltrans0.o", 5, None, "error")]
    assert diagnostics.in_workspace(str(ws / "S" / "S.ino"), str(ws)) == "S/S.ino"
    assert diagnostics.in_workspace(str(tmp_path / "lib" / "L.h"), str(ws)) == str(tmp_path / "lib" / "L.h")


def test_junit_survives_what_a_log_may_hold(tmp_path):
    failed = _result(tmp_path, error='a "quoted" <error> & more')
    skipped = _result(tmp_path, id="T", status="skipped", error="excluded", seconds=0.0)
    lost = _result(tmp_path, id="U", status="not built", error="lost the scheduler")
    log = "ctrl \x01 <&> \udcff\n" + "".join(f"line {n}\n" for n in range(100))
    path = tmp_path / "junit.xml"
    path.write_text(junit.to_xml(_report(failed, skipped, lost), {failed.log: log}))
    suite = next(iter(JUnitXml.fromfile(str(path))))
    cases = {case.name: case.result[0] for case in suite}
    assert isinstance(cases["S"], Failure) and cases["S"].message == failed.error
    assert cases["S"].text.startswith("ctrl \ufffd <&> \ufffd\nline 0\n") and "... 41 more lines\n" in cases["S"].text
    assert isinstance(cases["T"], Skipped) and isinstance(cases["U"], Error)
    assert (suite.tests, suite.failures, suite.skipped, suite.errors) == (3, 1, 1, 1)
