"""The safety benchmark: does tia run every test a change makes fail, on real projects?

For each project in ``projects.py`` (PyPI sdists at pinned versions, tests included):

1. ``setup``: download the sdist, make it a git repository on branch ``main``, and a
   venv with the project (editable), its test dependencies, tia (editable, from this
   checkout) and pytest-testmon, side by side;
2. ``mutants``: deterministic single-edit mutations of every kind (``mutants.py``);
3. ``truth``: the full suite under each mutation, serially: the tests it makes fail
   (cached by the mutation's digest, so only the first run is slow);
4. ``score tia``: from the map of ``main`` (``tia map``, restored before each
   mutation), the mutation is judged one of three ways in turn: committed on a branch
   and ``tia run --since main``; left in the work tree and ``tia run --since main``;
   left in the work tree and ``tia run`` (changes since each test's last run);
5. ``score testmon``: from ``main``'s ``.testmondata`` (restored likewise), the
   mutation in the work tree and ``pytest --testmon``;
6. ``report``: per project and kind, the mutations, those the suite catches, the
   failing tests each tool did not run, the share of the suite it ran and its wall
   time over the full suite's under the same mutation (the full suite run again just
   before or after the tool, in turn, so that the ratio is measured side by side), as
   a Markdown table (``--write`` puts it in a file).

A test "ran" when the outcomes plugin (``plugin/safety_outcomes.py``, loaded through
``PYTEST_ADDOPTS``) saw a report for it; a failed collection of a test module stands
for that module's tests.  Tests that fail without any mutation are left out.

    python benchmarks/safety/safety.py all --work /tmp/safety --python python3.12
    python benchmarks/safety/safety.py report --work /tmp/safety --write docs/safety.md

Exit status of ``report`` and ``all``: 1 if tia missed a failing test anywhere, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from mutants import KINDS, apply, candidates, choose
from projects import PROJECTS

HERE = Path(__file__).resolve().parent
TIA_ROOT = HERE.parent.parent
MODES = ("committed, --since main", "uncommitted, --since main", "uncommitted, since last run")
TIMEOUT = 900
# The last pytest that the projects' conftest files (boltons: a `path` hook argument) and
# pytest-testmon 2.2.0 work with.
PYTEST = "8.4.2"
EXCLUDES = [".tia/", ".testmondata*", ".pytest_cache/", "__pycache__/", "*.egg-info/", "build/"]


class Work:
    """Where one project's files, venv and results live."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.spec = PROJECTS[name]
        self.project = root / "projects" / name
        self.venv = root / "venvs" / name
        self.state = root / "state" / name
        self.logs = root / "logs" / name

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def json(self, kind: str) -> Path:
        return self.root / "results" / f"{self.name}.{kind}.json"

    def load(self, kind: str) -> dict:
        path = self.json(kind)
        return json.loads(path.read_text()) if path.exists() else {}

    def save(self, kind: str, data: dict) -> None:
        path = self.json(kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)


def sh(args: list[str], cwd: Path, log: Path | None = None, env: dict | None = None) -> tuple[int, float]:
    """Run a command; its output goes to `log`.  Returns the exit status and the wall time."""
    start = time.perf_counter()
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            proc = subprocess.run(
                args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=TIMEOUT
            )
    else:
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=TIMEOUT)
        if proc.returncode:
            raise SystemExit(f"safety: {' '.join(args)} failed in {cwd}:\n{proc.stdout}{proc.stderr}")
    return proc.returncode, time.perf_counter() - start


def git(work: Work, *args: str) -> None:
    sh(["git", "-c", "user.name=safety", "-c", "user.email=safety@invalid", *args], work.project)


