"""Unit tests for tia.imports: reading import statements, and resolving them to repository files."""

from __future__ import annotations

import ast
import textwrap
from typing import Any

import pytest

from tia.imports import ModuleResolver, extract_imports, module_stem
from tia.project import LazyImportGraph
from tia.records import RunFacts
from tia.scopes import FileIndex, index_source


def canon(record: list[Any]) -> tuple[Any, ...]:
    """A hashable form of one import record."""
    return tuple(tuple(part) if isinstance(part, list) else part for part in record)


def imports_of(source: str) -> tuple[set[tuple[Any, ...]], bool]:
    records, dynamic = extract_imports(ast.parse(textwrap.dedent(source)))
    found = {canon(r) for r in records}
    assert all(isinstance(r, list) for r in records)  # JSON-friendly, as a FileIndex stores them
    return found, dynamic


# --- extract_imports --------------------------------------------------------------------------------


def test_plain_imports_give_one_record_per_name() -> None:
    found, dynamic = imports_of(
        """
        import os
        import json, xml.etree.ElementTree as ET
        """
    )
    assert found == {("import", "os"), ("import", "json"), ("import", "xml.etree.ElementTree")}
    assert dynamic is False


def test_from_imports_record_level_module_and_names() -> None:
    found, _ = imports_of(
        """
        from os import path, sep as separator
        from collections.abc import Mapping
        """
    )
    assert found == {
        ("from", 0, "os", ("path", "sep")),
        ("from", 0, "collections.abc", ("Mapping",)),
    }


def test_relative_imports_record_their_level() -> None:
    found, _ = imports_of(
        """
        from . import sibling
        from .mod import thing
        from .. import parent
        from ..pkg.mod import y
        from ... import top
        """
    )
    assert found == {
        ("from", 1, "", ("sibling",)),
        ("from", 1, "mod", ("thing",)),
        ("from", 2, "", ("parent",)),
        ("from", 2, "pkg.mod", ("y",)),
        ("from", 3, "", ("top",)),
    }


def test_imports_at_any_depth_are_found() -> None:
    found, dynamic = imports_of(
        """
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            import in_if
        else:
            import in_else

        try:
            import in_try
        except ImportError:
            from fallback import in_except
        finally:
            import in_finally


        def f():
            import in_function

            def g():
                from deep import in_nested
            return g


        class C:
            import in_class_body

            def m(self):
                with open("x"):
                    import in_with
        """
    )
    modules = {r[1] if r[0] == "import" else r[2] for r in found}
    assert modules == {
        "typing",
        "in_if",
        "in_else",
        "in_try",
        "fallback",
        "in_finally",
        "in_function",
        "deep",
        "in_class_body",
        "in_with",
    }
    assert dynamic is False


def test_import_module_with_a_literal_name_is_a_static_import() -> None:
    found, dynamic = imports_of(
        """
        import importlib
        from importlib import import_module

        plugin = importlib.import_module("pkg.plugins.csv")
        other = import_module("pkg.other")
        """
    )
    assert ("import", "pkg.plugins.csv") in found
    assert ("import", "pkg.other") in found
    assert dynamic is False


@pytest.mark.parametrize(
    "call",
    [
        "importlib.import_module(name)",
        "importlib.import_module(f'pkg.{name}')",
        "importlib.import_module('pkg.' + name)",
        "import_module(*names)",
        "__import__(name)",
    ],
)
def test_import_module_with_a_computed_name_is_dynamic(call: str) -> None:
    found, dynamic = imports_of(f"import importlib\n\ndef load(name, names):\n    return {call}\n")
    assert dynamic is True
    assert found == {("import", "importlib")}


