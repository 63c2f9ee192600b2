"""Fidelity on real libraries: every example of a user's library folder, built by Debian's arduino-builder (the
reference, one sketch at a time) and by one compile-many run (cold, then warm), compared `.hex` for `.hex`.

    .venv/bin/python benchmarks/fidelity.py ~/Arduino/libraries [--board arduino:avr:uno] [--work DIR]

The library folder is what a user's `~/Arduino/libraries` holds: the libraries under test and their
dependencies beside them. Every `X/X.ino` (or `X.pde`) under `*/examples` is a sketch. Prints, per library:
examples, built by arduino-builder, built by fbuild-graph, identical `.hex`, and every sketch where the two
differ; then the cost of library detection from phases.tsv, cold and warm. The reference builds are kept in
WORK/reference (one JSON line per sketch, reused while the sketch's main file is unchanged): they take most
of the time (about 2-10 s a sketch).
"""

from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ARDUINO_BUILDER = ["arduino-builder", "-compile", "-hardware", "/usr/share/arduino-builder", "-hardware",
                   "/usr/share/arduino/hardware", "-core-api-version", "10819", "-warnings", "none",
                   "-prefs", "compiler.cpp.extra_flags=-DDECIMAL_DIG=__DECIMAL_DIG__"]


def sketches(libraries: Path) -> list[Path]:
    found = []
    for main in sorted(libraries.glob("*/examples/**/*")):
        if main.suffix in (".ino", ".pde") and main.stem == main.parent.name and main.is_file():
            found.append(main)
    return found


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def reference(mains: list[Path], libraries: Path, board: str, work: Path) -> dict[str, dict]:
    """Sketch folder -> {"status", "hex"}: arduino-builder's result, kept in work/reference/index.jsonl."""
    index = work / "reference" / "index.jsonl"
    index.parent.mkdir(parents=True, exist_ok=True)
    known = {}
    if index.is_file():
        for line in index.read_text().splitlines():
            row = json.loads(line)
            known[row["sketch"]] = row
    tools, cache = work / "reference" / "tools", work / "reference" / "cache"
    tools.mkdir(exist_ok=True)
    cache.mkdir(exist_ok=True)
    for i, main in enumerate(mains, 1):
        key = str(main.parent)
        if key in known and known[key]["main"] == digest(main):
            continue
        build = work / "reference" / "build"
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir()
        proc = subprocess.run([*ARDUINO_BUILDER, "-tools", str(tools), "-libraries", str(libraries), "-fqbn", board,
                               "-build-path", str(build), "-build-cache", str(cache), str(main)],
                              capture_output=True, text=True)
        hex_file = build / f"{main.name}.hex"
        row = {"sketch": key, "main": digest(main), "status": "ok" if proc.returncode == 0 else "failed",
               "hex": digest(hex_file) if proc.returncode == 0 else ""}
        known[key] = row
        with open(index, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"[reference {i}/{len(mains)}] {row['status']:6} {main.parent}", file=sys.stderr)
    return known


def fbuild(paths: list[str], libraries: Path, board: str, out: Path, cold: bool) -> dict[str, dict]:
    """Sketch folder -> {"status", "hex"} from one compile-many run, and its phases."""
    if cold:
        shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "fbuild_graph", "compile-many", "--board", board, "--quiet",
                    "--library-dir", str(libraries), "-o", str(out), *(["--cache-mode", "off"] if cold else []),
                    *paths], check=False)
    report = json.loads((out / "results.json").read_text())
    return {s["path"]: {"status": s["status"], "hex": digest(Path(s["out_dir"], "firmware.hex"))}
            for s in report["sketches"]}


def phases(out: Path) -> dict[str, float]:
    with open(out / "phases.tsv", newline="") as f:
        return {row["phase"]: float(row["seconds"]) for row in csv.DictReader(f, delimiter="\t")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("libraries", type=Path, help="a folder of libraries, as ~/Arduino/libraries")
    parser.add_argument("--board", default="arduino:avr:uno")
    parser.add_argument("--work", type=Path, default=Path("fidelity-work"), help="reference builds and outputs")
    args = parser.parse_args()
    libraries, work = args.libraries.resolve(), args.work.resolve()
    mains = sketches(libraries)
    ref = reference(mains, libraries, args.board, work)
    paths = sorted({str(m.parent) for m in mains})
    ours = fbuild(paths, libraries, args.board, work / "out", cold=True)
    cold = phases(work / "out")
    fbuild(paths, libraries, args.board, work / "out", cold=False)
    warm = phases(work / "out")
    detection = json.loads((work / "out" / "results.json").read_text()).get("library_detection", {})

    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    differ = []
    for path in paths:
        lib = os.path.relpath(path, libraries).split(os.sep)[0]
        r, o = ref.get(path, {}), ours.get(path, {})
        row = table[lib]
        row["examples"] += 1
        row["reference ok"] += r.get("status") == "ok"
        row["fbuild-graph ok"] += o.get("status") == "ok"
        same = r.get("status") == o.get("status") and r.get("hex") == o.get("hex")
        row["identical"] += same and r.get("status") == "ok"
        if not same:
            differ.append(f"  {os.path.relpath(path, libraries)}: arduino-builder {r.get('status')}, fbuild-graph "
                          f"{o.get('status')}" + (", .hex differs" if r.get("status") == o.get("status") == "ok" else ""))
    columns = ("examples", "reference ok", "fbuild-graph ok", "identical")
    width = max(map(len, table), default=7)
    print(f"{'library':<{width}}  " + "  ".join(columns))
    for lib, row in sorted(table.items()):
        print(f"{lib:<{width}}  " + "  ".join(f"{row[c]:>{len(c)}}" for c in columns))
    total = sum(table.values(), collections.Counter())
    print(f"{'total':<{width}}  " + "  ".join(f"{total[c]:>{len(c)}}" for c in columns))
    print(f"differences ({len(differ)}):", *differ, sep="\n")
    print(f"library detection: cold {cold.get('libraries', 0):.2f} s, warm {warm.get('libraries', 0):.2f} s "
          f"({detection.get('preprocessor_runs', 0)} preprocessor runs, {detection.get('answers_reused', 0)} "
          "answers reused when warm)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
