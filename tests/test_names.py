"""Narrowing module-level changes: which ones only rebind names, and who reads those names."""

from __future__ import annotations

import textwrap

import pytest

from tia.names import ANY, ATTRIBUTES, Narrowing, Readers
from tia.records import MODULE
from tia.scopes import diff_indexes, index_source

BASE = """
import functools
import re

RATE = 2
PAT = re.compile("x")
A, B = 1, 2


class Cart:
    LIMIT = 9

    def add(self, x, y=RATE):
        return x + y

    @property
    def total(self):
        return 1

    def __eq__(self, other):
        return True


@functools.cache
def cached():
    return 1


def free(a, b=1):
    return a
"""


def rebinds(old: str, new: str) -> tuple[frozenset[str], frozenset[str]] | None:
    d = diff_indexes(index_source(textwrap.dedent(old)), index_source(textwrap.dedent(new)))
    assert d.module_changed
    return None if d.names is None else (d.names, d.defs)


@pytest.mark.parametrize(
    ("old", "new", "names", "defs"),
    [
        ("RATE = 2", "RATE = 3", {"RATE"}, set()),
        ("LIMIT = 9", "LIMIT = 8", {"Cart", "LIMIT"}, set()),
        ("y=RATE", "y=1", {"Cart", "add"}, {"Cart.add"}),
        ("    @property\n", "", {"Cart", "total"}, {"Cart.total"}),
        ("b=1", "b=2", {"free"}, {"free"}),
        ('"x"', '"y"', {"PAT"}, set()),
        ("A, B = 1, 2", "A, B = 1, 3", {"A", "B"}, set()),
        ("RATE = 2\n", "RATE = 2\nNEW = lambda x: x\n", {"NEW"}, set()),
        ("RATE = 2\n", "", {"RATE"}, set()),
        ("return 1\n\n\ndef free", "return 2\n\n\ndef free", {"cached"}, {"cached"}),
        ("def __eq__(self, other):", "def __eq__(self, other=None):", {"Cart"}, {"Cart.__eq__"}),
        ("RATE = 2\n", 'RATE = 2\n__version__ = "1.0"\n', {"__version__"}, set()),
    ],
)
def test_a_change_that_only_rebinds_names_says_which(
    old: str, new: str, names: set[str], defs: set[str]
) -> None:
    assert rebinds(BASE, BASE.replace(old, new, 1)) == (frozenset(names), frozenset(defs))


OVERLOADED = """
from typing import overload


@overload
def get(x: int) -> int: ...
@overload
def get(x: str) -> str: ...
def get(x, default=None):
    return x


class Box:
    @overload
    def put(self, x: int) -> int: ...
    def put(self, x):
        return x
"""


@pytest.mark.parametrize(
    ("old", "new", "names", "defs"),
    [
        # The stub's binding is replaced at once by the next def: nothing reads or calls it.
        ("@overload\ndef get(x: int)", "def get(x: int)", set(), set()),
        ("    @overload\n    def put", "    def put", set(), set()),
        ("def get(x: str) -> str", "def get(x: bytes) -> bytes", set(), set()),
        # The last def's binding stays; a def right after that reads the name sees the stub.
        ("default=None", "default=0", {"get"}, {"get"}),
        ("def get(x, default=None)", "def get(x, default=get)", {"get"}, {"get"}),
        ("@overload\ndef get(x: str)", "def get(x: str)", set(), set()),
    ],
)
def test_a_def_the_next_def_rebinds_at_once_rebinds_no_name(
    old: str, new: str, names: set[str], defs: set[str]
) -> None:
    assert rebinds(OVERLOADED, OVERLOADED.replace(old, new, 1)) == (frozenset(names), frozenset(defs))


def test_a_def_whose_next_def_has_a_decorator_tia_does_not_know_binds_its_name() -> None:
    # Some overloading libraries find the earlier def through the caller's frame.
    source = OVERLOADED.replace("def get(x, default=None):", "@register\ndef get(x, default=None):")
    changed = source.replace("@overload\ndef get(x: str)", "def get(x: str)")
    assert rebinds(source, changed) == (frozenset({"get"}), frozenset({"get"}))


def test_a_def_with_a_statement_before_the_next_one_binds_its_name() -> None:
    # `ALIAS` keeps what the second stub bound: `@overload` gave it the dummy, now the stub.
    source = OVERLOADED.replace("def get(x: str) -> str: ...\n", "def get(x: str) -> str: ...\nALIAS = get\n")
    changed = source.replace("@overload\ndef get(x: str)", "def get(x: str)")
    assert rebinds(source, changed) == (frozenset({"get"}), frozenset({"get"}))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("import re\n", "import re\nimport json\n"),  # importing runs the module
        ("RATE = 2", "RATE = int.from_bytes(b'2')"),  # a call tia does not know
        ("RATE = 2", "RATE = make()"),
        ("@functools.cache\n", "@register\n"),  # a decorator that may record the function
        ("class Cart:", "class Cart(Base):"),  # a base from elsewhere may have hooks
        ("class Cart:", "class Cart(metaclass=Meta):"),
        ("RATE = 2\n", 'RATE = 2\n__all__ = ["RATE"]\n'),  # a dunder
        ('RATE = 2\nPAT = re.compile("x")', 'PAT = re.compile("x")\nRATE = 2'),  # moved
        ("        return True\n", "        return True\n\n    def __hash__(self):\n        return 1\n"),
        ("import functools", '"""Docstring."""\nimport functools'),
        ("RATE = 2", "if True:\n    RATE = 2"),
        ("RATE = 2", "def set(x):\n    return x\n\n\nRATE = set(2)"),  # not the builtin `set`
    ],
)
def test_a_change_that_may_do_more_counts_as_the_whole_module(old: str, new: str) -> None:
    assert rebinds(BASE, BASE.replace(old, new, 1)) is None


@pytest.mark.parametrize(
    "header",
    [
        "from collections import abc\n\nclass Box(abc.Sequence):",
        "import collections.abc\n\nclass Box(collections.abc.Sized, collections.abc.Hashable):",
        "from collections.abc import Sequence as Seq\n\nclass Box(Seq):",
        "import abc\n\nclass Box(abc.ABC):",
    ],
)
def test_a_member_of_a_class_only_abcmeta_makes_is_rebound(header: str) -> None:
    old = f"{header}\n    SIZE = 1\n\n    @functools.cached_property\n    def size(self):\n        return 1\n"
    old = f"import functools\n{old}"
    assert rebinds(old, old.replace("SIZE = 1", "SIZE = 2")) == ({"Box", "SIZE"}, set())
    assert rebinds(old, old.replace("return 1", "return 2")) == ({"Box", "size"}, {"Box.size"})


