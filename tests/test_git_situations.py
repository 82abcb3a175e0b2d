"""End to end: tia in the git situations real projects are in.

Linked worktrees, a detached HEAD, a pytest rootdir below the git root, a
monorepo with several pytest roots, paths with spaces and non-ASCII letters,
submodules.  (A shallow clone without the merge-base is in test_faults.py.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ALL_SAMPLE_TESTS, PYPROJECT_WITH_TESTS, SAMPLE, GitProject, shallow_clone
from tia.config import load_config
from tia.gitrepo import GitRepo
from tia.project import Project
from tia.store import Store

pytestmark = pytest.mark.slow

# git refuses file:// submodules unless told otherwise (CVE-2022-39253).
FILE_PROTOCOL = ("-c", "protocol.file.allow=always")


class Checkout(GitProject):
    """A work tree git already manages (a linked worktree, a submodule, a clone): no `git init`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.git("config", "user.name", "tia tests")
        self.git("config", "user.email", "tests@tia.invalid")


def rules(reasons: list[dict[str, str]]) -> set[str]:
    return {r["rule"] for r in reasons}


# --- linked worktrees ---------------------------------------------------------------------------


def test_a_linked_worktree_has_its_own_map_and_selects_its_own_changes(mapped: GitProject) -> None:
    mapped.git("worktree", "add", "-q", "-b", "feature", str(mapped.path.parent / "wt"))
    wt = Checkout(mapped.path.parent / "wt")
    assert (wt.path / ".git").is_file()  # a linked worktree: .git is a file naming the real one
    assert wt.tia("map").rc == 0
    assert (wt.path / ".tia" / "cache.db").is_file()

    wt.replace("pkg/core.py", "return a * b", "return a * b * 1")
    assert set(wt.select()) == {"tests/test_core.py::test_mul"}
    # The main work tree neither sees the change nor lost its map.
    assert mapped.select() == {}

    assert wt.run().ran() == {"tests/test_core.py::test_mul"}
    wt.commit("feature work")
    assert wt.select() == {}
    since = wt.select("--since", "main")
    assert set(since) == {"tests/test_core.py::test_mul"}
    assert rules(since["tests/test_core.py::test_mul"]) == {"since"}
    assert wt.run("--since", "main").ran() == {"tests/test_core.py::test_mul"}


def test_a_linked_worktree_of_a_shallow_clone_says_how_to_deepen(mapped: GitProject, tmp_path: Path) -> None:
    mapped.write("pkg/extra.py", "X = 1\n")
    mapped.commit("extra")
    mapped.git("branch", "old", "HEAD~1")
    mapped.git("checkout", "-q", "old")
    mapped.write("pkg/old.py", "Z = 1\n")
    mapped.commit("diverge")
    clone = tmp_path / "shallow"
    shallow_clone(mapped.path, clone)
    subprocess.run(
        ["git", "worktree", "add", "-q", "--detach", "../wt", "origin/main"], cwd=clone, check=True
    )
    result = Checkout(tmp_path / "wt").tia("select", "--since", "origin/old")
    assert result.rc == 3, result
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("tia: error:")]
    assert len(errors) == 1, result
    assert "shallow clone" in errors[0] and "git fetch --deepen" in errors[0], result


# --- detached HEAD ------------------------------------------------------------------------------


def test_a_detached_head_selects_runs_and_folds(mapped: GitProject) -> None:
    mapped.git("checkout", "-q", "--detach")
    mapped.replace("pkg/core.py", "return a + b", "return b + a")
    assert set(mapped.select()) == {"tests/test_core.py::test_add"}
    assert mapped.run().ran() == {"tests/test_core.py::test_add"}
    # The run was folded: nothing is left to run, before or after committing on the detached HEAD.
    assert mapped.select() == {}
    mapped.commit("detached work")
    assert mapped.run().ran() == set()

    since = mapped.select("--since", "main")
    assert set(since) == {"tests/test_core.py::test_add"}
    assert rules(since["tests/test_core.py::test_add"]) == {"since"}
    assert mapped.run("--since", "main").ran() == {"tests/test_core.py::test_add"}


