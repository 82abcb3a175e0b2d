"""End to end: tia in CI — the documented workflows, a map restored into another checkout,
`--shard K/N` and `--json-report FILE`."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ALL_SAMPLE_TESTS, GitProject, clone_of, sample_remote
from tia.cli import _parser
from tia.selection import shard_of
from tia.store import Store

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO_ROOT / "docs" / "ci").glob("*.yml"))


def tia_commands(workflow: Path) -> list[str]:
    doc = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    commands = []
    for job in doc["jobs"].values():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                if line.strip().startswith("tia "):
                    commands.append(line.strip())
    return commands


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_the_documented_workflows_call_tia_with_options_it_has(workflow: Path) -> None:
    commands = tia_commands(workflow)
    assert commands, f"{workflow} runs no tia command"
    for command in commands:
        # GitHub's expressions, replaced by values they take in a real run.
        concrete = re.sub(r"\$\{\{\s*github\.base_ref\s*\}\}", "main", command)
        concrete = re.sub(r"\$\{\{\s*matrix\.shard\s*\}\}", "1", concrete)
        assert "${{" not in concrete, command
        args = _parser().parse_args(shlex.split(concrete)[1:])
        assert args.command == "run"


def test_shards_are_deterministic_disjoint_and_balanced_by_duration() -> None:
    durations = {"a": 5.0, "b": 3.0, "c": 3.0, "d": 1.0, "e": 1.0}
    nodeids = [*durations, "new1", "new2", "new3"]
    shards = [shard_of(nodeids, durations, k, 2) for k in (1, 2)]
    assert shards[0] & shards[1] == set()
    assert shards[0] | shards[1] == set(nodeids)
    # Longest first onto the least loaded shard: a | b c | d | e (a tie, to the first).
    assert {"a", "d", "e"} <= shards[0] and {"b", "c"} <= shards[1]
    assert shard_of(reversed(nodeids), durations, 1, 2) == shards[0]
    # Tests too quick to time still spread evenly.
    quick = {f"t{i}": 0.0 for i in range(10)}
    assert [len(shard_of(quick, quick, k, 3)) for k in (1, 2, 3)] == [4, 3, 3]


def run_report(project: GitProject, *args: str) -> dict[str, Any]:
    report = project.path.parent / f"report-{project.path.name}.json"
    result = project.run(*args, "--json-report", str(report))
    assert result.rc in (0, 1), result
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert doc["exitstatus"] == result.rc
    assert {t["nodeid"] for t in doc["tests"]} == result.ran()
    return doc


@pytest.mark.slow
def test_the_union_of_shards_is_the_unsharded_selection(mapped: GitProject, tmp_path: Path) -> None:
    # A module-level change that may do more than bind a name: every importer's tests.
    mapped.write("pkg/core.py", mapped.read("pkg/core.py") + "\nprint(LIMIT)\n")
    mapped.write("tests/test_new.py", "def test_one():\n    pass\n\n\ndef test_two():\n    pass\n")
    # Each CI job works on its own copy of the same checkout and map.
    copies = []
    for name in ("whole", "s1", "s2", "s3"):
        target = tmp_path / name
        shutil.copytree(mapped.path, target)
        copy = GitProject.__new__(GitProject)
        copy.path = target
        copies.append(copy)
    whole = {t["nodeid"] for t in run_report(copies[0])["tests"]}
    parts = []
    for k, copy in enumerate(copies[1:], start=1):
        doc = run_report(copy, "--shard", f"{k}/3")
        assert doc["shard"] == f"{k}/3"
        parts.append({t["nodeid"] for t in doc["tests"]})
    assert set().union(*parts) == whole
    assert sum(len(p) for p in parts) == len(whole)
    assert whole >= {"tests/test_new.py::test_one", "tests/test_core.py::test_add"}


@pytest.mark.slow
def test_the_json_report_says_what_ran_why_and_how_it_ended(mapped: GitProject) -> None:
    mapped.replace("pkg/core.py", "return a + b", "return a - b")
    doc = run_report(mapped)
    assert doc["schema"] == 1
    assert doc["mode"] == "select"
    assert doc["exitstatus"] == 1
    assert (doc["mapped"], doc["selected"], doc["deselected"]) == (6, 1, 5)
    [test] = doc["tests"]
    assert test["nodeid"] == "tests/test_core.py::test_add"
    assert test["outcome"] == "failed"
    assert isinstance(test["duration"], float)
    assert test["reasons"] == [{"rule": "changed", "file": "pkg/core.py", "scope": "add"}]

    mapped.replace("pkg/core.py", "return a - b", "return a + b")
    mapped.run()
    quiet = run_report(mapped)
    assert (quiet["exitstatus"], quiet["selected"], quiet["tests"]) == (0, 0, [])


def everything_in(store_dir: Path) -> str:
    """Every key and value of a map, as text."""
    store = Store(store_dir, print).open()
    try:
        cache = store.cache
        return "\n".join(f"{key} {json.dumps(cache.get(key))}" for key in cache.iterkeys())
    finally:
        store.close()


@pytest.mark.slow
def test_a_map_restored_into_another_checkout_selects_what_the_branch_changed(tmp_path: Path) -> None:
    remote = sample_remote(tmp_path)
    main_job = clone_of(remote, tmp_path / "main-job")
    assert main_job.run().ran() == ALL_SAMPLE_TESTS  # no map yet: it maps everything
    assert str(main_job.path) not in everything_in(main_job.path / ".tia")

    pr_job = clone_of(remote, tmp_path / "pr-job")
    pr_job.git("checkout", "-q", "-b", "pr")
    pr_job.replace("pkg/uses.py", "return x * consts.FACTOR", "return consts.FACTOR * x")
    pr_job.commit("pr change")
    shutil.copytree(main_job.path / ".tia", pr_job.path / ".tia")  # actions/cache/restore
    result = pr_job.run("--since", "origin/main")
    assert result.rc == 0, result
    assert result.ran() == {"tests/test_uses.py::test_scaled"}