@pytest.mark.parametrize(
    ("header", "old", "new"),
    [
        ("from collections import abc\nabc = None\n\nclass Box(abc.Sized):", "SIZE = 1", "SIZE = 2"),
        ("from typing import Sized\n\nclass Box(Sized):", "SIZE = 1", "SIZE = 2"),  # not the ABC
        ("import abc\n\nclass Box(abc.ABC, metaclass=abc.ABCMeta):", "SIZE = 1", "SIZE = 2"),
        ("from collections.abc import ByteString\n\nclass Box(ByteString):", "SIZE = 1", "SIZE = 2"),
    ],
)
def test_other_bases_from_elsewhere_still_count_as_the_whole_module(header: str, old: str, new: str) -> None:
    source = f"{header}\n    SIZE = 1\n"
    assert rebinds(source, source.replace(old, new, 1)) is None


def test_calling_a_class_abcmeta_makes_at_import_may_raise() -> None:
    old = """
        from abc import ABC, abstractmethod


        class Box(ABC):
            def size(self):
                return 0


        BOX = Box()
        """
    new = old.replace("def size", "@abstractmethod\n            def size")
    assert rebinds(old, new) == ({"Box", "size"}, {"Box.size"})
    files = {"pkg/__init__.py": "", "pkg/box.py": new}
    # `Box()` raises now that `size` is abstract: the module no longer imports.
    assert readers(files).narrow("pkg/box.py", frozenset({"Box", "size"}), frozenset({"Box.size"})) is None


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("RATE = 2", "RATE = NOPE"),  # a NameError: the module no longer imports
        ("RATE = 2\n", "RATE = 2\nNEW = NOPE\n"),
        ("RATE = 2", "RATE = A"),  # bound, but only further down
        ("RATE = 2", "RATE = 1 / 0"),
        ("RATE = 2", "RATE = 2 ** 100000"),  # too much to work out: it may raise
        ('"x"', '"("'),  # re.compile raises on it
        ("A, B = 1, 2", "A, B = 1, 2, 3"),
        ("A, B = 1, 2", "A, B = [1, *RATE]"),
        ("LIMIT = 9", "LIMIT = RATE.nope"),  # an attribute int does not have
        ("LIMIT = 9", "LIMIT = PAT.pattern"),  # tia reads attributes of immutable builtins only
        ("LIMIT = 9", "LIMIT = {cached: 1}"),  # a key that may not hash
        ("RATE = 2", "RATE = len(2)"),  # an int has no length
        ("RATE = 2", 'RATE = "-".nope'),
        ("y=RATE", "y=MISSING"),
        ("class Cart:", "class Cart(dict):"),  # new bases: new lookups, a new layout
    ],
)
def test_a_change_that_may_raise_counts_as_the_whole_module(old: str, new: str) -> None:
    assert rebinds(BASE, BASE.replace(old, new, 1)) is None


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("RATE = 2", "RATE = 60 * 60", {"RATE"}),
        ("RATE = 2", "RATE = -1", {"RATE"}),
        ("RATE = 2", 'RATE = frozenset({"a", "b"})', {"RATE"}),
        ('re.compile("x")', 're.compile(r"\\d+", re.I | re.M)', {"PAT"}),
        ("LIMIT = 9", "LIMIT = RATE", {"Cart", "LIMIT"}),  # bound above the class
        ("LIMIT = 9", "LIMIT = {1: RATE, 'k': len}", {"Cart", "LIMIT"}),
        ("A, B = 1, 2", "A, B = RATE, (1, 2)", {"A", "B"}),
        ("RATE = 2", 'RATE = "-".join', {"RATE"}),
        ("RATE = 2", 'RATE = len("abc")', {"RATE"}),
        ("LIMIT = 9", "LIMIT = RATE.real", {"Cart", "LIMIT"}),
    ],
)
def test_a_change_that_cannot_raise_is_a_rebinding(old: str, new: str, names: set[str]) -> None:
    assert rebinds(BASE, BASE.replace(old, new, 1)) == (frozenset(names), frozenset())


def test_what_works_out_from_the_module_s_known_values_cannot_raise() -> None:
    old = "RATE = 2\nDOUBLE = 4\n"
    assert rebinds(old, old.replace("DOUBLE = 4", "DOUBLE = RATE * 2")) == (
        frozenset({"DOUBLE"}),
        frozenset(),
    )
    assert rebinds(old, old.replace("DOUBLE = 4", "DOUBLE = RATE / 0")) is None
    # A call in between may rebind RATE (`global RATE` in the function): its value is not known.
    called = "RATE = 2\nconfigure()\nDOUBLE = 4\n"
    assert rebinds(called, called.replace("DOUBLE = 4", "DOUBLE = RATE * 2")) is None
    # So may a star import.
    starred = "RATE = 2\nfrom settings import *\nDOUBLE = 4\n"
    assert rebinds(starred, starred.replace("DOUBLE = 4", "DOUBLE = RATE * 2")) is None


def test_a_new_member_of_a_class_with_slots_may_fail_the_class() -> None:
    old = "class Point:\n    __slots__ = ('x',)\n    ORIGIN = 0\n"
    # `x = 1` conflicts with the slot: creating the class raises ValueError.
    assert rebinds(old, old + "    x = 1\n") is None
    assert rebinds(old, old.replace("ORIGIN = 0", "ORIGIN = 1")) == (
        frozenset({"Point", "ORIGIN"}),
        frozenset(),
    )


def test_a_key_that_hashed_before_still_hashes() -> None:
    old = "import os\n\nKEYS = {os.sep: 1, 'a': 2}\n"
    assert rebinds(old, old.replace("'a': 2", "'a': 3")) == (frozenset({"KEYS"}), frozenset())


def test_what_may_raise_and_ran_before_may_stay() -> None:
    # `re.compile(PATTERN)` ran without raising with this PATTERN; only LIMIT changed.
    old = "import re\n\nPATTERN = 'x'\n\n\nclass Cart:\n    PAT = re.compile(PATTERN)\n    LIMIT = 9\n"
    assert rebinds(old, old.replace("LIMIT = 9", "LIMIT = 8")) == (frozenset({"Cart", "LIMIT"}), frozenset())


