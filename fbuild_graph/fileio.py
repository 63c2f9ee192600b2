"""Every file fbuild-graph writes appears whole or not at all: written under a temporary name unique to the
process and thread, then renamed into place. An interrupted build leaves no half-written file that a
later build or a reader would trust."""

from __future__ import annotations

import os
import threading
from typing import Union


def write_atomic(path: str, data: Union[str, bytes]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.{threading.get_ident()}"
    if isinstance(data, bytes):
        with open(tmp, "wb") as f:
            f.write(data)
    else:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(data)
    os.replace(tmp, path)
