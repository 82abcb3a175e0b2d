"""The ``tia`` command line: parse arguments, call the coordinator, report, exit.

Heavy imports happen inside the command functions, so ``tia --help`` and
``tia --version`` answer at once.  Every `TiaError` is caught here once and
printed as one line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tia import __version__
from tia.errors import ExitCode, TiaError

if TYPE_CHECKING:
    from tia.project import Plan, Project

# name -> (summary, example): the help table, as pip keeps it.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "select the tests a change can affect, run them, and update the map",
        "tia run --since main -- -x -q",
    ),
    "select": ("print the tests `tia run` would run, and why", "tia select --since main --json"),
    "map": ("run the whole suite and rebuild the map", "tia map -n 2"),
    "explain": (
        "show what a test depends on, or which tests depend on a file or line",
        "tia explain src/pkg/mod.py:42",
    ),
    "status": ("describe the map: size, age, stale files, environment", "tia status"),
    "graph": ("export the dependency graph", "tia graph --format graphml -o deps.graphml"),
    "cache": ("inspect or clear the map's directory", "tia cache info"),
}


def _say(message: str) -> None:
    print(f"tia: {message}", file=sys.stderr, flush=True)


def _warn(message: str) -> None:
    print(f"tia: warning: {message}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tia",
        description="Test impact analysis for pytest: run only the tests a change can affect.",
        epilog="Run `tia COMMAND --help` for a command's options. Quick start: `tia map`, edit, `tia run`.",
    )
    parser.add_argument("--version", action="version", version=f"tia {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--cache-dir", metavar="DIR", help="where the map lives (default: .tia/ at the repository root)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    subs: dict[str, argparse.ArgumentParser] = {}
    for name, (summary, example) in COMMANDS.items():
        subs[name] = sub.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=f"example: {example}",
        )
    for name in ("run", "select"):
        subs[name].add_argument(
            "--since", metavar="REF", help="also select for every change since the merge-base of REF and HEAD"
        )
    for name in ("run", "map"):
        subs[name].add_argument(
            "-n",
            dest="workers",
            metavar="N|auto",
            help="run under pytest-xdist with N workers, or auto (one per CPU); 0: no xdist "
            "(default: tia decides from the recorded durations)",
        )
        subs[name].add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then arguments for pytest")
    subs["run"].add_argument("--all", action="store_true", help="run every test (and refresh the whole map)")
    subs["run"].add_argument("--dry-run", action="store_true", help="print the selection, run nothing")
    subs["run"].add_argument(
        "--verify",
        action="store_true",
        help="run the whole suite and report failing tests the selection would have skipped",
    )
    subs["select"].add_argument("--json", action="store_true", help="print node ids with reasons as JSON")
    subs["explain"].add_argument("target", help="a test node id, or PATH or PATH:LINE")
    subs["graph"].add_argument("--format", choices=("graphml", "json"), default="json")
    subs["graph"].add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    subs["cache"].add_argument("action", choices=("info", "clear"))
    return parser


def _project(args: argparse.Namespace) -> Project:
    from tia.config import load_config
    from tia.gitrepo import find_root
    from tia.project import Project

    cwd = Path.cwd()
    root = find_root(cwd)
    config = load_config(root, cwd, cache_dir=args.cache_dir, workers=getattr(args, "workers", None))
    return Project(config, _warn)


def _pytest_args(args: argparse.Namespace) -> list[str]:
    extra = list(args.pytest_args or [])
    if extra and extra[0] == "--":
        extra = extra[1:]
    return extra


def _since(args: argparse.Namespace, project: Project) -> str | None:
    return args.since or project.config.since


def _plugin_plan(plan: Plan, record: bool) -> dict[str, Any]:
    return {
        "mode": plan.mode,
        "selected": plan.selected,
        "known": sorted(plan.known),
        "failed": plan.selection.failed,
        "record": record,
        "header": plan.header(),
        "skip_files": sorted(plan.skip_files),
    }


def _selected_after_collection(payload: dict[str, Any] | None) -> list[str] | None:
    if not payload:
        return None
    for part in payload.get("parts", []):
        if part.get("selected") is not None:
            return list(part["selected"])
    return None


def _workers(project: Project, plan: Plan, pytest_args: list[str]) -> int | str:
    from tia.runner import choose_workers, predict_seconds, user_chose_xdist

    if user_chose_xdist(pytest_args):
        return 0
    setting = project.config.workers
    selected = sorted(plan.known) if plan.mode == "all" else plan.selected
    predicted = predict_seconds(selected, plan.durations)
    collect = project.meta().get("collect_seconds", 1.0)
    return choose_workers(setting, predicted, len(selected), float(collect) if collect else 1.0)


def _execute(
    project: Project, plan: Plan, pytest_args: list[str], replace_all: bool
) -> tuple[int, dict[str, Any] | None]:
    """Run pytest on a plan and fold its results into the map; return pytest's status and results."""
    from tia.runner import run_pytest

    workers = _workers(project, plan, pytest_args)
    if workers:
        _say(f"using {workers} pytest-xdist workers")
    result = run_pytest(
        root=project.root,
        cache_dir=project.config.cache_dir,
        plan=_plugin_plan(plan, record=True),
        pytest_args=pytest_args,
        workers=workers,
    )
    if result.payload is None:
        _warn("pytest reported no results; the map is unchanged")
        return result.exitstatus, None
    # Exit status 2: interrupted, or collection errors: not every test was seen.
    complete = not result.interrupted and result.exitstatus != 2
    recorded = project.fold(plan, result.payload, replace_all=replace_all and complete)
    if result.interrupted:
        _say(f"interrupted: recorded the {recorded} tests that completed; the rest run next time")
        return ExitCode.INTERRUPTED, result.payload
    selected = _selected_after_collection(result.payload)
    if result.exitstatus == 5 and selected == []:
        _say("no tests affected")
        return ExitCode.OK, result.payload
    return result.exitstatus, result.payload


