"""Output folder names from names found in other people's files: a sketch's folder name, a library's
`name=`. Such a name is data: `../../tmp/x` or a name with a newline must never become a path of its own
outside `--out`, nor break a TSV row.
"""

from __future__ import annotations

import hashlib
import re
from typing import Optional

# Path separators and control characters (tabs and newlines break tasks.tsv rows).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")
# Room for a digest and suffixes such as `.log` and `.ino.cpp.o` under the usual 255-byte name limit.
_MAX_BYTES = 100


def is_safe(name: str) -> bool:
    """A single folder name that is neither hidden nor `.`/`..`, and short enough."""
    return bool(name) and not name.startswith(".") and not _UNSAFE.search(name) and len(name.encode()) <= _MAX_BYTES


def digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def folder_name(name: str, identity: Optional[str] = None) -> str:
    """`name` itself when it is safe and needs no tie-breaker; otherwise its safe form plus a digest of
    `identity` (what tells two equal names apart, e.g. a sketch's path) or of the name itself."""
    if identity is None and is_safe(name):
        return name
    safe = _UNSAFE.sub("_", name).lstrip(".").encode("utf-8", "surrogateescape")[:_MAX_BYTES - 9]
    return f"{safe.decode('utf-8', 'ignore')}-{digest(name if identity is None else identity)}"