def test_dunder_import_with_a_literal_name_is_a_static_import() -> None:
    found, dynamic = imports_of("json = __import__('json')\nx = __import__('pkg.sub.x', fromlist=['y'])\n")
    assert found >= {("import", "json"), ("import", "pkg.sub.x")}
    assert dynamic is False


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("pytest_plugins = ['pkg.fixtures', 'pkg.more']\n", {"pkg.fixtures", "pkg.more"}),
        ("pytest_plugins = ('pkg.fixtures',)\n", {"pkg.fixtures"}),
        ("pytest_plugins = 'pkg.fixtures'\n", {"pkg.fixtures"}),
    ],
    ids=["list", "tuple", "string"],
)
def test_pytest_plugins_names_modules_to_import(source: str, expected: set[str]) -> None:
    found, dynamic = imports_of(source)
    assert found == {("import", name) for name in expected}
    assert dynamic is False


def test_a_computed_pytest_plugins_is_dynamic() -> None:
    found, dynamic = imports_of("import glob\n\npytest_plugins = [p[:-3] for p in glob.glob('*.py')]\n")
    assert dynamic is True
    assert found == {("import", "glob")}


def test_a_file_without_imports_has_no_records() -> None:
    assert imports_of("x = 1\n\ndef f():\n    return x\n") == (set(), False)


def test_an_annotated_pytest_plugins_names_modules_to_import() -> None:
    found, dynamic = imports_of("pytest_plugins: list[str] = ['pkg.fixtures']\n")
    assert ("import", "pkg.fixtures") in found or dynamic


# --- ModuleResolver ---------------------------------------------------------------------------------

SRC_LAYOUT = [
    "src/pkg/__init__.py",
    "src/pkg/mod.py",
    "src/pkg/sub/__init__.py",
    "src/pkg/sub/x.py",
    "src/pkg/sub/y.py",
    "src/pkg/data.json",
    "tests/helpers.py",
    "tests/test_mod.py",
    "tests/conftest.py",
    "README.md",
]


@pytest.fixture
def src_layout() -> ModuleResolver:
    return ModuleResolver(SRC_LAYOUT)


def resolve(resolver: ModuleResolver, importer: str, source: str) -> set[str]:
    records, _ = extract_imports(ast.parse(textwrap.dedent(source)))
    return resolver.resolve(importer, records)


def test_the_resolver_only_knows_python_files(src_layout: ModuleResolver) -> None:
    assert src_layout.files == {p for p in SRC_LAYOUT if p.endswith(".py")}


def test_a_src_layout_package_is_importable_by_its_package_name(src_layout: ModuleResolver) -> None:
    assert resolve(src_layout, "tests/test_mod.py", "import pkg") == {"src/pkg/__init__.py"}
    assert resolve(src_layout, "tests/test_mod.py", "import pkg.mod") == {
        "src/pkg/__init__.py",
        "src/pkg/mod.py",
    }


def test_importing_a_dotted_module_executes_every_parent_package(src_layout: ModuleResolver) -> None:
    assert resolve(src_layout, "tests/test_mod.py", "import pkg.sub.x") == {
        "src/pkg/__init__.py",
        "src/pkg/sub/__init__.py",
        "src/pkg/sub/x.py",
    }


def test_from_package_import_module_resolves_to_the_module_and_the_package(
    src_layout: ModuleResolver,
) -> None:
    assert resolve(src_layout, "tests/test_mod.py", "from pkg import mod") == {
        "src/pkg/__init__.py",
        "src/pkg/mod.py",
    }
    assert resolve(src_layout, "tests/test_mod.py", "from pkg import sub") == {
        "src/pkg/__init__.py",
        "src/pkg/sub/__init__.py",
    }


def test_from_module_import_name_resolves_to_the_module_chain(src_layout: ModuleResolver) -> None:
    assert resolve(src_layout, "tests/test_mod.py", "from pkg.sub.x import function") == {
        "src/pkg/__init__.py",
        "src/pkg/sub/__init__.py",
        "src/pkg/sub/x.py",
    }


