"""Command line: argument parsing and exit codes (exitcodes.py); commands.py does what each subcommand
does. Nothing imports this module.

Every error that ends a command ends here, as one line on stderr: an FbuildError as its message, an OSError
as its path and what to do, anything else as an internal error; the traceback only with --debug.
"""

from __future__ import annotations

import time

_STARTED = time.time()

import argparse  # noqa: E402  (imports are timed as the `import` phase)
import os
import signal
import sys
import traceback
from typing import Optional, Sequence

from fbuild_graph import commands
from fbuild_graph.arduino import installs
from fbuild_graph.build import Config, Warm
from fbuild_graph.caches.cache import CACHE_MODES, parse_size
from fbuild_graph.errors import FbuildError, os_error_line
from fbuild_graph.exitcodes import ExitCode
from fbuild_graph.model import WarningLevel
from fbuild_graph.planning import targets


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _shard(text: str) -> tuple[int, int]:
    try:
        return targets.parse_shard(text)
    except FbuildError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _property(text: str) -> tuple[str, str]:
    if "=" not in text or not text.split("=", 1)[0]:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    key, value = text.split("=", 1)
    return key, value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, as for every other bad input
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", metavar="DIR", help="the local cache (default $XDG_CACHE_HOME/fbuild-graph)")


def _install_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hardware", action="append", default=[], metavar="DIR",
                   help="add a hardware folder holding VENDOR/ARCH cores, ahead of the arduino-cli data directory "
                   "($ARDUINO_DIRECTORIES_DATA or ~/.arduino15), the sketchbook's hardware/ ($ARDUINO_DIRECTORIES_USER "
                   f"or ~/Arduino) and {installs.DEBIAN_HARDWARE} (repeatable)")
    p.add_argument("--tools", action="append", default=[], metavar="DIR",
                   help="add a folder of tools ({runtime.tools.NAME.path}): NAME/VERSION/ folders, an arduino-cli "
                   "data directory or an IDE's hardware/tools (repeatable)")