def setup(work: Work, python: str) -> None:
    spec = work.spec
    if (work.project / ".git").exists() and (work.venv / "bin" / "tia").exists():
        return
    dist = work.root / "sdists"
    dist.mkdir(parents=True, exist_ok=True)
    sh(
        [
            python,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-binary",
            ":all:",
            "--no-deps",
            f"{work.name}=={spec['version']}",
            "-d",
            str(dist),
        ],
        work.root,
    )
    archive = next(p for p in dist.iterdir() if p.name.lower().startswith(f"{work.name}-{spec['version']}"))
    shutil.rmtree(work.project, ignore_errors=True)
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/")[0]
        tar.extractall(work.root / "projects", filter="data")
    (work.root / "projects" / top).rename(work.project)
    sh([python, "-m", "venv", "--clear", str(work.venv)], work.root)
    pip = [work.python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    tools = ["-e", str(TIA_ROOT), f"pytest=={PYTEST}", "pytest-testmon==2.2.0"]
    sh([*pip, "-e", str(work.project), *tools, *spec["deps"]], work.root)
    sh(["git", "init", "-q", "-b", "main"], work.project)
    (work.project / ".git" / "info" / "exclude").write_text("\n".join(EXCLUDES) + "\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", f"{work.name} {spec['version']}")


def tracked(work: Work) -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=work.project, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def make_mutants(work: Work, per_kind: int) -> list[dict]:
    mutants = choose(work.name, candidates(work.project, work.spec, tracked(work)), per_kind)
    work.save("mutants", {"per_kind": per_kind, "mutants": mutants})
    return mutants


def run_env(work: Work, outcomes: Path) -> dict:
    env = dict(os.environ)
    # Bytecode cached, as for installed packages: PYTHONDONTWRITEBYTECODE would have every run
    # compile every module it imports, and a tool that imports more would pay more for it.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work.root / "pycache")
    env["PYTHONPATH"] = str(HERE / "plugin")
    env["PYTEST_ADDOPTS"] = "-p safety_outcomes"
    env["SAFETY_OUTCOMES"] = str(outcomes)
    return env


def outcomes_of(path: Path) -> tuple[set[str], set[str]]:
    """(node ids that ran, node ids that failed) from the plugin's file."""
    ran: set[str] = set()
    failed: set[str] = set()
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            ran.add(row["nodeid"])
            if row["outcome"] == "failed":
                failed.add(row["nodeid"])
    return ran, failed


def run_suite(work: Work, args: list[str], log: Path) -> tuple[set[str], set[str], float]:
    outcomes = log.with_suffix(".jsonl")
    outcomes.unlink(missing_ok=True)
    _, wall = sh(args, work.project, log, run_env(work, outcomes))
    ran, failed = outcomes_of(outcomes)
    return ran, failed, wall


def pytest_cmd(work: Work, *extra: str) -> list[str]:
    return [work.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, *work.spec["pytest_args"]]


def testmon_cmd(work: Work) -> list[str]:
    # pytest-testmon 2.2.0 reads the cache provider's options: it cannot run without it.
    return [work.python, "-m", "pytest", "-q", "--testmon", *work.spec["pytest_args"]]


def reset(work: Work) -> None:
    """Back to main's committed files, keeping ignored ones (the tools' state)."""
    git(work, "checkout", "-qf", "main")
    git(work, "reset", "-q", "--hard", "main")
    git(work, "clean", "-fdq")
    subprocess.run(["git", "branch", "-D", "mutant"], cwd=work.project, capture_output=True)


def baseline(work: Work) -> dict:
    """The unmutated suite, three times: its tests, its failures, its median wall time."""
    truth = work.load("truth")
    if "baseline" in truth:
        return truth["baseline"]
    reset(work)
    runs = [run_suite(work, pytest_cmd(work), work.logs / f"baseline-{i}.log") for i in range(3)]
    tests = sorted(set.union(*(r[0] for r in runs)))
    if not tests:
        raise SystemExit(f"safety: {work.name}'s suite ran no test; see {work.logs}/baseline-0.log")
    flaky = sorted(set.union(*(r[1] for r in runs)))
    truth["baseline"] = {"tests": tests, "failing": flaky, "wall": statistics.median(r[2] for r in runs)}
    work.save("truth", truth)
    return truth["baseline"]


def ground_truth(work: Work, mutants: list[dict]) -> dict:
    base = baseline(work)
    truth = work.load("truth")
    cache = truth.setdefault("mutants", {})
    for mutant in mutants:
        if mutant["digest"] in cache:
            continue
        reset(work)
        apply(work.project, mutant)
        _, failed, wall = run_suite(work, pytest_cmd(work), work.logs / "truth" / f"{mutant['id']}.log")
        cache[mutant["digest"]] = {"failing": sorted(failed - set(base["failing"])), "wall": wall}
        work.save("truth", truth)
        print(
            f"truth {work.name} {mutant['id']}: {len(cache[mutant['digest']]['failing'])} failing", flush=True
        )
    reset(work)
    return truth


def prepare_state(work: Work, tool: str) -> float:
    """Map ``main`` with the tool once, keep its state; return the mapping run's wall time."""
    saved = work.state / tool
    meta = work.state / f"{tool}.json"
    if meta.exists():
        return json.loads(meta.read_text())["wall"]
    reset(work)
    if tool == "tia":
        shutil.rmtree(work.project / ".tia", ignore_errors=True)
        cmd = [
            str(work.venv / "bin" / "tia"),
            "map",
            "--",
            "-q",
            "-p",
            "no:cacheprovider",
            *work.spec["pytest_args"],
        ]
        state = work.project / ".tia"
    else:
        for old in work.project.glob(".testmondata*"):
            old.unlink()
        cmd = testmon_cmd(work)
        state = work.project / ".testmondata"
    status, wall = sh(
        cmd, work.project, work.logs / f"{tool}-map.log", run_env(work, work.logs / f"{tool}-map.jsonl")
    )
    if status not in (0, 1):
        # A tool that fails on a project is scored as it is: its misses will show it.
        print(f"safety: mapping {work.name} with {tool} ended with status {status}; see its log")
    shutil.rmtree(saved, ignore_errors=True)
    saved.mkdir(parents=True)
    if state.is_dir():
        shutil.copytree(state, saved / state.name)
    else:
        shutil.copy2(state, saved / state.name)
    meta.write_text(json.dumps({"wall": wall, "status": status}))
    return wall


def restore_state(work: Work, tool: str) -> None:
    for old in [work.project / ".tia", *work.project.glob(".testmondata*")]:
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
    for item in (work.state / tool).iterdir():
        if item.is_dir():
            shutil.copytree(item, work.project / item.name)
        else:
            shutil.copy2(item, work.project / item.name)


def score(work: Work, tool: str, mutants: list[dict], fresh: bool) -> dict:
    """Judge the tool on each mutation; with `fresh` False, keep the verdicts a previous
    run reached on the same mutations with the same version of the tool."""
    truth = ground_truth(work, mutants)
    map_wall = prepare_state(work, tool)
    version = tool_version(work, tool)
    old = work.load(tool)
    kept = old.get("mutants", {}) if old.get("version") == version and not fresh else {}
    results = {"map_wall": map_wall, "version": version, "mutants": {}}
    tia = str(work.venv / "bin" / "tia")
    pytest_args = ["-q", "-p", "no:cacheprovider", *work.spec["pytest_args"]]
    for index, mutant in enumerate(mutants):
        if kept.get(mutant["id"], {}).get("digest") == mutant["digest"] and "full_wall" in kept[mutant["id"]]:
            results["mutants"][mutant["id"]] = kept[mutant["id"]]
            continue
        reset(work)
        restore_state(work, tool)
        apply(work.project, mutant)
        mode = MODES[index % len(MODES)] if tool == "tia" else "uncommitted"
        if tool == "testmon":
            cmd = testmon_cmd(work)
        elif mode.startswith("committed"):
            git(work, "checkout", "-qb", "mutant")
            git(work, "commit", "-qam", mutant["id"])
            cmd = [tia, "run", "--since", "main", "--", *pytest_args]
        elif "--since" in mode:
            cmd = [tia, "run", "--since", "main", "--", *pytest_args]
        else:
            cmd = [tia, "run", "--", *pytest_args]
        # The full suite under the same mutation, just before or just after the tool (in
        # turn, so that neither always finds the other's warm caches): the wall ratio is
        # measured side by side, not against the ground truth's run, made at another time.
        log = work.logs / tool / f"{mutant['id']}.log"
        full_log = work.logs / tool / f"{mutant['id']}.full.log"
        if index % 2:
            ran, _, wall = run_suite(work, cmd, log)
            _, _, full_wall = run_suite(work, pytest_cmd(work), full_log)
        else:
            _, _, full_wall = run_suite(work, pytest_cmd(work), full_log)
            ran, _, wall = run_suite(work, cmd, log)
        failing = set(truth["mutants"][mutant["digest"]]["failing"])
        missed = sorted(failing - ran)
        results["mutants"][mutant["id"]] = {
            "mode": mode,
            "digest": mutant["digest"],
            "ran": counted(ran, truth["baseline"]),
            "missed": missed,
            "wall": wall,
            "full_wall": full_wall,
        }
        if missed:
            print(f"MISSED {tool} {work.name} {mutant['id']} ({mode}): {len(missed)} tests, e.g. {missed[0]}")
        work.save(tool, results)
    reset(work)
    return results


def counted(ran: set[str], base: dict) -> int:
    """The tests in `ran` that count towards the share of the suite: not a module's failed
    collection, and not a test that fails without any mutation (left out of the truth too,
    while tia reruns it each time as a last failure)."""
    return len({n for n in ran if "::" in n} - set(base["failing"]))


def tool_version(work: Work, tool: str) -> str:
    """The tool's version; for tia, the commit of this checkout and whether it has edits."""
    if tool == "testmon":
        return "pytest-testmon 2.2.0"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=TIA_ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "src"], cwd=TIA_ROOT, capture_output=True, text=True
    )
    return head.stdout.strip() + ("+edits" if dirty.stdout.strip() else "")


