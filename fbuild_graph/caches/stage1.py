"""The stage-1 cache: find a unit's entry by what its compiles read, and store it after it built.

Under the unit's base key (see fingerprint.py) the READS namespace holds a read set: the names of the
files the unit's compiles read. Hashing the base key with the current digest of each of those files gives
the key of the STAGE1 entry to look for, and of the next read set: a build whose compiles read files the
first set does not list (an edited header now includes another) stores its own set there, so the chain
grows only when what is read changes, not when content does. Entries are immutable (entries.py), which is
why a changed set is chained rather than replaced.

Why it is sound: an entry is stored under a read set that lists every file the build read (a superset
does no harm), so a hit means every one of those files has the content it had when the entry was made.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Mapping, Optional, Sequence

from fbuild_graph.caches import fingerprint
from fbuild_graph.caches.cache import Cache, Hit
from fbuild_graph.caches.fingerprint import Unit

STAGE1 = "stage1"
READS = "stage1-reads"
READS_FILE = "reads.json"
# Read sets chained under one base key before the unit is simply rebuilt: a bound against a layer whose
# sets never settle, far above what edits produce.
MAX_CHAIN = 8


def restore_all(store: Cache, units: Sequence[Unit]) -> dict[str, str]:
    """Put every cached unit's files in place (its board's OUT/stage1); owner -> where they came from."""
    restored = {}
    for unit in units:
        found = restore(store, unit, os.path.join(unit.cwd, "stage1"))
        if found is not None:
            restored[unit.owner] = f"{found[0].layer} {found[1]}"
    return restored


def state(store: Cache, units: Sequence[Unit], restored: Mapping[str, str]) -> str:
    """What results.json says of stage 1: off, hit (every unit from the cache), miss (none) or partial."""
    if store.mode == "off" or not units:
        return "off"
    if len(restored) == len(units):
        return "hit"
    return "partial" if restored else "miss"


def restore(store: Cache, unit: Unit, dest: str) -> Optional[tuple[Hit, str]]:
    """Put the unit's files under dest from the entry whose read set matches what is on disk now; the hit
    and the entry's key, or None."""
    node = unit.key
    for _ in range(MAX_CHAIN):
        listed = _read_set(store, node)
        if listed is None:
            return None
        key = fingerprint.entry_key(node, fingerprint.current_digests(listed, unit.roots, unit.cwd))
        hit = store.get(STAGE1, key, dest)
        if hit is not None:
            return hit, key
        node = key
    return None


def store(cache: Cache, unit: Unit, produced: Mapping[str, str]) -> bool:
    """Store the unit's outputs under the read set its compiles' depfiles list, each file only with the
    content `produced` says its step saw when its tools exited (path -> sha256). Nothing is stored when a
    depfile is missing (what it read is unknown), an output has no such digest (this build did not make
    it), or the cache is not writable."""
    read = fingerprint.read_set(unit)
    expected = {rel: produced.get(path) for rel, path in unit.outputs}
    if read is None or None in expected.values():
        return False
    files = {**dict(unit.outputs), **{rel: path for rel, path in unit.said if path in produced}}
    expected.update((rel, produced[path]) for rel, path in unit.said if path in produced)
    node = unit.key
    for _ in range(MAX_CHAIN):
        listed = _read_set(cache, node)
        if listed is None:
            if not _put_read_set(cache, node, sorted(read)):
                return False
            listed = _read_set(cache, node)  # another build may have stored its own set first: use that one
            if listed is None:
                return False
        key = fingerprint.entry_key(node, fingerprint.current_digests(listed, unit.roots, unit.cwd))
        if set(read) <= set(listed):
            return cache.put(STAGE1, key, files, expected=expected)
        node = key
    return False


def _read_set(cache: Cache, node: str) -> Optional[list[str]]:
    with tempfile.TemporaryDirectory(prefix="fbuild-graph-reads-") as tmp:
        if cache.get(READS, node, tmp) is None:
            return None
        try:
            with open(os.path.join(tmp, READS_FILE), encoding="utf-8") as f:
                names = json.load(f)
        except (OSError, ValueError):
            return None
    return names if isinstance(names, list) and all(isinstance(n, str) for n in names) else None


def _put_read_set(cache: Cache, node: str, names: list[str]) -> bool:
    with tempfile.TemporaryDirectory(prefix="fbuild-graph-reads-") as tmp:
        path = os.path.join(tmp, READS_FILE)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(names, f, indent=0)
        return cache.put(READS, node, {READS_FILE: path})