def test_a_class_creation_hook_anywhere_in_the_module_makes_its_classes_opaque() -> None:
    hooked = BASE + "\n\nclass Plugin:\n    def __init_subclass__(cls):\n        pass\n"
    assert rebinds(hooked, hooked.replace("LIMIT = 9", "LIMIT = 8")) is None


def test_a_subclass_of_a_same_file_plain_class_is_plain() -> None:
    derived = BASE + "\n\nclass Special(Cart):\n    KIND = 1\n"
    assert rebinds(derived, derived.replace("KIND = 1", "KIND = 2")) == (
        frozenset({"Special", "KIND"}),
        frozenset(),
    )


def readers(files: dict[str, str]) -> Readers:
    texts = {p: textwrap.dedent(t).encode() for p, t in files.items()}
    return Readers(texts, texts.get)


PKG = {
    "pkg/__init__.py": "",
    "pkg/rates.py": """
        RATE = 2


        def rate():
            return RATE


        def other():
            return 1
        """,
    "pkg/derived.py": """
        from pkg.rates import RATE as R

        DOUBLE = R * 2


        def double():
            return DOUBLE


        def unrelated():
            '''Not about RATE or DOUBLE: a docstring reads nothing.'''
            return 0


        def scaled(x, by=R):
            return x * by
        """,
    "pkg/uses.py": """
        from pkg.derived import DOUBLE


        def quadruple():
            return DOUBLE * 2
        """,
}


def test_readers_follow_names_through_module_level_bindings() -> None:
    narrowed = readers(PKG).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert narrowed.readers == {
        "pkg/rates.py": {"rate": "RATE"},
        # `scaled` mentions no rebound name, but its default value is one.
        "pkg/derived.py": {"double": "DOUBLE", "scaled": "R"},
        "pkg/uses.py": {"quadruple": "DOUBLE"},
    }
    assert narrowed.fallback == {}


def test_the_scope_of_a_changed_def_reads_it() -> None:
    narrowed = readers(PKG).narrow("pkg/rates.py", frozenset({"other"}), frozenset({"other"}))
    assert narrowed is not None
    assert narrowed.readers == {"pkg/rates.py": {"other": "other"}}


def test_module_level_code_that_uses_a_name_impurely_falls_back_to_its_importers() -> None:
    files = {**PKG, "pkg/registry.py": "from pkg.rates import RATE\nregister(RATE)\n"}
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert narrowed.fallback == {"pkg/registry.py": "RATE"}


def test_a_name_the_module_works_out_from_a_rebound_one_is_rebound_too() -> None:
    # structlog's contextvars: `STRUCTLOG_KEY_PREFIX_LEN = len(STRUCTLOG_KEY_PREFIX)`.
    files = {
        **PKG,
        "pkg/prefix.py": """
            PREFIX = "a_"
            PREFIX_LEN = len(PREFIX)


            def strip(key):
                return key[PREFIX_LEN:]
            """,
    }
    narrowed = readers(files).narrow("pkg/prefix.py", frozenset({"PREFIX"}), frozenset())
    assert narrowed is not None
    assert narrowed.readers == {"pkg/prefix.py": {"strip": "PREFIX_LEN"}}
    assert narrowed.fallback == {}


def test_impure_use_in_the_changed_module_itself_cannot_be_narrowed() -> None:
    files = {**PKG, "pkg/rates.py": textwrap.dedent(PKG["pkg/rates.py"]) + "\nprint(RATE)\n"}
    assert readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset()) is None


def test_a_scope_that_reads_names_dynamically_reads_every_name() -> None:
    files = {
        **PKG,
        "pkg/dyn.py": "from pkg import rates\n\ndef get(name):\n    return getattr(rates, name)\n",
    }
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert narrowed.readers["pkg/dyn.py"] == {"get": ANY}


@pytest.mark.parametrize(
    "extra",
    [
        {"pkg/leak.py": "from pkg import rates\n\ndef handed():\n    return print(rates)\n"},
        {"pkg/leak.py": "import pkg.rates\n\nMODULE = pkg.rates\n"},
        {"pkg/leak.py": "import pkg.rates as r\n\ndef handed():\n    return print(r)\n"},
        {"pkg/leak.py": "import pkg\n\ndef handed():\n    return print(pkg.rates)\n"},
        {"pkg/leak.py": "import pkg.uses\nimport pkg as p\n\ndef handed():\n    return print(p.rates)\n"},
        # The function binds `rates` only inside a comprehension, or declares it global.
        {"pkg/leak.py": "from pkg import rates\n\ndef f(xs):\n    [rates for rates in xs]\n    print(rates)"},
        {"pkg/leak.py": "from pkg import rates\n\ndef f():\n    global rates\n    g(rates)\n    rates = 0"},
        {"setup.cfg": "[tool:pytest]\nDJANGO_SETTINGS_MODULE = pkg.rates\n"},
        {"pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p pkg.rates"\n'},
        {"pyproject.toml": '[project.entry-points.pytest11]\nrates = "pkg.rates"\n'},
        {"setup.cfg": "[options.entry_points]\npytest11 =\n    rates = pkg.rates\n"},
        {"pyproject.toml": '[tool.flit.module]\nname = "pkg.rates"\n[oops\n'},
        {"tests/conftest.py": "PLUGIN = 'pkg.rates'\n"},
        {"pkg/load.py": "TARGET = 'pkg.rates'\n", "pytest.ini": "[pytest]\naddopts = -p pkg.load\n"},
        {"tox.ini": "[testenv]\nsetenv =\n    DJANGO_SETTINGS_MODULE = pkg.rates\n"},
        {"pyproject.toml": '[tool.hatch.envs.default.env-vars]\nDJANGO_SETTINGS_MODULE = "pkg.rates"\n'},
        {"pyproject.toml": '[tool.hatch.envs.default.scripts]\ntest = "pytest -p pkg.rates"\n'},
        {"pyproject.toml": '[tool.hatch.envs.default.scripts]\nall = "flake8 x && pytest -p pkg.rates"\n'},
        {"tox.ini": "[testenv]\ncommands =\n    flake8 pkg/\n    python -m pkg.rates\n"},
    ],
    ids=[
        "module passed to a call",
        "module bound to a name",
        "module imported under another name",
        "module reached through its package",
        "module reached through its package under another name",
        "module passed to a call beside a comprehension's variable of its name",
        "module passed to a call where the function declares its name global",
        "named in configuration",
        "named in pytest's options",
        "named by an entry point",
        "named by an entry point in setup.cfg",
        "named in configuration that does not parse",
        "named by a conftest.py at import",
        "named at import by a module pytest loads at start-up",
        "named in a tox environment tia may run in",
        "named in a hatch environment tia may run in",
        "named by a hatch script that runs pytest",
        "named by a hatch script that runs a linter, then pytest",
        "run by a tox command beside a linter's",
    ],
)
def test_a_module_others_may_reach_by_name_or_as_an_object_cannot_be_narrowed(extra: dict[str, str]) -> None:
    assert readers({**PKG, **extra}).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset()) is None