def _verify(project: Project, plan: Plan, pytest_args: list[str]) -> int:
    """Run everything and report each failing test the selection would have skipped."""
    import dataclasses

    from tia.records import FAILED_OUTCOMES

    full = dataclasses.replace(
        plan, mode="all", why_all="--verify: the whole suite checks the selection", skip_files=set()
    )
    before = dict(project.tests())  # the versions each test last ran against, before this run
    status, payload = _execute(project, full, pytest_args, replace_all=False)
    if payload is None:
        return status
    chosen = set(plan.known) if plan.mode == "all" else set(plan.selection.reasons)
    missed = sorted(
        nodeid
        for nodeid, result in payload.get("outcomes", {}).items()
        if result.get("outcome") in FAILED_OUTCOMES and nodeid in plan.known and nodeid not in chosen
    )
    for nodeid in missed:
        record = before.get(nodeid)
        deps = record.deps.items() if record else ()
        changed = sorted(path for path, (sha, _) in deps if plan.listing.get(path) != sha)
        where = (
            f"it depends on changed {', '.join(changed)}" if changed else "no file it is known to use changed"
        )
        _say(f"verify: MISSED {nodeid}: it fails, and the selection would have skipped it ({where})")
    failing = sum(1 for r in payload.get("outcomes", {}).values() if r.get("outcome") in FAILED_OUTCOMES)
    _say(f"verify: {failing} failing tests, {len(missed)} of them missed by the selection")
    return ExitCode.ERROR if missed else status


def cmd_run(args: argparse.Namespace) -> int:
    project = _project(args)
    pytest_args = _pytest_args(args)
    with project.store.locked(_say):
        plan = project.plan(_since(args, project), run_all=args.all)
        _say(plan.summary())
        if args.dry_run:
            _print_selection(plan, None, as_json=False)
            return ExitCode.OK
        if args.verify:
            return _verify(project, plan, pytest_args)
        if plan.mode == "select" and not plan.needs_pytest:
            _say("no tests affected")
            return ExitCode.OK
        return _execute(project, plan, pytest_args, replace_all=plan.mode == "all")[0]


def cmd_map(args: argparse.Namespace) -> int:
    project = _project(args)
    pytest_args = _pytest_args(args)
    with project.store.locked(_say):
        plan = project.plan(None, run_all=True, why="tia map")
        _say("mapping the whole suite")
        return _execute(project, plan, pytest_args, replace_all=True)[0]


