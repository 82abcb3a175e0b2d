"""End to end: xdist and plain runs record the same map; the plugin is inert unless tia asks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ALL_SAMPLE_TESTS, GitProject, clean_env
from tia.runner import predict_seconds
from tia.store import Store

pytestmark = pytest.mark.slow


def _deps(path: Path) -> dict[str, dict[str, tuple[str, frozenset[str]]]]:
    store = Store(path / ".tia", print).open()
    try:
        return {nodeid: record.deps for nodeid, record in store.tests().items()}
    finally:
        store.close()


def _with_session_fixture(project: GitProject) -> None:
    project.write(
        "tests/conftest.py",
        """
        import pytest

        from pkg import reader


        @pytest.fixture(scope="session")
        def loaded():
            return reader.load()


        @pytest.fixture
        def two(loaded):
            return 2
        """,
    )
    project.commit("session fixture")


def test_xdist_and_plain_runs_record_the_same_map(project: GitProject, tmp_path: Path) -> None:
    _with_session_fixture(project)
    twin = tmp_path / "twin"
    shutil.copytree(project.path, twin)
    plain = project.tia("map", "-n", "0")
    assert plain.rc == 0, plain
    parallel = GitProject.__new__(GitProject)
    parallel.path = twin
    distributed = parallel.tia("map", "-n", "2")
    assert distributed.rc == 0, distributed
    assert "2 workers" in distributed.stdout + distributed.stderr
    assert _deps(project.path) == _deps(twin)
    # A session fixture's dependencies reach every test that uses it, not only the first.
    assert "pkg/data.json" in _deps(twin)["tests/test_core.py::test_add"]


def test_a_selection_runs_under_xdist(mapped: GitProject) -> None:
    mapped.replace("pkg/core.py", "return a * b", "return a * b * 1")
    mapped.replace("pkg/core.py", "return a + b", "return a + b + 0")
    result = mapped.run("-n", "2")
    assert result.rc == 0, result
    assert result.ran() == {"tests/test_core.py::test_add", "tests/test_core.py::test_mul"}
    assert mapped.run("-n", "2").ran() == set()


def test_nothing_changed_under_xdist_runs_nothing(mapped: GitProject) -> None:
    result = mapped.run("-n", "2")
    assert result.rc == 0
    assert "no tests affected" in result.stderr


def test_a_small_selection_does_not_start_workers(mapped: GitProject) -> None:
    mapped.replace("pkg/core.py", "return a * b", "return a * b * 1")
    result = mapped.run()
    assert "xdist workers" not in result.stderr
    assert result.ran() == {"tests/test_core.py::test_mul"}


def test_plain_pytest_is_untouched_by_the_installed_plugin(project: GitProject) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project.path,
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stdout
    assert "6 passed" in proc.stdout
    assert "tia:" not in proc.stdout
    assert not (project.path / ".tia").exists()


def test_pytest_addopts_reaches_the_run(mapped: GitProject) -> None:
    mapped.replace("pkg/core.py", "return a * b", "return a * b * 1")
    result = mapped.tia("run", env=clean_env(PYTEST_ADDOPTS="-rA --strict-markers"))
    assert "PASSED tests/test_core.py::test_mul" in result.stdout, result


def test_arguments_after_the_double_dash_go_to_pytest(mapped: GitProject) -> None:
    result = mapped.tia("run", "--all", "--", "-k", "add", "-rA")
    assert result.ran() == {"tests/test_core.py::test_add"}, result


def _plant_index(project: GitProject, index: object) -> None:
    """Put `index` in the map as the index of pkg/core.py as it is now."""
    from tia.gitrepo import blob_id

    store = Store(project.path / ".tia", print).open()
    try:
        store.cache.set("index:" + blob_id((project.path / "pkg/core.py").read_bytes()), index)
    finally:
        store.close()


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_recorded_run_reuses_the_maps_index_of_a_file_version_it_already_holds(
    project: GitProject, workers: str
) -> None:
    from tia.scopes import index_source

    assert project.tia("map", "-n", "0").rc == 0
    # An index the map holds for pkg/core.py's content, told apart from the real one by a
    # scope name: whatever a run records against that content comes from it.
    real = index_source((project.path / "pkg/core.py").read_bytes(), "pkg/core.py").to_json()
    planted = {
        **real,
        "scopes": {k.replace("mul", "planted"): v for k, v in real["scopes"].items()},
        "spans": [[name.replace("mul", "planted"), *lines] for name, *lines in real["spans"]],
    }
    _plant_index(project, planted)

    assert project.run("--all", "-n", workers).rc == 0
    assert _deps(project.path)["tests/test_core.py::test_mul"]["pkg/core.py"][1] == {"planted"}


def test_an_unreadable_index_in_the_map_is_computed_again(project: GitProject) -> None:
    assert project.tia("map", "-n", "0").rc == 0
    _plant_index(project, {"module": 7})

    assert project.run("--all", "-n", "0").rc == 0
    assert _deps(project.path)["tests/test_core.py::test_mul"]["pkg/core.py"][1] == {"mul"}


# -- indexing ahead, while pytest runs ----------------------------------------------------


def _python_blobs(project: GitProject) -> dict[str, str]:
    from tia.gitrepo import blob_id

    return {
        str(p.relative_to(project.path)): blob_id(p.read_bytes())
        for p in project.path.rglob("*.py")
        if ".tia" not in p.parts
    }


def _project_api(project: GitProject) -> Any:
    from tia.config import load_config
    from tia.project import Project

    return Project(load_config(project.path, project.path), print)


def test_a_run_of_every_test_indexes_every_python_file_ahead_while_pytest_runs(project: GitProject) -> None:
    project.write("pkg/unused.py", "def never():\n    return 1\n")  # no test runs or imports it
    project.commit("unused")
    tia = _project_api(project)
    with tia.store.locked(print):
        plan = tia.plan(None, run_all=True)
        assert plan.mode == "all"
        blobs = _python_blobs(project)
        assert tia.store.lacking_indexes(blobs.values()) == set(blobs.values())
        tia.index_ahead(plan, done=lambda: True)  # pytest already done: nothing to do
        assert tia.store.lacking_indexes(blobs.values()) == set(blobs.values())
        tia.index_ahead(plan, done=lambda: False)
        assert tia.store.lacking_indexes(blobs.values()) == set()
    tia.store.close()
    # What it stored is what the plugin would have computed.
    from tia.scopes import index_source

    store = Store(project.path / ".tia", print).open()
    assert store.index(blobs["pkg/unused.py"]) == index_source((project.path / "pkg/unused.py").read_bytes())
    store.close()
    # A map holding nothing but file indexes opens as a map, not as a corrupt one.
    result = project.run()
    assert "moved it to" not in result.stderr
    assert result.rc == 0, result


def test_a_selection_stores_the_indexes_planning_made_and_no_others(mapped: GitProject) -> None:
    blobs = _python_blobs(mapped)
    store = Store(mapped.path / ".tia", print).open()
    store.cache.delete("index:" + blobs["tests/conftest.py"])  # a version the map lacks
    store.close()
    mapped.replace("pkg/core.py", "return a * b", "return b * a")
    edited = _python_blobs(mapped)["pkg/core.py"]
    tia = _project_api(mapped)
    with tia.store.locked(print):
        plan = tia.plan(None, run_all=False)
        assert plan.selected == ["tests/test_core.py::test_mul"]
        assert tia.store.lacking_indexes([edited]) == {edited}
        tia.index_ahead(plan, done=lambda: False)
        assert tia.store.lacking_indexes([edited, blobs["tests/conftest.py"]]) == {blobs["tests/conftest.py"]}
        assert tia.store._cache is not None  # diskcache is open for storing the run, before pytest ends
    tia.store.close()


def test_pytest_is_stopped_when_the_work_done_while_it_runs_fails(mapped: GitProject, tmp_path: Path) -> None:
    from tia.runner import run_pytest

    started = tmp_path / "started"
    mapped.write(
        "tests/test_slow.py",
        f"""
        import os, time
        from pathlib import Path

        def test_slow():
            Path({str(started)!r}).write_text(str(os.getpid()))
            time.sleep(120)
        """,
    )

    def meanwhile(done: Any) -> None:
        while not started.exists() or not started.read_text():
            assert not done()
            time.sleep(0.05)
        raise RuntimeError("a bug in the work done meanwhile")

    with pytest.raises(RuntimeError, match="a bug"):
        run_pytest(
            root=mapped.path,
            cache_dir=mapped.path / ".tia",
            plan={"mode": "all", "record": False, "engine": "coverage", "selected": [], "known": []},
            pytest_args=["-p", "no:cacheprovider", str(mapped.path / "tests/test_slow.py")],
            workers=0,
            quiet=True,
            meanwhile=meanwhile,
        )
    # The pytest process is gone (killed and reaped), and so are the plan and results files.
    with pytest.raises(ProcessLookupError):
        os.kill(int(started.read_text()), 0)
    assert not list((mapped.path / ".tia").glob("plan-*.json"))


def test_a_selection_is_predicted_from_recorded_durations_and_their_median_for_the_rest() -> None:
    assert predict_seconds(["a", "b"], {}) is None
    odd = {"a": 1.0, "b": 5.0, "c": 2.0}
    assert predict_seconds(["a", "b", "new"], odd) == 1.0 + 5.0 + 2.0
    even = {"a": 1.0, "b": 4.0, "c": 2.0, "d": 8.0}
    assert predict_seconds(["new", "other"], even) == 2 * 3.0


def _early_project(project: GitProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A project whose conftest, once imported, writes `tmp_path/conftest` and whose test
    writes the pid of the process it runs in to `tmp_path/ran`; a plugin given with ``-p``
    writes `tmp_path/loading` as pytest imports it.  Returns the pytest arguments."""
    project.write("tests/conftest.py", f"open({str(tmp_path / 'conftest')!r}, 'w').close()\n")
    project.write(
        "tests/test_pid.py",
        f"""
        import os

        def test_pid():
            assert "TIA_PLAN_GO_FD" not in os.environ
            with open({str(tmp_path / "ran")!r}, "w") as f:
                f.write(str(os.getpid()))
        """,
    )
    (tmp_path / "plugins").mkdir()
    mark = f"open({str(tmp_path / 'loading')!r}, 'w').close()\n"
    (tmp_path / "plugins" / "loading_mark.py").write_text(mark)
    env = clean_env(PYTHONPATH=str(tmp_path / "plugins"))
    for key in set(os.environ) - set(env):
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(project.path)
    (project.path / ".tia").mkdir()
    return ["-p", "loading_mark", "-p", "no:cacheprovider", "-q", "tests/test_pid.py"]