# --- a pytest rootdir below the git root --------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> GitProject:
    """The sample project in app/ of a repository whose root holds no pytest configuration."""
    proj = GitProject(tmp_path / "repo")
    proj.write("README.md", "An application.\n")
    proj.write_all(SAMPLE, under="app")
    proj.commit("initial")
    return proj


def test_a_rootdir_below_the_git_root_keeps_node_ids_and_map_paths_apart(app: GitProject) -> None:
    where = app.path / "app"
    result = app.run(cwd=where)
    assert result.rc == 0, result
    assert result.ran() == ALL_SAMPLE_TESTS  # node ids relative to pytest's rootdir, app/
    # The map sits next to the pytest configuration, and git does not see it.
    assert (where / ".tia" / "cache.db").is_file()
    assert not (app.path / ".tia").exists()
    assert app.git("status", "--porcelain") == ""

    # Dependencies are recorded relative to the git root.
    explained = app.tia("explain", "tests/test_core.py::test_mul", cwd=where)
    assert explained.rc == 0, explained
    assert "  app/pkg/core.py  [" in explained.stdout
    assert "  app/tests/test_core.py  [" in explained.stdout
    users = app.tia("explain", "pkg/data.json", cwd=where)
    assert users.stdout.splitlines() == [
        "1 mapped tests executed or read app/pkg/data.json:",
        "  tests/test_reader.py::test_load",
    ]

    app.replace("app/pkg/core.py", "return a * b", "return a * b * 1")
    selected = app.select(cwd=where)
    assert selected == {
        "tests/test_core.py::test_mul": [{"rule": "changed", "file": "app/pkg/core.py", "scope": "mul"}]
    }
    assert app.run(cwd=where).ran() == {"tests/test_core.py::test_mul"}
    app.commit("mul")
    app.replace("app/pyproject.toml", 'pythonpath = ["."]', 'pythonpath = [".", "pkg"]')
    # The rootdir's own pyproject.toml configures the run, though it is not at the git root.
    assert set(app.select(cwd=where)) == ALL_SAMPLE_TESTS


# --- a monorepo with several pytest roots -------------------------------------------------------

MONOREPO = {
    "common/__init__.py": "",
    "common/shared.py": """
        def greet():
            return "hello"


        def shout():
            return "HEY"
        """,
    "a/pyproject.toml": """
        [tool.pytest.ini_options]
        pythonpath = [".", ".."]
        """,
    "a/alib/__init__.py": "",
    "a/alib/mod.py": """
        from common.shared import greet


        def value():
            return 1


        def greeting():
            return greet()
        """,
    "a/tests/test_a.py": """
        from alib import mod


        def test_a_value():
            assert mod.value() == 1


        def test_a_greeting():
            assert mod.greeting() == "hello"
        """,
    "b/tox.ini": """
        [pytest]
        pythonpath = . ..
        """,
    "b/blib/__init__.py": "",
    "b/blib/mod.py": """
        from common.shared import greet


        def value():
            return 2


        def greeting():
            return greet().upper()
        """,
    "b/tests/test_b.py": """
        from blib import mod


        def test_b_value():
            assert mod.value() == 2


        def test_b_greeting():
            assert mod.greeting() == "HELLO"
        """,
}


@pytest.fixture
def monorepo(tmp_path: Path) -> GitProject:
    proj = GitProject(tmp_path / "mono")
    proj.write_all(MONOREPO)
    proj.commit("initial")
    return proj