@pytest.mark.parametrize(
    ("leak", "narrowed"),
    [
        ("from . import sub\n\ndef handed():\n    return print(sub.deep)\n", False),
        ("from .sub import deep\n\ndef handed():\n    return print(deep)\n", False),
        ("from . import sub\n\ndef read():\n    return sub.deep.DEPTH\n", True),
    ],
    ids=["its package, imported relatively", "itself, imported relatively", "an attribute read"],
)
def test_a_module_handed_on_through_a_relative_import_cannot_be_narrowed(leak: str, narrowed: bool) -> None:
    files = {**PKG, "pkg/sub/__init__.py": "", "pkg/sub/deep.py": "DEPTH = 1\n", "pkg/leak.py": leak}
    result = readers(files).narrow("pkg/sub/deep.py", frozenset({"DEPTH"}), frozenset())
    assert (result is not None) is narrowed


@pytest.mark.parametrize(
    "extra",
    [
        {
            "pyproject.toml": """
                [project]
                name = "pkg.rates"
                [tool.flit.module]
                name = "pkg.rates"
                [tool.isort]
                known_first_party = ["pkg.rates"]
                [tool.check-wheel-contents]
                toplevel = ["pkg.rates"]
                [tool.deptry.per_rule_ignores]
                DEP001 = ["pkg.rates"]
                [tool.uv.sources]
                "pkg.rates" = { workspace = true }
                """
        },
        {"setup.cfg": "[metadata]\nname = pkg.rates\n[options]\npackages = pkg.rates\n[isort]\nx=pkg.rates"},
        {"tox.ini": "[coverage:run]\nsource = pkg.rates\nomit =\n    pkg/rates.py\n"},
        {"tox.ini": "[testenv]\ncommands = pytest --cov=pkg.rates --cov pkg.rates --cov-report term\n"},
        {"pyproject.toml": '[project.scripts]\n"pkg.rates" = "pkg.cli:main"\n'},
        {"setup.cfg": "[options.entry_points]\nconsole_scripts =\n    pkg.rates = pkg.cli:main\n"},
        {
            "pyproject.toml": """
                [tool.hatch.envs.default.scripts]
                check = "- flake8 pkg.rates"
                types = ["mypy --strict {args:pkg.rates tests}", "python -m ruff check pkg.rates"]
                """
        },
        {"tox.ini": "[testenv:lint]\ncommands =\n    flake8 pkg.rates\n    pylint pkg.rates\n"},
    ],
    ids=[
        "pyproject.toml",
        "setup.cfg",
        "coverage.py's source in an ini file",
        "pytest-cov's source",
        "a script's name",
        "a script's name, setup.cfg",
        "hatch scripts that run linters",
        "tox commands that run linters",
    ],
)
def test_a_module_named_only_where_packaging_and_lint_tools_read_is_narrowed(extra: dict[str, str]) -> None:
    narrowed = readers({**PKG, **extra}).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert narrowed.escapes == {}
    assert narrowed.readers["pkg/rates.py"] == {"rate": "RATE"}


def test_a_package_named_in_configuration_only_as_a_path_is_narrowed() -> None:
    # voluptuous 0.15.2: its tests live in the package, and tox runs `pytest voluptuous/tests/`.
    files = {
        **PKG,
        "pkg/__init__.py": "VERSION = 1\n",
        "pkg/reader.py": "import pkg\n\n\ndef version():\n    return pkg.VERSION\n",
        "tox.ini": "[testenv]\ncommands =\n    pytest \\\n        --cov=pkg \\\n        pkg/tests/\n",
        "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = "pkg/tests"\n',
    }
    narrowed = readers(files).narrow("pkg/__init__.py", frozenset({"VERSION"}), frozenset())
    assert narrowed is not None
    assert narrowed.readers["pkg/reader.py"] == {"version": "VERSION"}
    # Where a path is not all there is, the name counts: `-p pkg` loads it by name.
    files["pyproject.toml"] = '[tool.pytest.ini_options]\naddopts = "-p pkg pkg/tests"\n'
    assert readers(files).narrow("pkg/__init__.py", frozenset({"VERSION"}), frozenset()) is None


@pytest.mark.parametrize(
    "load",
    [
        "TARGET = 'pkg.rates'\n",
        "def load(name='pkg.rates'):\n    return name\n",
        "import functools\n\n\n@functools.cache\ndef load():\n    return __import__('pkg.rates')\n",
    ],
    ids=["a constant", "a default value", "the body of a cached function"],
)
def test_import_time_code_that_names_the_module_is_an_escape(load: str) -> None:
    narrowed = readers({**PKG, "pkg/load.py": load}).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert narrowed.escapes["pkg/load.py"] >= {MODULE}


def test_a_parameter_or_local_named_like_the_module_is_not_the_module() -> None:
    # sqlparse's `def parse(sql, ...)` beside `from sqlparse import sql`.
    files = {
        **PKG,
        "pkg/api.py": """
            from pkg import rates


            def parse(rates, encoding=None):
                return print(rates, encoding)


            def split(text):
                for rates in text.split():
                    print(rates)
                return rates.rate()
            """,
    }
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert "pkg/api.py" not in narrowed.readers


def rate_rebound(extra: dict[str, str]) -> Narrowing | None:
    """The narrowing of a new value of `pkg.rates.RATE`, with `extra` files beside `PKG`."""
    return readers({**PKG, **extra}).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())


