"""Mapping overhead of each recording engine, and whether the engines agree, on real projects.

Usage::

    python benchmarks/engines.py NAME=DIR=VENV_PYTHON [NAME=DIR=VENV_PYTHON ...] [--rounds 5] \\
        [--engines coverage monitoring] [--testmon]

Each VENV_PYTHON has pytest, pytest-xdist and tia installed (tia runs as ``VENV_PYTHON -m
tia``).  For each project the script copies DIR (without .git, .tia and tool caches) into a
temporary git repository per engine, so DIR is never written to; a ``src/`` directory goes
first on ``PYTHONPATH``.  Bytecode is cached in the temporary directory, even where
``PYTHONDONTWRITEBYTECODE`` is set, as it is for installed packages.  Then, ``--rounds``
times, interleaved so that the shared machine's noise falls on every command alike, it runs
in turn:

* plain ``pytest -q -p no:cacheprovider -p no:randomly``;
* ``tia map -n 0 --engine coverage`` (coverage.py's ctrace core, every Python), from no map;
* ``tia map -n 0 --engine monitoring`` (sys.monitoring, Python 3.12+), from no map;
* with ``--testmon``, ``pytest -q --testmon`` from no testmon data (and with pytest's cache
  provider, which testmon needs): pytest-testmon's first run, which maps the suite (issue 4
  compares tia's mapping with it on Python 3.10 and 3.11).

``--engines`` runs only the engines named (on Python 3.10 and 3.11: ``coverage``).

It prints the median wall seconds of each, the median ratio of each over plain pytest (each
round's ratio is taken side by side), and, when both engines ran, whether they stored the
same dependencies (file and scopes) for every test and the same run facts; where they
differ, it lists the scopes one engine recorded for a test and the other did not.  Exit
status: 1 when both engines ran and disagree on a project, 0 otherwise.
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


def bench_env(source: Path, work: Path) -> dict[str, str]:
    """The environment of every command: no pytest or tia settings from outside, a
    ``src/`` layout's sources first on the path, and bytecode cached under `work` as for
    any installed package (``PYTHONDONTWRITEBYTECODE`` would have each run compile every
    module it imports again, and tia imports more of them than pytest)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TIA_"))}
    env["PYTEST_ADDOPTS"] = "-p no:randomly"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    if (source / "src").is_dir():
        env["PYTHONPATH"] = "src"  # relative: each copy imports its own sources
    return env


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


def measure(
    name: str, source: Path, python: str, *, rounds: int, work: Path, kinds: list[str]
) -> dict[str, Any]:
    """Median walls and ratios over plain pytest of each of `kinds` (engines, and "testmon")."""
    copies = {}
    for kind in ("pytest", *kinds):
        copies[kind] = work / f"{name}-{kind}"
        copy(source, copies[kind])
    env = bench_env(source, work)
    commands = {"pytest": [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"]}
    for kind in kinds:
        if kind == "testmon":  # which needs pytest's cache provider (its --lf option)
            commands[kind] = [python, "-m", "pytest", "-q", "--testmon"]
        else:
            commands[kind] = [python, "-m", "tia", "map", "-n", "0", "--engine", kind, "--", "-q"]
    walls: dict[str, list[float]] = {kind: [] for kind in commands}
    timed(commands["pytest"], copies["pytest"], env)  # warm the bytecode caches once
    for _ in range(rounds):
        for kind, cmd in commands.items():
            # Each round times a first mapping run, from no data: tia would reuse the
            # indexes of files its map already holds, testmon its own data.
            if kind == "testmon":
                for data in copies[kind].glob(".testmondata*"):
                    data.unlink()
            elif kind != "pytest":
                shutil.rmtree(copies[kind] / ".tia", ignore_errors=True)
            walls[kind].append(timed(cmd, copies[kind], env))
    maps = {e: stored(copies[e] / ".tia") for e in kinds if e in ENGINES}
    differences = []
    if len(maps) == len(ENGINES):
        coverage_map, monitoring_map = maps["coverage"], maps["monitoring"]
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
        "tests": max((len(m[0]) for m in maps.values()), default=0),
        "walls": {kind: statistics.median(values) for kind, values in walls.items()},
        "ratios": {
            kind: statistics.median(w / p for w, p in zip(walls[kind], walls["pytest"], strict=True))
            for kind in kinds
        },
        "agree": None
        if len(maps) < len(ENGINES)
        else maps["coverage"] == maps["monitoring"] and bool(maps["coverage"][0]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("projects", nargs="+", metavar="NAME=DIR=VENV_PYTHON")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--engines",
        nargs="+",
        choices=ENGINES,
        default=list(ENGINES),
        help="default: both (monitoring needs 3.12+)",
    )
    parser.add_argument(
        "--testmon", action="store_true", help="also time pytest-testmon's first (mapping) run"
    )
    args = parser.parse_args()
    kinds = [*args.engines, *(["testmon"] if args.testmon else [])]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tia-engines-") as tmp:
        for spec in args.projects:
            name, directory, python = spec.split("=", 2)
            rows.append(
                measure(
                    name, Path(directory).resolve(), python, rounds=args.rounds, work=Path(tmp), kinds=kinds
                )
            )
    print(f"median of {args.rounds} interleaved rounds; Python of the venvs; {os.cpu_count()} CPUs\n")
    label = {e: f"map, {e}" for e in ENGINES} | {"testmon": "testmon, first run"}
    columns = ["project", "tests", "pytest", *(label[k] for k in kinds), *(f"ratio, {k}" for k in kinds)]
    print("| " + " | ".join(columns) + " |")
    print("| --- |" + " ---: |" * (len(columns) - 1))
    for row in rows:
        w, r = row["walls"], row["ratios"]
        agree = " **engines disagree**" if row["agree"] is False else ""
        cells = [f"{row['name']}{agree}", str(row["tests"]), f"{w['pytest']:.2f} s"]
        cells += [f"{w[k]:.2f} s" for k in kinds] + [f"{r[k]:.2f}" for k in kinds]
        print("| " + " | ".join(cells) + " |")
    for kind in kinds:
        median = statistics.median(row["ratios"][kind] for row in rows)
        print(f"\nmedian ratio over the projects, {kind}: {median:.2f}")
    for row in rows:
        for line in row["differences"]:
            print(f"  {row['name']}: {line}")
    if len(args.engines) < len(ENGINES):
        return 0
    agree = all(row["agree"] for row in rows)
    print(f"same dependencies and facts from both engines on every project: {'yes' if agree else 'NO'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
