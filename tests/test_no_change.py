"""The path that finds nothing to do: what it loads, and that its shortcuts change no answer.

A plan that finds nothing to run is saved with what it was computed from (`Project._quiet_key`)
and served again while those inputs are the same; the environment's fingerprint is reused
while `tia.environment.stamp` is the same.  These tests check each shortcut against the
computation it replaces.  None of them is timed: `benchmarks/no_change.py` measures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ALL_SAMPLE_TESTS, GitProject, clean_env
from tia.changes import Versions
from tia.config import load_config
from tia.environment import Environment, Owners, current, read_owners, stamp
from tia.errors import GitError
from tia.gitrepo import GitRepo
from tia.project import Project
from tia.records import RunFacts, TestRecord
from tia.scopes import index_source
from tia.store import Store

HEAVY = ("pytest", "coverage", "networkx", "git")
# Dear to import too (tia.values, tia.store): none of them once a plan is saved.
DEAR = ("dataclasses", "inspect", "diskcache")

# Runs a tia command in one interpreter; prints its exit status and which HEAVY modules it loaded.
IMPORTS = """
import json, sys
import tia.cli
status = tia.cli.main(sys.argv[2:])
print(json.dumps({"status": status, "loaded": [m for m in sys.argv[1].split(",") if m in sys.modules]}))
"""

# Plans as `tia select` does, from the records (argv[1] == "records": the saved plan is never
# consulted) or as tia does (argv[1] == "saved"); argv[2], if given, is --since.  Prints the plan.
PLAN = """
import json, sys
from pathlib import Path
from tia.config import load_config
from tia.gitrepo import find_root
from tia.project import Project

cwd = Path.cwd()
project = Project(load_config(find_root(cwd), cwd), lambda message: print(message, file=sys.stderr))
if sys.argv[1] == "records":
    project._quiet_plan = lambda *args: None
with project.store.locked(lambda message: None):
    plan = project.plan(sys.argv[2] if len(sys.argv) > 2 else None, run_all=False)
print(json.dumps({
    "mode": plan.mode,
    "reasons": {n: [str(r) for r in rs] for n, rs in plan.selection.reasons.items()},
    "known": sorted(plan.known),
    "listing": plan.listing,
    "snapshot": plan.snapshot,
    "env": plan.env.id,
    "durations": plan.durations,
    "touched": sorted(plan.touched),
    "needs_pytest": plan.needs_pytest,
    "skip_files": sorted(plan.skip_files),
    "read_records": project._roster is not None,
    "owners": plan.to_plugin("", True, "coverage")["owners"],
}))
"""

pytestmark = pytest.mark.slow


def python(project: GitProject, script: str, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run `script` in `project` with this interpreter; return the JSON its last line prints."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=project.path,
        capture_output=True,
        text=True,
        env=env or clean_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plan(project: GitProject, how: str, since: str | None = None) -> dict[str, Any]:
    return python(project, PLAN, how, *([since] if since else []))


def age(*paths: Path, seconds: float = 100.0) -> None:
    """Set the mtimes of `paths` `seconds` into the past: older than tia's racy window."""
    when = time.time() - seconds
    for path in paths:
        os.utime(path, (when, when))


# --- what the no-change path loads ---------------------------------------------------------------


def test_finding_nothing_to_do_imports_none_of_pytest_coverage_networkx_or_gitpython(
    mapped: GitProject,
) -> None:
    # The first of each plans from the records and saves its plan; the later ones reuse it.
    for command in ("select", "run"):
        doc = python(mapped, IMPORTS, ",".join(HEAVY), command)
        assert doc == {"status": 0, "loaded": []}, command
    for command in ("select", "run"):
        doc = python(mapped, IMPORTS, ",".join(HEAVY + DEAR), command)
        assert doc == {"status": 0, "loaded": []}, command


# --- the saved plan is the plan the records give -------------------------------------------------


def _edit_a_function_and_rerun_its_test(project: GitProject) -> None:
    project.replace("pkg/core.py", "return a * b", "return b * a")
    assert project.run().ran() == {"tests/test_core.py::test_mul"}


def _add_a_file_nothing_reads(project: GitProject) -> None:
    project.write("notes.txt", "nothing imports or reads this\n")


def _fail_then_pass_again(project: GitProject) -> None:
    project.replace("pkg/core.py", "return a + b", "return a - b")
    assert project.run().failed() == {"tests/test_core.py::test_add"}
    project.replace("pkg/core.py", "return a - b", "return a + b")
    assert project.run().ran() == {"tests/test_core.py::test_add"}


