"""Arduino platform properties: parse `boards.txt`/`platform.txt`, layer them, expand `{key}` strictly.

The format is the one the Arduino platform specification describes: `key=value` lines, `#` comments,
values that refer to other keys as `{key}`. Expansion is late (per command, once the file-specific keys
such as `source_file` are set) and strict: a placeholder left unresolved is an error, because a command
with a literal `{build.foo}` in it fails later with a message nobody can trace back.

Commands are built from tokens, never from pasted text (`expand_command`): the platform's own text is
expanded and split into words, and only then is each data value (a path, a file name) put inside its
word, never split and never expanded again. A sketch folder named `" -wrapper sh,-c,id"` stays one path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence, Union

from fbuild_graph.errors import FbuildError

_PLACEHOLDER = re.compile(r"\{([^{}\s]+)\}")
_MAX_DEPTH = 20
# Stands for a data key inside the platform's text until the text is split: it has no space, quote or
# brace, so neither splitting nor expansion can touch it.
_SLOT = re.compile("\x00([^\x00]*)\x00")

# A data value: one argv word, or (`includes`, `object_files`) one word per item.
Value = Union[str, tuple[str, ...]]


# The suffix of keys meant for this operating system (`tools.x.cmd.linux=...`) and of those meant for others.
OS = "linux"
_OTHER_OS = (".windows", ".macosx", ".freebsd")


def parse(text: str) -> dict[str, str]:
    """`key=value` lines. A key suffixed `.linux` also sets its plain key, wherever it stands in the file,
    as arduino-cli's properties loader does; keys of other systems are kept but name nothing we run."""
    props: dict[str, str] = {}
    for_this_os: dict[str, str] = {}
    # A NUL can never reach a command (exec refuses it), and commands use it to mark data words.
    for raw in text.replace("\x00", "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        props[key] = value
        if key.endswith(f".{OS}"):
            for_this_os[key[: -len(OS) - 1]] = value
    props.update(for_this_os)
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


def references(value: str) -> list[str]:
    """The keys a value names as `{key}`."""
    return _PLACEHOLDER.findall(value)


def truthy(value: str) -> bool:
    return value.strip().lower() in ("true", "yes", "1", "on")


def value(props: Mapping[str, str], key: str, default: str = "") -> str:
    """The expanded value of `key` (`compiler.path={runtime.tools.avr-gcc.path}/bin/` -> `/usr/bin/`): what
    reads a property to run or check a tool reads it through here, never raw."""
    return expand(props[key], props, what=key) if key in props else default


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


def expand_command(pattern: str, props: Mapping[str, str], data: Mapping[str, Value], *, what: str) -> list[str]:
    """A recipe -> argv. `props` is the platform's text (trusted: a value of several words gives several
    words, as arduino-cli splits it); `data` holds the values that name files, each substituted into
    its own word after splitting, whatever its characters. A list value must stand alone in its word
    (`{includes}`, `"{object_files}"`) and gives one word per item."""
    return fill(command_words(pattern, props, data, what=what), data, what=what)


def command_words(pattern: str, props: Mapping[str, str], keys: Iterable[str], *, what: str) -> list[str]:
    """The recipe's words with every data key (`keys`) left as a slot: what expand_command works out from the
    platform's text alone, the same for every file a recipe is run on."""
    slots = {key: f"\x00{key}\x00" for key in keys}
    return split_command(expand(pattern, {**props, **slots}, what=what))


def fill(words: Sequence[str], data: Mapping[str, Value], *, what: str) -> list[str]:
    """command_words' slots filled with `data`: each value inside its own word."""
    argv: list[str] = []
    for word in words:
        if "\x00" not in word:  # most words are the platform's flags
            argv.append(word)
            continue
        keys = _SLOT.findall(word)
        if len(keys) == 1 and word == f"\x00{keys[0]}\x00" and not isinstance(data[keys[0]], str):
            argv.extend(data[keys[0]])
            continue
        listed = [key for key in keys if not isinstance(data[key], str)]
        if listed:
            raise FbuildError(f"{what}: {{{listed[0]}}} names several files and must be a word of its own "
                              "in the recipe; write it between spaces")
        argv.append(_SLOT.sub(lambda m: data[m.group(1)], word))
    return argv
