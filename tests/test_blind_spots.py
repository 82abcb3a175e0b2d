"""End to end: every blind spot of per-test coverage, each closed, on one real project.

The project below has code that runs at import time (constants, class bodies,
defaults, decorators, a registry, a re-export), at collection time (parametrize
arguments, ``pytest_generate_tests``, a conftest hook), in fixtures of every scope
(session, package, module, class, autouse), in a data file, a thread, a
subprocess and multiprocessing children (forked and spawned), module state
one test's call leaves for the tests after it, and a cache one test fills for the
tests after it.  It is mapped
once; each case then makes one edit, and the ground truth is plain pytest on
the edited project: every test it fails must be among
the tests ``tia run`` runs, committed (``--since main``) and uncommitted (changes
since the last run) alike.  The map is restored between cases.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PYPROJECT_WITH_TESTS, GitProject, Result, clean_env

pytestmark = pytest.mark.slow

PROJECT = {
    "pyproject.toml": PYPROJECT_WITH_TESTS,
    "app/__init__.py": """
        from app.registry import REGISTRY
        from app.shapes import area
        """,
    "app/registry.py": """
        REGISTRY = {}


        def register(name):
            def deco(fn):
                REGISTRY[name] = fn
                return fn

            return deco
        """,
    "app/shapes.py": """
        from app.registry import register

        SCALE = 1


        class Square:
            SIDES = 4


        @register("square")
        def area(side, unit=1):
            return side * side * SCALE * unit
        """,
    "app/settings.py": """
        import json
        from pathlib import Path


        def limit():
            return json.loads((Path(__file__).parent / "config.json").read_text())["limit"]
        """,
    "app/config.json": '{"limit": 3}\n',
    "app/rates.py": """
        RATE = 2


        class Base:
            KIND = "Base"

            @property
            def label(self):
                return self.KIND.lower()

            @property
            def size(self):
                return 1

            @size.setter
            def size(self, value):
                pass


        def scale(x, by=2):
            return x * by


        def base_kind():
            return Base.KIND
        """,
    "app/derived.py": """
        from app.rates import RATE, Base

        DOUBLE = RATE * 2


        class Special(Base):
            pass


        SPECIAL_KIND = Special.KIND


        def double():
            return DOUBLE


        def special_kind():
            return SPECIAL_KIND
        """,
    "app/dynamic.py": """
        from app import rates


        def lookup(name):
            return getattr(rates, name)
        """,
    "app/knobs.py": """
        LEVEL = 1
        """,
    "app/escape.py": """
        import json

        from app import knobs


        def dump():
            return json.dumps(knobs, default=lambda mod: {k: v for k, v in vars(mod).items() if k.isupper()})
        """,
    "app/byname.py": """
        import importlib

        LOADED = []


        def load():
            if not LOADED:
                LOADED.append(importlib.import_module("app.dials"))
            return LOADED[0]


        def settings():
            return {k: v for k, v in vars(load()).items() if k.isupper()}
        """,
    "app/dials.py": """
        GAIN = 1
        """,
    "app/catalog.py": """
        def alpha():
            return 1


        def beta():
            return 2
        """,
    "app/gauges.py": """
        LEVEL = 1
        """,
    "app/lookup.py": """
        import importlib

        GAUGES = importlib.import_module("app.gauges")


        def read(name):
            return getattr(GAUGES, name)
        """,
    # Sphinx runs it, pytest never imports it: its names of modules reach no test.
    "docs/conf.py": """
        project = "app"
        api_modules = ["app.rates", "app.shapes"]
        """,
    "app/plugins.py": """
        REGISTRY = {}


        class Plugin:
            def __init_subclass__(cls, **kwargs):
                super().__init_subclass__(**kwargs)
                REGISTRY[cls.NAME] = cls


        class Alpha(Plugin):
            NAME = "alpha"
        """,
    "app/notes.txt": "nobody reads this file\n",
    "app/workers.py": """
        import multiprocessing
        import os
        import subprocess
        import sys
        import threading
        from pathlib import Path

        ROOT = str(Path(__file__).parent.parent)


        def _double(x):
            return x * 2


        def _triple(x):
            return x * 3


        def in_thread(x):
            out = []
            worker = threading.Thread(target=lambda: out.append(_double(x)))
            worker.start()
            worker.join()
            return out[0]


        def _square(x):
            return x * x


        def _put_square(queue, x):
            queue.put(_square(x))


        def in_process(x, method):
            context = multiprocessing.get_context(method)
            queue = context.Queue()
            child = context.Process(target=_put_square, args=(queue, x))
            child.start()
            value = queue.get(timeout=60)
            child.join()
            return value


        def in_subprocess(x):
            code = f"from app.workers import _triple; print(_triple({x}))"
            env = {**os.environ, "PYTHONPATH": ROOT}
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
            return int(done.stdout)
        """,
    "tests/conftest.py": """
        import os

        import pytest


        def pytest_configure(config):
            os.environ["BLIND_MODE"] = "strict"


        @pytest.fixture(scope="session")
        def session_value():
            return 10


        @pytest.fixture(scope="module")
        def module_value():
            return 20


        @pytest.fixture(autouse=True)
        def auto_flag(request):
            request.node.flag = "on"
        """,
    "tests/pkg/__init__.py": "",
    "tests/pkg/conftest.py": """
        import pytest


        @pytest.fixture(scope="package")
        def package_value():
            return 30
        """,
    "tests/pkg/test_package.py": """
        def test_package_first(package_value):
            assert package_value == 30


        def test_package_second(package_value):
            assert package_value == 30
        """,
    "tests/test_shapes.py": """
        from app import REGISTRY, area
        from app.shapes import Square


        def test_area():
            assert area(2) == 4


        def test_registry():
            assert REGISTRY["square"] is area


        def test_sides():
            assert Square.SIDES == 4
        """,
    "tests/test_names.py": """
        import json

        from app import byname, derived, dynamic, escape, lookup, plugins, rates


        def load_tests(loader, tests, pattern):
            # unittest's protocol, which pytest never calls: naming app.rates here
            # lets no test reach it by name.
            import doctest

            tests.addTests(doctest.DocTestSuite("app.rates"))
            return tests


        def test_double():
            assert derived.double() == 4


        def test_special_kind():
            assert derived.special_kind() == "Base"


        def test_label():
            assert derived.Special().label == "base"


        def test_scale():
            assert rates.scale(3) == 6


        def test_lookup():
            assert dynamic.lookup("RA" + "TE") == 2


        def test_escape():
            assert json.loads(escape.dump()) == {"LEV" + "EL": 1}


        def test_by_name():
            assert byname.settings() == {"GA" + "IN": 1}


        def test_read_by_name():
            assert lookup.read("LEV" + "EL") == 1


        def test_plugins():
            assert set(plugins.REGISTRY) == {"alp" + "ha"}


        def test_base_kind():
            assert rates.base_kind() == "Base"


        def test_unrelated():
            assert rates.Base.__name__ == "Base"
        """,
    "tests/test_catalog.py": """
        from app import catalog


        def test_exports():
            assert sorted(n for n in vars(catalog) if not n.startswith("__")) == ["alpha", "beta"]
        """,
    "tests/test_scale.py": """
        from app.derived import Special
        from app.rates import scale


        def test_scale_by_three():
            assert scale(2, 3) == 6
        """,
    "tests/test_collect.py": """
        import pytest

        from app import area

        CASES = [(1, 1), (2, 4)]


        def make_values():
            return [1, 2]


        def pytest_generate_tests(metafunc):
            if "value" in metafunc.fixturenames:
                metafunc.parametrize("value", make_values())


        @pytest.mark.parametrize(("side", "expected"), CASES)
        def test_param(side, expected):
            assert area(side) == expected


        def test_generated(value):
            assert value in (1, 2)
        """,
    "tests/test_fixtures.py": """
        import os

        import pytest


        class TestClassScope:
            @pytest.fixture(scope="class")
            def class_value(self):
                return 40

            def test_first(self, class_value):
                assert class_value == 40

            def test_second(self, class_value):
                assert class_value == 40


        def test_session_first(session_value):
            assert session_value == 10


        def test_session_second(session_value):
            assert session_value == 10


        def test_module_first(module_value):
            assert module_value == 20


        def test_module_second(module_value):
            assert module_value == 20


        def test_autouse(request):
            assert request.node.flag == "on"


        def test_hook():
            assert os.environ["BLIND_MODE"] == "strict"
        """,
    "tests/test_io.py": """
        from app import settings, workers


        def test_limit():
            assert settings.limit() == 3


        def test_thread():
            assert workers.in_thread(2) == 4


        def test_subprocess():
            assert workers.in_subprocess(2) == 6


        def test_forked_process():
            assert workers.in_process(3, "fork") == 9


        def test_spawned_process():
            assert workers.in_process(3, "spawn") == 9
        """,
    "app/loader.py": """
        import importlib


        def load(name):
            return importlib.import_module("app.exts." + name)
        """,
    # humanize's i18n: `deactivate` resets what every later test formats in.
    "app/locale.py": """
        import threading

        _CURRENT = threading.local()


        def activate(name):
            _CURRENT.name = name


        def deactivate():
            _CURRENT.name = None


        def greet():
            return "bonjour" if getattr(_CURRENT, "name", None) == "fr" else "hello"
        """,
    "tests/test_locale.py": """
        from app import locale


        def test_french():
            locale.activate("fr")
            assert locale.greet() == "bonjour"
            locale.deactivate()


        def test_greet():  # never runs deactivate: greets in what the last test left
            assert locale.greet() == "hello"
        """,
    # jmespath's parser: a class-level cache keeps what the first test parsed.
    "app/parse.py": """
        class Parser:
            _CACHE = {}

            def parse(self, text):
                kept = self._CACHE.get(text)
                if kept is not None:
                    return kept
                result = self._CACHE[text] = tokens(text)
                return result


        def tokens(text):
            return text.split("+")
        """,
    "tests/test_parse.py": """
        from app.parse import Parser


        def test_parse():
            assert Parser().parse("a+b") == ["a", "b"]


        def test_parse_again():  # gets what test_parse kept: never runs tokens()
            assert Parser().parse("a+b") == ["a", "b"]
        """,
    "app/exts/__init__.py": "",
    "app/exts/alpha.py": """
        def value():
            return 1
        """,
    "tests/test_exts.py": """
        import app.exts
        from app.loader import load


        def test_load():
            assert load("alpha").value() == 1


        def test_attribute():  # alpha is there because test_load imported it
            assert app.exts.alpha.value() == 1
        """,
}

# (blind spot, edit) -> an edit is {path: (old, new)}; new None deletes the file, and a
# path "a -> b" renames it (then applies old -> new to it if old is given).
CASES: dict[str, dict[str, tuple[str | None, str | None]]] = {
    "module constant": {"app/shapes.py": ("SCALE = 1", "SCALE = 2")},
    "class attribute": {"app/shapes.py": ("SIDES = 4", "SIDES = 5")},
    "default argument": {"app/shapes.py": ("unit=1", "unit=2")},
    "decorator": {"app/shapes.py": ('@register("square")', '@register("cube")')},
    "registry code run at import": {
        "app/registry.py": ("REGISTRY[name] = fn", "REGISTRY[name.upper()] = fn")
    },
    "__init__ re-export": {"app/__init__.py": ("from app.registry import REGISTRY", "REGISTRY = {}")},
    "parametrize arguments": {"tests/test_collect.py": ("(2, 4)]", "(2, 5)]")},
    "pytest_generate_tests helper": {"tests/test_collect.py": ("return [1, 2]", "return [1, 3]")},
    "conftest hook": {"tests/conftest.py": ('"strict"', '"lenient"')},
    "session fixture": {"tests/conftest.py": ("return 10", "return 11")},
    "package fixture": {"tests/pkg/conftest.py": ("return 30", "return 31")},
    "module fixture": {"tests/conftest.py": ("return 20", "return 21")},
    "class fixture": {"tests/test_fixtures.py": ("return 40", "return 41")},
    "autouse fixture": {"tests/conftest.py": ('flag = "on"', 'flag = "off"')},
    "data file": {"app/config.json": ("3", "4")},
    "thread": {"app/workers.py": ("return x * 2", "return x * 5")},
    "subprocess": {"app/workers.py": ("return x * 3", "return x * 5")},
    "multiprocessing, forked and spawned": {"app/workers.py": ("return x * x", "return x * x + 1")},
    "constant read at import time by another module": {"app/rates.py": ("RATE = 2", "RATE = 3")},
    "class attribute read through a subclass elsewhere": {"app/rates.py": ('KIND = "Base"', 'KIND = "Kind"')},
    "property decorator": {"app/rates.py": ("    @property\n", "")},
    "default argument of an undecorated function": {"app/rates.py": ("by=2", "by=3")},
    # Module-level changes that only rebind names, but make the module fail to import.
    "property its setter needs": {"app/rates.py": ("    @property\n    def size", "    def size")},
    "new constant that does not import": {"app/rates.py": ("RATE = 2", "RATE = 2\nTYPO = UNDEFINED")},
    "removed constant another module imports": {"app/rates.py": ("RATE = 2\n", "")},
    "constant another module cannot compute with": {"app/rates.py": ("RATE = 2", "RATE = None")},
    "constant handed to other code with its module": {"app/knobs.py": ("LEVEL = 1", "LEVEL = 2")},
    "constant of a module a test imports by name": {"app/dials.py": ("GAIN = 1", "GAIN = 2")},
    "constant of a module named at import time": {"app/gauges.py": ("LEVEL = 1", "LEVEL = 2")},
    "new function in a module a test lists the names of": {
        "app/catalog.py": ("def beta", "def gamma():\n    return 3\n\n\ndef beta")
    },
    "class attribute a class-creation hook reads": {"app/plugins.py": ('NAME = "alpha"', 'NAME = "beta"')},
    "function that resets state a later test reads": {"app/locale.py": ("_CURRENT.name = None", "pass")},
    "code that imported a module another test uses": {
        "app/loader.py": ('importlib.import_module("app.exts." + name)', "None")
    },
    "code whose result a hand-written cache keeps": {"app/parse.py": ('split("+")', 'split("-")')},
    "deleted module": {"app/settings.py": (None, None)},
    "renamed module": {"app/workers.py -> app/jobs.py": (None, None)},
    "new test": {
        "tests/test_shapes.py": ("def test_sides", "def test_new():\n    assert False\n\n\ndef test_sides")
    },
    "moved test file": {"tests/test_io.py -> tests/test_moved_io.py": ("== 3", "== 4")},
}
# Edits that change no test's outcome, and what tia must run for them.
HARMLESS: dict[str, tuple[dict[str, tuple[str | None, str | None]], str | set[str]]] = {
    "a file nobody reads": ({"app/notes.txt": ("nobody", "no one")}, "none"),
    "a new unused function": (
        {"app/shapes.py": ("class Square", "def unused():\n    return 1\n\n\nclass Square")},
        "none",
    ),
    # Only the test that runs `getattr(rates, name)`, which may read any name of rates;
    # `vars(mod)` in escape.py reads the names of knobs, the module escape.py holds;
    # the `load_tests` that names app.rates never runs, and neither does docs/conf.py.
    "a new constant nobody reads": (
        {"app/rates.py": ("RATE = 2", "RATE = 2\nUNUSED = 5")},
        {"tests/test_names.py::test_lookup"},
    ),
    "a run-everything file": (
        {"pyproject.toml": ('testpaths = ["tests"]', 'testpaths = ["tests"]\nxfail_strict = true')},
        "all",
    ),
}


def apply(project: GitProject, edit: dict[str, tuple[str | None, str | None]]) -> None:
    for target, (old, new) in edit.items():
        path, _, renamed = target.partition(" -> ")
        if renamed:
            (project.path / path).rename(project.path / renamed)
            path = renamed
        elif new is None:
            (project.path / path).unlink()
            continue
        if old is not None and new is not None:
            project.replace(path, old, new)


def pytest_truth(project: GitProject) -> set[str]:
    """The tests (or test modules that fail to import) plain pytest fails."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider"],
        cwd=project.path,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=300,
    )
    return Result(done.returncode, done.stdout, done.stderr).failed()


