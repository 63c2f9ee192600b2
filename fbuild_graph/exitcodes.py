"""The process exit codes, in one place: the CLI returns them, results.json records them, CI reads them."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0  # every sketch built
    FAILED = 1  # a sketch failed (it says why in its result)
    USAGE = 2  # usage or configuration error: one line on stderr naming what to fix
    SUPERSEDED = 3  # a newer run of the same --group took over
    INTERRUPTED = 130  # Ctrl-C or SIGTERM: finished sketches keep their results