def _print_selection(plan: Plan, collected: dict[str, Any] | None, as_json: bool) -> None:
    rows: list[tuple[str, list[dict[str, str]]]] = []
    if plan.mode == "all":
        nodeids = (collected or {}).get("selected") or sorted(plan.known)
        rows = [(n, [{"rule": "all", "detail": plan.why_all or ""}]) for n in nodeids]
    else:
        failed = set(plan.selection.failed)
        ordered = sorted(plan.selection.reasons, key=lambda n: (n not in failed, n))
        rows = [(n, [r.to_json() for r in plan.selection.reasons[n]]) for n in ordered]
        for nodeid in (collected or {}).get("new", []):
            rows.append((nodeid, [{"rule": "new", "detail": "not in the map"}]))
    if as_json:
        doc = {
            "schema": 1,
            "mode": plan.mode,
            "since": plan.base.ref if plan.base else None,
            "merge_base": plan.base.commit if plan.base else None,
            "mapped": len(plan.known),
            "tests": [{"nodeid": n, "reasons": reasons} for n, reasons in rows],
        }
        print(json.dumps(doc, indent=1))
        return
    for nodeid, reasons in rows:
        why = "; ".join(_reason_text(r) for r in reasons)
        print(f"{nodeid}    [{why}]")


def _reason_text(reason: dict[str, str]) -> str:
    where = reason.get("file", "")
    if reason.get("scope"):
        where += f"::{reason['scope']}"
    text = f"{reason['rule']}: {where}" if where else reason["rule"]
    return f"{text} ({reason['detail']})" if reason.get("detail") else text


def cmd_select(args: argparse.Namespace) -> int:
    from tia.runner import run_pytest

    project = _project(args)
    with project.store.locked(_say):
        plan = project.plan(_since(args, project), run_all=False)
        collected = None
        if plan.needs_pytest and plan.mode == "select":
            # Only collection knows new tests: collect, record nothing, change nothing.
            result = run_pytest(
                root=project.root,
                cache_dir=project.config.cache_dir,
                plan=_plugin_plan(plan, record=False),
                pytest_args=[],
                workers=0,
                collect_only=True,
                quiet=True,
            )
            selected = _selected_after_collection(result.payload)
            if selected is None and result.exitstatus not in (0, 5):
                _warn(f"collection failed (pytest exit status {result.exitstatus}); new tests are not listed")
            new = [n for n in selected or [] if n not in plan.known]
            collected = {"new": new}
    if not args.json:
        _say(plan.summary())
    _print_selection(plan, collected, as_json=args.json)
    return ExitCode.OK


def cmd_explain(args: argparse.Namespace) -> int:
    from tia.explain import explain

    project = _project(args)
    for line in explain(project, args.target):
        print(line)
    return ExitCode.OK


def cmd_status(args: argparse.Namespace) -> int:
    from tia.explain import status

    project = _project(args)
    for line in status(project):
        print(line)
    return ExitCode.OK


def cmd_graph(args: argparse.Namespace) -> int:
    from tia.graph import dependency_graph, export

    project = _project(args)
    text = export(dependency_graph(project.tests(), project.rootdir()), args.format)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        _say(f"wrote {args.output}")
    else:
        print(text)
    return ExitCode.OK


def cmd_cache(args: argparse.Namespace) -> int:
    project = _project(args)
    store = project.store
    if args.action == "clear":
        if not store.exists():
            _say(f"nothing to clear in {store.directory}")
            return ExitCode.OK
        with store.locked(_say):
            store.destroy()
        _say(f"cleared the map in {store.directory}")
        return ExitCode.OK
    print(f"directory: {store.directory}")
    if not store.exists():
        print("no map yet")
        return ExitCode.OK
    counts = project.open_store().counts()
    print(f"size on disk: {store.size_on_disk() / 1024:.0f} KiB")
    for kind in ("test", "index", "snap"):
        print(f"{kind} entries: {counts.get(kind, 0)}")
    return ExitCode.OK


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "select": cmd_select,
    "map": cmd_map,
    "explain": cmd_explain,
    "status": cmd_status,
    "graph": cmd_graph,
    "cache": cmd_cache,
}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return ExitCode.USAGE
    try:
        return int(HANDLERS[args.command](args))
    except TiaError as exc:
        print(f"tia: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("tia: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # `tia select | head`: the reader left; that is no error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
