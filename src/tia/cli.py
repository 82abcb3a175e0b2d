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
from tia.errors import ExitCode, PytestExit, TiaError, UsageError

if TYPE_CHECKING:
    from tia.project import Plan, Project, Settled
    from tia.runner import EarlyPytest

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
    "install-hook": (
        "install a git pre-push hook that runs `tia run --since-upstream`",
        "tia install-hook",
    ),
    "cache": ("inspect, clear, export or import the map", "tia cache export tia-map.json.gz"),
}


def _say(message: str) -> None:
    print(f"tia: {message}", file=sys.stderr, flush=True)


def _warn(message: str) -> None:
    print(f"tia: warning: {message}", file=sys.stderr, flush=True)


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with `only`, that command's alone (building every
    command's takes milliseconds of each run, and only ``tia --help`` lists them)."""
    parser = argparse.ArgumentParser(
        prog="tia",
        description="Test impact analysis for pytest: run only the tests a change can affect.",
        epilog="Run `tia COMMAND --help` for a command's options. Quick start: `tia map`, edit, `tia run`.",
    )
    parser.add_argument("--version", action="version", version=f"tia {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="where the map lives (default: .tia/ beside pytest's configuration file, else at the git root)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (summary, example) in COMMANDS.items():
        if only in (None, name):
            command = sub.add_parser(
                name,
                parents=[common],
                help=summary,
                description=summary[0].upper() + summary[1:] + ".",
                epilog=f"example: {example}",
            )
            for add_options in _OPTIONS.get(name, ()):
                add_options(command)
    return parser


def _since_options(command: argparse.ArgumentParser) -> None:
    since = command.add_mutually_exclusive_group()
    since.add_argument(
        "--since", metavar="REF", help="also select for every change since the merge-base of REF and HEAD"
    )
    since.add_argument(
        "--since-upstream",
        action="store_true",
        help="--since the branch's upstream, else the remote's default branch, else main "
        "(what a push sends; the remote is $TIA_REMOTE or pre-commit's, else origin)",
    )


def _pytest_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "-n",
        dest="workers",
        metavar="N|auto",
        help="run under pytest-xdist with N workers, or auto (one per CPU); 0: no xdist "
        "(default: tia decides from the recorded durations)",
    )
    command.add_argument(
        "--engine",
        choices=("coverage", "monitoring"),
        help="how tests are recorded: coverage.py, or sys.monitoring (Python 3.12+); "
        "default: [tool.tia] engine, else monitoring on Python 3.12+ and coverage before",
    )
    command.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then arguments for pytest")


def _run_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--all", action="store_true", help="run every test (and refresh the whole map)")
    command.add_argument("--dry-run", action="store_true", help="print the selection, run nothing")
    command.add_argument(
        "--verify",
        action="store_true",
        help="run the whole suite and report failing tests the selection would have skipped",
    )
    command.add_argument(
        "--shard",
        metavar="K/N",
        type=_shard,
        help="run only shard K of N: a deterministic split of the selection, balanced by recorded durations",
    )
    command.add_argument(
        "--json-report", metavar="FILE", help="write what ran, why and how it ended as JSON (docs/json.md)"
    )


def _select_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--json", action="store_true", help="print node ids with reasons as JSON")


def _install_hook_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--force", action="store_true", help="replace an existing pre-push hook")


def _explain_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("target", help="a test node id, or PATH or PATH:LINE")


def _graph_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--format", choices=("graphml", "json"), default="json")
    command.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")


def _cache_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("action", choices=("info", "clear", "export", "import"))
    command.add_argument(
        "file", nargs="?", metavar="FILE", help="the map file to write (export) or read (import)"
    )


# Each command's options, in the order its help lists them.
_OPTIONS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], ...]] = {
    "run": (_since_options, _pytest_options, _run_options),
    "select": (_since_options, _select_options),
    "map": (_pytest_options,),
    "explain": (_explain_options,),
    "graph": (_graph_options,),
    "install-hook": (_install_hook_options,),
    "cache": (_cache_options,),
}


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    try:
        k, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N such as 2/4, not {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"shard {text}: K must be between 1 and N")
    return k, n


def _project(args: argparse.Namespace, plans: bool = False) -> Project:
    """The project tia was started in; for a command that `plans`, git starts listing the
    work tree at once, and runs while tia reads its configuration and loads the rest."""
    from tia.gitrepo import GitRepo, find_root

    cwd = Path.cwd()
    git = GitRepo(find_root(cwd))
    if plans:
        git.start_listing()

    from tia.config import load_config
    from tia.project import Project

    try:
        config = load_config(
            git.root,
            cwd,
            cache_dir=args.cache_dir,
            workers=getattr(args, "workers", None),
            engine=getattr(args, "engine", None),
        )
    except BaseException:
        git.discard_listing()  # a configuration error ends the command: git need not run on
        raise
    return Project(config, _warn, git)


