"""The one error base class: a user-facing problem that ends the run with a one-line message."""

from __future__ import annotations

import errno

from fbuild_graph.exitcodes import ExitCode


class FbuildError(Exception):
    """Bad input or configuration: printed as one line, exit code 2, never a traceback.

    The message names the thing at fault and what to do about it.
    """

    exit_code = ExitCode.USAGE


_WHAT_TO_DO = {
    errno.ENOSPC: "free space on that disk or pass an --out on another one",
    errno.EDQUOT: "free space on that disk or pass an --out on another one",
    errno.EACCES: "make it readable and writable for this user, or use another path",
    errno.EPERM: "use a path this user may write to",
    errno.EROFS: "use a path on a writable file system",
    errno.ENOTDIR: "a file is where a folder belongs: move it or use another path",
    errno.EISDIR: "a folder is where a file belongs: move it or use another path",
    errno.EEXIST: "something is in the way: move it or use another path",
    errno.ENOENT: "check that the path exists (a link may point nowhere)",
}


def os_error_line(exc: OSError) -> str:
    """An OSError that reached the top, as one line: the path, what the system said, what to do."""
    where = f"{exc.filename}: " if exc.filename is not None else ""
    what = exc.strerror or str(exc)
    return f"{where}{what}; {_WHAT_TO_DO.get(exc.errno, 'check the path and try again')}"
