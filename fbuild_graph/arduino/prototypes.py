"""Generate function prototypes for a merged Arduino sketch, as arduino-builder does.

Sketch authors may call a function before its definition; the IDE makes that
legal C++ by inserting prototypes for every function defined in the .ino files.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

import tree_sitter_cpp
from tree_sitter import Language, Node, Parser

from fbuild_graph.fileio import source_bytes, source_text

__all__ = ["add_prototypes"]

# The filename is kept quoted and verbatim so escapes (Windows paths) survive unchanged.
_LINE_DIRECTIVE = re.compile(r'[ \t]*#[ \t]*line[ \t]+(\d+)(?:[ \t]+("(?:[^"\\]|\\.)*"))?')


@functools.cache
def _parser() -> Parser:
    return Parser(Language(tree_sitter_cpp.language()))


def add_prototypes(merged: str) -> str:
    """Insert prototypes for the sketch's top-level functions before the first one.

    ``merged`` is the merged sketch: ``#include <Arduino.h>`` then, for each .ino,
    ``#line 1 "PATH"`` and the file's text. Each prototype is preceded by a
    ``#line`` naming where its function is defined, and a final ``#line`` restores
    the numbering of the code that follows, so diagnostics point into the .ino files.

    Rules:

    * Candidates are top-level function definitions with a return type (so macros
      such as ``ISR(vect) {...}`` are skipped) whose name is a plain identifier
      (no ``Foo::bar``, operators or templates); ``char *f()`` and ``int &f()`` count.
    * The prototypes go just before the first candidate. Functions defined inside a preprocessor
      conditional get theirs inside that branch, before its first function: the branches the board's
      macros leave out take their prototypes with them, as arduino-builder, which runs ctags on the
      preprocessed sketch, generates none for them.
    * A function gets no prototype if a top-level declaration of the same name
      comes before that insertion point: only there can a prototype help, and a
      later declaration merely duplicates ours, which C++ allows.
    * A function with default arguments gets none either, since C++ forbids
      repeating a default argument in the definition that follows.
    * The prototype is the definition's text up to its body, comments dropped,
      whitespace collapsed to single spaces, with ``;`` appended.

    Without any prototype to add, ``merged`` is returned unchanged.
    """
    source = source_bytes(merged)
    origins = _origins(merged)
    insertions = []  # (byte offset, text), one per scope that gets prototypes
    declared: set[str] = set()
    for scope in _scopes(_parser().parse(source).root_node):
        insertion = _scope_prototypes(scope, source, origins, declared)
        if insertion:
            insertions.append(insertion)
    for at, text in sorted(insertions, reverse=True):
        source = source[:at] + source_bytes(text) + source[at:]
    return source_text(source) if insertions else merged


_CONDITIONALS = ("preproc_if", "preproc_ifdef", "preproc_elif", "preproc_elifdef", "preproc_else")
_CONDITION_FIELDS = ("condition", "name", "alternative")


def _scopes(node: Node) -> Iterator[list[Node]]:
    """The top level, then each branch of each preprocessor conditional in it (and in them), as lists of
    the nodes that branch holds. arduino-builder's ctags sees only the branches the board's macros select;
    prototypes placed inside their own branch vanish with the branches it does not select."""
    fields = {id(child) for name in _CONDITION_FIELDS for child in node.children_by_field_name(name)}
    body = [child for child in node.children if id(child) not in fields and child.is_named]
    yield body
    for child in node.children:
        if child.type in _CONDITIONALS:
            yield from _scopes(child)


def _scope_prototypes(nodes: list[Node], source: bytes, origins: list[tuple[int, str]],
                      declared: set[str]) -> tuple[int, str] | None:
    """Where and what to insert for the functions defined in one scope; `declared` gathers the names
    declared so far, in source order."""
    candidates: list[tuple[Node, Node]] = []
    for node in nodes:
        if node.type == "declaration" and not candidates:
            for declarator in node.children_by_field_name("declarator"):
                if (function := _function_declarator(declarator)) is not None:
                    declared.add(_name(function))
        elif node.type == "function_definition" and node.child_by_field_name("type"):
            body = node.child_by_field_name("body")
            function = _function_declarator(node.child_by_field_name("declarator"))
            if function is not None and body is not None and body.type == "compound_statement":
                candidates.append((node, function))
    block = []
    for node, function in candidates:
        if _name(function) in declared or _has_default_arguments(function):
            continue
        block += [_line_directive(*origins[node.start_point.row]), _prototype(node, source)]
    if not block:
        return None
    first = candidates[0][0]
    block.append(_line_directive(*origins[first.start_point.row]))
    # Directives must start a line: break it if the definition shares one with earlier code.
    return first.start_byte, ("\n" if first.start_point.column else "") + "\n".join(block) + "\n"


def _function_declarator(declarator: Node | None) -> Node | None:
    """The function declarator of a plain named function, else None."""
    # A pointer or reference return type wraps the function declarator.
    while declarator is not None and declarator.type in ("pointer_declarator", "reference_declarator"):
        declarator = declarator.named_children[-1]
    if declarator is None or declarator.type != "function_declarator":
        return None
    name = declarator.child_by_field_name("declarator")
    return declarator if name is not None and name.type == "identifier" else None


def _name(function: Node) -> str:
    return function.child_by_field_name("declarator").text.decode()


def _has_default_arguments(function: Node) -> bool:
    parameters = function.child_by_field_name("parameters")
    return any(p.type == "optional_parameter_declaration" for p in parameters.named_children)


def _prototype(definition: Node, source: bytes) -> str:
    body = definition.child_by_field_name("body")
    # Comments must go: once lines are joined, a `//` comment would swallow the rest.
    parts, start = [], definition.start_byte
    for comment in _comments(definition, body):
        parts.append(source[start : comment.start_byte])
        start = comment.end_byte
    parts.append(source[start : body.start_byte])
    return " ".join(source_text(b" ".join(parts)).split()) + ";"


def _comments(node: Node, body: Node) -> Iterator[Node]:
    """Comment nodes inside ``node`` that precede ``body``, in order."""
    for child in node.children:
        if child.start_byte >= body.start_byte:
            return
        if child.type == "comment":
            yield child
        else:
            yield from _comments(child, body)


def _origins(text: str) -> list[tuple[int, str]]:
    """For each row of ``text``, the line number and quoted file name the compiler sees."""
    origins = []
    line, file = 1, ""
    for row in text.split("\n"):
        origins.append((line, file))
        if match := _LINE_DIRECTIVE.match(row):
            line, file = int(match[1]), match[2] or file
        else:
            line += 1
    return origins


def _line_directive(line: int, file: str) -> str:
    return f"#line {line} {file}".rstrip()