def _pytest_args(args: argparse.Namespace) -> list[str]:
    extra = list(args.pytest_args or [])
    if extra and extra[0] == "--":
        extra = extra[1:]
    return extra


def _since(args: argparse.Namespace, project: Project) -> str | None:
    if args.since_upstream:
        remote = os.environ.get("TIA_REMOTE") or os.environ.get("PRE_COMMIT_REMOTE_NAME")
        ref = project.git.upstream(remote)
        _say(f"comparing with {ref}")
        return ref
    return args.since or project.config.since


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
    project: Project,
    plan: Plan,
    pytest_args: list[str],
    replace_all: bool,
    shard: tuple[int, int] | None = None,
    early: EarlyPytest | None = None,
) -> tuple[int, dict[str, Any] | None]:
    """Run pytest on a plan and fold its results into the map; return pytest's status and results.

    `early` is a pytest process started while tia planned, to run the plan if it can.

    When xdist workers that tia started meet an internal error (a report a worker cannot
    send, such as a failure whose text holds a lone surrogate, stops that worker), the
    tests that did not report run again without workers.  A run whose internal error
    left selected tests unrun never ends with status 0."""
    from tia.project import internal_error, left_unrun

    workers = _workers(project, plan, pytest_args)
    if workers:
        _say(f"using {workers} pytest-xdist workers")
    # A shard saw part of the suite: it must not replace the whole map.
    replace = replace_all and shard is None
    status, payload, idle = _execute_once(project, plan, pytest_args, workers, replace, shard, early)
    if idle:
        _say("no tests affected")
        return ExitCode.OK, payload
    if workers and status != ExitCode.INTERRUPTED and internal_error(status, payload):
        status, payload = _rerun_undone(project, plan, pytest_args, shard, status, payload)
    unrun = left_unrun(status, payload) if status != ExitCode.INTERRUPTED else None
    if unrun:
        _warn(unrun)
        if status == PytestExit.OK:
            status = PytestExit.INTERNAL_ERROR
    return status, payload


def _rerun_undone(
    project: Project,
    plan: Plan,
    pytest_args: list[str],
    shard: tuple[int, int] | None,
    status: int,
    payload: dict[str, Any] | None,
) -> tuple[int, dict[str, Any] | None]:
    """Run without workers what a run under workers that ended in an internal error did
    not do; return the status and results of both together."""
    from tia.project import selected_after_collection

    first = payload or {}
    # A shard's tests are chosen among those to run: the rest of it would be cut
    # differently, so a shard runs again whole.
    done = _done(first) if shard is None else set()
    kept = selected_after_collection(first)
    undone = None if kept is None else sum(1 for n in kept if n not in done)
    if undone == 0:
        return status, payload  # an internal error after every test (a plugin's hook): pytest's to report
    which = "all the" if undone is None else f"the {undone}"
    _say(
        f"pytest-xdist ended in an internal error; running {which} selected tests "
        "it did not run or record again, without workers"
    )
    status, payload, _ = _execute_once(project, plan.rest(done), pytest_args, 0, False, shard, None)
    payload = _joined(first, payload) if payload is not None else first or None
    if status in (PytestExit.OK, PytestExit.TESTS_FAILED, PytestExit.NO_TESTS_COLLECTED):
        status = _joined_status(status, payload)
    return status, payload


def _execute_once(
    project: Project,
    plan: Plan,
    pytest_args: list[str],
    workers: int | str,
    replace: bool,
    shard: tuple[int, int] | None,
    early: EarlyPytest | None,
) -> tuple[int, dict[str, Any] | None, bool]:
    """One pytest run of `_execute`: pytest's status, its results, and whether it found
    nothing to run because the selection was empty."""
    from tia.runner import run_pytest

    # Index files ahead on a core pytest leaves idle, never on one it uses.
    spare = isinstance(workers, int) and max(workers, 1) < (os.cpu_count() or 1)
    stored: list[Settled] = []

    def store(payload: dict[str, Any]) -> None:
        # While pytest prints its summary and exits; the status is the session's, as the
        # plugin saw it at its end.
        status = payload.get("exitstatus")
        stored.append(project.settle(plan, payload, status if type(status) is int else 1, False, replace))

    result = run_pytest(
        root=project.root,
        cache_dir=project.config.cache_dir,
        plan=plan.to_plugin(project.rootdir(), True, project.config.engine, shard),
        pytest_args=pytest_args,
        workers=workers,
        meanwhile=(lambda done: project.index_ahead(plan, done)) if spare else None,
        early=early,
        store=store,
    )
    if result.payload is None:
        _warn("pytest reported no results; the map is unchanged")
        return result.exitstatus, None, False
    # `store` returned, or was never called (pytest ended before it wrote its results).
    settled = (
        stored[0]
        if stored
        else project.settle(plan, result.payload, result.exitstatus, result.interrupted, replace)
    )
    if result.interrupted:
        _say(f"interrupted: recorded the {settled.recorded} tests that completed; the rest run next time")
        return ExitCode.INTERRUPTED, result.payload, False
    return result.exitstatus, result.payload, settled.nothing_affected


