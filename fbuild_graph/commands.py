"""What each subcommand does once its arguments are parsed (cli.py parses them and turns errors into one
line): compile-many and the reports it leaves for a person or a CI, graph, boards, compare, cache."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from typing import Callable, Optional

from attrs import evolve

from fbuild_graph import build
from fbuild_graph.arduino import board
from fbuild_graph.arduino import installs
from fbuild_graph.build import Config, prepare
from fbuild_graph.errors import FbuildError
from fbuild_graph.exitcodes import ExitCode
from fbuild_graph.fileio import ensure_folder, write_atomic
from fbuild_graph.model import BuildReport, SketchStatus
from fbuild_graph.outputs import lock
from fbuild_graph.outputs import progress
from fbuild_graph.outputs import results


def compile_many(args: argparse.Namespace, config: Config, started: float, warm: Optional[build.Warm] = None) -> int:
    """compile-many: the build, then what it leaves for a person or a CI (table or summary, the result map,
    the sketches report, JUnit, GitHub annotations). `warm`: the build service's state, when it runs this."""
    live = sys.stdout.isatty() and not (args.json or args.quiet)
    base = _sketches_report_base(args)
    if args.junit:  # an unwritable report fails now, not after the build
        ensure_folder(os.path.dirname(os.path.abspath(args.junit)), "the folder of --junit")
    code, report = build.compile_many(config, progress=note, t0=started,
                                      view=lambda total: progress.view(args.json, args.quiet, total), warm=warm)
    if args.sketches_report:
        _write_sketches_report(args, report, base)
    if args.json:
        sys.stdout.write(results.to_json(report))
    elif live:  # the live display is gone: the table is what stays on the terminal
        sys.stdout.write(results.format_table(report.sketches, several_boards=len(report.boards) > 1))
        sys.stdout.write(results.format_summary(report))
    else:
        sys.stdout.write(results.format_summary(report))  # the per-target lines above are the table
    _ci_reports(args, report)
    return code


def _ci_reports(args: argparse.Namespace, report: BuildReport) -> None:
    """--junit and --annotations, once the build is over: its progress lines are all out, so the workflow
    commands come after them (on stdout, the runner's; on stderr with --json, whose stdout is the JSON)."""
    github = args.annotations == "github" or (args.annotations == "auto" and os.environ.get("GITHUB_ACTIONS") == "true")
    if not (args.junit or github):
        return
    from fbuild_graph.outputs import github as actions
    from fbuild_graph.outputs import junit

    logs = _failed_logs(report)
    if args.junit:
        write_atomic(args.junit, junit.to_xml(report, logs))
    if github:
        sys.stdout.flush()
        sys.stderr.flush()
        commands = actions.annotations(report, logs, os.environ.get("GITHUB_WORKSPACE"))
        (sys.stderr if args.json else sys.stdout).write(commands)
        if os.environ.get("GITHUB_STEP_SUMMARY"):
            with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as f:  # appended: steps share it
                f.write(actions.summary(report, os.environ.get("GITHUB_WORKSPACE")))


def _failed_logs(report: BuildReport) -> dict[str, str]:
    """The failed targets' build.logs by path; one that cannot be read is left out (its excerpt is empty)."""
    logs = {}
    for result in report.sketches:
        if result.status == SketchStatus.FAILED and result.log:
            with contextlib.suppress(OSError):
                with open(result.log, encoding="utf-8", errors="replace") as f:
                    logs[result.log] = f.read()
    return logs


def _sketches_report_base(args: argparse.Namespace):
    """Check --sketches-report and --base before anything is built; the base build's report, if any."""
    if args.base and not args.sketches_report:
        raise FbuildError("--base BASE_OUT gives the deltas of --sketches-report DIR: pass both (or compare two "
                          "builds with `fbuild-graph compare BASE_OUT HEAD_OUT`)")
    if not args.sketches_report:
        return None
    ensure_folder(args.sketches_report, "--sketches-report")
    return results.read_report(args.base, "--base") if args.base else None


def _write_sketches_report(args: argparse.Namespace, report, base) -> None:
    from fbuild_graph.outputs import sketches_report

    workspace = os.environ.get("GITHUB_WORKSPACE") or os.getcwd()
    commit = sketches_report.commit_from_environment(os.environ, os.getcwd())
    reports = sketches_report.build(report.sketches, report.boards, commit, workspace,
                                    base.sketches if base is not None else None)
    written = sketches_report.write(args.sketches_report, reports)
    if not args.quiet:
        note(f"wrote {len(written)} sketches report{'s' if len(written) != 1 else ''} in {args.sketches_report}"
              + (f" (deltas against {args.base})" if base is not None else ""))