def _build_args(p: argparse.ArgumentParser, *, jobs: bool, out: bool = True) -> None:
    p.add_argument("sketches", nargs="+", metavar="SKETCH",
                   help="sketch folder, .ino file, or folder searched recursively for sketches")
    p.add_argument("--board", "-b", action="append", default=[],
                   help="short board name (uno, nano, mega, leonardo) or FQBN such as arduino:avr:mega:cpu=atmega2560; "
                   "repeat it to build every sketch for every board in one run")
    p.add_argument("--boards", metavar="FILE",
                   help="more boards, one FQBN or short name a line (# starts a comment)")
    p.add_argument("--exclude", action="append", default=[], metavar="BOARD:GLOB",
                   help="do not build the sketches matching GLOB (id, name or path) for the boards matching BOARD; "
                   "they are reported as skipped (repeatable), e.g. --exclude 'uno:*USB*' or --exclude '*:Blink'")
    if out:
        p.add_argument("--out", "-o", help="output folder (default .fbuild-graph/BOARD; for several boards, "
                       ".fbuild-graph/BOARD+BOARD...; each board's targets then go in OUT/BOARD/)")
    _install_args(p)
    p.add_argument("--library-dir", action="append", default=[], metavar="DIR",
                   help="add user libraries: a folder of libraries or one library's root (repeatable)")
    p.add_argument("--build-property", action="append", default=[], type=_property, metavar="KEY=VALUE",
                   help="override a platform property, as arduino-cli does (repeatable)")
    p.add_argument("--warnings", choices=[level.value for level in WarningLevel], default=WarningLevel.NONE.value,
                   help="the compiler warnings, as arduino-cli's --warnings: the platform's "
                   "compiler.warning_flags.LEVEL (default none: the IDE's firmware, byte for byte)")
    p.add_argument("--shard", metavar="K/N", type=_shard,
                   help="build only the K-th of N deterministic shares of the targets (N CI jobs split a matrix)")
    p.add_argument("--durations", metavar="TASKS_TSV",
                   help="with --shard: balance the shares by the targets' times in this earlier tasks.tsv (or "
                   "--out folder), instead of by count")
    p.add_argument("--only-failed", metavar="PREVIOUS_OUT",
                   help="build only the targets that did not build in this earlier --out (failed, not built, "
                   "cancelled, interrupted)")
    if jobs:
        cores = os.cpu_count() or 1
        p.add_argument("--framework-jobs", type=_positive, default=None,
                       help=f"parallel stage-1 (core and library) actions; memory-heavy (default min(cores, 2) = {min(cores, 2)})")
        p.add_argument("--sketch-jobs", type=_positive, default=None,
                       help=f"parallel stage-2 (sketch) actions (default cores = {cores})")
        p.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing Dask cluster; its workers' framework/sketch resources set the limits")
        p.add_argument("--group", metavar="NAME",
                       help="a concurrency group on the scheduler (e.g. a branch name); needs --scheduler")
        p.add_argument("--cancel-in-progress", action="store_true",
                       help="cancel the older runs of --group: they stop and exit with code 3")
        _cache_args(p)
        p.add_argument("--cache-mode", choices=CACHE_MODES, default="rw",
                       help="rw: read and write the local cache; ro (untrusted builds): read only, write nothing; "
                       "off: no cache (default rw)")
        p.add_argument("--cache-ro", action="append", default=[], metavar="PATH",
                       help="a read-only cache layer under the local one: a baked .tar.zst bundle or a cache "
                       "folder (repeatable; consulted in order)")
        p.add_argument("--trust", action="append", default=[], metavar="PUBKEYFILE",
                       help="accept only --cache-ro bundles signed by this key (the KEYFILE.pub of `cache keygen`) "
                       "and no cache folders; repeatable: a signature by any of them will do")
        p.add_argument("--max-bundle-size", default="4GiB", metavar="SIZE",
                       help="stop unpacking a --cache-ro bundle past this size, e.g. 500M (default %(default)s)")
        p.add_argument("--no-ccache", action="store_true", help="do not use ccache for compiles")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="fbuild-graph", description="Build many Arduino sketches for one or more boards: each "
                  "board's framework once, then every sketch for every board in parallel, on one Dask graph.")
    top.add_argument("--debug", action="store_true", help="print the traceback of an error too")
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    many = sub.add_parser("compile-many", help="build sketches for one or more boards",
                          description="Build every sketch for every board given. Skipped targets (a sketch's "
                          ".BOARD.test.skip or .test.only markers, a library's architectures=, --exclude) are "
                          "reported, not failed. Exit 0: all built; 1: a sketch failed; "
                          "2: usage or configuration error; 3: superseded by a newer run of --group; "
                          "130: interrupted.")
    _build_args(many, jobs=True)
    many.add_argument("--warnings-as-errors", action="store_true",
                      help="a target with warnings (its own compiles and link, and its libraries') fails")
    many.add_argument("--max-failures", type=_positive, metavar="N",
                      help="after N failed targets stop: running tools are killed, the rest is reported `not built` "
                      "(targets that finished alongside the Nth failure keep their outcome)")
    many.add_argument("--json", action="store_true",
                      help="print the result map as JSON on stdout (progress lines go to stderr)")
    many.add_argument("--quiet", "-q", action="store_true", help="print only the summary line (and errors)")
    many.add_argument("--wait", action="store_true",
                      help="when another build is using --out, wait for it to finish instead of stopping (exit 2)")
    many.add_argument("--sketches-report", metavar="DIR",
                      help="also write the sketches report of arduino/compile-sketches into DIR (one "
                      "FQBN.json per board, FQBN with - for :), for an unchanged arduino/report-size-deltas step; "
                      "sketch names are relative to $GITHUB_WORKSPACE or the current folder, the commit is "
                      "$GITHUB_SHA (a pull request's head) or the current folder's git HEAD")
    many.add_argument("--base", metavar="BASE_OUT",
                      help="with --sketches-report: take each target's previous sizes (the report's previous and "
                      "delta) from this earlier build's --out (its results.json) instead of building the base again")
    many.add_argument("--junit", metavar="FILE",
                      help="also write the results as JUnit XML: a testsuite per board, a testcase per sketch")
    many.add_argument("--daemon", action="store_true",
                      help="build in this user's resident build service, started on demand (FBUILD_GRAPH_DAEMON=1 "
                      "too): imports, cluster and parsed files stay warm between builds; it exits after "
                      "FBUILD_GRAPH_DAEMON_IDLE seconds (default 600) without a build. Content signatures still "
                      "decide what is up to date, and the outputs are the same")
    many.add_argument("--annotations", choices=("auto", "github", "none"), default="auto",
                      help="github: after the build, print a workflow command for every error and warning of a failed "
                      "sketch, fold its log, and append a summary to $GITHUB_STEP_SUMMARY; auto (default): github "
                      "when GITHUB_ACTIONS=true; none: neither")
    graph = sub.add_parser("graph", help="export the build DAG (for ninja or inspection)",
                           description="Export the actions compile-many would run. With --format ninja, the "
                           "sketches are preprocessed now and build.ninja runs every toolchain command with "
                           "pools for the framework and sketch limits.")
    _build_args(graph, jobs=False)
    graph.add_argument("--format", choices=("ninja", "json"), default="ninja")
    graph.add_argument("--framework-jobs", type=_positive, default=min(os.cpu_count() or 1, 2))
    graph.add_argument("--sketch-jobs", type=_positive, default=os.cpu_count() or 1)
    worker = sub.add_parser("worker", help="serve this machine's slots to a Dask scheduler",
                            description="Start the Dask workers of one runner: one offering --framework-jobs "
                            "framework slots, one offering --sketch-jobs sketch slots, each restarted if it dies. "
                            "The same as `dask worker ADDRESS --nthreads F --resources framework=F` plus one "
                            "for sketch. A runner whose toolchain (that of --board) does not compile refuses to "
                            "join, with the reason.")
    worker.add_argument("scheduler", metavar="SCHEDULER_ADDRESS", help="e.g. tcp://10.0.0.5:8786")
    worker.add_argument("--framework-jobs", type=_positive, default=min(os.cpu_count() or 1, 2))
    worker.add_argument("--sketch-jobs", type=_positive, default=os.cpu_count() or 1)
    worker.add_argument("--local-directory", metavar="DIR", help="the workers' scratch folder")
    worker.add_argument("--host", metavar="ADDRESS",
                        help="the address to listen on, e.g. 127.0.0.1 (default, as `dask worker`: the nannies "
                        "listen on the interface that routes to the scheduler, the workers on every interface)")
    worker.add_argument("--board", "-b", default="uno", help="the board whose toolchain is checked before joining "
                        "(default uno)")
    _install_args(worker)
    listing = sub.add_parser("boards", help="list every installed board with its FQBN and menus",
                             description="Every board of every installed platform, as `arduino-cli board listall` "
                             "lists them, with the menu options an FQBN can name (FQBN:MENU=OPTION,...).")
    _install_args(listing)
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    report = sub.add_parser("report", help="where the time of a build went, from its TSVs",
                            description="Print the phase table and the ten slowest actions of a build from its "
                            "phases.tsv and tasks.tsv; --png also draws the worker timeline with the critical path "
                            "outlined. notebooks/build_performance.ipynb goes further.")
    report.add_argument("build_dir", metavar="BUILD_DIR", help="the --out folder of a compile-many run")
    report.add_argument("--png", metavar="FILE",
                        help="write the timeline of every action per worker slot, critical path outlined "
                        "(needs matplotlib)")
    compare = sub.add_parser("compare", help="flash and RAM deltas between two builds",
                             description="Compare two compile-many builds (e.g. the base and the head of a pull "
                             "request): per target (a sketch for a board, matched by FQBN and sketch name), flash "
                             "and RAM in the head build and their change in bytes and in percent of the base size, "
                             "largest growth first; a target in one build only is shown as added or removed, a "
                             "side that did not build without a change. Exit 0; 1 when --fail-on-growth is "
                             "passed and some target grew past it; 2: usage error (a folder without "
                             "results.json).")
    compare.add_argument("base", metavar="BASE_OUT", help="the --out folder (or results.json) of the base build")
    compare.add_argument("head", metavar="HEAD_OUT", help="the --out folder (or results.json) of the head build")
    compare.add_argument("--fail-on-growth", type=_percent, metavar="PERCENT",
                         help="exit 1 when any target's flash or RAM grew by more than PERCENT percent of its base "
                         "size (e.g. 2 or 0.5; 0: any growth); growth from 0 bytes always counts")
    compare.add_argument("--json", action="store_true",
                         help="print the deltas as JSON: per target and memory, base and head sizes, the change in "
                         "bytes, in percent of the head's maximum (relative, as compile-sketches) and of the base "
                         "size (growth)")
    daemon = sub.add_parser("daemon", help="the resident build service of compile-many --daemon",
                            description="status: the running service of this fbuild-graph (its pid, key, uptime, "
                            "builds served; exit 1 when none runs). stop: ask it to exit once the builds it "
                            "accepted are done.")
    daemon.add_argument("verb", choices=("status", "stop"))
    cache = sub.add_parser("cache", help="see, bound and bake the build cache")
    verbs = cache.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    _cache_args(verbs.add_parser("stats", help="entries and size of the local cache"))
    _cache_args(verbs.add_parser("verify", help="check every entry of the local cache against its manifest",
                                 description="Check every entry's sizes and sha256 digests; print one line per bad "
                                 "entry. Exit 0: all sound; 1: some entry is bad (a build skips and rebuilds it)."))
    prune = verbs.add_parser("prune", help="remove least recently used entries down to a size")
    _cache_args(prune)
    prune.add_argument("--max-size", required=True, metavar="SIZE", help="e.g. 500M or 2G")
    bake = verbs.add_parser("bake", help="build sketches and write their cache as a read-only bundle",
                            description="Build the sketches into a fresh cache and write it (stage-1 archives and "
                            "compiler-cache entries) as one .tar.zst bundle, for --cache-ro on other machines.")
    _build_args(bake, jobs=True, out=False)
    bake.add_argument("--output", "-o", required=True, metavar="BUNDLE", help="the bundle to write (.tar.zst)")
    bake.add_argument("--sign", metavar="KEYFILE",
                      help="also write BUNDLE.sig, signed with this private key (from `cache keygen`), for --trust")
    keygen = verbs.add_parser("keygen", help="make a key pair for signing bundles",
                              description="Write a new Ed25519 private key (PEM, mode 0600) for `cache bake --sign` "
                              "and its public key KEYFILE.pub for `--trust`.")
    keygen.add_argument("--output", "-o", required=True, metavar="KEYFILE", help="the private key to write")
    return top


