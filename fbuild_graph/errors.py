"""The one error base class: a user-facing problem that ends the run with a one-line message."""

from __future__ import annotations


class FbuildError(Exception):
    """Bad input or configuration: printed as one line, exit code 2, never a traceback.

    The message names the thing at fault and what to do about it.
    """

    exit_code = 2
