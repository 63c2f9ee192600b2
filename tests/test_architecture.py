"""The layout shows the architecture: each subpackage imports only from those below it, and nothing imports
the top (build, cli)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "fbuild_graph"
# Lowest first. The shared vocabulary (model, errors, exitcodes, fileio, names) is below every subpackage;
# build, commands and cli are above all.
LAYERS = ["shared", "arduino", "planning", "caches", "execution", "outputs", "analysis", "service", "top"]
TOP = {"build", "commands", "cli", "launch", "__main__"}


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2:
        return parts[1]
    return "top" if parts[-1] in TOP else "shared"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fbuild_graph"):
            # `from fbuild_graph import model`, `from fbuild_graph.arduino import board`: the names are modules.
            names_modules = node.module == "fbuild_graph" or node.module.split(".")[-1] in LAYERS
            found |= {f"{node.module}.{alias.name}" for alias in node.names} if names_modules else {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("fbuild_graph")}
    return found


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        own = LAYERS.index(_layer(module))
        for imported in _imports(path):
            if imported.split(".")[-1] == "__version__":
                continue
            if LAYERS.index(_layer(imported)) > own:
                upward.append(f"{module} imports {imported}")
    assert upward == []
