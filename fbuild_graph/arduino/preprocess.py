"""Sketch preprocessing, as the Arduino IDE does it: merge the `.ino` files into one C++ file with
`#include <Arduino.h>`, `#line` directives and generated prototypes, and copy the sketch's other files
beside it (a `#include "x.h"` in the `.ino` then finds them).

Runs inside the `preprocess` action on a worker, and as `python -m fbuild_graph.preprocess MAIN_INO DEST`
from an exported build.ninja.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from fbuild_graph.arduino import sketch as sketches
from fbuild_graph.fileio import source_bytes, source_text, write_atomic
from fbuild_graph.arduino.prototypes import add_prototypes


_BOM = "\ufeff"


# What makes the file name part of the firmware: `__FILE__` itself, or `assert`, which prints it.
_NAMES_ITS_FILE = re.compile(r"\b(?:__FILE__|assert)\b")
_INCLUDES_ARDUINO = re.compile(r'^\s*#\s*include\s*[<"]Arduino\.h[>"]', re.MULTILINE)


def merge(inos: tuple[str, ...]) -> str:
    """`#line` names each file as `SKETCH/FILE.ino`: errors name the file and line, and the merged source is
    the same wherever the sketch and the output folder live, so compiler caches hit in any checkout. A sketch
    whose firmware holds its file name (`__FILE__`, `assert`) gets the absolute path arduino-builder writes
    there instead, and gives up those hits. A UTF-8 byte order mark starting a file is dropped: gcc skips one
    only at the start of the merged file."""
    texts = [source_text(Path(ino).read_bytes()).removeprefix(_BOM) for ino in inos]
    # The words looked for first: a regular expression's search of a whole file costs ten times more.
    located = any(("__FILE__" in text or "assert" in text) and _NAMES_ITS_FILE.search(text) for text in texts)
    # As arduino-builder: the include is added only when the main file does not make it itself.
    parts = [] if "Arduino.h" in texts[0] and _INCLUDES_ARDUINO.search(texts[0]) else ["#include <Arduino.h>\n"]
    for ino, text in zip(inos, texts):
        name = os.path.abspath(ino) if located else os.path.relpath(ino, os.path.dirname(os.path.dirname(ino)))
        parts.append(f"#line 1 {c_string(name)}\n{text}" + ("" if text.endswith("\n") else "\n"))
    return "".join(parts)


def c_string(text: str) -> str:
    """`text` as a C string literal: a sketch named `a"b` must not end the `#line` file name early."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(ch if ch >= " " and ch != "\x7f" else f"\\{ord(ch):03o}" for ch in escaped) + '"'


def preprocess(main_ino: str, dest: str) -> str:
    """Write the merged sketch and copies of its files under `dest`; return the merged file's path."""
    sk = sketches.load(Path(main_ino))
    os.makedirs(dest, exist_ok=True)
    for rel in sk.files:
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(sk.path, rel), target)
    out = os.path.join(dest, sketches.merged_name(sk.name))
    write_atomic(out, source_bytes(add_prototypes(merge(sk.inos))))
    return out


if __name__ == "__main__":
    preprocess(sys.argv[1], sys.argv[2])
