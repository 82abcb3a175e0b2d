"""How long `tia select` and `tia run` take when nothing changed, on a synthetic repository.

Usage::

    python benchmarks/no_change.py [--python VENV_PYTHON] [--compare LABEL=PYTHON ...]
        [--files 1000] [--rounds 9] [--keep]

VENV_PYTHON (default: the interpreter running this script) has pytest, coverage and tia
installed; tia runs as ``VENV_PYTHON -m tia``.

The script writes a git repository of ``--files`` Python files into a temporary directory:
a package ``pkg`` of ten subpackages whose modules hold ten small functions and a class
each (about 2.5 KB a module, every module importing its subpackage's ``base`` and an
earlier sibling), and ``tests/`` with one test file per ten Python files, each importing
four modules and holding four tests (400 tests for 1,000 files).  It commits the
repository, waits out tia's two-second racy-timestamp window, runs ``tia map`` once, and
copies the mapped repository (``.git`` and ``.tia`` included) to a second directory where
one function's body is edited.

Then, ``--rounds`` times (after one warm-up round that is not counted), it runs in turn
(the order rotates from round to round, so that no command always follows the same one):

* ``python -c pass``: the interpreter's start-up;
* ``git status --porcelain``: git's own look at the work tree;
* ``python -m tia select`` and ``python -m tia run`` in the unchanged repository;
* ``python -m tia select`` in the edited copy (for context: planning with one change, plus
  the pytest collection that looks for new tests);
* for each ``--compare LABEL=PYTHON`` (another interpreter with another tia, say an earlier
  commit's), its ``tia select`` and ``tia run`` with nothing changed, in a copy of the
  repository mapped by that tia: side by side in the same rounds, so that the shared
  machine's load falls on both alike.  The table gives each one's ratio to VENV_PYTHON's.

Every command runs with bytecode caching on, as an installed tia has its bytecode compiled:
``PYTHONDONTWRITEBYTECODE`` is dropped and ``PYTHONPYCACHEPREFIX`` points into the temporary
directory, so nothing is written outside it.

It prints the median wall time of each, the ratio of ``tia run`` to ``python -c pass`` plus
``git status``, and whether ``tia run`` meets the targets: at most 150 ms, and at most three
times that ratio.  Finally it runs ``tia.cli.main(["select"])`` and ``(["run"])`` inside one
interpreter each and prints which of pytest, coverage, networkx and GitPython (``git``)
that loaded: the path that finds nothing to do should load none of them.

Exit status: 0 when both targets are met and no heavy module was imported, 1 otherwise,
2 when a step could not run.  ``--keep`` leaves the temporary directory in place.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

TARGET_MS = 150.0
TARGET_RATIO = 3.0
SUBPACKAGES = 10
FUNCTIONS = 10
TESTS_PER_FILE = 4
IMPORTS_PER_TEST_FILE = 4
HEAVY = ("pytest", "coverage", "networkx", "git")
# Variables that would change what pytest, coverage or tia do in the synthetic repository.
SCRUBBED_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
    "COVERAGE_PROCESS_START",
    "COVERAGE_RCFILE",
    "COVERAGE_FILE",
    "COVERAGE_CORE",
)
# Run with VENV_PYTHON in the repository: argv = module names (comma-separated), then a tia
# command; prints the command's exit status and which of those modules it loaded.
WHICH_MODULES = """
import json, sys
import tia.cli
status = tia.cli.main(sys.argv[2:])
print(json.dumps({"status": status, "loaded": [m for m in sys.argv[1].split(",") if m in sys.modules]}))
"""


class BenchError(Exception):
    """A step could not run; the message says which."""


# --- the synthetic repository -------------------------------------------------------------


def module_source(sub: int, index: int, rng: random.Random) -> str:
    """One module of subpackage `sub`: ten functions and a class, importing its base and a sibling."""
    imports = [f"from pkg.sub{sub:02d} import base"]
    if index > 0:
        imports.append(f"from pkg.sub{sub:02d} import mod_{rng.randrange(index):03d} as sibling")
    functions = []
    for k in range(FUNCTIONS):
        functions.append(
            textwrap.dedent(f'''
            def f{k}(x: int) -> int:
                """Step {k} of this module's arithmetic on `x`."""
                total = 0
                for i in range({k % 4 + 2}):
                    total += (x * SCALE + i * {k + 1}) % 97
                if total > LIMIT:
                    total -= LIMIT
                return total + {k}
            ''')
        )
    return (
        f'"""Synthetic module {index} of pkg.sub{sub:02d}, for tia\'s no-change benchmark."""\n\n'
        "from __future__ import annotations\n\n"
        + "\n".join(imports)
        + f"\n\nSCALE = {index % 7 + 2}\nLIMIT = {50 + index % 13}\n"
        + "\n".join(functions)
        + textwrap.dedent(f'''

            class Shape{index}:
                """A rectangle with a cached area."""

                def __init__(self, width: int, height: int) -> None:
                    self.width = width
                    self.height = height

                def area(self) -> int:
                    return self.width * self.height * SCALE

                def describe(self) -> str:
                    return f"{{self.width}}x{{self.height}} ({{self.area()}})"
            ''')
    )


def expected(module: str, k: int, x: int) -> int:
    """What `f{k}(x)` of the module whose source is `module` returns (its SCALE and LIMIT)."""
    scale = int(module.split("SCALE = ", 1)[1].split("\n", 1)[0])
    limit = int(module.split("LIMIT = ", 1)[1].split("\n", 1)[0])
    total = sum((x * scale + i * (k + 1)) % 97 for i in range(k % 4 + 2))
    return (total - limit if total > limit else total) + k


def write_repository(root: Path, files: int) -> tuple[int, tuple[str, int]]:
    """Write the synthetic project into `root`; return its number of tests, and a module and
    function number that the first test calls (the function to edit)."""
    rng = random.Random(files)
    test_files = max(1, files // 10)
    modules_total = files - test_files - 1 - 1 - SUBPACKAGES * 2  # conftest, pkg/__init__, inits, bases
    if modules_total < SUBPACKAGES:
        raise BenchError(f"--files {files} is too few for {SUBPACKAGES} subpackages")
    sources: dict[str, str] = {}

    def write(rel: str, text: str) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")

    write("pyproject.toml", '[tool.pytest.ini_options]\npythonpath = ["."]\ntestpaths = ["tests"]\n')
    write(".gitignore", "__pycache__/\n.pytest_cache/\n")
    write("pkg/__init__.py", '"""The synthetic package."""\n')
    for sub in range(SUBPACKAGES):
        write(f"pkg/sub{sub:02d}/__init__.py", f'"""Subpackage {sub}."""\n')
        write(f"pkg/sub{sub:02d}/base.py", f'"""Shared constants of subpackage {sub}."""\n\nOFFSET = {sub}\n')
    for n in range(modules_total):
        sub, index = n % SUBPACKAGES, n // SUBPACKAGES
        rel = f"pkg/sub{sub:02d}/mod_{index:03d}.py"
        sources[rel] = module_source(sub, index, rng)
        write(rel, sources[rel])
    write(
        "tests/conftest.py",
        '"""Fixtures of the synthetic suite."""\n\nimport pytest\n\n\n'
        "@pytest.fixture\ndef seed() -> int:\n    return 5\n",
    )
    names = sorted(sources)
    tests = 0
    called: list[tuple[str, int]] = []
    for t in range(test_files):
        chosen = rng.sample(names, IMPORTS_PER_TEST_FILE)
        lines = ['"""Synthetic tests."""\n']
        for i, rel in enumerate(chosen):
            package, module = rel[:-3].replace("/", ".").rsplit(".", 1)
            lines.append(f"from {package} import {module} as m{i}")
        for j in range(TESTS_PER_FILE):
            i, k = j % len(chosen), rng.randrange(FUNCTIONS)
            value = expected(sources[chosen[i]], k, 5)
            called.append((chosen[i], k))
            lines.append(f"\n\ndef test_{j}(seed: int) -> None:\n    assert m{i}.f{k}(seed) == {value}")
            tests += 1
        write(f"tests/test_{t:03d}.py", "\n".join(lines) + "\n")
    return tests, called[0]


def function_edit(path: Path, k: int) -> None:
    """Change the body of function `f{k}` in the module at `path`, keeping its result."""
    text = path.read_text(encoding="utf-8")
    old = f"    return total + {k}\n"
    if old not in text:
        raise BenchError(f"{path}: no `{old.strip()}` to edit")
    path.write_text(text.replace(old, f"    return total + {k} * 1\n", 1), encoding="utf-8")


# --- running and timing -------------------------------------------------------------------


def environment(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV and not k.startswith("TIA_")}
    env["NO_COLOR"] = "1"
    # Bytecode is cached, as for any installed tia, but under the temporary directory, so that
    # the script writes nothing outside it (and PYTHONDONTWRITEBYTECODE does not slow tia down).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def run(
    args: Sequence[str], cwd: Path, env: dict[str, str]
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run `args`, which must succeed; return its wall seconds and the finished process."""
    start = time.perf_counter()
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return seconds, proc


def git(root: Path, *args: str) -> None:
    identity = ["-c", "user.name=tia-bench", "-c", "user.email=tia-bench@example.invalid"]
    subprocess.run(["git", *identity, *args], cwd=root, check=True, capture_output=True)


def heavy_imports(python: str, root: Path, env: dict[str, str], command: str) -> tuple[int, list[str]]:
    """The exit status of `tia COMMAND` run in one interpreter, and the heavy modules it loaded."""
    out = subprocess.run(
        [python, "-c", WHICH_MODULES, ",".join(HEAVY), command],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0 or not out.stdout.strip():
        raise BenchError(f"checking the imports of tia {command} failed: {out.stderr.strip()[-2000:]}")
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    return int(doc["status"]), list(doc["loaded"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter with tia installed")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="LABEL=PYTHON",
        help="also time this interpreter's tia, side by side (repeatable)",
    )
    parser.add_argument("--files", type=int, default=1000, help="Python files in the repository")
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds (medians are reported)")
    parser.add_argument("--keep", action="store_true", help="leave the temporary directory in place")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    others: dict[str, str] = {}
    for spec in args.compare:
        label, _, python = spec.partition("=")
        if not label or not python or label in others:
            parser.error(f"--compare {spec}: expected a new LABEL=PYTHON")
        others[label] = python
    tmp = Path(tempfile.mkdtemp(prefix="tia-no-change-"))
    try:
        return measure(args.python, others, args.files, args.rounds, tmp)
    except (BenchError, subprocess.SubprocessError, OSError) as exc:
        print(f"no_change: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def measure(python: str, others: dict[str, str], files: int, rounds: int, tmp: Path) -> int:
    env = environment(tmp)
    repo, edited = tmp / "repo", tmp / "edited"
    repo.mkdir()
    tests, (target, function) = write_repository(repo, files)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "synthetic project")
    # Each compared tia maps a copy of its own (copies keep the files' mtimes).
    copies = {label: tmp / f"repo-{index}" for index, label in enumerate(others)}
    for copy in copies.values():
        shutil.copytree(repo, copy, symlinks=True)
    print(f"wrote {files} Python files and {tests} tests in {repo}; mapping ...", file=sys.stderr)
    # Files written in the last two seconds are hashed on every run (see tia.worktree): wait them out.
    time.sleep(2.5)
    seconds, _ = run([python, "-m", "tia", "map", "-n", "0"], repo, env)
    print(f"tia map took {seconds:.1f} s", file=sys.stderr)
    for label, copy in copies.items():
        run([others[label], "-m", "tia", "map", "-n", "0"], copy, env)
    shutil.copytree(repo, edited, symlinks=True)
    function_edit(edited / target, function)

    commands: dict[str, tuple[list[str], Path]] = {
        "python -c pass": ([python, "-c", "pass"], repo),
        "git status --porcelain": (["git", "status", "--porcelain"], repo),
        "tia select (no change)": ([python, "-m", "tia", "select"], repo),
        "tia run (no change)": ([python, "-m", "tia", "run"], repo),
        "tia select (one-function edit)": ([python, "-m", "tia", "select"], edited),
    }
    for label, copy in copies.items():
        for command in ("select", "run"):
            commands[f"tia {command} (no change) [{label}]"] = ([others[label], "-m", "tia", command], copy)
    times: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for r in range(rounds + 1):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            cmd, cwd = commands[name]
            seconds, proc = run(cmd, cwd, env)
            if name.startswith("tia run (no change)") and "no tests affected" not in proc.stderr:
                raise BenchError(f"tia run with nothing changed ran tests:\n{proc.stderr[-2000:]}")
            if r:  # round 0 warms the caches: bytecode, the stat cache, the page cache
                times[name].append(seconds * 1000)
        print(f"round {r}/{rounds} done", file=sys.stderr)

    median = {name: statistics.median(values) for name, values in times.items()}
    baseline = median["python -c pass"] + median["git status --porcelain"]
    tia_run = median["tia run (no change)"]
    ratio = tia_run / baseline
    print(f"\n{files} Python files, {tests} tests; {rounds} rounds, interleaved; median wall time\n")
    print("| command | median ms | min ms | max ms | median over this tia's |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, values in times.items():
        mine = name.partition(" [")[0]
        ratio_to_mine = f"{median[name] / median[mine]:.2f}" if mine != name else ""
        print(f"| `{name}` | {median[name]:.0f} | {min(values):.0f} | {max(values):.0f} | {ratio_to_mine} |")
    ok_ms, ok_ratio = tia_run <= TARGET_MS, ratio <= TARGET_RATIO
    print(
        f"\n`tia run` / (`python -c pass` + `git status`) = {tia_run:.0f} / {baseline:.0f} = {ratio:.2f}\n"
        f"target <= {TARGET_MS:.0f} ms: {'pass' if ok_ms else 'FAIL'}; "
        f"target <= {TARGET_RATIO:g}x: {'pass' if ok_ratio else 'FAIL'}\n"
    )
    _, proc = run([python, "-m", "tia", "select", "--json"], edited, env)
    selected = len(json.loads(proc.stdout)["tests"])
    print(f"the one-function edit ({target}: f{function}) selects {selected} of {tests} tests")
    clean = True
    for command in ("select", "run"):
        status, loaded = heavy_imports(python, repo, env, command)
        clean = clean and not loaded and status == 0
        print(f"tia {command} (no change) loaded: {', '.join(loaded) or 'none of ' + ', '.join(HEAVY)}")
    print(f"\ninterpreter: {python}")
    for label, other in others.items():
        print(f"compared: {label} = {other}")
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    return 0 if ok_ms and ok_ratio and clean else 1


if __name__ == "__main__":
    sys.exit(main())