def _started(early: Any, tmp_path: Path) -> subprocess.Popen[bytes]:
    """Start the early pytest; wait until it imports its plugins, then long enough to
    import a conftest."""
    early.start()
    proc = early.proc
    assert proc is not None
    deadline = time.monotonic() + 60
    while not (tmp_path / "loading").exists():
        assert proc.poll() is None, "pytest ended before it was told to go"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(1.0)
    return proc


def test_pytest_started_while_tia_plans_waits_for_the_plan_then_runs_it(
    project: GitProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tia.runner import EarlyPytest, run_pytest

    args = _early_project(project, tmp_path, monkeypatch)
    with EarlyPytest(project.path / ".tia", args) as early:
        proc = _started(early, tmp_path)
        assert proc.poll() is None
        assert not (tmp_path / "conftest").exists()  # waiting, before any conftest
        result = run_pytest(
            root=project.path,
            cache_dir=project.path / ".tia",
            plan={"mode": "all", "record": False, "engine": "coverage", "selected": [], "known": []},
            pytest_args=args,
            workers=0,
            early=early,
        )
    assert result.exitstatus == 0
    assert result.payload is not None
    assert list(result.payload["outcomes"]) == ["tests/test_pid.py::test_pid"]
    assert (tmp_path / "ran").read_text() == str(proc.pid)  # the early process ran it
    assert not list((project.path / ".tia").glob("plan-*.json"))


def test_pytest_started_while_tia_plans_runs_nothing_when_tia_needs_no_run_or_another_command(
    project: GitProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tia.runner import EarlyPytest

    args = _early_project(project, tmp_path, monkeypatch)
    with EarlyPytest(project.path / ".tia", args) as early:
        proc = _started(early, tmp_path)
    assert proc.returncode is not None  # stopped when tia found nothing to run
    for command in ((args, 2, False, False), (args, 0, True, True), ([*args, "-x"], 0, False, False)):
        (tmp_path / "loading").unlink()
        with EarlyPytest(project.path / ".tia", args) as early:
            proc = _started(early, tmp_path)
            # xdist workers, collecting only, other arguments: a process started anew runs those.
            assert early.take(*command) is None
            assert proc.returncode is not None
    assert not (tmp_path / "conftest").exists()
    assert not (tmp_path / "ran").exists()


def test_pytest_told_nothing_by_tia_ends_without_importing_a_conftest(
    project: GitProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = _early_project(project, tmp_path, monkeypatch)
    wait, go = os.pipe()
    os.close(go)  # tia ended (or was killed) before it had a plan
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", f"--tia-plan={tmp_path / 'never-written.json'}", *args],
            env={**os.environ, "TIA_PLAN_GO_FD": str(wait)},
            pass_fds=(wait,),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.close(wait)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, proc.stderr
    assert proc.stdout == proc.stderr == ""
    assert (tmp_path / "loading").exists()
    assert not (tmp_path / "conftest").exists()


def test_the_tests_of_a_run_started_before_planning_never_see_the_go_pipe(mapped: GitProject) -> None:
    test = 'import os\n\ndef test_env():\n    assert "TIA_PLAN_GO_FD" not in os.environ\n'
    mapped.write("tests/test_env.py", test)
    assert mapped.run().ran() == {"tests/test_env.py::test_env"}
    mapped.replace("tests/test_env.py", "assert", "assert 1 and")
    result = mapped.run()
    assert result.rc == 0, result
    assert result.ran() == {"tests/test_env.py::test_env"}


def test_a_run_is_stored_while_pytest_prints_its_summary_and_exits(mapped: GitProject) -> None:
    # pytest's end waits (at most 20 s) until the map records this run: only a tia that
    # stores the results before pytest exits lets it see that.
    conftest = mapped.read("tests/conftest.py")
    mapped.write(
        "tests/conftest.py",
        conftest
        + textwrap.dedent(
            """
        import time
        from pathlib import Path

        from tia.store import Store

        MAP = Path(__file__).parent.parent / ".tia"


        def updated():
            store = Store(MAP, print).open()
            try:
                return store.meta().get("updated")
            finally:
                store.close()


        def pytest_sessionstart(session):
            session.config._before = updated()


        def pytest_unconfigure(config):
            deadline = time.monotonic() + 20
            while updated() == config._before and time.monotonic() < deadline:
                time.sleep(0.05)
            if updated() != config._before:
                (MAP.parent / "stored-before-exit").write_text("yes")
            """
        ),
    )
    result = mapped.run()
    assert result.rc == 0, result
    assert (mapped.path / "stored-before-exit").exists(), result
    assert "tests/test_core.py::test_add" in result.ran()  # conftest.py changed: every test ran


def test_a_failure_whose_text_utf8_cannot_encode_reaches_the_controller(project: GitProject) -> None:
    # PyYAML tests unacceptable characters: execnet cannot send a lone surrogate.
    project.write("tests/test_text.py", 'def test_surrogate():\n    assert "\\udc80" == "x"\n')
    project.commit("a failure with a lone surrogate in its text")
    result = project.run("-n", "2")
    assert result.rc == 1, result
    assert "internal error" not in result.output
    assert result.ran() == ALL_SAMPLE_TESTS | {"tests/test_text.py::test_surrogate"}
    assert result.failed() == {"tests/test_text.py::test_surrogate"}
    assert "AssertionError: assert '\\udc80' == 'x'" in result.stdout


# A report that cannot travel from an xdist worker ends that worker in an internal error
# (PyYAML's suite fails a test whose message holds a lone surrogate, which execnet cannot
# encode). This hook does the same to any call report of a test named `*_breaks_a_worker`,
# on workers only, before xdist sends it, whatever execnet can encode.
_BREAKS_A_WORKER = {
    "tests/conftest.py": """
        import os

        import pytest


        @pytest.fixture
        def two():
            return 2


        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_logreport(report):
            if os.environ.get("PYTEST_XDIST_WORKER") and report.when == "call":
                if report.nodeid.endswith("_breaks_a_worker"):
                    raise RuntimeError("this report cannot reach the controller")
        """,
    "tests/test_many.py": """
        import pytest


        @pytest.mark.parametrize("i", range(30))
        def test_many(i):
            assert i >= 0


        def test_that_breaks_a_worker():
            assert 1 == 2
        """,
}


def _breaking_a_worker(project: GitProject) -> set[str]:
    """Every test of `project` once `_BREAKS_A_WORKER` is added."""
    project.write_all(_BREAKS_A_WORKER)
    project.commit("a test that breaks an xdist worker")
    many = {f"tests/test_many.py::test_many[{i}]" for i in range(30)}
    return ALL_SAMPLE_TESTS | many | {"tests/test_many.py::test_that_breaks_a_worker"}


def test_what_an_xdist_internal_error_left_undone_runs_again_without_workers(project: GitProject) -> None:
    everything = _breaking_a_worker(project)
    first = project.run("-n", "2")
    assert first.rc == 1, first
    assert "pytest-xdist ended in an internal error; running the" in first.stderr
    # Every test ran and is mapped, those the broken worker ran before it stopped included.
    store = Store(project.path / ".tia", print).open()
    try:
        records = store.tests()
    finally:
        store.close()
    assert set(records) == everything
    assert all(record.deps for record in records.values())
    failed = {n for n, record in records.items() if record.outcome == "failed"}
    assert failed == {"tests/test_many.py::test_that_breaks_a_worker"}
    project.replace("tests/test_many.py", "assert i >= 0", "assert i < 0")
    verify = project.run("--verify", "-n", "2")
    assert verify.rc == 1, verify
    assert "verify: 31 failing tests, 0 of them missed by the selection" in verify.stderr


def test_a_run_whose_internal_error_left_selected_tests_unrun_never_passes(project: GitProject) -> None:
    everything = _breaking_a_worker(project)
    assert project.run("-n", "0").rc == 1
    # The workers are the user's: tia leaves them be, but does not let xdist's status 0 stand.
    again = project.run("--", "-n", "2")
    assert again.rc == 3, again
    assert again.ran() == set()
    assert (
        "pytest ended in an internal error before 1 selected tests reported "
        "(tests/test_many.py::test_that_breaks_a_worker first); they are selected again next time"
    ) in again.stderr
    inside = subprocess.run(
        [sys.executable, "-m", "pytest", "--tia", "-n", "2", "-p", "no:cacheprovider"],
        cwd=project.path,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=300,
    )
    assert inside.returncode == 3, inside.stdout + inside.stderr
    verify = project.run("--verify", "--", "-n", "2")
    assert verify.rc == 3, verify
    assert "verify: NOT VERIFIED: the whole suite did not run" in verify.stderr
    assert len(_deps(project.path)) == len(everything)
