"""A run as JUnit XML, the test report every CI reads (GitLab's `artifacts:reports:junit`, Jenkins, GitHub
test-report actions). Pure: the report and the failed targets' logs in, the document out.

One `testsuite` per board (named by its FQBN), one `testcase` per target (`classname` the board id, `name`
the sketch id). A target's status maps to: ok, a passed case; failed, `failure` (the first error as its
message, an excerpt of its log as text); skipped, `skipped` with the reason; not built, cancelled and
interrupted, `error`: the case could not run, which says nothing against the sketch.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence
from xml.etree import ElementTree

from fbuild_graph.model import BuildReport, SketchResult, SketchStatus

# Lines of a log's excerpt: the diagnostics come first in a compile's output, and a CI's page shows the
# text in full, so the rest stays in the log the excerpt names.
EXCERPT_LINES = 60

# XML 1.0 has no escape for these: a compiler echoing a source line with a control character would
# otherwise make the whole file unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def to_xml(report: BuildReport, logs: Mapping[str, str]) -> str:
    """`logs`: the text of failed targets' logs by path (a missing one gives an empty excerpt)."""
    root = ElementTree.Element("testsuites", name="fbuild-graph")
    for fqbn in report.boards or (report.board,):
        ours = [r for r in report.sketches if r.board == fqbn]
        suite = ElementTree.SubElement(root, "testsuite", name=fqbn, **_counts(ours))
        for result in ours:
            _case(suite, result, logs.get(result.log, ""))
    root.attrib.update(_counts(report.sketches))
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + _clean(ElementTree.tostring(root, encoding="unicode")) + "\n"


def _counts(results: Sequence[SketchResult]) -> dict[str, str]:
    failed = sum(r.status == SketchStatus.FAILED for r in results)
    skipped = sum(r.status == SketchStatus.SKIPPED for r in results)
    errors = sum(r.status not in (SketchStatus.OK, SketchStatus.FAILED, SketchStatus.SKIPPED) for r in results)
    return {"tests": str(len(results)), "failures": str(failed), "errors": str(errors), "skipped": str(skipped),
            "time": _seconds(sum(r.seconds for r in results))}


def _case(suite: ElementTree.Element, result: SketchResult, log: str) -> None:
    case = ElementTree.SubElement(suite, "testcase", classname=result.board_id, name=result.id,
                                  time=_seconds(result.seconds))
    error = result.error or result.status
    if result.status == SketchStatus.FAILED:
        ElementTree.SubElement(case, "failure", message=error, type="build").text = excerpt(log, result.log)
    elif result.status == SketchStatus.SKIPPED:
        ElementTree.SubElement(case, "skipped", message=error)
    elif result.status != SketchStatus.OK:
        ElementTree.SubElement(case, "error", message=error, type=result.status)


def excerpt(log: str, path: str) -> str:
    """What the tools said (no command lines: they are long and the same for every sketch), up to
    EXCERPT_LINES lines, then where the whole log is."""
    said = [line for line in log.splitlines() if not line.startswith("$ ")]
    cut = f"... {len(said) - EXCERPT_LINES} more lines\n" if len(said) > EXCERPT_LINES else ""
    return "".join(f"{line}\n" for line in said[:EXCERPT_LINES]) + cut + f"full log: {path}\n"


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