def summarize(work: Work) -> list[dict]:
    """One row per kind (and one for all kinds) of the project's scored mutations."""
    mutants = work.load("mutants").get("mutants", [])
    truth = work.load("truth")
    if not mutants or "baseline" not in truth:
        return []
    total = len(set(truth["baseline"]["tests"]) - set(truth["baseline"]["failing"]))
    tools = {tool: work.load(tool).get("mutants", {}) for tool in ("tia", "testmon")}
    rows = []
    for kind in (*KINDS, "all"):
        chosen = [m for m in mutants if kind in ("all", m["kind"])]
        if not chosen:
            continue
        row = {
            "project": work.name,
            "kind": kind,
            "mutants": len(chosen),
            "caught": sum(bool(truth["mutants"].get(m["digest"], {}).get("failing")) for m in chosen),
        }
        for tool, scored in tools.items():
            # A verdict from before the full suite was timed beside the tool is not counted.
            done = [scored[m["id"]] for m in chosen if "full_wall" in scored.get(m["id"], {})]
            if len(done) < len(chosen):
                continue
            shares = [r["ran"] / total for r in done]
            row[tool] = {
                "missed_mutants": sum(bool(r["missed"]) for r in done),
                "missed_tests": sum(len(r["missed"]) for r in done),
                "share_median": statistics.median(shares),
                "share_mean": statistics.fmean(shares),
                "wall_ratio": statistics.median(r["wall"] / r["full_wall"] for r in done),
            }
        rows.append(row)
    return rows


