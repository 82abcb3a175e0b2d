"""End to end: bad input and faults give one clear line and a non-zero exit, and never hurt the map."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ALL_SAMPLE_TESTS, GitProject, clean_env, shallow_clone
from tia.store import SCHEMA

pytestmark = pytest.mark.slow


def assert_one_line_error(result, *needles: str) -> None:
    assert result.rc not in (0, 1), result
    assert "Traceback" not in result.output, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("tia: error:")]
    assert len(errors) == 1, result
    for needle in needles:
        assert needle in errors[0], result


def test_outside_a_git_repository(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tia", "run"], cwd=tmp_path, capture_output=True, text=True, env=clean_env()
    )
    assert proc.returncode == 3
    assert "not inside a git repository" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unknown_ref_names_the_refs_that_exist(mapped: GitProject) -> None:
    mapped.git("branch", "develop")
    result = mapped.tia("select", "--since", "origin/nope")
    assert_one_line_error(result, "unknown git ref 'origin/nope'", "main", "develop")


def test_a_shallow_clone_without_the_merge_base_says_how_to_deepen(
    mapped: GitProject, tmp_path: Path
) -> None:
    for n in range(3):
        mapped.write(f"pkg/extra{n}.py", f"X = {n}\n")
        mapped.commit(f"extra {n}")
    mapped.git("branch", "old", "HEAD~3")
    mapped.git("checkout", "-q", "-b", "feature")
    mapped.write("pkg/feature.py", "Y = 1\n")
    mapped.commit("feature")
    mapped.git("checkout", "-q", "old")
    mapped.write("pkg/old.py", "Z = 1\n")
    mapped.commit("diverge")
    clone = tmp_path / "shallow"
    shallow_clone(mapped.path, clone)
    subprocess.run(["git", "checkout", "-q", "feature"], cwd=clone, check=True)
    proc = subprocess.run(
        [sys.executable, "-m", "tia", "select", "--since", "origin/old"],
        cwd=clone,
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert proc.returncode == 3, proc.stderr
    assert "shallow clone" in proc.stderr
    assert "git fetch --deepen" in proc.stderr
    assert "Traceback" not in proc.stderr


def set_meta(project: GitProject, **fields: object) -> None:
    """Overwrite fields of the map's meta record, as a tampered or foreign map would hold
    them (in another process: tia's own store must not be open in this one)."""
    code = (
        "import json, sys; from pathlib import Path; from tia.store import Store; "
        "s = Store(Path(sys.argv[1]), print).open(); "
        "s.cache.set('meta', {**s.meta(), **json.loads(sys.argv[2])})"
    )
    subprocess.run([sys.executable, "-c", code, str(project.path / ".tia"), json.dumps(fields)], check=True)


def test_a_corrupt_map_is_moved_aside_and_rebuilt(mapped: GitProject) -> None:
    db = mapped.path / ".tia" / "cache.db"
    db.write_bytes(b"this is not sqlite" * 100)
    result = mapped.run()
    assert result.rc == 0, result
    assert "moved it to" in result.stderr
    assert result.ran() == ALL_SAMPLE_TESTS
    aside = [p for p in mapped.path.iterdir() if p.name.startswith(".tia.corrupt-")]
    assert len(aside) == 1
    assert (aside[0] / "cache.db").read_bytes().startswith(b"this is not sqlite")
    assert mapped.run().ran() == set()


def test_a_map_found_corrupt_midway_through_planning_is_mapped_again_whole(mapped: GitProject) -> None:
    # Planning reads a test file's summaries only once it selected one of its tests: late.
    code = (
        "import sys; from pathlib import Path; from tia.store import Store; "
        "s = Store(Path(sys.argv[1]), print).open(); key = 'tests:tests/test_core.py'; "
        "s.cache.set(key, {n: ['maybe', 1, 1, 'e', 'v'] for n in s.cache.get(key)})"
    )
    subprocess.run([sys.executable, "-c", code, str(mapped.path / ".tia")], check=True)
    mapped.replace("pkg/core.py", "return a * b", "return b * a")
    result = mapped.run()
    assert result.rc == 0, result
    assert "moved it to" in result.stderr
    assert "the map was unreadable: mapping the whole suite again" in result.stderr
    assert result.ran() == ALL_SAMPLE_TESTS
    assert mapped.run().ran() == set()


def test_a_tampered_list_of_ignored_sources_is_never_read_outside_the_repository(
    mapped: GitProject,
) -> None:
    # The list names files tia hashes on every run: a path outside the work tree in it is
    # a tampered map, moved aside like any other.
    set_meta(mapped, ignored_sources=["../../etc/passwd"])
    result = mapped.run()
    assert result.rc == 0, result
    assert "moved it to" in result.stderr
    assert "unsafe path" in result.stderr
    assert result.ran() == ALL_SAMPLE_TESTS
    assert mapped.run().ran() == set()


def test_a_map_from_a_newer_tia_is_refused_and_kept(mapped: GitProject) -> None:
    set_meta(mapped, schema=99)
    result = mapped.tia("run")
    assert_one_line_error(result, "newer tia", "schema 99", f"schema {SCHEMA}")
    assert (mapped.path / ".tia" / "cache.db").exists()


def test_an_unwritable_map_directory(mapped: GitProject, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = mapped.tia("run", "--cache-dir", str(blocker / "tia"))
    assert_one_line_error(result, "cannot", str(blocker / "tia"))


def test_a_second_tia_waits_for_the_first(mapped: GitProject) -> None:
    mapped.write("tests/test_slow.py", "import time\n\ndef test_slow():\n    time.sleep(3)\n")
    first = subprocess.Popen(
        [sys.executable, "-m", "tia", "run"],
        cwd=mapped.path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    second = mapped.tia("select")
    first.communicate(timeout=120)
    assert first.returncode == 0
    assert "waiting for another tia process" in second.stderr
    assert second.rc == 0
    # The second saw the first's results: the slow test is mapped, nothing is left to run.
    assert "tests/test_slow.py::test_slow" not in second.stdout


def test_ctrl_c_keeps_what_completed_and_the_next_run_selects_the_rest(mapped: GitProject) -> None:
    mapped.write("tests/test_a_fast.py", "def test_fast():\n    assert True\n")
    # The slow test says when it runs, so the interrupt lands inside it however busy the machine is.
    mapped.write(
        "tests/test_z_slow.py",
        "import pathlib\nimport time\n\ndef test_slow():\n"
        "    pathlib.Path('slow-started').write_text('1')\n    time.sleep(30)\n",
    )
    # Started from a shell's background job, this test inherits SIGINT ignored, and so would
    # tia and pytest: restore Python's handler in tia, as a terminal's Ctrl-C would find it
    # (pytest, started by tia, then gets the default disposition and its own handler).
    launcher = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv[0] = 'tia'; runpy.run_module('tia', run_name='__main__')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher, "run", "--", "-p", "no:cacheprovider"],
        cwd=mapped.path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (mapped.path / "slow-started").exists():
        time.sleep(0.2)
    assert (mapped.path / "slow-started").exists(), "the slow test never started"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in err, err
    selected = mapped.select()
    assert "tests/test_z_slow.py::test_slow" in selected
    assert "tests/test_a_fast.py::test_fast" not in selected


def test_a_test_that_kills_its_process_leaves_the_map_consistent(mapped: GitProject) -> None:
    mapped.write("tests/test_crash.py", "import os\n\ndef test_crash():\n    os._exit(3)\n")
    result = mapped.run()
    assert result.rc != 0
    assert "the map is unchanged" in result.stderr
    # Nothing of the crashed run was recorded, so the crashing test is still new and runs again.
    assert mapped.select() == {
        "tests/test_crash.py::test_crash": [{"rule": "new", "detail": "not in the map"}]
    }
    assert mapped.tia("status").stdout.splitlines()[1].startswith("tests: 6 ")


def test_a_failing_test_is_recorded_and_the_map_stays_usable(mapped: GitProject) -> None:
    mapped.write("tests/test_boom.py", "def test_boom():\n    raise RuntimeError('boom')\n")
    result = mapped.run()
    assert result.failed() == {"tests/test_boom.py::test_boom"}
    doc = json.loads(mapped.tia("select", "--json").stdout)
    assert [t["nodeid"] for t in doc["tests"]] == ["tests/test_boom.py::test_boom"]


def test_unknown_config_key_is_an_error_naming_it(mapped: GitProject) -> None:
    text = mapped.read("pyproject.toml")
    (mapped.path / "pyproject.toml").write_text(text + "\n[tool.tia]\nsinse = 'main'\n")
    result = mapped.tia("select")
    assert_one_line_error(result, "unknown key 'sinse'")
