"""Controls for large CI runs: --max-failures, --shard, --only-failed; and warnings as arduino-cli has them."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import EXAMPLES, PLATFORM, make_sketch, needs_toolchain, read_tsv, run_cli, target_results
from fbuild_graph.planning import targets

FAILING, GOOD = 10, 2


@pytest.fixture(scope="module")
def stopped_early(tmp_path_factory):
    """Ten sketches that fail and two that build, stopped after two failures."""
    if not PLATFORM.is_dir():
        pytest.skip("needs arduino-core-avr")
    root = tmp_path_factory.mktemp("max-failures")
    for i in range(FAILING):
        make_sketch(root / "sketches", f"bad{i}", f"void setup() {{ missing{i}(); }}\nvoid loop() {{}}\n")
    for i in range(GOOD):
        make_sketch(root / "sketches", f"good{i}", "void setup() {}\nvoid loop() {}\n")
    out = root / "out"
    proc = run_cli("compile-many", "--board", "uno", "--max-failures", "2", "--sketch-jobs", "2", "-o", str(out),
                   str(root / "sketches"))
    return root, out, proc


@needs_toolchain
def test_max_failures_stops_the_run_and_reports_the_rest_not_built(stopped_early):
    root, out, proc = stopped_early
    assert proc.returncode == 1, proc.stderr
    statuses = [s["status"] for s in target_results(out).values()]
    # Targets that finished with the second failure keep their outcome (they ran side by side with it).
    assert 2 <= statuses.count("failed") < FAILING and statuses.count("not built") > 0
    assert statuses.count("failed") + statuses.count("ok") + statuses.count("not built") == FAILING + GOOD
    assert "--max-failures 2 reached" in proc.stderr
    running = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True).stdout.split()
    assert running == []  # no compiler of ours left behind
    for (_, sketch_id), result in target_results(out).items():
        if result["status"] == "not built":
            assert not (out / "sketches" / sketch_id / "firmware.hex").exists()


@needs_toolchain
def test_only_failed_takes_what_did_not_build(stopped_early, tmp_path):
    root, out, _ = stopped_early
    (out / "sketches").mkdir(exist_ok=True)
    proc = run_cli("graph", "--format", "json", "--board", "uno", "--only-failed", str(out), "-o", str(tmp_path / "o"),
                   str(root / "sketches"))
    assert proc.returncode == 0, proc.stderr
    owners = {a["owner"] for a in json.loads(proc.stdout)["actions"] if a["owner"].startswith("sketch:")}
    assert owners == {f"sketch:{sk}" for (_, sk) in target_results(out)}  # every one of them failed or was not built
    missing = run_cli("graph", "--board", "uno", "--only-failed", str(tmp_path / "nowhere"), str(root / "sketches"))
    assert missing.returncode == 2 and "--only-failed" in missing.stderr and len(missing.stderr.splitlines()) == 1


def test_the_shards_cover_every_target_once():
    keys = [(board, f"s{i}") for board in ("uno", "mega") for i in range(20)]
    shares = [targets.shard(keys, k, 3) for k in (1, 2, 3)]
    assert sorted(key for share in shares for key in share) == sorted(keys)
    assert sorted(len(share) for share in shares) == [13, 13, 14]
    assert targets.shard(list(reversed(keys)), 2, 3) == shares[1]  # the order given does not matter


@needs_toolchain
def test_shards_balanced_by_durations_take_about_as_long(big_build):
    seconds = targets.target_seconds(big_build.tasks)
    keys = [("uno", ino.stem) for ino in EXAMPLES]
    assert set(keys) <= set(seconds)
    sums = [sum(seconds[key] for key in targets.shard(keys, k, 3, seconds)) for k in (1, 2, 3)]
    assert max(sums) <= 1.15 * min(sums), sums


@needs_toolchain
def test_a_shard_builds_its_share_only(tmp_path):
    def share(k: int) -> set[str]:
        proc = run_cli("graph", "--format", "json", "--board", "uno", "--board", "leonardo", "--shard", f"{k}/3",
                       "-o", str(tmp_path / f"o{k}"), str(PLATFORM / "libraries"))
        assert proc.returncode == 0, proc.stderr
        return {a["owner"] for a in json.loads(proc.stdout)["actions"] if "/sketch:" in a["owner"]}

    shares = [share(k) for k in (1, 2, 3)]
    assert sum(map(len, shares)) == len(set().union(*shares)) == 2 * len(EXAMPLES)


WARNS = "int twice(int x) { int unused; return 2 * x; }\nvoid setup() { twice(1); }\nvoid loop() {}\n"


@needs_toolchain
def test_warnings_are_counted_the_same_when_nothing_ran_again(tmp_path):
    sketch = make_sketch(tmp_path / "sketches", "warns", '#include <Noisy.h>\n' + WARNS)
    lib = tmp_path / "libs" / "Noisy"
    (lib / "src").mkdir(parents=True)
    (lib / "src" / "Noisy.h").write_text("int noisy();\n")
    (lib / "src" / "Noisy.cpp").write_text("int noisy() { int unused_too; return 1; }\n")
    (lib / "library.properties").write_text("name=Noisy\nversion=1.0\n")
    args = ("compile-many", "--board", "uno", "--warnings", "all", "--library-dir", str(tmp_path / "libs"),
            str(sketch))
    cold = run_cli(*args, "-o", str(tmp_path / "cold"))
    assert cold.returncode == 0, cold.stderr
    assert target_results(tmp_path / "cold")[("uno", "warns")]["warnings"] == 2  # its own and its library's
    warm = run_cli(*args, "-o", str(tmp_path / "cold"))  # every action up to date
    from_cache = run_cli(*args, "-o", str(tmp_path / "elsewhere"))  # the library's unit from the stage-1 cache
    assert warm.returncode == from_cache.returncode == 0
    assert "stage1_cache" in json.loads((tmp_path / "elsewhere" / "results.json").read_text())
    assert [t["status"] for t in read_tsv(tmp_path / "elsewhere" / "tasks.tsv") if "Noisy" in t["key"]] == ["cached"]
    for out in ("cold", "elsewhere"):
        assert target_results(tmp_path / out)[("uno", "warns")]["warnings"] == 2, out
    strict = run_cli(*args, "--warnings-as-errors", "-o", str(tmp_path / "cold"))
    result = target_results(tmp_path / "cold")[("uno", "warns")]
    assert strict.returncode == 1 and result["status"] == "failed"
    assert result["error"].startswith("2 warnings and --warnings-as-errors: ") and "unused" in result["error"]
    quiet = run_cli("compile-many", "--board", "uno", "--library-dir", str(tmp_path / "libs"), str(sketch),
                    "-o", str(tmp_path / "quiet"))
    assert quiet.returncode == 0 and target_results(tmp_path / "quiet")[("uno", "warns")]["warnings"] == 0
