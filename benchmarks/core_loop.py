"""Acceptance figures for tia's core loop (map, edit, select, run, revert) on one project.

Usage::

    python benchmarks/core_loop.py PROJECT_DIR --python VENV_PYTHON \\
        --function FILE:LINE:OLD:NEW --constant FILE:LINE:OLD:NEW [--workers 0 2]

VENV_PYTHON is an interpreter with pytest, pytest-xdist, coverage and tia installed; tia
runs as ``VENV_PYTHON -m tia``.  Each edit replaces the first occurrence of OLD by NEW on
line LINE of FILE (a path relative to PROJECT_DIR).  When OLD or NEW contains a colon the
compact form is ambiguous: give the edit in four options instead, ``--function-file F
--function-line N --function-old S --function-new S`` (likewise ``--constant-...``).

The script never writes to PROJECT_DIR.  For each worker count W it copies the project
(without .git, .tia, __pycache__, .pytest_cache, .venv, *.egg-info and other tool caches)
into a fresh temporary git repository with one commit, then, in that copy:

1. ``pytest --collect-only -q`` counts the tests (and warms the bytecode caches); then,
   ``--repeat`` times in turn (default 3; the fastest of each counts), plain ``pytest -q
   -p no:cacheprovider`` runs, again with ``-n W`` when W > 0, and ``tia map -n W``.
2. Ground truth, independent of tia: the suite runs once more under
   ``coverage run`` with ``dynamic_context = test_function`` (tia's plugin disabled);
   coverage's per-test contexts (``tests.test_x.TestY.test_z``) say which test functions
   executed which lines.  Its rc and data files live next to the copy, outside its work
   tree, so tia never sees them as changes.
3. The function edit is applied; ``tia select --json`` is compared with the test
   functions that executed any line of the edited function's body (the innermost
   function holding LINE, from its first statement to its end, minus nested function
   bodies); ``tia run -n W -- -q -p no:cacheprovider -rA`` runs, and its ``-rA`` summary
   says which tests ran and failed.
4. ``git checkout`` reverts the edit; ``tia run`` runs twice: the first runs the tests that
   failed under the edit (and any other test that last ran against the edited code, since
   reverting changes that code again for them), the second must say "no tests affected".
5. The constant edit is applied; ``tia select --json`` is compared with the test
   functions that executed any line of that module: tia must select a superset (it also
   selects the tests of modules that import it, whose module scope may read the constant).

The figures in the table:

* tests: node ids pytest collects.
* pytest / tia map: wall seconds of plain pytest (serial, and with ``-n W`` when W > 0) and
  of ``tia map -n W``; the ratio divides tia map by plain pytest with the same workers.
* fn edit: tia's selection as node ids / test functions (parameters stripped), coverage's
  test functions that ran the edited body, the tests ``tia run`` ran (failures in brackets),
  and whether tia's functions equal coverage's (tests tia chose only because they failed
  last time are left out of the comparison).  Test functions are matched by dotted name:
  ``tests/test_x.py::TestY::test_z[1]`` becomes ``tests.test_x.TestY.test_z`` and equals a
  coverage context when one name is a suffix of the other (at least two parts).
* const edit: tia's selection, coverage's test functions that executed any line of the
  module, and whether tia's set contains coverage's.
* no-change runs: tests run / exit status of the two ``tia run`` after the revert.

After the table, one section per worker count lists tia's reasons and every difference
(the test names on each side), then the exact commands, with ``$TMP`` for the temporary
directory.

Coverage's contexts start when a function named ``test*`` is entered and end when it
returns, so code that only a fixture runs is invisible to the ground truth: a test tia
selects beyond coverage may be such a test.  A test coverage names but tia does not
select is a test tia would skip although it runs the edited code: a tia bug.

Options: ``--pythonpath [DIR ...]`` (relative to the project; default ``src`` when the
project has one; no DIR: none) go first on PYTHONPATH, so a project installed in
VENV_PYTHON from its original directory is imported from the copy (a warning says when
coverage saw no line of an edited file in the copy); ``--timeout`` bounds every
subprocess (seconds, default 1800; a timeout kills its whole process group);
``--repeat N`` sets the timing repetitions; ``--keep`` leaves the temporary copies in
place.  Exit status: 0 when every acceptance check passed, 1 when one failed (the
details say which), 2 when a step could not run.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

IGNORED = (
    ".git",
    ".tia",
    "__pycache__",
    ".pytest_cache",
    ".venv",
    "*.egg-info",
    ".testmondata",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".ruff_cache",
)
PYTEST_QUIET = ["-q", "-p", "no:cacheprovider"]
GIT_IDENTITY = ["-c", "user.name=tia-bench", "-c", "user.email=tia-bench@example.invalid"]
# Variables that would change what pytest, coverage or tia do in the copy.
SCRUBBED_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
    "COVERAGE_PROCESS_START",
    "COVERAGE_PROCESS_CONFIG",
    "COVERAGE_RCFILE",
    "COVERAGE_FILE",
    "COVERAGE_CORE",
    "TIA_CACHE_DIR",
    "TIA_ENGINE",
)
# Run with VENV_PYTHON: argv = data file, then absolute paths; prints contexts by line.
READ_CONTEXTS = r"""
import json, os, sys
import coverage
data = coverage.CoverageData(sys.argv[1])
data.read()
wanted = {os.path.realpath(p): p for p in sys.argv[2:]}
files = {}
for measured in data.measured_files():
    name = wanted.get(os.path.realpath(measured))
    if name is not None:
        by_line = data.contexts_by_lineno(measured)
        files[name] = {str(line): sorted(c) for line, c in by_line.items()}