@pytest.mark.parametrize(
    "situation",
    [
        None,
        # Tests last ran against two different snapshots: the old one differs from the work tree.
        _edit_a_function_and_rerun_its_test,
        # Planning diffs the new file and builds the import graph to find it affects no test.
        _add_a_file_nothing_reads,
        _fail_then_pass_again,
    ],
    ids=["nothing-changed", "mixed-snapshots", "unread-new-file", "failed-then-fixed"],
)
def test_a_saved_plan_is_the_plan_the_records_give(mapped: GitProject, situation: Any) -> None:
    if situation is not None:
        situation(mapped)
    from_records = plan(mapped, "records")  # plans from the records, and saves the plan
    assert from_records["read_records"]
    assert from_records["mode"] == "select"
    assert not from_records["reasons"]
    assert not from_records["needs_pytest"]
    saved = plan(mapped, "saved")
    assert not saved.pop("read_records")
    from_records.pop("read_records")
    assert saved == from_records
    # Either way the plugin is handed the distributions by importable name, read with the
    # environment's fingerprint, so that its process need not read them.
    assert Owners.from_json(saved["owners"]).names["pytest"] == ["pytest"]


def test_a_plan_that_finds_tests_to_run_is_never_saved(mapped: GitProject) -> None:
    mapped.replace("pkg/core.py", "return a * b", "return b * a")
    assert plan(mapped, "records")["reasons"]
    assert plan(mapped, "saved")["read_records"]


def test_a_plan_holds_the_durations_of_the_tests_it_selects_and_no_others(mapped: GitProject) -> None:
    # Planning reads the roster for every test, and the summaries only of the selected ones' files.
    mapped.replace("pkg/core.py", "return a * b", "return b * a")
    doc = plan(mapped, "records")
    assert set(doc["reasons"]) == {"tests/test_core.py::test_mul"}
    assert len(doc["known"]) > 1
    assert doc["durations"].keys() == {"tests/test_core.py::test_mul"}
    assert doc["durations"]["tests/test_core.py::test_mul"] > 0


def test_a_plan_since_a_ref_never_uses_the_saved_plan(mapped: GitProject) -> None:
    plan(mapped, "records")
    assert plan(mapped, "saved", since="main")["read_records"]


def test_a_write_by_a_tia_that_does_not_know_the_saved_plan_retires_it(mapped: GitProject) -> None:
    plan(mapped, "records")
    assert not plan(mapped, "saved")["read_records"]
    # An older tia folds a run: it rewrites the meta record, and leaves the saved plan alone.
    store = Store(mapped.path / ".tia", lambda message: None).open()
    meta = store.meta() or {}
    store.cache.set("meta", {**meta, "updated": meta["updated"] + 1})
    store.close()
    assert plan(mapped, "saved")["read_records"]


def test_a_saved_plan_never_hides_a_later_failure(mapped: GitProject) -> None:
    assert "no tests affected" in mapped.run().stderr  # plans from the records, saves the plan
    assert "no tests affected" in mapped.run().stderr  # the saved plan
    mapped.replace("pkg/core.py", "return a + b", "return a - b")
    assert mapped.run().failed() == {"tests/test_core.py::test_add"}
    mapped.replace("pkg/core.py", "return a - b", "return a + b")  # back to the saved snapshot
    selected = mapped.select()
    assert set(selected) == {"tests/test_core.py::test_add"}
    assert "failed" in {r["rule"] for r in selected["tests/test_core.py::test_add"]}
    assert mapped.run().ran() == {"tests/test_core.py::test_add"}
    assert "no tests affected" in mapped.run().stderr


def test_new_tests_and_conftest_changes_are_seen_after_a_saved_plan(mapped: GitProject) -> None:
    assert "no tests affected" in mapped.run().stderr
    mapped.write("tests/test_new.py", "def test_new():\n    assert True\n")
    assert mapped.run().ran() == {"tests/test_new.py::test_new"}
    assert "no tests affected" in mapped.run().stderr
    mapped.replace("tests/conftest.py", "return 2", "return 1 + 1")
    assert mapped.run().ran() == {"tests/test_core.py::test_add"}