def _config(args: argparse.Namespace) -> Config:
    scheduler = getattr(args, "scheduler", None)
    if scheduler and (args.framework_jobs or args.sketch_jobs):
        raise FbuildError("--framework-jobs/--sketch-jobs size the local cluster; with --scheduler the workers' "
                          "resources set the limits (drop one of them)")
    extra = {}
    if args.framework_jobs:
        extra["framework_jobs"] = args.framework_jobs
    if args.sketch_jobs:
        extra["sketch_jobs"] = args.sketch_jobs
    group = getattr(args, "group", None)
    if (group or getattr(args, "cancel_in_progress", False)) and not scheduler:
        raise FbuildError("--group and --cancel-in-progress need --scheduler: runs supersede each other only on a "
                          "shared scheduler")
    if getattr(args, "cancel_in_progress", False) and not group:
        raise FbuildError("--cancel-in-progress needs --group NAME: it cancels the older runs of that group")
    if group:
        extra.update(group=group, cancel_in_progress=args.cancel_in_progress)
    if args.durations and not args.shard:
        raise FbuildError("--durations balances --shard K/N: add --shard, or drop --durations")
    for name in ("cache_dir", "cache_mode", "wait", "warnings_as_errors", "max_failures"):
        if getattr(args, name, None):
            extra[name] = getattr(args, name)
    if getattr(args, "max_bundle_size", None):
        extra["max_bundle_bytes"] = parse_size(args.max_bundle_size, "--max-bundle-size")
    return Config(boards=_boards_named(args), excludes=tuple(args.exclude), sketches=tuple(args.sketches), out=getattr(args, "out", None),
                  hardware=tuple(args.hardware), tools=tuple(args.tools), library_dirs=tuple(args.library_dir),
                  build_properties=dict(args.build_property), scheduler=scheduler,
                  cache_layers=tuple(getattr(args, "cache_ro", ())), cache_trust=tuple(getattr(args, "trust", ())),
                  ccache=not getattr(args, "no_ccache", False), warnings=args.warnings, shard=args.shard,
                  durations=args.durations, only_failed=args.only_failed,
                  **extra)