def test_each_pytest_root_of_a_monorepo_keeps_its_own_map(monorepo: GitProject) -> None:
    a, b = monorepo.path / "a", monorepo.path / "b"
    assert monorepo.run(cwd=a).ran() == {"tests/test_a.py::test_a_value", "tests/test_a.py::test_a_greeting"}
    assert monorepo.run(cwd=b).ran() == {"tests/test_b.py::test_b_value", "tests/test_b.py::test_b_greeting"}
    assert (a / ".tia" / "cache.db").is_file() and (b / ".tia" / "cache.db").is_file()
    assert not (monorepo.path / ".tia").exists()
    assert monorepo.git("status", "--porcelain") == ""
    # Mapping b left a's map alone.
    assert monorepo.select(cwd=a) == {}
    assert monorepo.tia("status", cwd=a).stdout.splitlines()[1].startswith("tests: 2 ")

    monorepo.replace("a/alib/mod.py", "return 1", "return 3 - 2")
    assert monorepo.select(cwd=a) == {
        "tests/test_a.py::test_a_value": [{"rule": "changed", "file": "a/alib/mod.py", "scope": "value"}]
    }
    assert monorepo.select(cwd=b) == {}
    assert monorepo.run(cwd=a).ran() == {"tests/test_a.py::test_a_value"}

    monorepo.replace("common/shared.py", 'return "hello"', 'return "hel" + "lo"')
    assert set(monorepo.select(cwd=a)) == {"tests/test_a.py::test_a_greeting"}
    assert set(monorepo.select(cwd=b)) == {"tests/test_b.py::test_b_greeting"}
    assert monorepo.run(cwd=b).ran() == {"tests/test_b.py::test_b_greeting"}
    assert monorepo.select(cwd=b) == {}
    assert set(monorepo.select(cwd=a)) == {"tests/test_a.py::test_a_greeting"}

    # b's own configuration file selects all of b, and none of a.
    monorepo.replace("b/tox.ini", "pythonpath = . ..", "pythonpath = .. .")
    assert set(monorepo.select(cwd=b)) == {
        "tests/test_b.py::test_b_value",
        "tests/test_b.py::test_b_greeting",
    }
    assert set(monorepo.select(cwd=a)) == {"tests/test_a.py::test_a_greeting"}


# --- spaces and non-ASCII letters in paths ------------------------------------------------------

UNICODE = {
    "pyproject.toml": """
        [tool.pytest.ini_options]
        pythonpath = ["."]
        """,
    "src/my pkg/dätä módulé.py": """
        import json
        from pathlib import Path


        def wert():
            return json.loads((Path(__file__).parent / "données 1.json").read_text(encoding="utf-8"))["wert"]


        def zwei():
            return 2
        """,
    "src/my pkg/données 1.json": '{"wert": 5}\n',
    "tests/test_dätä.py": """
        import importlib.util
        from pathlib import Path

        # A file name with spaces is no module name: load it by path.
        _PATH = Path(__file__).parents[1] / "src" / "my pkg" / "dätä módulé.py"
        _SPEC = importlib.util.spec_from_file_location("datamodule", _PATH)
        módulé = importlib.util.module_from_spec(_SPEC)
        _SPEC.loader.exec_module(módulé)


        def test_wert():
            assert módulé.wert() == 5


        def test_zwëi():
            assert módulé.zwei() == 2
        """,
}


@pytest.fixture
def unicode_project(tmp_path: Path) -> GitProject:
    proj = GitProject(tmp_path / "prøjekt")
    proj.write_all(UNICODE)
    proj.commit("initial")
    assert proj.tia("map").rc == 0
    return proj


def test_paths_with_spaces_and_non_ascii_letters_are_mapped_and_selected(unicode_project: GitProject) -> None:
    proj = unicode_project
    module, data = "src/my pkg/dätä módulé.py", "src/my pkg/données 1.json"
    explained = proj.tia("explain", data)
    assert explained.stdout.splitlines() == [
        f"1 mapped tests executed or read {data}:",
        "  tests/test_dätä.py::test_wert",
    ]
    line = proj.read(module).splitlines().index("    return 2") + 1
    explained = proj.tia("explain", f"{module}:{line}")
    assert explained.stdout.splitlines() == [
        f"{module}:{line} is in zwei",
        "1 mapped tests executed or read scope zwei:",
        "  tests/test_dätä.py::test_zwëi",
    ]

    proj.replace(data, "5", "6")
    assert proj.select() == {
        "tests/test_dätä.py::test_wert": [
            {"rule": "changed", "file": data, "scope": "<module>", "detail": "content changed"}
        ]
    }
    proj.replace(data, "6", "5")
    proj.replace(module, "return 2", "return 1 + 1")
    assert proj.select() == {
        "tests/test_dätä.py::test_zwëi": [{"rule": "changed", "file": module, "scope": "zwei"}]
    }
    assert proj.run().ran() == {"tests/test_dätä.py::test_zwëi"}
    assert proj.select() == {}

    proj.commit("zwei")
    proj.git("checkout", "-q", "-b", "feature")
    proj.replace(data, "5", "7")
    proj.commit("seven")
    assert proj.tia("run").rc == 1  # test_wert fails, and is folded as failed
    since = proj.select("--since", "main")
    assert set(since) == {"tests/test_dätä.py::test_wert"}
    assert rules(since["tests/test_dätä.py::test_wert"]) == {"since", "failed"}