def test_from_package_import_a_missing_name_resolves_to_the_package_only(src_layout: ModuleResolver) -> None:
    assert resolve(src_layout, "tests/test_mod.py", "from pkg import not_a_module") == {"src/pkg/__init__.py"}


def test_a_module_is_also_known_under_its_longer_directory_names(src_layout: ModuleResolver) -> None:
    assert resolve(src_layout, "tests/test_mod.py", "import src.pkg.mod") == {
        "src/pkg/__init__.py",
        "src/pkg/mod.py",
    }
    assert resolve(src_layout, "tests/test_mod.py", "import pkg.sub.x") == resolve(
        src_layout, "tests/test_mod.py", "import src.pkg.sub.x"
    )


def test_a_module_inside_a_package_is_not_importable_by_its_bare_name(src_layout: ModuleResolver) -> None:
    assert resolve(src_layout, "tests/test_mod.py", "import mod") == set()
    assert resolve(src_layout, "tests/test_mod.py", "import x") == set()


def test_a_tests_directory_without_init_makes_its_modules_top_level(src_layout: ModuleResolver) -> None:
    assert resolve(src_layout, "tests/test_mod.py", "import helpers") == {"tests/helpers.py"}
    assert resolve(src_layout, "tests/test_mod.py", "from helpers import make") == {"tests/helpers.py"}
    assert resolve(src_layout, "tests/test_mod.py", "from tests.helpers import make") == {"tests/helpers.py"}


def test_a_tests_package_with_init_is_importable_only_under_its_package_name() -> None:
    resolver = ModuleResolver(["tests/__init__.py", "tests/helpers.py", "tests/test_a.py"])
    assert resolve(resolver, "tests/test_a.py", "from tests import helpers") == {
        "tests/__init__.py",
        "tests/helpers.py",
    }
    assert resolve(resolver, "tests/test_a.py", "import helpers") == set()


def test_a_flat_layout_package_is_importable_from_the_root() -> None:
    resolver = ModuleResolver(
        ["pkg/__init__.py", "pkg/mod.py", "pkg/sub/__init__.py", "pkg/sub/x.py", "conftest.py", "setup.py"]
    )
    assert resolve(resolver, "tests/test_x.py", "import pkg.sub.x") == {
        "pkg/__init__.py",
        "pkg/sub/__init__.py",
        "pkg/sub/x.py",
    }
    assert resolve(resolver, "tests/test_x.py", "from pkg import mod") == {"pkg/__init__.py", "pkg/mod.py"}
    assert resolve(resolver, "tests/test_x.py", "import conftest") == {"conftest.py"}


def test_a_namespace_package_without_init_is_importable() -> None:
    resolver = ModuleResolver(["src/ns/tool.py", "src/ns/deep/thing.py"])
    assert resolve(resolver, "tests/test_x.py", "from ns import tool") == {"src/ns/tool.py"}
    assert resolve(resolver, "tests/test_x.py", "import ns.deep.thing") == {"src/ns/deep/thing.py"}


def test_relative_import_of_a_sibling_module(src_layout: ModuleResolver) -> None:
    assert resolve(src_layout, "src/pkg/sub/y.py", "from . import x") == {
        "src/pkg/sub/__init__.py",
        "src/pkg/sub/x.py",
    }
    assert resolve(src_layout, "src/pkg/sub/y.py", "from .x import thing") == {
        "src/pkg/sub/__init__.py",
        "src/pkg/sub/x.py",
    }


def test_relative_import_from_a_parent_package_module(src_layout: ModuleResolver) -> None:
    assert resolve(src_layout, "src/pkg/sub/x.py", "from ..mod import y") == {
        "src/pkg/__init__.py",
        "src/pkg/mod.py",
    }
    assert resolve(src_layout, "src/pkg/sub/x.py", "from .. import mod") == {
        "src/pkg/__init__.py",
        "src/pkg/mod.py",
    }