@pytest.mark.parametrize(
    "code",
    [
        # dateutil's tests of what its imports give.
        """
        import pkg.rates
        from pkg import rates as r

        def test():
            assert pkg.rates == r
            assert r is not None
        """,
        # rrule's lazy import.
        """
        rates = None

        def load():
            global rates
            if not rates:
                from pkg import rates
            return rates.rate()
        """,
        # A function's own import binds a name of the module, not the module.
        """
        from pkg import rates

        def test():
            from pkg.rates import rate as rates
            print(rates)
        """,
    ],
    ids=["compared", "truth tested", "a function's own import of something else"],
)
def test_comparing_a_module_or_testing_its_truth_is_no_escape(code: str) -> None:
    assert rate_rebound({"tests/test_rates.py": code}) is not None


def test_a_function_that_imports_the_module_too_holds_it() -> None:
    code = """
        def test(flag):
            if flag:
                from pkg.rates import rate as rates
            else:
                from pkg import rates
            print(rates)
        """
    assert rate_rebound({"tests/test_rates.py": code}) is None


@pytest.mark.parametrize(
    ("init", "narrowed"),
    [
        # dateutil.parser's `from .isoparser import isoparser`: the class hides the module.
        ("from .rates import rate as rates\n", True),
        ("from pkg.rates import rate as rates\n", True),
        ("def rates():\n    return 1\n", True),
        ("from . import rates\n", False),
        ("from .rates import rate as rates\nfrom . import rates\n", False),
        ("try:\n    from .rates import rate as rates\nexcept ImportError:\n    pass\n", False),
        ("rates = 1\n", False),
    ],
    ids=["a name of it", "absolute", "a function", "the module", "the module last", "maybe", "a value"],
)
def test_a_module_its_package_rebinds_to_something_else_is_out_of_reach(init: str, narrowed: bool) -> None:
    leak = "from pkg import rates\n\nHANDED = print(rates)\n"
    assert (rate_rebound({"pkg/__init__.py": init, "pkg/leak.py": leak}) is not None) is narrowed


@pytest.mark.parametrize(
    ("body", "dynamic"),
    [
        ('return importlib.import_module("." + name, __name__)', False),
        ('return importlib.import_module(f".{name}", package=__name__)', False),
        ('return importlib.import_module(f"{__name__}.{name}")', False),
        ("return importlib.import_module(name, __name__)", True),
        ('module = importlib.import_module("." + name, __name__)\n    return module.RATE', True),
    ],
    ids=["relative", "relative f-string", "below the package", "any module", "read"],
)
def test_a_package_getattr_that_returns_its_submodule_reads_no_name(body: str, dynamic: bool) -> None:
    # PEP 562 lazy submodules, as dateutil's `__init__.py`: `pkg.rates` is the module, as
    # if imported; who reads names of it is judged where they are.
    narrowed = rate_rebound({"pkg/__init__.py": f"import importlib\n\ndef __getattr__(name):\n    {body}\n"})
    assert narrowed is not None
    assert ("__getattr__" in narrowed.readers.get("pkg/__init__.py", {})) is dynamic


def test_a_name_in_all_is_no_module() -> None:
    files = {**PKG, "pkg/__init__.py": "from pkg.rates import rate\n\n__all__ = ['rate', 'pkg.rates']\n"}
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert narrowed.escapes == {}


def test_a_function_that_names_the_module_is_an_escape_not_a_reader() -> None:
    files = {
        **PKG,
        "tests/test_doc.py": """
            import doctest


            def load_tests(loader, tests, pattern):
                tests.addTests(doctest.DocTestSuite("pkg.rates"))
                return tests
            """,
        "pkg/lazy.py": "def load():\n    return vars(__import__('pkg.rates'))\n",
    }
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert narrowed.escapes == {"tests/test_doc.py": {"load_tests"}, "pkg/lazy.py": {"load"}}
    assert "tests/test_doc.py" not in narrowed.readers
    # `__import__("pkg.rates")` returns the package: it names pkg/__init__.py too.
    package = readers({**files, "pkg/__init__.py": "LIMIT = 1\n"}).narrow(
        "pkg/__init__.py", frozenset({"LIMIT"}), frozenset()
    )
    assert package is not None
    assert package.escapes == {"pkg/lazy.py": {"load"}}


def test_once_code_that_names_the_module_ran_a_new_function_is_read_by_whatever_lists_names() -> None:
    # funcy's test_rpartial passes 'funcy' to a function: it might import the package
    # by that name and hand it to anything.
    files = {
        **PKG,
        "tests/test_doc.py": """
            import doctest


            def test_doc():
                assert doctest.DocTestSuite("pkg.rates").countTestCases() == 0
            """,
        "pkg/load.py": "import importlib\n\nLOADED = importlib.import_module('pkg.rates')\n",
        "pkg/show.py": "def names(obj):\n    return sorted(vars(obj))\n",
        "pkg/getter.py": "def get(obj, name):\n    return getattr(obj, name)\n",
    }
    added = frozenset({"brand_new"})
    narrowed = readers(files).narrow("pkg/rates.py", added, added, new=True)
    assert narrowed is not None
    assert narrowed.escapes == {"tests/test_doc.py": {"test_doc"}, "pkg/load.py": {MODULE}}
    assert "pkg/show.py" not in narrowed.readers  # it lists what it is handed: not rates
    by_name = readers(files).narrow("pkg/rates.py", added, added, new=True, by_name=True)
    assert by_name is not None
    assert by_name.readers["pkg/show.py"] == {"names": ANY}
    assert by_name.readers["tests/test_doc.py"] == {"test_doc": ANY}
    assert "pkg/load.py" in by_name.fallback
    assert "pkg/getter.py" not in by_name.readers  # no name it could compute is new
    # A name that existed before may be read by any of them: nothing is narrowed.
    assert readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset(), by_name=True) is None


def test_a_string_only_compared_or_naming_something_else_is_no_escape() -> None:
    files = {
        **PKG,
        # dateutil's `clean_import` fixture: the listing reads names, the string does not.
        "tests/test_imports.py": """
            import sys

            def clean():
                return {n: m for n, m in sys.modules.items() if n.startswith(("pkg.rates", "x"))}

            def named(name):
                return name == "pkg.rates" or name in ["pkg.rates"]

            def other_things(path):
                import gettext, logging
                from importlib import metadata

                logging.getLogger("pkg.rates").info(metadata.version("pkg.rates"))
                return gettext.translation("pkg.rates", path)
            """,
    }
    narrowed = rate_rebound(files)
    assert narrowed is not None
    assert narrowed.escapes == {}
    assert narrowed.readers["tests/test_imports.py"] == {"clean": ANY}