# --- submodules ---------------------------------------------------------------------------------

VENDORED = {
    "data.txt": "5\n",
    "vlib.py": """
        def one():
            return 1


        def two():
            return 2
        """,
}

VENDOR_TESTS = {
    "tests/test_vendor.py::test_reads_data",
    "tests/test_vendor.py::test_one",
    "tests/test_vendor.py::test_two",
}


# The superproject, the submodule's upstream repository, and the submodule's checkout.
WithSubmodule = tuple[GitProject, GitProject, Checkout]


@pytest.fixture
def with_submodule(project: GitProject, tmp_path: Path) -> WithSubmodule:
    """The sample project, mapped, with a submodule at vendor/lib whose data and module tests use."""
    upstream = GitProject(tmp_path / "lib")
    upstream.write_all(VENDORED)
    upstream.commit("lib")
    project.git(*FILE_PROTOCOL, "submodule", "--quiet", "add", str(upstream.path), "vendor/lib")
    project.replace("pyproject.toml", 'pythonpath = ["."]', 'pythonpath = [".", "vendor/lib"]')
    project.write(
        "tests/test_vendor.py",
        """
        from pathlib import Path

        import vlib

        DATA = Path(__file__).parents[1] / "vendor" / "lib" / "data.txt"


        def test_reads_data():
            assert DATA.read_text().strip().isdigit()


        def test_one():
            assert vlib.one() == 1


        def test_two():
            assert vlib.two() == 2
        """,
    )
    project.commit("vendor lib")
    assert project.tia("map").rc == 0
    return project, upstream, Checkout(project.path / "vendor" / "lib")


def update_submodule(project: GitProject) -> None:
    project.git(*FILE_PROTOCOL, "submodule", "--quiet", "update", "--remote", "vendor/lib")


def test_files_inside_a_submodule_are_dependencies(with_submodule: WithSubmodule) -> None:
    project, upstream, _ = with_submodule
    explained = project.tia("explain", "tests/test_vendor.py::test_two")
    assert "  vendor/lib/vlib.py  [" in explained.stdout, explained
    explained = project.tia("explain", "vendor/lib/data.txt")
    assert explained.stdout.splitlines() == [
        "1 mapped tests executed or read vendor/lib/data.txt:",
        "  tests/test_vendor.py::test_reads_data",
    ]

    # A new commit of the submodule, checked out: the tests that use what changed, and no others.
    upstream.replace("data.txt", "5", "6")
    upstream.replace("vlib.py", "return 2", "return 1 + 1")
    upstream.commit("lib v2")
    update_submodule(project)
    selected = project.select()
    assert selected == {
        "tests/test_vendor.py::test_reads_data": [
            {
                "rule": "changed",
                "file": "vendor/lib/data.txt",
                "scope": "<module>",
                "detail": "content changed",
            }
        ],
        "tests/test_vendor.py::test_two": [{"rule": "changed", "file": "vendor/lib/vlib.py", "scope": "two"}],
    }
    assert project.run().ran() == set(selected)
    assert project.select() == {}