def test_relative_import_inside_a_package_init_is_relative_to_that_package(
    src_layout: ModuleResolver,
) -> None:
    assert resolve(src_layout, "src/pkg/__init__.py", "from .mod import thing") == {"src/pkg/mod.py"}
    assert resolve(src_layout, "src/pkg/__init__.py", "from .sub import x") == {
        "src/pkg/sub/__init__.py",
        "src/pkg/sub/x.py",
    }


def test_a_relative_import_of_a_missing_module_resolves_to_the_package_only(
    src_layout: ModuleResolver,
) -> None:
    found = resolve(src_layout, "src/pkg/sub/x.py", "from .missing import thing")
    assert found == {"src/pkg/sub/__init__.py"}


def test_the_importer_is_never_among_its_own_imports(src_layout: ModuleResolver) -> None:
    assert resolve(src_layout, "src/pkg/sub/x.py", "import pkg.sub.x") == {
        "src/pkg/__init__.py",
        "src/pkg/sub/__init__.py",
    }
    assert "src/pkg/sub/x.py" not in resolve(src_layout, "src/pkg/sub/x.py", "from . import x")


@pytest.mark.parametrize(
    "source",
    ["import requests", "from os import path", "import os.path", "from json import loads", "import pkgx.mod"],
)
def test_a_name_that_is_not_in_the_repository_resolves_to_nothing(
    src_layout: ModuleResolver, source: str
) -> None:
    assert resolve(src_layout, "tests/test_mod.py", source) == set()


def test_import_module_and_pytest_plugins_resolve_like_imports(src_layout: ModuleResolver) -> None:
    source = """
        import importlib

        pytest_plugins = ["helpers"]
        plugin = importlib.import_module("pkg.sub.x")
        """
    assert resolve(src_layout, "tests/conftest.py", source) == {
        "tests/helpers.py",
        "src/pkg/__init__.py",
        "src/pkg/sub/__init__.py",
        "src/pkg/sub/x.py",
    }


def test_a_relative_import_module_call_is_resolved_or_flagged_dynamic(src_layout: ModuleResolver) -> None:
    source = "import importlib\n\nsub = importlib.import_module('.sub', package='pkg')\n"
    records, dynamic = extract_imports(ast.parse(source))
    assert dynamic or "src/pkg/sub/__init__.py" in src_layout.resolve("tests/test_mod.py", records)


# --- the import graph ------------------------------------------------------------------------------


class _Indexed:
    """The current index of each file of a listing, from its source (what `Versions` gives)."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = sources

    def current_index(self, path: str) -> FileIndex | None:
        source = self.sources.get(path)
        return index_source(textwrap.dedent(source), path) if source is not None else None


def test_a_deleted_module_reaches_whatever_still_imports_it() -> None:
    # A deleted module has no index now; the files that import it must still resolve to it.
    sources = {
        "pkg/__init__.py": "",
        "pkg/core.py": "from .gone import helper\n",
        "pkg/other.py": "import json\n",
        "tests/test_core.py": "from pkg import core\n",
        "tests/test_other.py": "from pkg import other\n",
    }
    listing = dict.fromkeys(sources, "sha")
    earlier = {**listing, "pkg/gone.py": "old"}
    graph = LazyImportGraph(listing, _Indexed(sources), RunFacts(), [earlier])
    assert graph.importers("pkg/gone.py") == {"pkg/gone.py", "pkg/core.py", "tests/test_core.py"}
    # Without the listing it was deleted from, nothing would resolve to it.
    assert LazyImportGraph(listing, _Indexed(sources), RunFacts(), []).importers("pkg/gone.py") == {
        "pkg/gone.py"
    }


@pytest.mark.parametrize(
    ("path", "stem"),
    [("pkg/mod.py", "mod"), ("pkg/sub/__init__.py", "sub"), ("__init__.py", ""), ("top.py", "top")],
)
def test_a_module_s_stem_is_the_last_part_of_its_dotted_name(path: str, stem: str) -> None:
    assert module_stem(path) == stem
