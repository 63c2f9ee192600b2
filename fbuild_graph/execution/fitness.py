"""Whether a worker can build for a client: its toolchain works and is the client's toolchain.

A worker that cannot run the tools would fail every step it gets, and each failure would be charged to a
sketch ("core failed to compile") although a healthy worker sits beside it. So the host's fault is kept
apart from the sketch's: `fbuild-graph worker` refuses to join when its toolchain does not compile
(`problem`); on any worker, a task first compares the worker's toolchain identity with the one the client
built its commands and cache keys for (`mismatch`), and a worker whose identity differs, or that cannot
start a tool, leaves the cluster (`leave`): its nanny goes too, so it does not come back, and the scheduler
gives its tasks to the others. If no worker is left for a resource, availability.py says so.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import subprocess
from typing import Mapping, NoReturn, Optional

from attrs import frozen

from fbuild_graph.arduino import properties
from fbuild_graph.arduino import toolchain
from fbuild_graph.execution.availability import LEFT_KEY
from fbuild_graph.errors import FbuildError

logger = logging.getLogger(__name__)
# A translation unit every working compiler turns into an object, in either language.
_PROBE = "int fbuild_graph_probe(void) { return 0; }\n"


@frozen
class Expectation:
    """The toolchain a client planned for: its board's properties (what names the tools) and the identity
    toolchain.identity gave for them on the client."""

    properties: tuple[tuple[str, str], ...]
    identity: str

    @classmethod
    def of(cls, props: Mapping[str, str], identity: Optional[str] = None) -> "Expectation":
        """`identity`: toolchain.identity's for `props`, when known already."""
        return cls(properties=tuple(sorted(props.items())), identity=identity or toolchain.identity(props))


def problem(props: Mapping[str, str]) -> Optional[str]:
    """Why this host cannot run the tools `props` name (one line), or None when they are there and compile."""
    try:
        toolchain.check(props)
    except FbuildError as exc:
        return str(exc)
    mcu = properties.value(props, "build.mcu")
    for language, which in (("c", "c"), ("c++", "cpp")):
        compiler = toolchain.compiler(props, which)
        argv = [compiler, "-x", language, "-c", *([f"-mmcu={mcu}"] if mcu else []), "-o", os.devnull, "-"]
        try:
            proc = subprocess.run(argv, input=_PROBE.encode(), capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot run {compiler}: {exc}"
        if proc.returncode != 0:
            said = "".join(f": {line}" for line in proc.stderr.decode(errors="replace").strip().splitlines()[:1])
            return f"{compiler} cannot compile a one-line {language} file (exit code {proc.returncode}{said})"
    return None


@functools.lru_cache(maxsize=8)
def mismatch(expected: Expectation) -> Optional[str]:
    """Why this worker must not run the steps of a client that expects `expected`, or None. Once per
    worker process and client toolchain: the answer does not change while the worker runs."""
    props = dict(expected.properties)
    try:
        toolchain.check(props)
        here = toolchain.identity(props)
    except FbuildError as exc:
        return str(exc)
    if here == expected.identity:
        return None
    pairs = itertools.zip_longest(here.splitlines(), expected.identity.splitlines(), fillvalue="(nothing)")
    ours, theirs = next((a, b) for a, b in pairs if a != b)
    return f"its toolchain differs from the client's: {ours!r} here, {theirs!r} on the client"


def leave(reason: str) -> NoReturn:
    """Take the Dask worker running this task out of the cluster, for `reason`, and hand the task back to
    the scheduler. Its nanny is closed too, so it is not restarted into the same fault."""
    from distributed import Reschedule, get_worker

    worker = get_worker()
    logger.error("fbuild-graph: worker %s leaves the cluster: %s", worker.name, reason)
    worker.loop.add_callback(_leave, worker, reason)
    raise Reschedule()


async def _leave(worker, reason: str) -> None:
    try:
        await worker.scheduler.set_metadata(keys=[*LEFT_KEY, str(worker.name)], value=reason)
    except OSError:
        pass  # only the explanation is lost; leaving is what matters
    await worker.close(nanny=True, reason=f"fbuild-graph: {reason}")