def compare(args: argparse.Namespace) -> int:
    from fbuild_graph.outputs import deltas

    base = results.read_report(args.base, "BASE_OUT")
    head = results.read_report(args.head, "HEAD_OUT")
    compared = deltas.compare(base.sketches, head.sketches)
    limit = args.fail_on_growth
    if args.json:
        sys.stdout.write(deltas.to_json(compared, limit))
    else:
        sys.stdout.write(deltas.format_table(compared))
        sys.stdout.write(deltas.summary_line(compared, limit))
    grown = deltas.grown_past(compared, limit) if limit is not None else []
    for target in grown:
        note(f"fbuild-graph: {target.board_id or target.board} {target.id} grew past {limit:g}% ("
              + ", ".join(f"{name} {memory.absolute:+d} bytes" for name, memory in target.memories
                          if memory.grew_past(limit)) + ")")
    return ExitCode.FAILED if grown else ExitCode.OK


def graph(args: argparse.Namespace, config: Config) -> int:
    from fbuild_graph.planning import export

    prepared = prepare(config)
    for line in prepared.notes:
        note(line)
    if args.format == "json":
        sys.stdout.write(export.to_json(prepared.graph))
    else:
        with lock.holding(prepared.out):  # the export preprocesses the sketches into it
            prepared.save_memos()
            sys.stdout.write(export.to_ninja(prepared.graph, args.framework_jobs, args.sketch_jobs))
    return 0


def boards(args: argparse.Namespace) -> int:
    rows = board.listing(installs.Directories.from_environment(args.hardware, args.tools))
    if args.json:
        sys.stdout.write(json.dumps([{"fqbn": fqbn, "name": name, "menus": menus, "platform": p.path,
                                      "version": p.version, "origin": p.origin} for fqbn, name, menus, p in rows],
                                    indent=2) + "\n")
        return 0
    width = max((len(fqbn) for fqbn, *_ in rows), default=4)
    sys.stdout.write(f"{'FQBN':<{width}}  Board Name\n")
    for fqbn, name, menus, _ in rows:
        options = "  " + " ".join(f"{menu}={'|'.join(choices)}" for menu, choices in menus.items()) if menus else ""
        sys.stdout.write(f"{fqbn:<{width}}  {name}{options}\n")
    return 0


def cache(args: argparse.Namespace, make_config: Callable[[], Config]) -> int:
    from fbuild_graph.caches import bundles
    from fbuild_graph.caches import cache as caches
    from fbuild_graph.caches import trust

    if args.verb == "keygen":
        note(f"wrote {args.output} (keep it secret) and {trust.keygen(args.output)} (for --trust)")
        return 0
    if args.verb == "bake":
        config = make_config()
        key = trust.load_private_key(args.sign) if args.sign else None  # a bad key fails before the build
        ensure_folder(os.path.dirname(os.path.abspath(args.output)), "the folder of --output")
        with tempfile.TemporaryDirectory(prefix="fbuild-graph-bake-") as tmp:
            code, _ = build.compile_many(evolve(config, cache_dir=os.path.join(tmp, "cache"), cache_mode="rw",
                                                out=os.path.join(tmp, "out")), progress=note)
            if code != 0:
                raise FbuildError("bake: some sketches failed to build; fix them or leave them out of the bundle")
            bundles.bake(args.output, [os.path.join(tmp, "cache")])
        if key:
            note(f"wrote {args.output} and {trust.sign(args.output, key)}")
        else:
            with contextlib.suppress(FileNotFoundError):  # it signed what this bake replaced
                os.unlink(trust.signature_path(args.output))
            note(f"wrote {args.output}")
        return 0
    store = caches.Cache(args.cache_dir or build.default_cache_dir())
    if args.verb == "verify":
        problems = store.verify()
        for line in problems:
            print(line)
        note(f"{len(problems)} bad entries in {store.root}")
        return 1 if problems else 0
    if args.verb == "prune":
        removed = store.prune(caches.parse_size(args.max_size))
        note(f"removed {removed} entries")
    sys.stdout.write(results.to_json(store.stats()))
    return 0


def daemon(args: argparse.Namespace) -> int:
    """daemon status / stop: the build service of this fbuild-graph (its key), if one runs."""
    from fbuild_graph.service import client
    from fbuild_graph.service.place import Unavailable

    try:
        answer = client.ask(args.verb)
    except Unavailable as exc:
        raise FbuildError(str(exc)) from None
    if answer is None:
        note("no build service is running for this fbuild-graph")
        return ExitCode.FAILED if args.verb == "status" else ExitCode.OK
    if args.verb == "stop":
        note(f"asked the build service (pid {answer['pid']}) to stop after {answer['builds']} builds")
        return ExitCode.OK
    sys.stdout.write("".join(f"{name}: {answer[name]}\n" for name in
                             ("pid", "key", "uptime", "builds", "busy", "idle_exit", "socket", "log")))
    return ExitCode.OK


def note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
