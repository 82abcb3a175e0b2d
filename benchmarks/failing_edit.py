"""What ``tia run`` costs after an edit that makes tests fail, against pytest given the same
tests and against the whole suite; optionally side by side with another tia.

Usage::

    python benchmarks/failing_edit.py DIR VENV_PYTHON --edit FILE:OLD:NEW \\
        [--compare LABEL=TIA_SRC ...] [--rounds 5]

VENV_PYTHON has pytest and tia installed.  The script copies DIR (without .git, .tia and
tool caches) into a temporary git repository for each tia it times, so DIR is never
written to; ``--compare LABEL=TIA_SRC`` adds one copy run by the tia whose sources are in
TIA_SRC (a ``src`` directory, say of ``git worktree add /tmp/before COMMIT``), put first
on ``PYTHONPATH`` for tia and for the pytest it starts.  In each copy that tia runs
``tia map``; then the script replaces the first OLD in FILE with NEW (in every copy: an
uncommitted edit) and asks this tia's ``tia select --json`` which tests it selects.

Then, ``--rounds`` times, interleaved so that the shared machine's noise falls on every
command alike: the whole suite (``pytest -q -p no:cacheprovider``), the selected tests
alone (``pytest -q -p no:cacheprovider NODE_IDS``), and each tia's ``tia run -n 0``, its
map put back as ``tia map`` left it before each run, so that every run selects, runs and
stores the same tests.

It prints the tests selected and failing, and the median wall seconds of each command
with its ratio to pytest on the same tests and to the whole suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from engines import bench_env, copy, timed

THIS_TIA = Path(__file__).resolve().parents[1] / "src"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dir", type=Path)
    parser.add_argument("python")
    parser.add_argument("--edit", required=True, metavar="FILE:OLD:NEW")
    parser.add_argument("--compare", action="append", default=[], metavar="LABEL=TIA_SRC")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rel, old, new = args.edit.split(":", 2)
    tias = {"this tia": THIS_TIA}
    for spec in args.compare:
        label, _, src = spec.partition("=")
        tias[label] = Path(src).resolve()
    source = args.dir.resolve()
    work = Path(tempfile.mkdtemp(prefix="tia-failing-"))
    try:
        base = bench_env(source, work)

        def env_for(src: Path) -> dict[str, str]:
            paths = [str(src), *filter(None, [base.get("PYTHONPATH")])]
            return {**base, "PYTHONPATH": os.pathsep.join(paths)}

        copies: dict[str, Path] = {}
        for i, (label, src) in enumerate(tias.items()):
            target = copies[label] = work / f"copy{i}"
            copy(source, target)
            subprocess.run(
                [args.python, "-m", "tia", "map", "-n", "0"],
                cwd=target,
                env=env_for(src),
                capture_output=True,
                check=False,
            )
            shutil.copytree(target / ".tia", work / f"map{i}")
            path = target / rel
            text = path.read_text(encoding="utf-8")
            if old not in text:
                raise SystemExit(f"{old!r} is not in {rel}")
            path.write_text(text.replace(old, new, 1), encoding="utf-8")
        first = copies["this tia"]
        selected = subprocess.run(
            [args.python, "-m", "tia", "select", "--json"],
            cwd=first,
            env=env_for(THIS_TIA),
            capture_output=True,
            text=True,
            check=True,
        )
        ids = [t["nodeid"] for t in json.loads(selected.stdout)["tests"]]
        plain = [args.python, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        walls: dict[str, list[float]] = {"whole suite": [], "pytest, same tests": []}
        walls.update({label: [] for label in tias})
        for _ in range(args.rounds):
            walls["whole suite"].append(timed(plain, first, base))
            walls["pytest, same tests"].append(timed([*plain, *ids], first, base))
            for i, (label, src) in enumerate(tias.items()):
                shutil.rmtree(copies[label] / ".tia")
                shutil.copytree(work / f"map{i}", copies[label] / ".tia")
                walls[label].append(
                    timed([args.python, "-m", "tia", "run", "-n", "0"], copies[label], env_for(src))
                )
        failing = subprocess.run(
            [*plain, "-rf", "--color=no", *ids], cwd=first, env=base, capture_output=True, text=True
        )
        failed = sum(line.startswith("FAILED ") for line in failing.stdout.splitlines())
        print(f"{source.name}, edit {rel}: {old!r} -> {new!r}")
        print(f"tia selects {len(ids)} tests, {failed} of them fail")
        print(f"{args.rounds} rounds, interleaved; median wall seconds\n")
        same, whole = statistics.median(walls["pytest, same tests"]), statistics.median(walls["whole suite"])
        print("| command | median s | over pytest, same tests | over the whole suite |")
        print("| --- | ---: | ---: | ---: |")
        for label, values in walls.items():
            median = statistics.median(values)
            name = label if label in ("whole suite", "pytest, same tests") else f"`tia run -n 0`, {label}"
            print(f"| {name} | {median:.2f} | {median / same:.2f} | {median / whole:.2f} |")
        print(f"\ninterpreter: {args.python}\ncommand: {' '.join(sys.argv)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