def test_a_changed_environment_selects_everything_after_a_saved_plan(
    mapped: GitProject, tmp_path: Path
) -> None:
    assert "no tests affected" in mapped.run().stderr
    site = tmp_path / "extra-site"
    dist = site / "brand_new_dist-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brand-new-dist\nVersion: 1.0\n")
    age(dist / "METADATA", dist, site)  # so that the environment's stamp vouches for it
    env = clean_env(PYTHONPATH=str(site))
    assert set(mapped.select(env=env)) == ALL_SAMPLE_TESTS
    assert mapped.run(env=env).ran() == ALL_SAMPLE_TESTS
    assert "no tests affected" in mapped.run(env=env).stderr


# --- the store drops the saved plan whenever the map changes -------------------------------------


def _record() -> TestRecord:
    return TestRecord(
        nodeid="tests/test_a.py::test_one",
        outcome="passed",
        duration=0.25,
        when=1_700_000_000.0,
        epoch="snap1",
        env="env1",
        deps={"pkg/core.py": ("a" * 40, frozenset({"add"}))},
    )


def test_every_write_of_the_map_drops_the_saved_plan(tmp_path: Path) -> None:
    store = Store(tmp_path / ".tia", lambda message: None).open()
    index = index_source(b"def f():\n    return 1\n", "m.py")
    store.put_quiet({"key": 1}, {"b" * 40: index})
    assert store.quiet() == {"key": 1}
    assert store.index("b" * 40) == index  # what computing the plan needed is kept with it
    store.put_stat_cache({"a.py": [1, 2, "c" * 40]})
    store.put_environment("stamp", {"python": "CPython 3", "distributions": {}}, {"names": {}, "unowned": []})
    assert store.quiet() == {"key": 1}  # caches of this machine's files and interpreter: no map change
    writes = {
        "write_run": lambda: store.write_run(
            tests={"tests/test_a.py::test_one": _record()},
            indexes={},
            snapshot=("snap1", {"pkg/core.py": "a" * 40}),
            facts=RunFacts(),
            meta={"rootdir": ""},
            replace_all=False,
        ),
        "evict": lambda: store.evict(set(), {"snap1"}),
        "replace_map": lambda: store.replace_map(
            tests={}, indexes={}, snapshots={}, facts=RunFacts(), meta={"rootdir": ""}
        ),
    }
    for name, write in writes.items():
        store.put_quiet({"key": 1}, {})
        write()
        assert store.quiet() is None, name
    store.close()


def test_a_fingerprint_saved_before_the_first_run_does_not_look_corrupt_on_the_next_open(
    tmp_path: Path,
) -> None:
    warnings: list[str] = []
    store = Store(tmp_path / ".tia", warnings.append).open()
    store.put_environment("stamp", {"python": "CPython 3", "distributions": {}}, {"names": {}, "unowned": []})
    store.close()
    reopened = Store(tmp_path / ".tia", warnings.append).open()
    assert reopened.environment("stamp") == (
        {"python": "CPython 3", "distributions": {}},
        {"names": {}, "unowned": []},
    )
    assert reopened.environment("another stamp") == (None, None)
    reopened.close()
    assert warnings == []
    assert [p.name for p in tmp_path.iterdir()] == [".tia"]  # nothing moved aside


# --- the environment's stamp ---------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory holding one distribution, alone on `sys.path`, with old mtimes."""
    site = tmp_path / "site"
    dist = site / "demo-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    age(dist / "METADATA", dist, site)
    monkeypatch.setattr(sys, "path", [str(site)])
    monkeypatch.chdir(tmp_path)
    return site


