"""Fixtures for driving tia end to end: real git repositories in temp dirs, tia in a subprocess."""

from __future__ import annotations

import compileall
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

# Variables that would leak this test session's pytest or xdist state into the runs we start.
_SCRUB = ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_CURRENT_TEST")


def pytest_configure(config: pytest.Config) -> None:
    # The runs the tests start never write bytecode (`clean_env`), so without this every one
    # of them compiled tia's own modules again: a sixth of the suite's time. Compiling once
    # here, in the controller, lets them read tia's bytecode; their projects' files are still
    # never cached, since a test may rewrite one within the same second at the same size.
    if not hasattr(config, "workerinput"):
        import tia

        compileall.compile_dir(Path(tia.__file__).parent, quiet=1)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB and not k.startswith("TIA_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["NO_COLOR"] = "1"
    # Runs keep pytest's order unless a test asks for pytest-randomly (installed for that).
    env["PYTEST_ADDOPTS"] = "-p no:randomly"
    env.update(extra)
    return env


class GitProject:
    """A git repository in a temp dir, with helpers to edit it and run tia in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.name", "tia tests")
        self.git("config", "user.email", "tests@tia.invalid")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        out = subprocess.run(["git", *args], cwd=self.path, check=True, capture_output=True, text=True)
        return out.stdout

    def write(self, rel: str, text: str) -> Path:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return target

    def write_all(self, files: dict[str, str], under: str = "") -> None:
        """Write every `rel -> text` of `files`, below the directory `under` if given."""
        for rel, text in files.items():
            self.write(f"{under}/{rel}" if under else rel, text)

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text(encoding="utf-8")

    def replace(self, rel: str, old: str, new: str) -> None:
        text = self.read(rel)
        assert old in text, f"{old!r} not in {rel}"
        (self.path / rel).write_text(text.replace(old, new, 1), encoding="utf-8")

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def tia(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "tia", *args],
            cwd=cwd or self.path,
            capture_output=True,
            text=True,
            env=env or clean_env(),
            timeout=300,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def run(self, *args: str, **kwargs: Any) -> Result:
        """`tia run ARGS -- -rA`, so the summary lists every test that ran."""
        extra = ["--", "-rA", "-p", "no:cacheprovider"]
        if "--" in args:
            i = args.index("--")
            args, extra = args[:i], [*extra, *args[i + 1 :]]
        return self.tia("run", *args, *extra, **kwargs)

    def select(self, *args: str, **kwargs: Any) -> dict[str, list[dict[str, str]]]:
        result = self.tia("select", "--json", *args, **kwargs)
        assert result.rc == 0, result.output
        doc = json.loads(result.stdout)
        return {t["nodeid"]: t["reasons"] for t in doc["tests"]}


class Result:
    __test__ = False

    def __init__(self, rc: int, stdout: str, stderr: str) -> None:
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def ran(self) -> set[str]:
        """Node ids pytest reported with -rA."""
        found = re.findall(r"^(?:PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+)", self.stdout, re.M)
        return {f.split(" - ")[0] for f in found}

    def failed(self) -> set[str]:
        return set(re.findall(r"^(?:FAILED|ERROR) (\S+)", self.stdout, re.M))

    def __repr__(self) -> str:
        return f"Result(rc={self.rc})\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


# pytest configuration for a project laid out as its package(s) and tests/, run from its root.
PYPROJECT_WITH_TESTS = """
    [tool.pytest.ini_options]
    pythonpath = ["."]
    testpaths = ["tests"]
    """

SAMPLE = {
    "pkg/__init__.py": "",
    "pkg/core.py": '''
        """Core arithmetic."""

        LIMIT = 10


        def add(a, b):
            return a + b


        def mul(a, b):
            # multiply
            return a * b


        class Box:
            SIZE = 3

            def area(self):
                return self.SIZE * self.SIZE
        ''',
    "pkg/consts.py": """
        FACTOR = 2
        """,
    "pkg/uses.py": """
        from pkg import consts


        def scaled(x):
            return x * consts.FACTOR
        """,
    "pkg/reader.py": """
        import json
        from pathlib import Path


        def load():
            return json.loads((Path(__file__).parent / "data.json").read_text())["value"]
        """,
    "pkg/data.json": '{"value": 5}\n',
    "pyproject.toml": """
        [tool.pytest.ini_options]
        pythonpath = ["."]
        """,
    "tests/conftest.py": """
        import pytest


        @pytest.fixture
        def two():
            return 2
        """,
    "tests/test_core.py": """
        from pkg import core


        def test_add(two):
            assert core.add(two, 3) == 5


        def test_mul():
            assert core.mul(2, 3) == 6


        def test_box():
            assert core.Box().area() == 9


        def test_limit():
            assert core.LIMIT == 10
        """,
    "tests/test_uses.py": """
        from pkg.uses import scaled


        def test_scaled():
            assert scaled(3) == 6
        """,
    "tests/test_reader.py": """
        from pkg.reader import load


        def test_load():
            assert load() == 5
        """,
}

ALL_SAMPLE_TESTS = {
    "tests/test_core.py::test_add",
    "tests/test_core.py::test_mul",
    "tests/test_core.py::test_box",
    "tests/test_core.py::test_limit",
    "tests/test_uses.py::test_scaled",
    "tests/test_reader.py::test_load",
}


def sample_remote(tmp_path: Path) -> Path:
    """A bare repository holding the committed sample project on main: a team's remote."""
    seed = GitProject(tmp_path / "seed")
    seed.write_all(SAMPLE)
    seed.commit("initial")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(seed.path), str(remote)], check=True)
    return remote


def shallow_clone(source: Path, target: Path) -> None:
    """A clone of `source` one commit deep, with every branch (what CI checkouts often are)."""
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", "--no-single-branch", f"file://{source}", str(target)],
        check=True,
    )


def clone_of(remote: Path, path: Path) -> GitProject:
    """A clone of `remote` at `path` (with ``origin/HEAD``, as `git clone` leaves it)."""
    subprocess.run(["git", "clone", "-q", str(remote), str(path)], check=True)
    project = GitProject.__new__(GitProject)
    project.path = path
    project.git("config", "user.name", "tia tests")
    project.git("config", "user.email", "tests@tia.invalid")
    project.git("config", "commit.gpgsign", "false")
    return project


@pytest.fixture
def project(tmp_path: Path) -> GitProject:
    """A small committed project on branch main, not yet mapped."""
    proj = GitProject(tmp_path / "proj")
    proj.write_all(SAMPLE)
    proj.commit("initial")
    return proj


@pytest.fixture(scope="session")
def mapped_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample project after a real `tia map`, made once per test process for `mapped`."""
    proj = GitProject(tmp_path_factory.mktemp("mapped-sample") / "proj")
    proj.write_all(SAMPLE)
    proj.commit("initial")
    result = proj.tia("map")
    assert result.rc == 0, result
    return proj.path


@pytest.fixture
def mapped(tmp_path: Path, mapped_sample: Path) -> GitProject:
    """The sample project after `tia map`: a copy of `mapped_sample`, its git history, files
    (with their mtimes) and map alike. The map holds no absolute path, so the copy is what
    mapping it would give, and some 80 tests no longer each run the whole suite to get it."""
    path = tmp_path / "proj"
    shutil.copytree(mapped_sample, path, symlinks=True)
    return GitProject(path)