def _joined(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """The results of a run and of its rerun, as if of one run."""
    return {
        **second,
        "outcomes": {**(first.get("outcomes") or {}), **(second.get("outcomes") or {})},
        "parts": [*(first.get("parts") or []), *(second.get("parts") or [])],
    }


def _joined_status(status: int, payload: dict[str, Any]) -> int:
    """pytest's status for a run and its rerun together, from the rerun's and every outcome."""
    from tia.records import FAILED_OUTCOMES

    outcomes = payload.get("outcomes") or {}
    if any(r.get("outcome") in FAILED_OUTCOMES for r in outcomes.values()):
        return PytestExit.TESTS_FAILED
    return PytestExit.OK if status == PytestExit.NO_TESTS_COLLECTED and outcomes else status


def _done(payload: dict[str, Any]) -> set[str]:
    """The tests a run is done with: those that failed, and those whose recording reached
    tia (a worker that stops in an internal error takes its tests' recordings along)."""
    from tia.records import FAILED_OUTCOMES

    recorded = {n for part in payload.get("parts") or () for n in part.get("deps") or ()}
    return {
        nodeid
        for nodeid, result in (payload.get("outcomes") or {}).items()
        if nodeid in recorded or result.get("outcome") in FAILED_OUTCOMES
    }


def _verify(project: Project, plan: Plan, pytest_args: list[str], early: EarlyPytest) -> int:
    """Run everything and report each failing test the selection would have skipped."""
    import copy

    from tia.project import unreported
    from tia.records import FAILED_OUTCOMES

    full = copy.copy(plan)
    full.mode, full.why_all, full.skip_files = "all", "--verify: the whole suite checks the selection", set()
    before = dict(project.tests())  # the versions each test last ran against, before this run
    status, payload = _execute(project, full, pytest_args, replace_all=False, early=early)
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
    unrun = unreported(payload)
    if unrun or status not in (PytestExit.OK, PytestExit.TESTS_FAILED, PytestExit.NO_TESTS_COLLECTED):
        # Failing tests among those that did not run would go uncounted: vouch for nothing.
        _say(
            f"verify: NOT VERIFIED: the whole suite did not run (pytest exit status {status}, "
            f"{len(unrun)} tests did not report); of those that ran, {failing} failed, "
            f"{len(missed)} of them missed by the selection"
        )
        return ExitCode.ERROR if missed or status == PytestExit.OK else status
    _say(f"verify: {failing} failing tests, {len(missed)} of them missed by the selection")
    return ExitCode.ERROR if missed else status


def cmd_run(args: argparse.Namespace) -> int:
    from tia.project import selected_after_collection
    from tia.report import run_doc, write_json

    if args.json_report and not Path(args.json_report).resolve().parent.is_dir():
        raise UsageError(f"--json-report {args.json_report}: its directory does not exist")
    project = _project(args, plans=True)
    pytest_args = _pytest_args(args)
    with project.locked(_say), _early_pytest(project, pytest_args) as early:
        working = None if args.dry_run else early.start
        plan = project.plan(_since(args, project), run_all=args.all, working=working)
        _say(plan.summary())
        if args.dry_run:
            _print_selection(plan, _shard_rows(plan, args.shard), as_json=False)
            return ExitCode.OK
        if args.verify:
            return _verify(project, plan, pytest_args, early)
        if plan.mode == "select" and not plan.needs_pytest:
            _say("no tests affected")
            status, payload = int(ExitCode.OK), None
        else:
            status, payload = _execute(
                project, plan, pytest_args, replace_all=plan.mode == "all", shard=args.shard, early=early
            )
    if args.json_report:
        selected = selected_after_collection(payload) if payload is not None else []
        doc = run_doc(plan, payload, selected, status, args.shard)
        write_json(Path(args.json_report), doc)
    return status


def _shard_rows(plan: Plan, shard: tuple[int, int] | None) -> list[str] | None:
    """The known tests a shard runs, for `--dry-run` (new tests are only known to collection)."""
    if shard is None:
        return None
    from tia.report import selection_rows
    from tia.selection import shard_of

    rows = selection_rows(plan, [])
    mine = shard_of(rows, plan.durations, *shard)
    return [n for n in rows if n in mine]


def cmd_map(args: argparse.Namespace) -> int:
    project = _project(args, plans=True)
    pytest_args = _pytest_args(args)
    with project.locked(_say), _early_pytest(project, pytest_args) as early:
        plan = project.plan(None, run_all=True, why="tia map", working=early.start)
        _say("mapping the whole suite")
        return _execute(project, plan, pytest_args, replace_all=True, early=early)[0]


def _early_pytest(project: Project, pytest_args: list[str]) -> EarlyPytest:
    """A pytest process to start once planning turns out to be more than a glance, so that
    it loads while tia plans; killed on leaving the block unless it was handed the plan."""
    from tia.runner import EarlyPytest

    return EarlyPytest(project.config.cache_dir, pytest_args)


def _print_selection(plan: Plan, nodeids: list[str] | None, as_json: bool) -> None:
    """Print the selection (`nodeids`, or the plan's own), one test per line with its reasons."""
    from tia.report import reasons_of, selection_doc, selection_rows

    rows = nodeids if nodeids is not None else selection_rows(plan, [])
    if as_json:
        print(json.dumps(selection_doc(plan, rows), indent=1))
        return
    for nodeid in rows:
        why = "; ".join(_reason_text(r) for r in reasons_of(plan, nodeid))
        print(f"{nodeid}    [{why}]")


def _reason_text(reason: dict[str, str]) -> str:
    where = reason.get("file", "")
    if reason.get("scope"):
        where += f"::{reason['scope']}"
    text = f"{reason['rule']}: {where}" if where else reason["rule"]
    return f"{text} ({reason['detail']})" if reason.get("detail") else text


def cmd_select(args: argparse.Namespace) -> int:
    from tia.project import selected_after_collection
    from tia.report import selection_rows

    project = _project(args, plans=True)
    with project.locked(_say):
        plan = project.plan(_since(args, project), run_all=False)
        new: list[str] = []
        if plan.needs_pytest and plan.mode == "select":
            from tia.runner import run_pytest

            # Only collection knows new tests: collect, record nothing, change nothing.
            result = run_pytest(
                root=project.root,
                cache_dir=project.config.cache_dir,
                plan=plan.to_plugin(project.rootdir(), False, project.config.engine),
                pytest_args=[],
                workers=0,
                collect_only=True,
                quiet=True,
            )
            selected = selected_after_collection(result.payload)
            if selected is None and result.exitstatus not in (0, 5):
                _warn(f"collection failed (pytest exit status {result.exitstatus}); new tests are not listed")
            new = [n for n in selected or [] if n not in plan.known]
    if not args.json:
        _say(plan.summary())
    _print_selection(plan, selection_rows(plan, new), as_json=args.json)
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


# The remote being pushed to is the hook's first argument; --since-upstream reads it from TIA_REMOTE.
PRE_PUSH_HOOK = """#!/bin/sh
# Installed by `tia install-hook`: before a push, run the tests it can affect.
# Skip once with `git push --no-verify`.
TIA_REMOTE="$1" exec {python} -m tia run --since-upstream
"""


def cmd_install_hook(args: argparse.Namespace) -> int:
    import shlex

    project = _project(args)
    hooks = project.git.hooks_dir()
    hook = hooks / "pre-push"
    if hook.exists() and not args.force:
        raise TiaError(
            f"{hook} already exists",
            hint="pass --force to replace it, or call `tia run --since-upstream` from it yourself",
        )
    try:
        hooks.mkdir(parents=True, exist_ok=True)
        hook.write_text(PRE_PUSH_HOOK.format(python=shlex.quote(sys.executable)), encoding="utf-8")
        hook.chmod(0o755)
    except OSError as exc:
        raise TiaError(f"cannot write {hook}: {exc.strerror or exc}") from None
    _say(f"installed {hook}: `git push` now runs the tests the push can affect")
    return ExitCode.OK


def cmd_cache(args: argparse.Namespace) -> int:
    from tia.errors import UsageError

    sharing = args.action in ("export", "import")
    if sharing and not args.file:
        what = "write" if args.action == "export" else "read"
        raise UsageError(f"`tia cache {args.action}` needs a FILE: the map file to {what}")
    if args.file and not sharing:
        raise UsageError(f"`tia cache {args.action}` takes no FILE")
    project = _project(args)
    store = project.store
    if sharing:
        from tia.share import export_map, import_map

        path = Path(args.file)
        if args.action == "export":
            _say(f"exported {export_map(store, path, _say).summary()} to {path}")
        else:
            shared = import_map(store, path, _say)
            _say(f"imported {shared.summary()} from {path}; it replaced the map in {store.directory}")
        return ExitCode.OK
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
    "install-hook": cmd_install_hook,
    "cache": cmd_cache,
}


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = _parser(argv[0] if argv and argv[0] in COMMANDS else None)
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
