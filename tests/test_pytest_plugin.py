"""End to end: selection inside an ordinary pytest command (`pytest --tia`, `--tia-since`, `--tia-all`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ALL_SAMPLE_TESTS, PYPROJECT_WITH_TESTS, GitProject, Result, clean_env
from tia.store import Store

pytestmark = pytest.mark.slow


def pytest_in(project: GitProject, *args: str, **env: str) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", *args],
        cwd=project.path,
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=300,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def summary_line(result: Result) -> str:
    return result.stdout.strip().splitlines()[-1]


def mapped_tests(project: GitProject) -> set[str]:
    store = Store(project.path / ".tia", print).open()
    try:
        return set(store.tests())
    finally:
        store.close()


@pytest.fixture
def tia_mapped(project: GitProject) -> GitProject:
    """The sample project after a first `pytest --tia`, which maps the whole suite."""
    first = pytest_in(project, "--tia")
    assert first.rc == 0, first
    assert "tia: running every test: no map yet" in first.stdout
    assert first.ran() == ALL_SAMPLE_TESTS
    assert mapped_tests(project) == ALL_SAMPLE_TESTS
    return project


def test_pytest_tia_runs_only_the_affected_tests_and_says_so_in_pytests_voice(
    tia_mapped: GitProject,
) -> None:
    tia_mapped.replace("pkg/core.py", "return a * b", "return a * b + 0")
    result = pytest_in(tia_mapped, "--tia")
    assert result.rc == 0, result
    assert result.ran() == {"tests/test_core.py::test_mul"}
    assert "tia: 1 of 6 tests affected by 1 changed file" in result.stdout
    # The final line accounts for the whole suite: the unaffected ones are deselected.
    assert re.search(r"1 passed, 5 deselected", summary_line(result)), result


def test_nothing_affected_exits_zero_not_pytests_no_tests_status(tia_mapped: GitProject) -> None:
    result = pytest_in(tia_mapped, "--tia")
    assert result.rc == 0, result
    assert result.ran() == set()
    assert "6 deselected" in summary_line(result)


def test_a_failure_is_recorded_and_runs_first_next_time(tia_mapped: GitProject) -> None:
    tia_mapped.replace("pkg/core.py", "return a + b", "return a - b")
    broken = pytest_in(tia_mapped, "--tia")
    assert broken.rc == 1
    assert broken.failed() == {"tests/test_core.py::test_add"}
    again = pytest_in(tia_mapped, "--tia")
    assert again.rc == 1
    assert again.ran() == {"tests/test_core.py::test_add"}
    assert "1 failed last time" in again.stdout


def test_tia_since_selects_everything_the_branch_changed(tia_mapped: GitProject) -> None:
    tia_mapped.git("checkout", "-q", "-b", "feature")
    # A module-level change that may do more than bind a name: every importer's tests.
    tia_mapped.write("pkg/consts.py", "FACTOR = 2\nOTHER = print() or 1\n")
    tia_mapped.commit("module-level change")
    pytest_in(tia_mapped, "--tia")  # the map catches up with the commit
    plain = pytest_in(tia_mapped, "--tia")
    assert plain.ran() == set()
    since = pytest_in(tia_mapped, "--tia-since", "main")
    assert since.rc == 0, since
    assert since.ran() == {"tests/test_uses.py::test_scaled"}
    assert re.search(r"since main \(merge-base [0-9a-f]{7}\)", since.stdout), since


def test_tia_all_runs_every_test_and_rebuilds_the_map(tia_mapped: GitProject) -> None:
    result = pytest_in(tia_mapped, "--tia-all")
    assert result.rc == 0, result
    assert result.ran() == ALL_SAMPLE_TESTS
    assert "tia: running every test: --tia-all" in result.stdout
    assert mapped_tests(tia_mapped) == ALL_SAMPLE_TESTS


def test_keyword_markers_and_node_ids_narrow_the_selection(tia_mapped: GitProject) -> None:
    tia_mapped.replace("pkg/core.py", "LIMIT = 10", "LIMIT = 10  # touched\nOTHER = print() or 1")
    affected = {n for n in ALL_SAMPLE_TESTS if n.startswith("tests/test_core.py")}
    by_keyword = pytest_in(tia_mapped, "--tia", "-k", "add or scaled")
    assert by_keyword.ran() == {"tests/test_core.py::test_add"}  # test_scaled is not affected
    by_nodeid = pytest_in(tia_mapped, "--tia", "tests/test_core.py::test_box", "tests/test_uses.py")
    assert by_nodeid.ran() == {"tests/test_core.py::test_box"}
    # The narrowed runs brought the two tests they ran up to date; the rest are still due.
    rest = pytest_in(tia_mapped, "--tia")
    assert rest.ran() == affected - {"tests/test_core.py::test_add", "tests/test_core.py::test_box"}
    # Narrowed runs did not forget the tests they did not collect.
    assert mapped_tests(tia_mapped) == ALL_SAMPLE_TESTS


def test_marker_expressions_narrow_the_selection(project: GitProject) -> None:
    project.replace("tests/test_core.py", "def test_mul", "@pytest.mark.slow\ndef test_mul")
    project.replace("tests/test_core.py", "from pkg import core", "import pytest\n\nfrom pkg import core")
    project.write(
        "pyproject.toml",
        '[tool.pytest.ini_options]\npythonpath = ["."]\nmarkers = ["slow: slow"]\n',
    )
    project.commit("a marker")
    assert pytest_in(project, "--tia").rc == 0
    project.replace("pkg/core.py", "# multiply", "# multiply\n    a = a + 0")
    project.replace("pkg/core.py", "return a + b", "return b + a")
    marked = pytest_in(project, "--tia", "-m", "not slow")
    assert marked.ran() == {"tests/test_core.py::test_add"}


def test_last_failed_keeps_its_meaning(tia_mapped: GitProject) -> None:
    tia_mapped.replace("pkg/core.py", "return a + b", "return a - b")
    tia_mapped.replace("pkg/core.py", "return a * b", "return a * b + 0")
    assert pytest_in(tia_mapped, "--tia", "-p", "cacheprovider").rc == 1
    lf = pytest_in(tia_mapped, "--tia", "-p", "cacheprovider", "--lf")
    assert lf.ran() == {"tests/test_core.py::test_add"}
    ff = pytest_in(tia_mapped, "--tia", "-p", "cacheprovider", "--ff", "tests/test_core.py")
    assert ff.ran() == {"tests/test_core.py::test_add"}  # the passing test_mul is not affected now


def stored(project: GitProject) -> tuple[dict[str, object], object]:
    store = Store(project.path / ".tia", print).open()
    try:
        return {n: r.to_json() for n, r in store.tests().items()}, store.meta()
    finally:
        store.close()


def test_collect_only_never_changes_the_map(tia_mapped: GitProject) -> None:
    before = stored(tia_mapped)
    tia_mapped.write("tests/test_new.py", "def test_new():\n    assert True\n")
    tia_mapped.replace("pkg/core.py", "return a + b", "return a - b")
    listing = pytest_in(tia_mapped, "--tia", "--collect-only", "-q")
    assert listing.rc == 0, listing
    assert "tests/test_core.py::test_add" in listing.stdout
    assert "tests/test_new.py::test_new" in listing.stdout
    assert re.search(r"^\d+/\d+ tests collected \(\d+ deselected\)", summary_line(listing), re.M), listing
    assert stored(tia_mapped) == before
    # The change is still pending: the next real run picks it up.
    assert pytest_in(tia_mapped, "--tia").failed() == {"tests/test_core.py::test_add"}


def test_verbose_lists_the_reason_for_each_test(tia_mapped: GitProject) -> None:
    tia_mapped.replace("pkg/core.py", "return a * b", "return a * b + 0")
    result = pytest_in(tia_mapped, "--tia", "-v")
    assert "tia:   tests/test_core.py::test_mul  (changed: pkg/core.py::mul" in result.stdout, result


def test_colour_follows_pytest(tia_mapped: GitProject) -> None:
    tia_mapped.replace("pkg/core.py", "return a * b", "return a * b + 0")
    coloured = pytest_in(tia_mapped, "--tia", "--color=yes")
    assert "\x1b[" in coloured.stdout
    assert "tia: 1 of 6 tests affected" in coloured.stdout
    plain = pytest_in(tia_mapped, "--tia")  # clean_env sets NO_COLOR
    assert "\x1b[" not in plain.stdout + plain.stderr


def test_pytest_cov_report_is_the_same_with_tia_recording(project: GitProject) -> None:
    def report(result: Result) -> list[str]:
        return [line for line in result.stdout.splitlines() if line.startswith(("pkg/", "TOTAL"))]

    without = pytest_in(project, "--cov=pkg", "--cov-report=term")
    with_tia = pytest_in(project, "--tia", "--cov=pkg", "--cov-report=term")
    assert with_tia.rc == 0, with_tia
    assert "INTERNALERROR" not in with_tia.output
    assert report(with_tia) == report(without) != []
    # And tia's map was recorded in the same run.
    project.replace("pkg/core.py", "return a * b", "return a * b + 0")
    assert pytest_in(project, "--tia").ran() == {"tests/test_core.py::test_mul"}


def test_pytest_cov_under_xdist_still_lets_tia_record(project: GitProject) -> None:
    def report(result: Result) -> list[str]:
        return [line for line in result.stdout.splitlines() if line.startswith(("pkg/", "TOTAL"))]

    args = ("-n", "2", "--cov=pkg", "--cov-branch", "--cov-report=term")
    without = pytest_in(project, *args)
    result = pytest_in(project, "--tia", *args)
    assert result.rc == 0, result
    assert report(result) == report(without) != []
    assert "Warning" not in result.output
    assert mapped_tests(project) == ALL_SAMPLE_TESTS
    project.replace("pkg/core.py", "return a * b", "return a * b + 0")
    assert pytest_in(project, "--tia").ran() == {"tests/test_core.py::test_mul"}


def test_xdist_workers_use_the_controllers_plan(tia_mapped: GitProject) -> None:
    tia_mapped.replace("pkg/core.py", "return a * b", "return a * b + 0")
    result = pytest_in(tia_mapped, "--tia", "-n", "2")
    assert result.rc == 0, result
    assert result.ran() == {"tests/test_core.py::test_mul"}
    assert "5 deselected" in summary_line(result)


def test_pytest_randomly_and_no_cacheprovider_do_not_break_it(tia_mapped: GitProject) -> None:
    tia_mapped.replace("pkg/core.py", "return a * b", "return a * b + 0")
    tia_mapped.replace("pkg/uses.py", "return x * consts.FACTOR", "return consts.FACTOR * x")
    # PYTEST_ADDOPTS is emptied so pytest-randomly is active.
    result = pytest_in(tia_mapped, "--tia", "-p", "no:cacheprovider", "-p", "randomly", PYTEST_ADDOPTS="")
    assert result.rc == 0, result
    assert "Using --randomly-seed" in result.stdout
    assert result.ran() == {"tests/test_core.py::test_mul", "tests/test_uses.py::test_scaled"}


def test_a_bad_ref_is_a_one_line_usage_error(tia_mapped: GitProject) -> None:
    result = pytest_in(tia_mapped, "--tia-since", "no-such-branch")
    assert result.rc == 4, result
    assert "tia: unknown git ref 'no-such-branch'" in result.stderr
    assert "Traceback" not in result.output


def test_plain_pytest_is_untouched_by_the_installed_plugin(tia_mapped: GitProject) -> None:
    tia_mapped.replace("pkg/core.py", "return a * b", "return a * b + 0")
    result = pytest_in(tia_mapped)
    assert result.ran() == ALL_SAMPLE_TESTS
    assert "tia:" not in result.stdout


@pytest.mark.parametrize(
    "engine",
    [
        "coverage",
        pytest.param(
            "monitoring",
            marks=pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is Python 3.12+"),
        ),
    ],
)
def test_a_failures_report_is_not_recorded_and_the_failure_runs_again_whatever_changes(
    engine: str, tmp_path: Path
) -> None:
    project = GitProject(tmp_path / "project")
    project.write_all(
        {
            "pyproject.toml": PYPROJECT_WITH_TESTS,
            "pkg/__init__.py": "",
            "pkg/words.py": """
                def describe(args):
                    return f"mismatch: {args!r}"
                """,
            "pkg/calc.py": """
                from pkg import words


                class Mismatch(Exception):
                    def __str__(self):
                        return words.describe(self.args)


                def check(x):
                    if x != 1:
                        raise Mismatch(x)
                    return x
                """,
            "tests/test_calc.py": """
                import pytest

                from pkg import calc


                def test_fails():
                    calc.check(2)


                def test_passes():
                    assert calc.check(1) == 1


                @pytest.mark.xfail(raises=calc.Mismatch)
                def test_expected_to_fail():
                    calc.check(3)
                """,
        }
    )
    project.commit("initial")
    first = project.run("--engine", engine)
    assert first.rc == 1, first
    assert first.failed() == {"tests/test_calc.py::test_fails"}
    assert "Mismatch: mismatch: (2,)" in first.stdout  # the report, written by the project's code
    store = Store(project.path / ".tia", print).open()
    try:
        deps = {n: {p: scopes for p, (_, scopes) in r.deps.items()} for n, r in store.tests().items()}
    finally:
        store.close()
    # The test ran `check` and raised; only its report asked the exception for its text.
    failing = deps["tests/test_calc.py::test_fails"]
    assert "check" in failing["pkg/calc.py"]
    assert "Mismatch.__str__" not in failing["pkg/calc.py"]
    assert "describe" not in failing.get("pkg/words.py", ())
    # Recording goes on after the report: the next test's code counts.
    assert "check" in deps["tests/test_calc.py::test_passes"]["pkg/calc.py"]
    # An xfail test's report is recorded: its failure counts as a skip, which runs again
    # only if what it depends on changes.
    assert "describe" in deps["tests/test_calc.py::test_expected_to_fail"]["pkg/words.py"]
    project.replace("pkg/words.py", "mismatch:", "differs:")
    again = project.run("--engine", engine)
    assert again.rc == 1, again
    # One failed last time; the other wrote its report with the changed function.
    assert again.ran() == {"tests/test_calc.py::test_fails", "tests/test_calc.py::test_expected_to_fail"}
    assert "Mismatch: differs: (2,)" in again.stdout