def table(works: list[Work]) -> str:
    head = (
        "| project | kind | mutants | caught by the suite "
        "| tia: missed mutants / tests | tia: share run, median / mean | tia: wall / full suite "
        "| testmon: missed mutants / tests | testmon: share run, median / mean "
        "| testmon: wall / full suite |\n"
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    lines = []
    for work in works:
        for row in summarize(work):
            cells = [
                row["project"],
                f"**{row['kind']}**" if row["kind"] == "all" else row["kind"],
                str(row["mutants"]),
                str(row["caught"]),
            ]
            for tool in ("tia", "testmon"):
                r = row.get(tool)
                if r is None:
                    cells += ["not scored"] * 3
                else:
                    cells += [
                        f"{r['missed_mutants']} / {r['missed_tests']}",
                        f"{r['share_median']:.3f} / {r['share_mean']:.3f}",
                        f"{r['wall_ratio']:.2f}",
                    ]
            lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def projects_table(works: list[Work]) -> str:
    lines = [
        "| project | version | what it is | tests | full suite (median of 3) | `tia map` "
        "| testmon's first run |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for work in works:
        truth = work.load("truth")
        if "baseline" not in truth:
            continue
        walls = []
        for tool in ("tia", "testmon"):
            meta = work.state / f"{tool}.json"
            if not meta.exists():
                walls.append("-")
                continue
            mapped = json.loads(meta.read_text())
            failed = f" (exit status {mapped['status']})" if mapped.get("status", 0) not in (0, 1) else ""
            walls.append(f"{mapped['wall']:.1f} s{failed}")
        base = truth["baseline"]
        lines.append(
            f"| {work.name} | {work.spec['version']} | {work.spec['kind']} | {len(base['tests'])} "
            f"| {base['wall']:.1f} s | {walls[0]} | {walls[1]} |"
        )
    return "\n".join(lines) + "\n"


def missed_list(works: list[Work]) -> str:
    lines = []
    for work in works:
        mutants = {m["id"]: m for m in work.load("mutants").get("mutants", [])}
        for tool in ("tia", "testmon"):
            for mid, r in sorted(work.load(tool).get("mutants", {}).items()):
                if r["missed"]:
                    m = mutants[mid]
                    lines.append(
                        f"- {tool}, {work.name} `{mid}` ({r['mode']}): `{m['where']}` {m['what']}; "
                        f"{len(r['missed'])} failing tests not run, e.g. `{r['missed'][0]}`"
                    )
    return "\n".join(lines) + "\n" if lines else "- none\n"


def report(works: list[Work], write: Path | None, command: str) -> int:
    python = subprocess.run(
        [works[0].python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True
    ).stdout.strip()
    commits = sorted({work.load("tia").get("version", "?")[:12] for work in works})
    text = (
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores, Python {python}, "
        f"{platform.system()}; tia at commit {', '.join(commits)}, pytest-testmon 2.2.0."
        f"\n\n```bash\n{command}\n```\n\n"
        "### Projects\n\n"
        + projects_table(works)
        + "\n### Mutations\n\n"
        + table(works)
        + "\n### Misses\n\n"
        + missed_list(works)
    )
    print(text)
    if write:
        content = write.read_text() if write.exists() else ""
        begin, end = "<!-- safety-table -->", "<!-- /safety-table -->"
        if begin in content and end in content:
            content = (
                content[: content.index(begin) + len(begin)] + "\n" + text + content[content.index(end) :]
            )
        else:
            content += f"\n{begin}\n{text}{end}\n"
        write.write_text(content)
    missed = any(r["missed"] for work in works for r in work.load("tia").get("mutants", {}).values())
    return 1 if missed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=["setup", "mutants", "truth", "score", "report", "all"])
    parser.add_argument("tool", nargs="?", choices=["tia", "testmon"], help="for score")
    parser.add_argument("--work", type=Path, required=True, help="scratch directory")
    parser.add_argument("--projects", nargs="+", default=list(PROJECTS), choices=list(PROJECTS))
    parser.add_argument("--python", default=sys.executable, help="the Python for the venvs")
    parser.add_argument("--per-kind", type=int, default=2, help="mutations of each kind per project")
    parser.add_argument("--write", type=Path, help="put the report in this Markdown file")
    parser.add_argument("--fresh", action="store_true", help="score again what an earlier run scored")
    args = parser.parse_args()
    root = args.work.resolve()
    works = [Work(root, name) for name in args.projects]
    for work in works:
        if args.step in ("setup", "all"):
            setup(work, args.python)
        if args.step in ("mutants", "truth", "score", "all"):
            saved = work.load("mutants")
            mutants = (
                saved["mutants"]
                if saved.get("per_kind") == args.per_kind
                else make_mutants(work, args.per_kind)
            )
        if args.step in ("truth", "all"):
            ground_truth(work, mutants)
        if args.step == "score":
            if not args.tool:
                parser.error("score needs a tool: tia or testmon")
            score(work, args.tool, mutants, args.fresh)
        if args.step == "all":
            score(work, "tia", mutants, args.fresh)
            score(work, "testmon", mutants, args.fresh)
    if args.step in ("report", "all"):
        command = " ".join(
            [
                "python",
                "benchmarks/safety/safety.py",
                "all",
                "--work",
                "WORK",
                "--python",
                Path(args.python).name,
                "--per-kind",
                str(args.per_kind),
                "--projects",
                *args.projects,
            ]
        )
        return report(works, args.write, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