def test_a_new_submodule_commit_on_a_branch_is_selected_since_main(with_submodule: WithSubmodule) -> None:
    project, upstream, _ = with_submodule
    project.git("checkout", "-q", "-b", "feature")
    upstream.replace("data.txt", "5", "6")
    upstream.commit("lib v2")
    update_submodule(project)
    project.commit("bump vendor/lib")
    assert project.run().ran() == {"tests/test_vendor.py::test_reads_data"}
    assert project.select() == {}
    assert project.select("--since", "main") == {
        "tests/test_vendor.py::test_reads_data": [
            {"rule": "since", "file": "vendor/lib/data.txt", "scope": "<module>", "detail": "content changed"}
        ]
    }
    assert project.run("--since", "main").ran() == {"tests/test_vendor.py::test_reads_data"}


def test_an_old_submodule_version_is_read_from_the_submodules_object_store(
    with_submodule: WithSubmodule,
) -> None:
    project, upstream, _ = with_submodule
    project.git("checkout", "-q", "-b", "feature")
    upstream.replace("vlib.py", "return 2", "return 1 + 1")
    upstream.commit("lib v2")
    update_submodule(project)
    project.commit("bump vendor/lib")
    # A fresh map knows only today's versions: the merge-base's vlib.py must come from git.
    assert project.tia("cache", "clear").rc == 0
    assert project.tia("map").rc == 0
    assert project.select("--since", "main") == {
        "tests/test_vendor.py::test_two": [{"rule": "since", "file": "vendor/lib/vlib.py", "scope": "two"}]
    }


def test_a_submodule_commit_git_no_longer_has_counts_as_changed(with_submodule: WithSubmodule) -> None:
    project, _, checkout = with_submodule
    # main records a submodule commit that exists only in this checkout ...
    checkout.replace("data.txt", "5", "6")
    checkout.commit("local only")
    project.commit("bump vendor/lib to a local commit")
    project.git("checkout", "-q", "-b", "feature")
    # ... which the branch moves away from, and git then forgets.
    checkout.git("reset", "-q", "--hard", "origin/main")
    checkout.git("reflog", "expire", "--expire=now", "--all")
    checkout.git("gc", "-q", "--prune=now")
    project.commit("back to upstream")
    # The work tree is as it was mapped: only the comparison with main can select.
    assert project.select() == {}

    selected = project.select("--since", "main")
    assert set(selected) == VENDOR_TESTS  # and none of the sample's tests
    unknown = {
        "rule": "since",
        "file": "vendor/lib/vlib.py",
        "scope": "<module>",
        "detail": "previous version unknown",
    }
    for reasons in selected.values():
        assert unknown in reasons


def test_listing_holds_untracked_files_inside_a_submodule(with_submodule: WithSubmodule) -> None:
    project, _, checkout = with_submodule
    checkout.write("extra.txt", "7\n")
    project.replace("tests/test_vendor.py", '"data.txt"', '"extra.txt"')
    assert project.run().ran() == VENDOR_TESTS  # the test module changed
    checkout.write("extra.txt", "8\n")
    assert project.select() == {
        "tests/test_vendor.py::test_reads_data": [
            {
                "rule": "changed",
                "file": "vendor/lib/extra.txt",
                "scope": "<module>",
                "detail": "content changed",
            }
        ]
    }


def test_the_listing_leaves_out_every_map_directory_and_nothing_else(project: GitProject) -> None:
    # A map directory is never a project file, even where no .gitignore says so (a map
    # copied in, or made by a tia that wrote none); names that merely contain ".tia" are.
    for rel in (
        ".tia/cache.db",
        "sub/.tia/cache.db",
        "a/b/.tia/x/y",
        ".tiara/x.py",
        "a.tia/x.py",
        "x.tia",
        "c/.tia",
    ):
        project.write(rel, "")
    files = GitRepo(project.path).worktree_files()
    assert [f for f in files if "tia" in f] == [".tiara/x.py", "a.tia/x.py", "c/.tia", "x.tia"]


def test_a_listing_started_early_lists_what_a_late_one_does(project: GitProject) -> None:
    project.write("untracked.txt", "")
    git = GitRepo(project.path)
    git.start_listing()
    assert git.worktree_files() == GitRepo(project.path).worktree_files()
    assert "untracked.txt" in git.worktree_files()  # the next listing starts afresh