print(json.dumps({"files": files, "contexts": sorted(data.measured_contexts())}))
"""
OUTCOME_LINE = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS) (.+)$")
SUMMARY_LINE = re.compile(r"\bin \d+(?:\.\d+)?s\b")
FAILING = ("FAILED", "ERROR")


class BenchError(Exception):
    """A step could not run as the benchmark needs; the message says which."""


@dataclass(frozen=True)
class Edit:
    """Replace *old* by *new* (first occurrence) on line *line* of *file*."""

    file: str
    line: int
    old: str
    new: str

    def describe(self) -> str:
        return f"{self.file}:{self.line}: {self.old!r} -> {self.new!r}"


@dataclass
class Result:
    """One finished subprocess."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float


@dataclass
class Shell:
    """Runs commands in the copy with a fixed environment, a timeout, and a log of commands."""

    tmp: Path
    env: dict[str, str]
    timeout: float
    log: list[str] = field(default_factory=list)
    logging: bool = True

    def shown(self, text: str) -> str:
        return text.replace(str(self.tmp), "$TMP")

    def note(self, text: str) -> None:
        self.log.append(f"# {self.shown(text)}")

    def run(self, args: Sequence[str], cwd: Path, what: str, *, shown: str | None = None) -> Result:
        """Run *args* in *cwd*; the log shows *shown* instead of the command when given."""
        if self.logging:
            self.log.append("$ " + self.shown(shown or shlex.join(args)))
        print(f"  {what} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        # A session of its own, so a timeout kills pytest's workers too.
        proc = subprocess.Popen(
            list(args),
            cwd=cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise BenchError(f"timed out after {self.timeout:g}s: {shlex.join(args)}") from None
        except BaseException:  # Ctrl-C: the session of its own did not get it
            _kill(proc)
            raise
        return Result(proc.returncode, out, err, time.perf_counter() - start)


def _kill(proc: subprocess.Popen[str]) -> None:
    """Kill *proc* and everything in its session, then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


@dataclass
class Selection:
    """`tia select --json`, parsed."""

    mode: str
    reasons: dict[str, list[str]]  # nodeid -> rules
    why: dict[str, list[str]]  # nodeid -> each reason as text

    def breakdown(self, top: int = 4) -> str:
        """The commonest reasons, with how many tests each chose."""
        counts = Counter(w for reasons in self.why.values() for w in reasons)
        text = "; ".join(f"{n} x {w}" for w, n in counts.most_common(top))
        return text + (f"; and {len(counts) - top} other reasons" if len(counts) > top else "")

    @property
    def nodeids(self) -> list[str]:
        return sorted(self.reasons)

    def changed(self) -> list[str]:
        """The node ids chosen for a reason other than failing last time."""
        return sorted(n for n, rules in self.reasons.items() if set(rules) - {"failed"})


@dataclass
class Ran:
    """The tests a pytest run reported in its ``-rA`` summary."""

    returncode: int
    outcomes: dict[str, str]  # nodeid -> PASSED/FAILED/ERROR/XFAIL/XPASS
    skipped: int
    no_tests_affected: bool

    @property
    def count(self) -> int:
        return len(self.outcomes) + self.skipped

    @property
    def failed(self) -> list[str]:
        return sorted(n for n, word in self.outcomes.items() if word in FAILING)


@dataclass
class Figures:
    """Everything measured for one worker count."""

    workers: int
    tests: int = 0
    known: list[str] = field(default_factory=list)
    all_contexts: list[str] = field(default_factory=list)
    pytest_serial: Result | None = None
    pytest_parallel: Result | None = None
    tia_map: Result | None = None
    truth_status: int = 0
    fn_lines: list[int] = field(default_factory=list)
    fn_select: Selection | None = None
    fn_truth: set[str] = field(default_factory=set)
    fn_run: Ran | None = None
    revert_select: Selection | None = None
    revert_run: Ran | None = None
    again_run: Ran | None = None
    const_select: Selection | None = None
    const_truth: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


# --- parsing -----------------------------------------------------------------------------


def parse_edit(spec: str | None, parts: Sequence[str | None], kind: str) -> Edit:
    """An `Edit` from ``FILE:LINE:OLD:NEW`` or from the four ``--KIND-...`` options."""
    if spec is not None:
        if any(p is not None for p in parts):
            raise BenchError(f"give --{kind} or the --{kind}-file/-line/-old/-new options, not both")
        file, sep1, rest = spec.partition(":")
        line, sep2, rest = rest.partition(":")
        pair = rest.split(":")
        if not (sep1 and sep2) or len(pair) != 2:
            raise BenchError(
                f"--{kind} {spec!r}: expected FILE:LINE:OLD:NEW with no ':' inside OLD or NEW; "
                f"otherwise use --{kind}-file, --{kind}-line, --{kind}-old and --{kind}-new"
            )
        old, new = pair
    else:
        if any(p is None for p in parts):
            raise BenchError(f"the {kind} edit is required: --{kind} FILE:LINE:OLD:NEW")
        file, line, old, new = (str(p) for p in parts)
    if not line.isdigit() or not old or old == new:
        raise BenchError(f"the {kind} edit needs a line number, a non-empty OLD and a different NEW")
    return Edit(file, int(line), old, new)


def function_body_lines(source: str, line: int) -> list[int]:
    """Lines of the innermost function holding *line*: its body minus nested function bodies."""
    tree = ast.parse(source)
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    holders = [
        node
        for node in ast.walk(tree)
        if isinstance(node, functions)
        and min([node.lineno, *(d.lineno for d in node.decorator_list)]) <= line <= (node.end_lineno or 0)
    ]
    if not holders:
        raise BenchError(f"line {line} is in no function")
    func = max(holders, key=lambda n: n.lineno)
    lines = set(range(func.body[0].lineno, (func.end_lineno or func.lineno) + 1))
    for node in ast.walk(func):
        if node is not func and isinstance(node, functions):
            lines -= set(range(node.body[0].lineno, (node.end_lineno or node.lineno) + 1))
    return sorted(lines)


def parse_selection(result: Result) -> Selection:
    if result.returncode != 0:
        raise BenchError(f"tia select failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    doc = json.loads(result.stdout)
    reasons = {t["nodeid"]: [r["rule"] for r in t["reasons"]] for t in doc["tests"]}
    why = {t["nodeid"]: [reason_text(r) for r in t["reasons"]] for t in doc["tests"]}
    return Selection(doc.get("mode", "?"), reasons, why)


def reason_text(reason: dict[str, str]) -> str:
    where = reason.get("file", "") + (f"::{reason['scope']}" if reason.get("scope") else "")
    text = f"{reason['rule']} {where}".strip()
    return f"{text} ({reason['detail']})" if reason.get("detail") else text


def parse_ran(result: Result, known: Iterable[str]) -> Ran:
    """Which tests a ``-rA`` run reported, by node id (skipped ones are only counted)."""
    known_ids = set(known)
    outcomes: dict[str, str] = {}
    rank = {"PASSED": 0, "XFAIL": 1, "XPASS": 2, "FAILED": 3, "ERROR": 4}
    for line in result.stdout.splitlines():
        match = OUTCOME_LINE.match(line)
        if not match:
            continue
        word, rest = match.groups()
        nodeid = rest if rest in known_ids else ""
        if not nodeid:
            prefixes = [k for k in known_ids if rest.startswith(k + " - ")]
            nodeid = max(prefixes, key=len) if prefixes else rest.split(" - ", 1)[0]
        if "::" not in nodeid:  # a collection error names a file, not a test
            continue
        if nodeid not in outcomes or rank[word] > rank[outcomes[nodeid]]:
            outcomes[nodeid] = word
    summaries = [line for line in result.stdout.splitlines() if SUMMARY_LINE.search(line)]
    skipped = re.search(r"(\d+) skipped", summaries[-1]) if summaries else None
    return Ran(
        result.returncode,
        outcomes,
        int(skipped.group(1)) if skipped else 0,
        "no tests affected" in result.stderr + result.stdout,
    )


# --- matching test functions -------------------------------------------------------------


def nodeid_key(nodeid: str) -> tuple[str, ...]:
    """``tests/test_x.py::TestY::test_z[p]`` -> ``("tests", "test_x", "TestY", "test_z")``."""
    path, _, rest = nodeid.partition("::")
    module = path[:-3] if path.endswith(".py") else path
    names = rest.split("[", 1)[0].split("::") if rest else []
    return (*(p for p in module.split("/") if p), *names)


def context_key(context: str) -> tuple[str, ...]:
    return tuple(context.split("."))


def same_test(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    n = min(len(a), len(b))
    return n >= 2 and a[-n:] == b[-n:]


def unmatched(keys: Iterable[tuple[str, ...]], others: Iterable[tuple[str, ...]]) -> list[str]:
    """The keys no key of *others* names, as dotted names."""
    by_name: dict[str, list[tuple[str, ...]]] = {}
    for other in others:
        by_name.setdefault(other[-1], []).append(other)
    return sorted(".".join(k) for k in keys if not any(same_test(k, o) for o in by_name.get(k[-1], [])))


def functions_of(nodeids: Iterable[str]) -> set[tuple[str, ...]]:
    return {nodeid_key(n) for n in nodeids}


# --- the benchmark -----------------------------------------------------------------------


def environment(copy: Path, pythonpath: Sequence[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    paths = [str(copy / p) for p in pythonpath]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PY_COLORS"] = "0"
    return env


def apply(edit: Edit, copy: Path, shell: Shell) -> None:
    path = copy / edit.file
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if not 1 <= edit.line <= len(lines) or edit.old not in lines[edit.line - 1]:
        raise BenchError(f"{edit.describe()}: OLD is not on that line")
    lines[edit.line - 1] = lines[edit.line - 1].replace(edit.old, edit.new, 1)
    path.write_text("".join(lines), encoding="utf-8")
    shell.note(f"edit {edit.describe()}  (done by the script)")


def contexts(
    python: str, data_file: Path, files: Sequence[Path], shell: Shell, copy: Path
) -> tuple[dict[str, dict[int, list[str]]], list[str]]:
    """Coverage's contexts by line for each of *files*, and every context it recorded."""
    args = [str(data_file), *map(str, files)]
    shown = shlex.join([python, "-c", "$READ_CONTEXTS", *args]) + "  # READ_CONTEXTS: see core_loop.py"
    result = shell.run([python, "-c", READ_CONTEXTS, *args], copy, "read coverage", shown=shown)
    if result.returncode != 0:
        raise BenchError(f"reading coverage data failed: {result.stderr.strip()[-2000:]}")
    doc = json.loads(result.stdout)
    by_file = {
        name: {int(line): ctxs for line, ctxs in by_line.items()} for name, by_line in doc["files"].items()
    }
    return by_file, [c for c in doc["contexts"] if c]


def hits(by_line: dict[int, list[str]], lines: Iterable[int] | None) -> set[str]:
    """The non-empty contexts that executed any of *lines* (all lines when None)."""
    chosen = by_line if lines is None else {n: by_line[n] for n in lines if n in by_line}
    return {c for ctxs in chosen.values() for c in ctxs if c}


def bench(
    project: Path, python: str, edits: tuple[Edit, Edit], workers: int, opts: argparse.Namespace
) -> Figures:
    """Measure one worker count in a fresh copy of *project*, removed afterwards."""
    figures = Figures(workers)
    tmp = Path(tempfile.mkdtemp(prefix="tia-bench-"))
    try:
        copy = tmp / project.name
        shutil.copytree(project, copy, symlinks=True, ignore=shutil.ignore_patterns(*IGNORED))
        shell = Shell(tmp, environment(copy, opts.pythonpath), opts.timeout)
        figures.commands = shell.log
        _measure(figures, copy, edits, shell, python=python, repeat=opts.repeat)
    finally:
        if opts.keep:
            print(f"  kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return figures


def _fastest(old: Result | None, new: Result) -> Result:
    return new if old is None or new.seconds < old.seconds else old


def _measure(
    figures: Figures, copy: Path, edits: tuple[Edit, Edit], shell: Shell, *, python: str, repeat: int
) -> None:
    """Steps 1-5 of the module docstring, in *copy*, filling in *figures*."""
    w, (fn, const), tmp = figures.workers, edits, shell.tmp
    git = ["git", "-c", "commit.gpgsign=false", *GIT_IDENTITY]
    commit = ["commit", "-q", "--no-verify", "-m", "snapshot"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], commit):
        result = shell.run([*git, *args], copy, f"git {args[0]}")
        if result.returncode != 0:
            raise BenchError(f"git {args[0]} failed: {result.stderr.strip()}")

    fn_source = (copy / fn.file).read_text(encoding="utf-8")
    figures.fn_lines = function_body_lines(fn_source, fn.line)

    # 1. the suite, plain pytest, tia map
    collected = shell.run([python, "-m", "pytest", "--collect-only", *PYTEST_QUIET], copy, "collect")
    if collected.returncode != 0:
        raise BenchError(
            f"pytest --collect-only failed ({collected.returncode}):\n{collected.stdout[-3000:]}"
        )
    lines = collected.stdout.splitlines()
    known = [line for line in lines if "::" in line and " " not in line.split("::")[0]]
    figures.tests = len(known)
    figures.known = known
    tia = [python, "-m", "tia"]
    if repeat > 1:
        shell.note(
            f"the next {3 if w else 2} commands run {repeat} times in turn; the fastest of each counts"
        )
    for turn in range(repeat):
        shell.logging = turn == 0
        figures.pytest_serial = _fastest(
            figures.pytest_serial, shell.run([python, "-m", "pytest", *PYTEST_QUIET], copy, "plain pytest")
        )
        if w:
            parallel = shell.run([python, "-m", "pytest", *PYTEST_QUIET, "-n", str(w)], copy, "pytest -n")
            figures.pytest_parallel = _fastest(figures.pytest_parallel, parallel)
        figures.tia_map = _fastest(figures.tia_map, shell.run([*tia, "map", "-n", str(w)], copy, "tia map"))
    shell.logging = True
    if figures.pytest_serial and figures.pytest_serial.returncode != 0:
        figures.warnings.append(
            f"plain pytest exited {figures.pytest_serial.returncode}: the suite does not pass as copied"
        )
    if figures.tia_map and figures.tia_map.returncode not in (0, 1):
        raise BenchError(f"tia map failed ({figures.tia_map.returncode}):\n{figures.tia_map.stderr[-3000:]}")

    # 2. ground truth
    rcfile, data_file = tmp / "coverage-truth.rc", tmp / ".cov-truth"
    rcfile.write_text(
        f"[run]\ndynamic_context = test_function\nbranch = False\ncore = ctrace\nsource =\n    {copy}\n",
        encoding="utf-8",
    )
    shell.note(f"{shell.shown(str(rcfile))}: {rcfile.read_text(encoding='utf-8')!r}")
    truth = shell.run(
        [
            python,
            "-m",
            "coverage",
            "run",
            f"--rcfile={rcfile}",
            f"--data-file={data_file}",
            "-m",
            "pytest",
            *PYTEST_QUIET,
            "-p",
            "no:tia.plugin",
        ],
        copy,
        "coverage ground truth",
    )
    figures.truth_status = truth.returncode
    if not data_file.exists():
        raise BenchError(f"coverage wrote no data ({truth.returncode}):\n{truth.stderr[-3000:]}")
    by_file, figures.all_contexts = contexts(
        python, data_file, [copy / fn.file, copy / const.file], shell, copy
    )
    for edit in (fn, const):
        if str(copy / edit.file) not in by_file:
            figures.warnings.append(
                f"coverage measured no line of {edit.file} in the copy: no test runs it, or the project is "
                "imported from elsewhere (see --pythonpath)"
            )
    figures.fn_truth = hits(by_file.get(str(copy / fn.file), {}), figures.fn_lines)
    figures.const_truth = hits(by_file.get(str(copy / const.file), {}), None)

    # 3. the function edit
    run = [*tia, "run", "-n", str(w), "--", *PYTEST_QUIET, "-rA"]
    select = [*tia, "select", "--json"]
    apply(fn, copy, shell)
    figures.fn_select = parse_selection(shell.run(select, copy, "tia select (function edit)"))
    figures.fn_run = parse_ran(shell.run(run, copy, "tia run (function edit)"), known)

    # 4. revert, then run twice with nothing changed
    shell.run(["git", "checkout", "--", fn.file], copy, "revert")
    figures.revert_select = parse_selection(shell.run(select, copy, "tia select (reverted)"))
    figures.revert_run = parse_ran(shell.run(run, copy, "tia run (reverted)"), known)
    figures.again_run = parse_ran(shell.run(run, copy, "tia run (again)"), known)

    # 5. the constant edit
    apply(const, copy, shell)
    figures.const_select = parse_selection(shell.run(select, copy, "tia select (constant edit)"))
    shell.run(["git", "checkout", "--", const.file], copy, "revert")


# --- the report --------------------------------------------------------------------------


def seconds(result: Result | None) -> str:
    return "-" if result is None else f"{result.seconds:.2f} s"


def yes(flag: bool) -> str:
    return "yes" if flag else "**NO**"


def failed_checks(f: Figures) -> list[str]:
    """The acceptance checks this worker count failed (empty: all passed)."""
    assert f.fn_select and f.fn_run and f.revert_run and f.again_run and f.const_select
    fn_tia, fn_cov = functions_of(f.fn_select.changed()), {context_key(c) for c in f.fn_truth}
    const_tia, const_cov = functions_of(f.const_select.nodeids), {context_key(c) for c in f.const_truth}
    checks = {
        "function edit: tia's test functions equal coverage's": not unmatched(fn_tia, fn_cov)
        and not unmatched(fn_cov, fn_tia),
        "function edit: tia run ran the selection": set(f.fn_run.outcomes) <= set(f.fn_select.nodeids)
        and f.fn_run.count == len(f.fn_select.nodeids),
        "revert: tia run reran every test that failed under the edit": set(f.fn_run.failed)
        <= set(f.revert_run.outcomes),
        "revert: tia run exited 0": f.revert_run.returncode == 0,
        "again: tia run ran nothing, exited 0, said 'no tests affected'": f.again_run.count == 0
        and f.again_run.returncode == 0
        and f.again_run.no_tests_affected,
        "constant edit: tia's selection contains coverage's": not unmatched(const_cov, const_tia),
    }
    return [name for name, ok in checks.items() if not ok]


def row(project: str, f: Figures) -> list[str]:
    assert f.fn_select and f.fn_run and f.revert_run and f.again_run and f.const_select and f.tia_map
    same = f.pytest_parallel or f.pytest_serial
    ratio = f"{f.tia_map.seconds / same.seconds:.2f}x" if same and same.seconds else "-"
    pytest_wall = seconds(f.pytest_serial)
    if f.pytest_parallel:
        pytest_wall += f" (-n {f.workers}: {seconds(f.pytest_parallel)})"
    fn_tia = functions_of(f.fn_select.changed())
    fn_cov = {context_key(c) for c in f.fn_truth}
    fn_match = not unmatched(fn_tia, fn_cov) and not unmatched(fn_cov, fn_tia)
    const_tia = functions_of(f.const_select.nodeids)
    const_cov = {context_key(c) for c in f.const_truth}
    again = f"{f.again_run.count} / {f.again_run.returncode}"
    if f.again_run.no_tests_affected:
        again += ' ("no tests affected")'
    return [
        project,
        str(f.workers),
        str(f.tests),
        pytest_wall,
        f"{seconds(f.tia_map)} ({ratio})",
        f"{len(f.fn_select.nodeids)} ids / {len(fn_tia)} fns",
        f"{len(fn_cov)} fns",
        f"{f.fn_run.count} ({len(f.fn_run.failed)} failed)",
        yes(fn_match),
        f"{len(f.const_select.nodeids)} ids / {len(const_tia)} fns",
        f"{len(const_cov)} fns",
        yes(not unmatched(const_cov, const_tia)),
        f"{f.revert_run.count} / {f.revert_run.returncode}",
        again,
    ]


HEADER = [
    "project",
    "workers",
    "tests",
    "plain pytest wall",
    "tia map wall (ratio)",
    "fn edit: tia selected",
    "fn edit: coverage truth",
    "fn edit: ran",
    "fn edit: match?",
    "const edit: tia selected",
    "const edit: coverage module dependents",
    "const edit: superset?",
    "no-change run 1: ran / exit",
    "no-change run 2: ran / exit",
]


def table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(" --- " for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def details(f: Figures, fn: Edit, const: Edit) -> list[str]:
    assert f.fn_select and f.fn_run and f.revert_run and f.again_run and f.const_select and f.revert_select
    out = [f"### workers = {f.workers}", ""]
    out += [f"- warning: {w}" for w in f.warnings]
    if f.truth_status != (f.pytest_serial.returncode if f.pytest_serial else 0):
        out.append(f"- warning: the coverage run exited {f.truth_status}, plain pytest did not")
    suite, seen = functions_of(f.known), {context_key(c) for c in f.all_contexts}
    out.append(
        f"- names: the suite's {len(f.known)} node ids are {len(suite)} test functions; coverage recorded "
        f"{len(seen)} contexts; {len(unmatched(suite, seen))} functions have no context (never called: "
        f"skipped, or inherited from another module), {len(unmatched(seen, suite))} contexts name no "
        "collected test (a helper named test*)"
    )
    lines = f.fn_lines
    out.append(f"- function edit {fn.describe()}; body lines {lines[0]}-{lines[-1]} ({len(lines)} lines)")
    if f.fn_select.mode != "select":
        out.append(f"- tia select ran in mode {f.fn_select.mode!r} (everything)")
    out.append(f"- tia's reasons: {f.fn_select.breakdown()}")
    failed_only = sorted(set(f.fn_select.nodeids) - set(f.fn_select.changed()))
    if failed_only:
        out.append(f"- selected only because they failed last time (not compared): {', '.join(failed_only)}")
    fn_tia = functions_of(f.fn_select.changed())
    fn_cov = {context_key(c) for c in f.fn_truth}
    missed, extra = unmatched(fn_cov, fn_tia), unmatched(fn_tia, fn_cov)
    out.append(f"- coverage ran the body in, tia did not select (tia would skip them): {missed or 'none'}")
    out.append(f"- tia selected, coverage did not see them run the body: {extra or 'none'}")
    ran, selected = set(f.fn_run.outcomes), set(f.fn_select.nodeids)
    if ran != selected or f.fn_run.skipped:
        out.append(
            f"- tia run ran {f.fn_run.count} tests ({f.fn_run.skipped} skipped, which -rA does not name); "
            "selected, not named by -rA: "
            f"{sorted(selected - ran) or 'none'}; run though not selected: {sorted(ran - selected) or 'none'}"
        )
    else:
        out.append(f"- tia run ran exactly the {len(ran)} selected tests, exit {f.fn_run.returncode}")
    out.append(f"- failed under the edit: {f.fn_run.failed or 'none'}")
    rerun = set(f.revert_run.outcomes)
    failed = set(f.fn_run.failed)
    others = sorted(rerun - failed)
    out.append(
        f"- after the revert tia run ran {f.revert_run.count}, exit {f.revert_run.returncode}: "
        f"{len(rerun & failed)} of the {len(failed)} failed under the edit"
        f"{' (all of them)' if failed <= rerun else ' (NOT all of them)'}"
        f", still failing: {f.revert_run.failed or 'none'}"
        + (
            f"; also {len(others)} that last ran against the edited code "
            f"(reasons: {sorted({r for n in others for r in f.revert_select.reasons.get(n, ['?'])})})"
            if others
            else ""
        )
    )
    out.append(
        f"- second tia run: ran {f.again_run.count}, exit {f.again_run.returncode}, "
        f"'no tests affected' printed: {f.again_run.no_tests_affected}"
    )
    const_tia = functions_of(f.const_select.nodeids)
    const_cov = {context_key(c) for c in f.const_truth}
    out.append(
        f"- constant edit {const.describe()}: tia mode {f.const_select.mode!r}, "
        f"reasons: {f.const_select.breakdown()}"
    )
    out.append(
        f"- coverage ran the module in, tia did not select (tia would skip them): "
        f"{unmatched(const_cov, const_tia) or 'none'}"
    )
    out.append(
        f"- tia selected beyond coverage's module dependents (importers' tests): "
        f"{len(unmatched(const_tia, const_cov))} test functions"
    )
    unmet = failed_checks(f)
    out.append(f"- acceptance: {'all checks pass' if not unmet else 'FAILED: ' + '; '.join(unmet)}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", type=Path, help="the project to measure (only read)")
    parser.add_argument("--python", required=True, help="interpreter with pytest, coverage and tia")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="worker counts (default 0 2)")
    parser.add_argument(
        "--pythonpath",
        nargs="*",
        default=None,
        help="directories of the project to put first on PYTHONPATH (default: src, when present)",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per subprocess (default 1800)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies")
    parser.add_argument(
        "--repeat", type=int, default=3, help="time plain pytest and tia map this many times (default 3)"
    )
    for kind in ("function", "constant"):
        parser.add_argument(f"--{kind}", metavar="FILE:LINE:OLD:NEW", help=f"the {kind} edit")
        for part in ("file", "line", "old", "new"):
            parser.add_argument(f"--{kind}-{part}", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.repeat < 1 or any(w < 0 for w in opts.workers):
        parser.error("--repeat must be at least 1 and --workers at least 0")
    project: Path = opts.project.resolve()
    if not project.is_dir():
        parser.error(f"{project} is not a directory")
    if opts.pythonpath is None:
        opts.pythonpath = ["src"] if (project / "src").is_dir() else []
    try:
        parts = ("file", "line", "old", "new")
        fn, const = (
            parse_edit(getattr(opts, kind), [getattr(opts, f"{kind}_{p}") for p in parts], kind)
            for kind in ("function", "constant")
        )
        for edit in (fn, const):
            target = project / edit.file
            if not target.is_file():
                raise BenchError(f"{edit.file} is not a file of {project}")
            text = target.read_text(encoding="utf-8").splitlines()
            if not 1 <= edit.line <= len(text) or edit.old not in text[edit.line - 1]:
                raise BenchError(f"{edit.describe()}: OLD is not on that line of the project")
        function_body_lines((project / fn.file).read_text(encoding="utf-8"), fn.line)
        results: list[Figures] = []
        for workers in opts.workers:
            print(f"{project.name}, {workers} workers:", file=sys.stderr, flush=True)
            results.append(bench(project, opts.python, (fn, const), workers, opts))
    except BenchError as exc:
        print(f"core_loop: error: {exc}", file=sys.stderr)
        return 2

    print(table([row(project.name, f) for f in results]))
    print()
    for f in results:
        print("\n".join(details(f, fn, const)))
        print()
    print(f"Commands (in $TMP/{project.name}, a copy of {project}, with PYTHONPATH = {opts.pythonpath}):")
    for f in results:
        print(f"\nworkers = {f.workers}:\n```console")
        print("\n".join(f.commands))
        print("```")
    return 1 if any(failed_checks(f) for f in results) else 0


if __name__ == "__main__":
    sys.exit(main())