@pytest.fixture(scope="module")
def mapped_blind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GitProject, Path, set[str]]]:
    project = GitProject(tmp_path_factory.mktemp("blind") / "proj")
    project.write_all(PROJECT)
    project.commit("initial")
    mapped = project.run("--all")
    assert mapped.rc == 0, mapped
    saved = project.path.parent / "tia-saved"
    shutil.copytree(project.path / ".tia", saved)
    yield project, saved, mapped.ran()


@pytest.fixture
def blind(mapped_blind: tuple[GitProject, Path, set[str]]) -> Iterator[GitProject]:
    project, saved, _ = mapped_blind
    yield project
    project.git("checkout", "-qf", "main")
    project.git("reset", "-q", "--hard", "main")
    project.git("clean", "-fdq")
    subprocess.run(["git", "branch", "-D", "edit"], cwd=project.path, capture_output=True)
    shutil.rmtree(project.path / ".tia")
    shutil.copytree(saved, project.path / ".tia")


def test_the_project_passes_before_any_edit(mapped_blind: tuple[GitProject, Path, set[str]]) -> None:
    project, _, ran = mapped_blind
    assert pytest_truth(project) == set()
    assert len(ran) == 41


@pytest.mark.parametrize(
    ("case", "committed"),
    # Committed and uncommitted in turn: both ways over the cases, at half the cost of each case twice.
    [
        pytest.param(case, i % 2 == 1, id=f"{case}-{'committed' if i % 2 else 'uncommitted'}")
        for i, case in enumerate(CASES)
    ],
)
def test_every_test_an_edit_fails_is_run(blind: GitProject, case: str, committed: bool) -> None:
    apply(blind, CASES[case])
    failing = pytest_truth(blind)
    assert failing, f"the edit for {case!r} fails no test: the case proves nothing"
    if committed:
        blind.git("checkout", "-qb", "edit")
        blind.commit(case)
        result = blind.run("--since", "main")
    else:
        result = blind.run()
    missed = failing - result.ran()
    assert not missed, f"{case}: tia did not run {sorted(missed)}\n{result}"
    assert result.failed() == failing


@pytest.mark.parametrize("case", list(HARMLESS))
def test_an_edit_that_changes_no_outcome_runs_what_it_should(
    blind: GitProject, mapped_blind: tuple[GitProject, Path, set[str]], case: str
) -> None:
    edit, expected = HARMLESS[case]
    apply(blind, edit)
    assert pytest_truth(blind) == set()
    result = blind.run()
    assert result.rc == 0, result
    if expected == "none":
        assert result.ran() == set(), result
        assert "no tests affected" in result.stderr
    elif isinstance(expected, set):
        assert result.ran() == expected, result
    else:
        everything = mapped_blind[2]
        assert result.ran() == everything
        assert f"{len(everything)} of {len(everything)} mapped tests selected" in result.stderr, result
