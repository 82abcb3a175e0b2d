"""Mapping overhead of each recording engine, and whether the engines agree, on real projects.

Usage::

    python benchmarks/engines.py NAME=DIR=VENV_PYTHON [NAME=DIR=VENV_PYTHON ...] [--rounds 5]

Each VENV_PYTHON has pytest, pytest-xdist and tia installed (tia runs as ``VENV_PYTHON -m
tia``).  For each project the script copies DIR (without .git, .tia and tool caches) into a
temporary git repository per engine, so DIR is never written to; a ``src/`` directory goes
first on ``PYTHONPATH``.  Then, ``--rounds`` times, interleaved so that the shared machine's
noise falls on every command alike, it runs in turn:

* plain ``pytest -q -p no:cacheprovider -p no:randomly``;
* ``tia map -n 0 --engine coverage`` (coverage.py's ctrace core, every Python);
* ``tia map -n 0 --engine monitoring`` (sys.monitoring, Python 3.12+).

It prints the median wall seconds of each, the median ratio of each engine's map over plain
pytest (each round's ratio is taken side by side), and whether both engines stored the same
dependencies (file and scopes) for every test and the same run facts; where they differ, it
lists the scopes one engine recorded for a test and the other did not.  Exit status: 0 when
the engines agree on every project, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tia.store import Store  # noqa: E402

IGNORE = shutil.ignore_patterns(".git", ".tia", "__pycache__", ".pytest_cache", ".tox", ".venv", "*.egg-info")
ENGINES = ("coverage", "monitoring")


def copy(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=IGNORE)
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@tia.invalid", "commit", "-q", "-m", "copy"],
    ):
        subprocess.run(cmd, cwd=target, check=True)


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    # Exit status 1 is failing tests, which a real suite may have; a traceback is tia's failure.
    if proc.returncode not in (0, 1) or "Traceback (most recent call last)" in proc.stderr:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd} (exit {proc.returncode}): {tail}")
    return elapsed


def stored(cache_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    store = Store(cache_dir, print).open()
    try:
        deps = {n: {p: sorted(s) for p, (_, s) in r.deps.items()} for n, r in store.tests().items()}
        return deps, store.facts().to_json()
    finally:
        store.close()


def measure(name: str, source: Path, python: str, rounds: int, work: Path) -> dict[str, Any]:
    copies = {}
    for kind in ("pytest", *ENGINES):
        copies[kind] = work / f"{name}-{kind}"
        copy(source, copies[kind])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TIA_"))}
    env["PYTEST_ADDOPTS"] = "-p no:randomly"
    if (source / "src").is_dir():
        env["PYTHONPATH"] = "src"  # relative: each copy imports its own sources
    commands = {
        "pytest": [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        **{e: [python, "-m", "tia", "map", "-n", "0", "--engine", e, "--", "-q"] for e in ENGINES},
    }
    walls: dict[str, list[float]] = {kind: [] for kind in commands}
    timed(commands["pytest"], copies["pytest"], env)  # warm the bytecode caches once
    for _ in range(rounds):
        for kind, cmd in commands.items():
            walls[kind].append(timed(cmd, copies[kind], env))
    coverage_map, monitoring_map = (stored(copies[e] / ".tia") for e in ENGINES)
    differences = []
    for nodeid in sorted(set(coverage_map[0]) | set(monitoring_map[0])):
        by_coverage = coverage_map[0].get(nodeid, {})
        by_monitoring = monitoring_map[0].get(nodeid, {})
        for path in sorted(set(by_coverage) | set(by_monitoring)):
            only_c = sorted(set(by_coverage.get(path, [])) - set(by_monitoring.get(path, [])))
            only_m = sorted(set(by_monitoring.get(path, [])) - set(by_coverage.get(path, [])))
            if only_c or only_m or (path in by_coverage) != (path in by_monitoring):
                differences.append(f"{nodeid} {path}: coverage only {only_c}, monitoring only {only_m}")
    return {
        "differences": differences,
        "name": name,
        "tests": len(coverage_map[0]),
        "walls": {kind: statistics.median(values) for kind, values in walls.items()},
        "ratios": {
            e: statistics.median(w / p for w, p in zip(walls[e], walls["pytest"], strict=True))
            for e in ENGINES
        },
        "agree": coverage_map == monitoring_map and bool(coverage_map[0]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("projects", nargs="+", metavar="NAME=DIR=VENV_PYTHON")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tia-engines-") as tmp:
        for spec in args.projects:
            name, directory, python = spec.split("=", 2)
            rows.append(measure(name, Path(directory).resolve(), python, args.rounds, Path(tmp)))
    print(f"median of {args.rounds} interleaved rounds; Python of the venvs; {os.cpu_count()} CPUs\n")
    columns = ["project", "tests", "pytest"]
    columns += [f"map, {e}" for e in ENGINES] + [f"ratio, {e}" for e in ENGINES]
    print("| " + " | ".join(columns) + " |")
    print("| --- |" + " ---: |" * (len(columns) - 1))
    for row in rows:
        w, r = row["walls"], row["ratios"]
        agree = "" if row["agree"] else " **engines disagree**"
        print(
            f"| {row['name']}{agree} | {row['tests']} | {w['pytest']:.2f} s | {w['coverage']:.2f} s "
            f"| {w['monitoring']:.2f} s | {r['coverage']:.2f} | {r['monitoring']:.2f} |"
        )
    for engine in ENGINES:
        median = statistics.median(row["ratios"][engine] for row in rows)
        print(f"\nmedian ratio over the projects, {engine}: {median:.2f}")
    for row in rows:
        for line in row["differences"]:
            print(f"  {row['name']}: {line}")
    agree = all(row["agree"] for row in rows)
    print(f"same dependencies and facts from both engines on every project: {'yes' if agree else 'NO'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