def test_the_stamp_changes_whenever_the_fingerprint_can(site: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    seen = {stamp(root)}
    assert None not in seen
    assert stamp(root) in seen  # stable while nothing changes
    fingerprints = {current(root).id}
    metadata = site / "demo-1.0.dist-info" / "METADATA"
    # A version rewritten in place, same size: only the file's mtime says so.
    metadata.write_text(metadata.read_text().replace("1.0", "2.0"))
    age(metadata, seconds=50)
    other = site / "other-1.0.dist-info"
    changes = [
        lambda: None,
        lambda: (other.mkdir(), (other / "METADATA").write_text("Name: other\nVersion: 1.0\n")),
        lambda: ((other / "METADATA").unlink(), other.rmdir()),
    ]
    stamps, ids = [], []
    for step, change in enumerate(changes):
        change()
        if other.exists():
            age(other / "METADATA", other, seconds=40 - step)
        age(site, seconds=30 - step)
        stamps.append(stamp(root))
        ids.append(current(root).id)
        assert stamps[-1] is not None, step
    # demo 1.0; demo 2.0; demo 2.0 and other; other gone again: the same as two steps before,
    # and a stamp of what the fingerprint is read from, not of when, is the same too.
    assert len({*seen, *stamps}) == 3
    assert stamps[0] not in seen and stamps[1] not in seen and stamps[2] == stamps[0]
    fingerprints.update(ids)
    assert len(fingerprints) == 3 and ids[2] == ids[0] != ids[1]


def test_a_stamp_vouches_for_nothing_modified_in_the_last_two_seconds(site: Path, tmp_path: Path) -> None:
    (site / "demo-1.0.dist-info" / "METADATA").touch()
    assert stamp(tmp_path) is None


def test_a_file_that_is_not_a_distribution_added_on_sys_path_leaves_the_stamp_as_it_was(
    site: Path, tmp_path: Path
) -> None:
    # The project's root is on sys.path: an edit saved through a new file, or a checkout,
    # must not leave the stamp untrusted (the fingerprint read again) for two seconds.
    before = stamp(tmp_path)
    assert before is not None
    (site / "notes.txt").write_text("x")
    (site / "module.py").write_text("x = 1\n")
    assert stamp(tmp_path) == before
    (site / "module.py").unlink()
    assert stamp(tmp_path) == before
    # A new distribution is seen at once, by its name in the listing, whatever its age.
    other = site / "other-1.0.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Name: other\nVersion: 1.0\n")
    age(other / "METADATA", other)
    added = stamp(tmp_path)
    assert added is not None and added != before


def test_a_finder_that_provides_distributions_leaves_nothing_to_stamp(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Finder:
        def find_spec(self, *args: object) -> None:
            return None

        def find_distributions(self, *args: object) -> list[object]:
            return []

    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    assert stamp(tmp_path) is None


def test_an_environment_reads_back_from_json_and_refuses_any_other_shape() -> None:
    env = Environment("CPython 3.11.7", {"demo": "1.0", "unversioned": None})  # type: ignore[dict-item]
    assert Environment.from_json(json.loads(json.dumps(env.to_json()))) == env
    for bad in (None, [], {"python": 3, "distributions": {}}, {"python": "x", "distributions": {"a": 1}}):
        with pytest.raises(ValueError):
            Environment.from_json(bad)


def test_the_saved_fingerprint_is_reused_only_under_its_stamp(site: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    project = Project(load_config(root, root, environ={}), lambda message: None)
    project.open_store()
    real = project.environment()
    assert real.distributions == {"demo": "1.0"}
    key = stamp(root)
    assert key is not None
    real_owners = project.owners
    assert real_owners == read_owners() and real_owners is not None
    assert real_owners.unowned == {"demo"}  # its metadata lists no file: no importable name
    sentinel, sentinel_owners = Environment("saved", {}), Owners({"x": ["saved"]}, frozenset())
    project.store.put_environment(key, sentinel.to_json(), sentinel_owners.to_json())
    assert project.environment() == sentinel  # the same stamp: the saved fingerprint
    assert project.owners == sentinel_owners  # and the distributions by name saved with it
    # A record without them (an older tia's) is read again whole, and saved with them.
    project.store.cache.set("env", {"stamp": key, "env": sentinel.to_json()})
    assert project.environment() == real and project.owners == real_owners
    assert project.store.environment(key)[1] == real_owners.to_json()
    project.store.put_environment(key, sentinel.to_json(), sentinel_owners.to_json())
    age(site / "demo-1.0.dist-info" / "METADATA", seconds=60)
    assert project.environment() == real  # another stamp: computed again
    assert project.owners == real_owners
    project.store.close()


# --- smaller pieces -------------------------------------------------------------------------------


def test_versions_remember_the_blob_ids_they_could_not_index() -> None:
    versions = Versions(
        stored=lambda sha: None, blob=lambda sha: None, worktree=lambda path: None, current={}
    )
    assert versions.diff("a.py", "1" * 40, "2" * 40).module_changed
    assert versions.unknown == {"1" * 40, "2" * 40}


def test_a_failing_git_command_raises_a_one_line_git_error(project: GitProject) -> None:
    with pytest.raises(GitError, match=r"^git merge-base failed: fatal: .*no-such-ref$"):
        GitRepo(project.path)._git("merge-base", "main", "no-such-ref")