def _boards_named(args: argparse.Namespace) -> tuple[str, ...]:
    """--board, then the lines of --boards FILE: at least one."""
    named = list(args.board)
    if args.boards:
        try:
            with open(args.boards, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise FbuildError(f"--boards {args.boards}: cannot read it ({getattr(exc, 'strerror', None) or exc}); "
                              "pass a text file with one FQBN a line") from None
        named += [line.partition("#")[0].strip() for line in lines if line.partition("#")[0].strip()]
    if not named:
        raise FbuildError("no board given: pass --board NAME (e.g. --board uno) or --boards FILE "
                          "(`fbuild-graph boards` lists them)")
    return tuple(named)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None, started: Optional[float] = None, warm: Optional[Warm] = None) -> int:
    """`started`: when the process (or the build service's client) began; `warm`: the build service's state."""
    args = parser().parse_args(argv)
    # CI cancels a job with SIGTERM: treat it as Ctrl-C, so finished results are kept and tools killed.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.command == "compile-many":
            return commands.compile_many(args, _config(args), started or _STARTED, warm)
        if args.command == "cache":
            return commands.cache(args, lambda: _config(args))
        if args.command == "report":
            from fbuild_graph.analysis import report

            sys.stdout.write(report.text(args.build_dir))
            if args.png:
                report.timeline_png(args.build_dir, args.png)
            return 0
        if args.command == "worker":
            from fbuild_graph.execution.worker import serve

            serve(args.scheduler, args.framework_jobs, args.sketch_jobs, args.local_directory, args.host, args.board,
                  installs.Directories.from_environment(args.hardware, args.tools))
            return 0
        if args.command == "boards":
            return commands.boards(args)
        if args.command == "compare":
            return commands.compare(args)
        if args.command == "daemon":
            return commands.daemon(args)
        return commands.graph(args, _config(args))
    except FbuildError as exc:
        return _fail(args, str(exc), exc.exit_code)
    except KeyboardInterrupt:
        print("fbuild-graph: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except OSError as exc:
        return _fail(args, os_error_line(exc), ExitCode.USAGE)
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0]
        return _fail(args, f"internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback, "
                     "and report it)", ExitCode.USAGE)


def _fail(args: argparse.Namespace, line: str, code: int) -> int:
    if args.debug:
        traceback.print_exc()
    print(f"fbuild-graph: error: {line}", file=sys.stderr)
    return code


def run() -> None:
    """The console entry of installs whose script still names cli:run: as launch.run (the build service for
    --daemon), only with this module's imports already paid for."""
    from fbuild_graph import launch

    launch.run(_STARTED)


def run_here(started: Optional[float] = None) -> None:
    """The command in this process (launch.run decides). Exits without interpreter teardown, which after a
    Dask cluster costs ~0.4 s of CPU and does nothing for us: every file is closed and every tool has exited
    by then."""
    code = main(started=started)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