def test_a_listing_started_before_waiting_for_the_lock_is_taken_again_after_it(
    project: GitProject,
) -> None:
    # `tia run` starts git listing the work tree before it takes the map's lock; if another
    # tia holds the lock, what changes while this one waits must be in its plan.
    git = GitRepo(project.path)
    git.start_listing()
    for proc in git._listing or ():
        proc.wait()  # the early listing is done: it cannot see the file written below
    waiting = threading.Event()
    files: list[str] = []
    tia = Project(load_config(project.path, project.path), lambda message: None, git)

    def plan() -> None:
        with tia.locked(lambda message: waiting.set()):
            files.extend(tia.git.worktree_files())

    with Store(tia.store.directory, lambda message: None).locked(lambda message: None):
        thread = threading.Thread(target=plan)
        thread.start()
        assert waiting.wait(timeout=60)
        project.write("written_while_waiting.txt", "")
    thread.join(timeout=60)
    assert "written_while_waiting.txt" in files


GENERATED = {
    "pyproject.toml": PYPROJECT_WITH_TESTS,
    ".gitignore": "pkg/_version.py\nbuild/\n",
    "pkg/__init__.py": "from pkg._version import VERSION\n",
    "pkg/_version.py": 'VERSION = "1.0"\n',
    "pkg/core.py": """
        def add(a, b):
            return a + b
        """,
    "tests/test_version.py": """
        import pkg


        def test_version():
            assert pkg.VERSION == "1.0"
        """,
    # Imported after test_version.py ran pkg/_version.py: only the import graph ties
    # this test to it.
    "tests/test_label.py": """
        from pkg._version import VERSION

        LABEL = "v" + VERSION


        def test_label():
            assert LABEL == "v1.0"
        """,
    "tests/test_core.py": """
        from pkg.core import add


        def test_add():
            assert add(1, 2) == 3
        """,
}


@pytest.fixture
def generated(tmp_path: Path) -> GitProject:
    """A project whose package imports a module git ignores, as a generated `_version.py` is."""
    proj = GitProject(tmp_path / "gen")
    proj.write_all(GENERATED)
    # Written well before the map's run starts, as a build step leaves it.
    past = time.time() - 60
    os.utime(proj.path / "pkg/_version.py", (past, past))
    proj.commit("initial")
    assert "pkg/_version.py" not in GitRepo(proj.path).worktree_files()
    assert proj.run("--all").rc == 0
    return proj


def test_a_python_file_git_ignores_is_a_dependency_of_the_tests_that_use_it(generated: GitProject) -> None:
    # Nothing changed: the ignored file is in the map's listing, and not new to it.
    assert generated.run().ran() == set()
    assert generated.run("--since", "main").ran() == set()
    shutil.copytree(generated.path / ".tia", generated.path.parent / "saved")
    generated.replace("pkg/_version.py", '"1.0"', '"2.0"')
    failing = {"tests/test_version.py::test_version", "tests/test_label.py::test_label"}
    result = generated.run()
    assert result.failed() == failing, result
    shutil.rmtree(generated.path / ".tia")
    shutil.copytree(generated.path.parent / "saved", generated.path / ".tia")
    result = generated.run("--since", "main")
    assert result.failed() == failing, result


def test_an_ignored_python_file_a_test_wrote_during_the_run_is_not_pinned(generated: GitProject) -> None:
    # A file written during the run may not be what the test read: it counts as
    # changed until a run finds it older than itself.
    generated.write(
        "tests/test_build.py",
        """
        import importlib
        import pathlib


        def test_builds_and_imports():
            out = pathlib.Path(__file__).parent.parent / "build" / "made.py"
            out.parent.mkdir(exist_ok=True)
            out.write_text("VALUE = 1\\n")
            spec = importlib.util.spec_from_file_location("made", out)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            assert module.VALUE == 1
        """,
    )
    assert generated.run().ran() == {"tests/test_build.py::test_builds_and_imports"}
    meta = Project(load_config(generated.path, generated.path), lambda message: None).meta()
    assert meta["ignored_sources"] == ["pkg/_version.py"]
    assert generated.run().ran() == {"tests/test_build.py::test_builds_and_imports"}
