"""Arduino platform properties: parse `boards.txt`/`platform.txt`, layer them, expand `{key}` strictly.

The format is the one the Arduino platform specification describes: `key=value` lines, `#` comments,
values that refer to other keys as `{key}`. Expansion is late (per command, once the file-specific keys
such as `source_file` are set) and strict: a placeholder left unresolved is an error, because a command
with a literal `{build.foo}` in it fails later with a message nobody can trace back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Mapping

from .errors import FbuildError

_PLACEHOLDER = re.compile(r"\{([^{}\s]+)\}")
_MAX_DEPTH = 20


def parse(text: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        props[key.strip()] = value.strip()
    return props


def load(path: Path) -> dict[str, str]:
    try:
        return parse(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        raise FbuildError(f"cannot read {path}: {exc.strerror}") from None


def subtree(props: Mapping[str, str], prefix: str) -> dict[str, str]:
    """The keys under `prefix.`, with the prefix removed (`uno.build.mcu` -> `build.mcu`)."""
    dot = prefix + "."
    return {k[len(dot):]: v for k, v in props.items() if k.startswith(dot)}


def layer(*layers: Mapping[str, str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for one in layers:
        merged.update(one)
    return merged


def expand(template: str, props: Mapping[str, str], *, what: str) -> str:
    """Expand every `{key}` recursively; an unknown key raises FbuildError naming `what` and the key."""
    missing: list[str] = []

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in props:
            return props[key]
        missing.append(key)
        return match.group(0)

    text = template
    for _ in range(_MAX_DEPTH):
        new = _PLACEHOLDER.sub(sub, text)
        if missing:
            raise FbuildError(
                f"{what}: property {{{missing[0]}}} is not defined by the platform, board or "
                f"--build-property; define it with --build-property {missing[0]}=VALUE"
            )
        if new == text:
            return new
        text = new
    raise FbuildError(f"{what}: properties refer to each other in a loop: {template}")


def split_command(command: str) -> list[str]:
    """Split a recipe into argv the way arduino-cli does (SplitQuotedString with `"` and `'`).

    A word that starts with a quote runs until a word that ends with the same quote; quotes inside a
    word are kept (`'-DUSB_MANUFACTURER="Unknown"'` gives `-DUSB_MANUFACTURER="Unknown"`).
    """
    argv: list[str] = []
    quote = ""
    pending = ""
    for word in command.split(" "):
        if not quote:
            if word and word[0] in "\"'":
                quote, word, pending = word[0], word[1:], ""
            else:
                if word:
                    argv.append(word)
                continue
        if word and word[-1] == quote:
            argv.append(pending + word[:-1])
            quote = ""
        else:
            pending += word + " "
    if quote:
        raise FbuildError(f"unterminated {quote} quote in recipe: {command}")
    return argv


def quoted(paths: Iterable[str], prefix: str = "") -> str:
    """Join paths as arduino-cli does for `{includes}` and `{object_files}`: each one in double quotes."""
    return " ".join(f'"{prefix}{p}"' for p in paths)