@pytest.mark.parametrize(
    ("body", "escapes"),
    [
        (
            "i18n = importlib.import_module('pkg.rates')\n    mp.setattr(i18n, 'RATE', 3)\n    i18n.rate()",
            False,
        ),
        ("i18n = importlib.import_module('pkg.rates')\n    handle(i18n)", True),
        ("i18n = importlib.import_module('pkg.rates')\n    return i18n", True),
        ("handle(importlib.import_module('pkg.rates'))", True),
        (
            "m = importlib.import_module('pkg.rates')\n    def inner():\n        handle(m)\n    inner()",
            True,
        ),
    ],
    ids=["only its attributes", "handed on", "returned", "no local", "handed on by a closure"],
)
def test_a_function_that_imports_the_module_by_name_into_a_local_reads_its_names(
    body: str, escapes: bool
) -> None:
    # humanize's tests of its i18n module.
    code = f"import importlib\n\ndef test(mp):\n    {body}\n"
    narrowed = rate_rebound({"tests/test_rates.py": code})
    assert narrowed is not None
    assert ("tests/test_rates.py" in narrowed.escapes) is escapes
    if not escapes:
        assert narrowed.readers["tests/test_rates.py"] == {"test": ANY}
        new = readers({**PKG, "tests/test_rates.py": code}).narrow(
            "pkg/rates.py", frozenset({"brand_new"}), frozenset({"brand_new"}), new=True
        )
        assert new is not None
        assert "tests/test_rates.py" not in new.readers  # it lists no names


def test_a_new_function_is_seen_only_by_code_that_lists_names() -> None:
    files = {
        **PKG,
        "pkg/lister.py": "from pkg import rates\n\n\ndef names():\n    return sorted(vars(rates))\n",
        "pkg/getter.py": "from pkg import rates\n\n\ndef get(name):\n    return getattr(rates, name)\n",
        "pkg/runner.py": "def run(code):\n    exec(code)\n",
        # `globals()` lists its own module's names: new ones only through a star import.
        "pkg/registry.py": "def find(name):\n    return globals().get(name)\n",
        "pkg/star.py": "from pkg.rates import *\n\n\ndef find(name):\n    return globals().get(name)\n",
        # It lists another module's names, at import time: no new name of rates.
        "pkg/ops.py": "import operator\n\nNAMES = sorted(vars(operator))\n",
        # It holds rates, and lists the names of builtins only.
        "pkg/builtin.py": "import builtins\n\nfrom pkg import rates\n\nNAMES = dir(builtins)\n",
        # One module by its name, not a list of them.
        "pkg/main.py": "import sys\n\n\ndef prog():\n    return sys.modules['__main__'].__spec__\n",
        "pkg/walk.py": "import sys\n\n\ndef every():\n    return [vars(m) for m in list(sys.modules)]\n",
        # `pkg` is the work tree's: its names may be rates' (`from .rates import *`).
        "pkg/whole.py": "import pkg.rates\n\n\ndef names():\n    return dir(pkg)\n",
    }
    added, defs = frozenset({"brand_new"}), frozenset({"brand_new"})
    new = readers(files).narrow("pkg/rates.py", added, defs, new=True)
    assert new is not None
    assert new.readers["pkg/lister.py"] == {"names": ANY}
    assert new.readers["pkg/star.py"] == {"find": ANY}
    assert "pkg/getter.py" not in new.readers
    assert "pkg/runner.py" not in new.readers
    assert "pkg/registry.py" not in new.readers
    assert new.fallback == {}
    assert new.readers["pkg/whole.py"] == {"names": ANY}
    assert new.readers["pkg/walk.py"] == {"every": ANY}
    assert "pkg/main.py" not in new.readers
    # A rebound name that existed before may be read by a name computed from anywhere.
    rebound = readers(files).narrow("pkg/rates.py", added, defs)
    assert rebound is not None
    assert rebound.readers["pkg/getter.py"] == {"get": ANY}
    assert rebound.readers["pkg/runner.py"] == {"run": ANY}


@pytest.mark.parametrize(
    ("all_", "name", "sees"),
    [
        ("", "brand_new", True),
        ("", "_brand_new", False),
        ("__all__ = ['rate']\n", "brand_new", False),
        ("__all__ = ['rate']\n__all__.append('other')\n", "brand_new", False),
        ("EXTRA = []\n__all__ = ['rate'] + EXTRA\n", "brand_new", True),
    ],
    ids=["public, no __all__", "private", "literal __all__", "literal __all__ extended", "computed __all__"],
)
def test_a_star_import_brings_a_new_function_only_if_it_is_public_and_exported(
    all_: str, name: str, sees: bool
) -> None:
    # pyparsing's `__init__.py` star-imports `core` and lists its own names (`globals()`).
    files = {
        **PKG,
        "pkg/rates.py": textwrap.dedent(PKG["pkg/rates.py"]) + all_,
        "pkg/api.py": "from pkg.rates import *\n\nNAMES = sorted(globals())\n",
    }
    new = readers(files).narrow("pkg/rates.py", frozenset({name}), frozenset({name}), new=True)
    assert new is not None
    assert ("pkg/api.py" in new.fallback) is sees


