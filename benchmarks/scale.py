"""How tia's map scales: select, update, disk and memory at 20,000 and 100,000 tests.

Usage::

    python benchmarks/scale.py [--tests 20000] [--modules 2000] [--rounds 5] [--keep]

The interpreter running the script must have tia installed.  It writes a synthetic git
repository into a temporary directory: ``--modules`` Python modules in packages of 100
(``pkg/sub<k>/m<i>.py``, ten small functions and a class each, every module importing its
package's ``base``), and one test file per module with ``--tests / --modules`` tests.  Running
100,000 tests under pytest to map them would take longer than the figures it measures, so the
map is written directly through tia's store, as `tia map` would have written it: each test
depends on its test file (its own function), on ``tests/conftest.py`` (a fixture), on the
module it tests (one function), on its package's ``base`` (one function), and on three
modules chosen at random with one function each (a seeded random, so the repository and
map are the same every time): seven files and some 800,000 dependencies at 100,000 tests.

Then it measures, each ``--rounds`` times, the median:

* the selection after editing one function of the first package's ``base`` module, which
  the tests of its 100 modules depend on (a twentieth of the tests at 20,000): ``tia run
  --dry-run``, which plans and prints, and ``tia select``, which also has pytest collect the
  selected test files to list tests the map does not know; each in a subprocess, with its
  wall time and its peak memory from the kernel's rusage;
* updating the map with the results of 100 tests (`Project.fold`, in this process, as
  ``tia run`` does after pytest, with the records it read while planning: the new records,
  the snapshot, eviction);
* the size of ``.tia/`` on disk.

It prints each figure with the target of issue 4 (select at most 0.3 s at 20,000 tests and
1 s at 100,000; the update at most 0.2 s; at most 50 MB on disk at 20,000; at most 300 MB
of memory at 100,000) and exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tia.config import load_config
from tia.environment import current
from tia.gitrepo import blob_id
from tia.project import Project
from tia.records import RunFacts, TestRecord, deps_to_json
from tia.scopes import index_source
from tia.store import Store
from tia.worktree import snapshot_id

FUNCTIONS = 10
PACKAGE_SIZE = 100
RANDOM_DEPS = 3
UPDATED_TESTS = 100
TARGETS = {  # tests -> (select seconds, disk MB, memory MB)
    20_000: (0.3, 50.0, None),
    100_000: (1.0, None, 300.0),
}
UPDATE_SECONDS = 0.2


def module_source(index: int) -> str:
    funcs = "\n\n".join(f"def f{k}(x):\n    return base.helper(x) + {index + k}\n" for k in range(FUNCTIONS))
    shape = f"class Shape{index}:\n    def area(self):\n        return {index}\n"
    return f"from . import base\n\n\n{funcs}\n\n{shape}"


BASE_SOURCE = "def helper(x):\n    return x * 2\n\n\ndef other(x):\n    return x - 1\n"


def write_repository(root: Path, modules: int, per_file: int) -> dict[str, str]:
    """Write and commit the repository; return its listing (path -> blob id)."""
    files: dict[str, str] = {
        "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n',
        "pkg/__init__.py": "",
        "tests/conftest.py": "import pytest\n\n\n@pytest.fixture\ndef seed():\n    return 5\n",
    }
    for k in range((modules + PACKAGE_SIZE - 1) // PACKAGE_SIZE):
        files[f"pkg/sub{k}/__init__.py"] = ""
        files[f"pkg/sub{k}/base.py"] = BASE_SOURCE
    for i in range(modules):
        sub = i // PACKAGE_SIZE
        files[f"pkg/sub{sub}/m{i}.py"] = module_source(i)
        tests = "\n\n".join(
            f"def test_{j}(seed):\n    assert m{i}.f{j % FUNCTIONS}(seed) > 0\n" for j in range(per_file)
        )
        files[f"tests/test_m{i}.py"] = f"from pkg.sub{sub} import m{i}\n\n\n{tests}"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=scale", "-c", "user.email=scale@invalid", "commit", "-q", "-m", "synthetic")
    return {rel: blob_id(text.encode()) for rel, text in files.items()}


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def test_deps(i: int, j: int, modules: int, listing: dict[str, str], rng: random.Random) -> dict:
    sub = i // PACKAGE_SIZE
    deps = {
        f"tests/test_m{i}.py": (listing[f"tests/test_m{i}.py"], frozenset({f"test_{j}"})),
        "tests/conftest.py": (listing["tests/conftest.py"], frozenset({"seed"})),
        f"pkg/sub{sub}/m{i}.py": (listing[f"pkg/sub{sub}/m{i}.py"], frozenset({f"f{j % FUNCTIONS}"})),
        f"pkg/sub{sub}/base.py": (listing[f"pkg/sub{sub}/base.py"], frozenset({"helper"})),
    }
    for other in rng.sample(range(modules), RANDOM_DEPS):
        path = f"pkg/sub{other // PACKAGE_SIZE}/m{other}.py"
        deps[path] = (listing[path], frozenset({f"f{rng.randrange(FUNCTIONS)}"}))
    return deps


def write_map(root: Path, listing: dict[str, str], modules: int, per_file: int) -> float:
    """Write the map `tia map` would have written; return how long that took."""
    start = time.perf_counter()
    rng = random.Random(20_000)
    env = current(root)
    snap = snapshot_id(listing)
    tests = {}
    for i in range(modules):
        for j in range(per_file):
            nodeid = f"tests/test_m{i}.py::test_{j}"
            tests[nodeid] = TestRecord(
                nodeid=nodeid,
                outcome="passed",
                duration=0.001,
                when=time.time(),
                epoch=snap,
                env=env.id,
                deps=test_deps(i, j, modules, listing, rng),
            )
    indexes = {}
    for rel, sha in listing.items():
        if rel.endswith(".py") and sha not in indexes:
            indexes[sha] = index_source((root / rel).read_bytes(), rel)
    store = Store(root / ".tia", print).open()
    meta = {
        "rootdir": "",
        "commit": None,
        "env": env.to_json(),
        "env_id": env.id,
        "environments": {env.id: {"env": env.to_json()}},
        "mapped": time.time(),
    }
    store.write_run(
        tests=tests, indexes=indexes, snapshot=(snap, listing), facts=RunFacts(), meta=meta, replace_all=True
    )
    store.close()
    return time.perf_counter() - start


def bytecode_cached(tmp: Path) -> dict[str, str]:
    """The environment for tia's subprocesses: bytecode cached, as for any installed tia, under
    the temporary directory (PYTHONDONTWRITEBYTECODE would have each run compile tia again)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def measure_select(root: Path, *command: str) -> tuple[float, float, int]:
    """Wall seconds and peak memory (MB) of one `tia COMMAND` subprocess; the lines it printed."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        f"out = subprocess.run([sys.executable, '-m', 'tia', *{command!r}], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - start\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(wall, peak, out.returncode, len(out.stdout.splitlines()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env=bytecode_cached(root.parent),
    )
    wall, peak, status, lines = done.stdout.split()
    if status != "0":
        raise SystemExit(f"scale: tia {' '.join(command)} failed in {root}")
    return float(wall), float(peak), int(lines)


def measure_update(root: Path, modules: int) -> float:
    """Seconds `Project.fold` takes to store the results of 100 tests."""
    project = Project(load_config(root, root), print)
    plan = project.plan(None, False)
    # A run with tests to fold planned from the roster (the saved plan answers only when
    # there is nothing to run), and fold reuses it.
    project.roster()
    rng = random.Random(UPDATED_TESTS)
    listing = plan.listing
    outcomes = {}
    deps = {}
    for n in range(UPDATED_TESTS):
        i = rng.randrange(modules)
        nodeid = f"tests/test_m{i}.py::test_{n % 10}"
        outcomes[nodeid] = {"outcome": "passed", "duration": 0.002}
        deps[nodeid] = deps_to_json(test_deps(i, n % 10, modules, listing, rng))
    payload = {
        "exitstatus": 0,
        "rootdir": str(root),
        "outcomes": outcomes,
        "parts": [
            {"collected": sorted(outcomes), "narrowed": True, "deps": deps, "blobs": {}, "indexes": {}}
        ],
        "started": time.time(),
    }
    start = time.perf_counter()
    project.fold(plan, payload, replace_all=False)
    elapsed = time.perf_counter() - start
    project.store.close()
    return elapsed


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=20_000)
    parser.add_argument("--modules", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the temporary repository in place")
    args = parser.parse_args()
    per_file = max(1, args.tests // args.modules)
    tmp = Path(tempfile.mkdtemp(prefix="tia-scale-"))
    root = tmp / "repo"
    root.mkdir()
    try:
        start = time.perf_counter()
        listing = write_repository(root, args.modules, per_file)
        written = time.perf_counter() - start
        map_seconds = write_map(root, listing, args.modules, per_file)
        tests = args.modules * per_file
        print(f"repository: {len(listing)} files, {tests} tests, written in {written:.1f} s")
        print(f"map written through the store in {map_seconds:.1f} s")
        # A first select hashes every file and saves the stat cache, as the first run after a clone does.
        measure_select(root, "select")
        base = root / "pkg/sub0/base.py"
        base.write_text(BASE_SOURCE.replace("x * 2", "x * 3"))
        plans = [measure_select(root, "run", "--dry-run") for _ in range(args.rounds)]
        selects = [measure_select(root, "select") for _ in range(args.rounds)]
        base.write_text(BASE_SOURCE)
        updates = []
        for _ in range(args.rounds):
            saved = tmp / "saved"
            shutil.copytree(root / ".tia", saved)
            updates.append(measure_update(root, args.modules))
            shutil.rmtree(root / ".tia")
            saved.rename(root / ".tia")
        plan_s = statistics.median(s[0] for s in plans)
        select_s = statistics.median(s[0] for s in selects)
        peak_mb = max(s[1] for s in plans + selects)
        disk = disk_mb(root / ".tia")
        update_s = statistics.median(updates)
        target_select, target_disk, target_memory = TARGETS.get(tests, (None, None, None))
        rows = [
            ("selection after a one-function edit: `tia run --dry-run` (s)", plan_s, target_select),
            ("  tests selected", float(plans[0][2]), None),
            ("`tia select`: the same, and pytest collects the selected files (s)", select_s, None),
            ("update the map after 100 tests (s)", update_s, UPDATE_SECONDS),
            (".tia on disk (MB)", disk, target_disk),
            ("peak memory of either (MB)", peak_mb, target_memory),
        ]
        failed = False
        print(f"\n| {tests:,} tests | median of {args.rounds} | target | met |\n| --- | ---: | ---: | --- |")
        for name, value, target in rows:
            met = "" if target is None else ("yes" if value <= target else "NO")
            failed = failed or met == "NO"
            print(f"| {name} | {value:,.3f} | {'' if target is None else target} | {met} |")
        print(f"\n(python {sys.version.split()[0]}, {os.cpu_count()} cores; repository in {root})")
        return 1 if failed else 0
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