@pytest.mark.parametrize(
    ("source", "name", "shadows"),
    [
        ("from pkg.rates import *\n", "_private", False),
        ("from pkg.rates import *\n", "brand_new", False),
        ("from .rates import *\n", "brand_new", False),
        ("from pkg.rates import *\n", "other", True),
        ("from os.path import *\n", "_private", True),
        ("try:\n    from os.path import *\nexcept ImportError:\n    pass\n", "_private", True),
        ("from pkg.computed import *\n", "_private", True),
        ("from pkg.literal import *\n", "_private", False),
        ("from pkg.chain import *\n", "brand_new", True),
        ("from pkg.chain import *\n", "_private", False),
        ("from pkg.dynamic import *\n", "brand_new", True),
        ("from pkg import *\n", "rates", True),
        ("from pkg import *\n", "brand_new", False),
    ],
    ids=[
        "private",
        "public, spelled nowhere",
        "relative",
        "public, the source binds it",
        "outside the work tree",
        "outside, under try",
        "computed __all__",
        "literal __all__",
        "the source star-imports one that binds it",
        "private, through the chain",
        "the source binds names it does not spell",
        "a module of the package it star-imports",
        "the package star-imported",
    ],
)
def test_a_new_function_in_a_module_that_star_imports_may_shadow_what_the_import_brought(
    source: str, name: str, shadows: bool
) -> None:
    # funcy's `__init__.py` star-imports its submodules: a new function there is new only
    # if no star import could have bound its name already.
    files = {
        **PKG,
        "pkg/star.py": f"{source}\n\ndef {name}():\n    return 1\n",
        "pkg/computed.py": "from pkg.rates import *\n\n__all__ = sorted(globals())\n",
        "pkg/literal.py": "__all__ = ['rate']\n\n\ndef rate():\n    return 1\n",
        "pkg/chain.py": "from pkg.bound import *\n",
        "pkg/bound.py": "def brand_new():\n    return 2\n",
        "pkg/dynamic.py": "globals().update(dict.fromkeys(['a', 'b']))\n",
        # Reads whatever name it is given from pkg.star: only a name that existed before.
        "pkg/getter.py": "from pkg import star\n\n\ndef get(name):\n    return getattr(star, name)\n",
    }
    added = frozenset({name})
    narrowed = readers(files).narrow("pkg/star.py", added, added, new=True)
    assert narrowed is not None
    assert ("pkg/getter.py" in narrowed.readers) is shadows


@pytest.mark.parametrize(
    ("method", "sees"),
    [
        ("def __init__(self):\n        for name in dir(self):\n            pass", False),
        ("@classmethod\n    def names(cls):\n        return vars(cls)", False),
        ("@staticmethod\n    def names(obj):\n        return dir(obj)", True),
        ("def __init__(self, other):\n        self = other\n        return dir(self)", True),
    ],
    ids=["self", "cls", "a static method's parameter", "self rebound"],
)
def test_listing_an_instance_s_names_sees_no_new_function(method: str, sees: bool) -> None:
    # colorama's AnsiCodes.__init__ runs `dir(self)`, at import time (`Fore = AnsiFore()`).
    rates = f"class Codes:\n    {method}\n\n\nCODES = Codes()\n"
    files = {**PKG, "pkg/rates.py": rates}
    old = readers(files).narrow("pkg/rates.py", frozenset({"brand_new"}), frozenset({"brand_new"}), new=True)
    assert old is not None
    assert bool(old.readers.get("pkg/rates.py")) is sees


def test_importing_another_module_by_a_spelled_name_reads_no_name_dynamically() -> None:
    files = {**PKG, "pkg/lazy.py": "def pool():\n    return __import__('concurrent.futures').futures\n"}
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert "pkg/lazy.py" not in narrowed.readers
    for call in ("__import__(name)", "import_module('.rates', 'pkg')", "__import__('rates', level=1)"):
        computed = {
            **PKG,
            "pkg/lazy.py": f"from importlib import import_module\n\ndef pool(name):\n    return {call}\n",
        }
        narrowed = readers(computed).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
        assert narrowed is not None
        assert narrowed.readers["pkg/lazy.py"] == {"pool": ANY}, call


def test_a_string_that_spells_an_attribute_of_the_module_is_no_escape() -> None:
    files = {**PKG, "pkg/patch.py": "TARGET = 'pkg.rates.RATE'\n", "setup.cfg": "[x]\ny = pkg.rates:rate\n"}
    assert readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset()) is not None


def test_spelled_attribute_access_on_a_module_object_is_no_escape() -> None:
    files = {
        **PKG,
        "tests/test_rates.py": "from pkg import rates\n\ndef test(mp):\n    mp.setattr(rates, 'RATE', 3)\n",
    }
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert narrowed.readers["tests/test_rates.py"] == {"test": "RATE"}


def test_postponed_annotations_are_not_reads() -> None:
    files = {
        **PKG,
        "pkg/typed.py": "from __future__ import annotations\nfrom pkg.rates import RATE\n\n"
        "def f(x: RATE) -> RATE:\n    return x\n",
    }
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert "pkg/typed.py" not in narrowed.readers
    assert narrowed.fallback == {}


def test_code_that_reads_a_changed_class_attribute_counts_with_the_class() -> None:
    files = {
        **PKG,
        "pkg/shapes.py": "class Box:\n    SIZE = 3\n\n    def area(self):\n        return self.SIZE ** 2\n",
        "pkg/sizes.py": "from pkg.shapes import Box\n\n\ndef make():\n    return Box()\n\n\n"
        "def size_of(thing):\n    return thing.SIZE\n",
    }
    narrowed = readers(files).narrow("pkg/shapes.py", frozenset({"Box", "SIZE"}), frozenset())
    assert narrowed is not None
    # `make` names the class; `area` and `size_of` read only the attribute: they count for
    # a test that also met the class (ran `make`, or code of Box).
    assert narrowed.readers == {"pkg/sizes.py": {"make": "Box"}}
    assert narrowed.attribute_readers == {
        "pkg/shapes.py": {"Box.area": "SIZE"},
        "pkg/sizes.py": {"size_of": "SIZE"},
    }
    assert narrowed.classes == {"pkg/shapes.py": {"Box"}}


def test_a_removed_name_read_at_import_time_fails_the_importers() -> None:
    files = {
        **PKG,
        "pkg/rates.py": "def rate():\n    return 0\n\n\ndef other():\n    return 1\n",  # RATE is gone
        "pkg/typed.py": "from pkg import rates\n\n\ndef f(x: rates.RATE) -> None:\n    pass\n",
        "pkg/late.py": "def later():\n    from pkg.rates import RATE\n    return RATE\n",
    }
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    # `from pkg.rates import RATE` and an annotation that runs raise on import; a function
    # that reads it raises only when it runs: its tests are selected as readers'.
    assert narrowed.fallback == {"pkg/derived.py": "RATE", "pkg/typed.py": "RATE"}
    assert narrowed.readers["pkg/late.py"] == {"later": "RATE"}


def test_a_member_removed_from_one_class_is_removed_though_another_has_it() -> None:
    files = {
        **PKG,
        "pkg/shapes.py": "class Box:\n    KIND = 1\n\n\nclass Crate:\n    SIZE = 4\n",  # Box.SIZE is gone
        "pkg/sizes.py": "from pkg.shapes import Box\n\nDEFAULT = Box.SIZE\n",
    }
    narrowed = readers(files).narrow("pkg/shapes.py", frozenset({"Box", "SIZE"}), frozenset())
    assert narrowed is not None
    assert narrowed.fallback == {"pkg/sizes.py": "SIZE"}
    # A member whose value changed is no removal.
    files["pkg/shapes.py"] = "class Box:\n    KIND = 1\n    SIZE = 5\n"
    narrowed = readers(files).narrow("pkg/shapes.py", frozenset({"Box", "SIZE"}), frozenset())
    assert narrowed is not None
    assert narrowed.fallback == {}


def test_a_removed_property_its_setter_needs_fails_the_module() -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/cart.py": "class Cart:\n    def total(self):\n        return 1\n\n"
        "    @total.setter\n    def total(self, value):\n        pass\n",
    }
    assert (
        readers(files).narrow("pkg/cart.py", frozenset({"Cart", "total"}), frozenset({"Cart.total"})) is None
    )


@pytest.mark.parametrize(
    ("rate", "derived", "falls_back"),
    [
        ("RATE = 3", "INVERSE = 1 / R", False),  # works out with the new value
        ("RATE = 0", "INVERSE = 1 / R", True),  # ZeroDivisionError on import
        ("RATE = 'x'", "DOUBLE = R * 2", True),  # not known to work out: it may raise
        ("RATE = 3", "DOUBLE = R * FACTOR", True),  # FACTOR's value is not known
        ("RATE = 3", "FACTOR = 4\nDOUBLE = R * FACTOR", False),
        ("RATE = 3", "FACTOR = 4\nfrom elsewhere import *\nDOUBLE = R * FACTOR", True),
        ("RATE = 3", "OFFSET = R.nope", True),  # an attribute of what is no class
        ("RATE = 3", "OFFSET = R.real", False),  # one an int has
        ("RATE = [1]", "ROWS = {R: 1}", True),  # hashed: a list does not
        ("RATE = 3", "ROWS = {R: 1}", False),
        ("RATE = 3", "PAIR = (R, {'r': R})", False),  # stored only
        ("RATE = (1,)", "PAIRS = (0,)\nPAIRS += R", False),  # works out: a tuple added to one
        ("RATE = 3", "PAIRS = (0,)\nPAIRS += R", True),  # a tuple plus an int raises
    ],
)
def test_import_time_code_that_operates_on_a_rebound_name_must_work_out(
    rate: str, derived: str, falls_back: bool
) -> None:
    files = {
        **PKG,
        "pkg/rates.py": rate + "\n",
        "pkg/derived.py": f"from pkg.rates import RATE as R\nfrom elsewhere import FACTOR\n{derived}\n",
    }
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert ("pkg/derived.py" in narrowed.fallback) is falls_back


def test_an_attribute_of_a_changed_class_read_at_import_time_works_as_before() -> None:
    files = {
        **PKG,
        "pkg/shapes.py": "class Box:\n    SIZE = 3\n",
        "pkg/sizes.py": "from pkg.shapes import Box\n\nDEFAULT = Box.SIZE\n\n\nclass Big(Box):\n    pass\n",
    }
    narrowed = readers(files).narrow("pkg/shapes.py", frozenset({"Box", "SIZE"}), frozenset())
    assert narrowed is not None
    assert narrowed.fallback == {}


def test_a_class_the_change_reaches_is_still_a_class_unless_the_name_is_also_a_value() -> None:
    files = {
        **PKG,
        # Template's default reads RATE: the class is rebound, and made as before.
        "pkg/env.py": "from pkg.rates import RATE\n\n\n"
        "class Template:\n    def render(self, x=RATE):\n        return x\n",
        "pkg/ext.py": "import typing as t\n\nfrom pkg import env\n\n\n"
        "def f(x: t.Optional[env.Template]) -> None:\n    pass\n",
    }
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert "pkg/ext.py" not in narrowed.fallback
    # Where the same name is also bound to a value the change reaches, it may be that one.
    files["pkg/other.py"] = "from pkg.rates import RATE\n\nTemplate = [RATE]\n"
    files["pkg/user.py"] = "from pkg.other import Template\n\nCOUNT = Template.count\n"
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert narrowed.fallback["pkg/user.py"] == "Template"


def test_unpickling_reads_every_name() -> None:
    files = {**PKG, "pkg/store.py": "import pickle\n\n\ndef load(data):\n    return pickle.loads(data)\n"}
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert narrowed.readers["pkg/store.py"] == {"load": ANY}


def test_spelled_getattr_dict_keys_and_a_local_named_like_a_builtin_read_no_other_name() -> None:
    files = {
        **PKG,
        "pkg/plain.py": "def meta(obj, dir):\n"
        "    return getattr(obj, 'meta', {}), hasattr(obj, 'x'), dir + 1\n\n\n"
        "def stack(local):\n    return local.__dict__.setdefault('stack', []), local.__dict__['s']\n",
    }
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert "pkg/plain.py" not in narrowed.readers


def test_an_object_read_as_a_whole_reads_the_module_only_where_the_file_holds_it() -> None:
    files = {
        **PKG,
        "pkg/dump.py": "def dump(obj):\n    return dict(obj.__dict__)\n",
        "pkg/held.py": "from pkg import rates\n\n\ndef dump(obj):\n    return vars(obj)\n",
    }
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert narrowed.readers["pkg/held.py"] == {"dump": ANY}
    # Without the module, `obj` can hold only a changed class's names: none changed.
    assert narrowed.attribute_readers == {}
    assert narrowed.classes == {}
    files["pkg/rates.py"] = "class Rate:\n    VALUE = 2\n"
    narrowed = readers(files).narrow("pkg/rates.py", frozenset({"Rate", "VALUE"}), frozenset())
    assert narrowed is not None
    # With a changed class, it counts for a test that met the class.
    assert narrowed.attribute_readers["pkg/dump.py"] == {"dump": ATTRIBUTES}


@pytest.mark.parametrize(
    "code",
    [
        "def names():\n    return [c.LIMIT for c in Base.__subclasses__()]\n",
        "import gc\n\ndef f():\n    return gc.get_objects()\n",
    ],
    ids=["subclasses", "gc"],
)
def test_finding_classes_nobody_names_reads_every_name(code: str) -> None:
    narrowed = readers({**PKG, "pkg/find.py": code}).narrow("pkg/rates.py", frozenset({"RATE"}), frozenset())
    assert narrowed is not None
    assert ANY in narrowed.readers["pkg/find.py"].values()
