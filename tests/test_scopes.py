"""Unit tests for tia.scopes: naming function scopes, mapping lines to them, and diffing two versions."""

from __future__ import annotations

import json
import textwrap

import pytest

from tia.scopes import UNCHANGED, FileDiff, FileIndex, diff_indexes, index_source


def src(text: str) -> str:
    """Dedent `text` and drop its leading newline, so its first line is line 1."""
    return textwrap.dedent(text).lstrip("\n")


def index(text: str) -> FileIndex:
    ix = index_source(src(text))
    assert ix.error is None, ix.error
    return ix


def line_map(text: str) -> list[str | None]:
    """The innermost scope of every line of `text`, line 1 first."""
    source = src(text)
    table = index_source(source).line_scopes()
    count = len(source.splitlines())
    return [table[n] if n < len(table) else None for n in range(1, count + 1)]


def diff(old: str, new: str) -> FileDiff:
    return diff_indexes(index(old), index(new))


# --- index_source: naming scopes -------------------------------------------------------------------

CART = """
    import json
    RATE = 2
    class Cart:
        LIMIT = 9
        @staticmethod
        def add(x, y=RATE):
            def norm(v):
                return v * RATE
            return norm(x) + y
    """


def test_the_module_docstring_example_is_indexed_as_documented() -> None:
    ix = index(CART)
    assert set(ix.scopes) == {"Cart.add", "Cart.add.<locals>.norm"}
    assert ix.spans == [("Cart.add", 7, 9), ("Cart.add.<locals>.norm", 8, 8)]
    assert line_map(CART) == [None] * 6 + ["Cart.add", "Cart.add.<locals>.norm", "Cart.add"]
    assert ix.scopes["Cart.add"] != ix.scopes["Cart.add.<locals>.norm"]


def test_top_level_functions_are_scopes_named_by_their_name() -> None:
    text = """
        def first():
            return 1


        def second(x):
            y = x + 1
            return y
        """
    assert set(index(text).scopes) == {"first", "second"}
    assert line_map(text) == [None, "first", None, None, None, "second", "second"]


def test_methods_are_named_class_dot_method_and_class_bodies_are_module_scope() -> None:
    text = """
        class Cart:
            LIMIT = 3

            def add(self, item):
                return item

            class Line:
                def total(self):
                    return 0
        """
    ix = index(text)
    assert set(ix.scopes) == {"Cart.add", "Cart.Line.total"}
    assert line_map(text) == [None, None, None, None, "Cart.add", None, None, None, "Cart.Line.total"]


def test_nested_functions_are_named_with_locals_and_their_def_lines_belong_to_the_outer_body() -> None:
    text = """
        def outer(a):
            def inner(
                b=1,
            ):
                return a + b
            return inner()
        """
    ix = index(text)
    assert set(ix.scopes) == {"outer", "outer.<locals>.inner"}
    assert line_map(text) == [None, "outer", "outer", "outer", "outer.<locals>.inner", "outer"]


def test_a_class_inside_a_function_names_its_methods_after_the_function() -> None:
    text = """
        def factory():
            class C:
                KIND = 1
                def m(self):
                    return self.KIND
            return C
        """
    ix = index(text)
    assert set(ix.scopes) == {"factory", "factory.<locals>.C.m"}
    # The class body runs when factory runs, so its lines are factory's.
    assert line_map(text) == [None, "factory", "factory", "factory", "factory.<locals>.C.m", "factory"]


def test_async_functions_and_async_methods_are_scopes_like_any_other() -> None:
    text = """
        async def fetch(client):
            async with client:
                async for item in client:
                    await item
            return client


        class Api:
            async def get(self):
                return await self.call()
        """
    ix = index(text)
    assert set(ix.scopes) == {"fetch", "Api.get"}
    assert line_map(text) == [None, "fetch", "fetch", "fetch", "fetch", None, None, None, None, "Api.get"]


def test_decorator_lines_and_def_lines_belong_to_the_module_scope() -> None:
    text = """
        import functools


        @functools.cache
        def cached(x):
            return x


        class C:
            @property
            def size(self):
                return 1
        """
    ix = index(text)
    assert set(ix.scopes) == {"cached", "C.size"}
    assert line_map(text) == [None, None, None, None, None, "cached", None, None, None, None, None, "C.size"]


def test_multi_line_signatures_and_default_values_belong_to_the_module_scope() -> None:
    text = """
        def configure(
            name,
            retries=3,
            callback=lambda r: r,
            *,
            timeout=DEFAULT,
        ) -> dict:
            return {"name": name}
        """
    ix = index(text)
    assert set(ix.scopes) == {"configure"}
    assert ix.spans == [("configure", 8, 8)]
    assert line_map(text) == [None] * 7 + ["configure"]


def test_lambdas_and_comprehensions_belong_to_the_enclosing_scope() -> None:
    text = """
        KEYS = [k for k in range(3)]
        square = lambda v: v * v


        def f(items):
            total = sum(
                x * x for x in items
            )
            key = lambda item: item[0]
            return {k: v for k, v in items}, total, key
        """
    ix = index(text)
    assert set(ix.scopes) == {"f"}
    assert line_map(text) == [None, None, None, None, None, "f", "f", "f", "f", "f"]


def test_match_statements_belong_to_the_scope_they_are_in() -> None:
    text = """
        def handle(command):
            match command:
                case ["go", direction]:
                    return direction
                case {"action": action}:
                    return action
                case _:
                    return None


        match MODE:
            case "fast":
                SPEED = 2
            case _:
                SPEED = 1
        """
    ix = index(text)
    assert set(ix.scopes) == {"handle"}
    assert line_map(text) == [None] + ["handle"] * 7 + [None] * 7


def test_a_def_inside_any_compound_statement_is_a_scope_named_in_order_of_appearance() -> None:
    # Only statements hold defs: the walk that finds them visits statement lists alone,
    # whatever compound statement holds them, at module level or in a body.
    ix = index(
        """
        if X:
            def f(): return 1
        else:
            def f(): return 2
        for _ in Y:
            def f(): return 3
        while Z:
            def f(): return 4
        with W:
            def f(): return 5
        try:
            def f(): return 6
        except E:
            def f(): return 7
        else:
            def f(): return 8
        finally:
            def f(): return 9
        match V:
            case 1:
                def f(): return 10
        def outer():
            try:
                def inner(): return 11
            except E:
                async def inner(): return 12
            return inner
        """
    )
    assert list(ix.scopes) == [
        "f",
        *(f"f#{n}" for n in range(2, 11)),
        "outer",
        "outer.<locals>.inner",
        "outer.<locals>.inner#2",
    ]
    # Each nested body is its own scope, left out of the enclosing one's fingerprint.
    nested = index(
        """
        def outer():
            try:
                def inner(): return 111
            except E:
                async def inner(): return 12
            return inner
        """
    )
    assert nested.scopes["outer"] == ix.scopes["outer"]
    assert nested.scopes["outer.<locals>.inner"] != ix.scopes["outer.<locals>.inner"]


def test_a_property_setter_gets_a_numbered_name_in_order_of_appearance() -> None:
    text = """
        class Box:
            @property
            def size(self):
                return self._size

            @size.setter
            def size(self, value):
                self._size = value

            @size.deleter
            def size(self):
                del self._size
        """
    ix = index(text)
    assert set(ix.scopes) == {"Box.size", "Box.size#2", "Box.size#3"}
    assert [name for name, _, _ in ix.spans] == ["Box.size", "Box.size#2", "Box.size#3"]
    table = line_map(text)
    assert (table[3], table[7], table[11]) == ("Box.size", "Box.size#2", "Box.size#3")
    assert len(set(ix.scopes.values())) == 3


def test_a_one_line_function_maps_its_only_line_to_itself() -> None:
    ix = index("def f(): return 1\n")
    assert set(ix.scopes) == {"f"}
    assert ix.spans == [("f", 1, 1)]
    assert ix.line_scopes() == [None, "f"]


def test_a_docstring_is_the_first_line_of_its_functions_scope() -> None:
    text = '''
        def f():
            """Say hello."""
            return "hello"
        '''
    assert index(text).spans == [("f", 2, 3)]
    assert line_map(text) == [None, "f", "f"]


def test_the_line_table_ends_at_the_last_function_line_and_line_zero_is_module_scope() -> None:
    ix = index(
        """
        def f():
            return 1
        X = 1
        Y = 2
        """
    )
    assert ix.line_scopes() == [None, None, "f"]
    assert index("X = 1\n").line_scopes() == [None]


def test_the_decorator_of_a_nested_function_belongs_to_the_enclosing_function() -> None:
    text = """
        def register(app):
            @app.route("/")
            def index():
                return "hi"
            return index
        """
    assert line_map(text) == [None, "register", "register", "register.<locals>.index", "register"]


def test_index_source_records_imports_and_dynamic_imports() -> None:
    ix = index(
        """
        import importlib
        from . import sibling


        def load(name):
            import json
            return importlib.import_module(name)
        """
    )
    assert sorted(map(str, ix.imports)) == sorted(
        map(str, [["import", "importlib"], ["from", 1, "", ["sibling"]], ["import", "json"]])
    )
    assert ix.dynamic_imports is True
    assert index("import os\n").dynamic_imports is False


def test_index_source_accepts_bytes_like_text() -> None:
    text = src(
        """
        # -*- coding: utf-8 -*-
        def f():
            return "é"
        """
    )
    assert index_source(text.encode("utf-8")) == index_source(text)


@pytest.mark.parametrize(
    "text",
    [
        "def f(:\n    pass\n",
        "x = (\n",
        "def f():\nreturn 1\n",
        "x = 1\0\n",
    ],
    ids=["bad-signature", "unclosed-paren", "bad-indent", "null-byte"],
)
def test_a_file_that_does_not_parse_gets_an_error_and_no_scopes(text: str) -> None:
    ix = index_source(text, "broken.py")
    assert ix.error is not None
    assert ix.error.split(":")[0] in {"SyntaxError", "IndentationError", "ValueError"}
    assert ix.module.startswith("error:")
    assert ix.scopes == {}
    assert ix.spans == []
    assert ix.line_scopes() == [None]


def test_two_different_broken_versions_get_different_module_fingerprints() -> None:
    assert index_source("def f(:\n").module != index_source("def g(:\n").module
    assert index_source("def f(:\n").module == index_source("def f(:\n").module


def test_an_unreferenced_undecorated_top_level_function_is_a_free_def() -> None:
    ix = index(
        """
        import os
        X = 1


        def helper():
            return os.sep


        @staticmethod
        def decorated():
            return X


        class C:
            pass
        """
    )
    assert set(ix.free_defs) == {"helper"}
    assert {"os", "X", "decorated", "C"} <= ix.bound
    assert "helper" not in ix.bound


@pytest.mark.parametrize(
    "text",
    [
        "def helper():\n    pass\n\nHANDLERS = [helper]\n",
        "__all__ = ['helper']\n\ndef helper():\n    pass\n",
        "import functools\n\n@functools.cache\ndef helper():\n    pass\n",
        "def helper():\n    pass\n\ndef helper():\n    return 1\n",
        "helper = None\n\ndef helper():\n    pass\n",
        "def other(x=helper):\n    pass\n\ndef helper():\n    pass\n",
    ],
    ids=["referenced", "named-in-a-string", "decorated", "twice", "rebinds", "default"],
)
def test_a_function_that_module_code_may_see_is_not_a_free_def(text: str) -> None:
    ix = index_source(text)
    assert "helper" not in ix.free_defs
    assert "helper" in ix.bound


@pytest.mark.parametrize("name", ["pytest_configure", "__getattr__", "__dir__"])
def test_a_function_with_a_special_name_is_not_a_free_def(name: str) -> None:
    ix = index_source(f"def {name}(*args):\n    pass\n")
    assert ix.free_defs == {}
    assert name in ix.bound


# --- to_json / from_json ---------------------------------------------------------------------------


def test_an_index_survives_a_round_trip_through_json() -> None:
    ix = index(
        """
        import importlib
        from .. import parent
        LIMIT = 2


        class Box:
            @property
            def size(self):
                return 1

            @size.setter
            def size(self, value):
                pass


        def free():
            def inner():
                return importlib.import_module(LIMIT)
            return inner


        def reset():
            global LIMIT
            LIMIT = 0
        """
    )
    assert ix.free_defs and ix.bound and ix.imports and ix.dynamic_imports and ix.state
    data = json.loads(json.dumps(ix.to_json()))
    assert FileIndex.from_json(data) == ix


def test_to_json_gives_plain_json_types() -> None:
    data = index("import os\nB = 1\nA = 2\n\ndef f():\n    return 1\n").to_json()
    assert data["spans"] == [["f", 6, 6]]
    assert data["bound"] == ["A", "B", "os"]
    assert data["free_defs"].keys() == {"f"}
    assert data["error"] is None
    assert json.loads(json.dumps(data)) == data


def test_a_broken_files_index_survives_a_round_trip_through_json() -> None:
    ix = index_source("def f(:\n")
    again = FileIndex.from_json(json.loads(json.dumps(ix.to_json())))
    assert again == ix
    assert again.error == ix.error


def test_from_json_fills_in_defaults_for_missing_optional_fields() -> None:
    ix = FileIndex.from_json({"module": "abc"})
    assert ix == FileIndex(module="abc")


@pytest.mark.parametrize(
    "data",
    [
        ["module", "abc"],
        "abc",
        None,
        {},
        {"module": 1},
        {"module": None},
        {"module": "m", "scopes": ["f"]},
        {"module": "m", "scopes": {"f": 1}},
        {"module": "m", "scopes": None},
        {"module": "m", "free_defs": {"f": None}},
        {"module": "m", "free_defs": []},
        {"module": "m", "bound": "os"},
        {"module": "m", "bound": [1]},
        {"module": "m", "imports": {"import": "os"}},
        {"module": "m", "imports": ["os"]},
        {"module": "m", "error": 1},
        {"module": "m", "spans": [["f", 1]]},
        {"module": "m", "spans": [["f", "1", 2]]},
        {"module": "m", "spans": [[1, 1, 2]]},
        {"module": "m", "spans": ["f"]},
        {"module": "m", "state": ["f"]},
        {"module": "m", "state": {"f": "X"}},
        {"module": "m", "state": {"f": [1]}},
        {"module": "m", "memos": ["f"]},
        {"module": "m", "memos": {"f": [3]}},
        {"module": "m", "memos": {"f": [[3]]}},
        {"module": "m", "memos": {"f": [[0], []]}},
        {"module": "m", "memos": {"f": [["3"], []]}},
        {"module": "m", "memos": {"f": [[3], [True]]}},
    ],
)
def test_from_json_rejects_malformed_data_with_value_error(data: object) -> None:
    with pytest.raises(ValueError, match="file index"):
        FileIndex.from_json(data)


@pytest.mark.parametrize("spans", [5, None], ids=["int", "null"])
def test_from_json_rejects_spans_that_are_not_a_list_with_value_error(spans: object) -> None:
    with pytest.raises(ValueError):
        FileIndex.from_json({"module": "m", "spans": spans})


def test_from_json_rejects_a_dynamic_imports_flag_that_is_not_a_bool() -> None:
    with pytest.raises(ValueError):
        FileIndex.from_json({"module": "m", "dynamic_imports": "no"})


# --- shared state --------------------------------------------------------------------------------

STATE = """
import threading
from pkg import REMOTE

_CURRENT = threading.local()
REGISTRY = {}
HOOKS = []
COUNT = 0


class Box:
    ITEMS = []

    def add(self, item):
        Box.ITEMS.append(item)
        self.items = [item]


def deactivate():
    _CURRENT.locale = None


def register(name, fn):
    REGISTRY[name] = fn


def forget(name):
    del REGISTRY[name]


def hook(fn):
    HOOKS.append(fn)
    setattr(_CURRENT, "hook", fn)


def bump():
    global COUNT
    COUNT += 1


def reads():
    return REGISTRY.get("x"), HOOKS[0], COUNT


def shadows(REGISTRY, HOOKS=None):
    REGISTRY["x"] = 1
    COUNT = 2
    COUNT.real = 3
    return COUNT


def imported():
    REMOTE.value = 1


def outer():
    def inner():
        HOOKS.clear()
    return inner


def comprehension(items):
    names = [REGISTRY for REGISTRY in items]
    REGISTRY.update(names)
"""


def test_the_index_names_the_shared_state_each_function_writes() -> None:
    assert index(STATE).state == {
        "Box.add": ["Box"],
        "deactivate": ["_CURRENT"],
        "register": ["REGISTRY"],
        "forget": ["REGISTRY"],
        "hook": ["HOOKS", "_CURRENT"],
        "bump": ["COUNT"],
        # A nested function's writes are its own scope's; an imported object's are not
        # this module's state; parameters and locals shadow the module's names.
        "outer.<locals>.inner": ["HOOKS"],
        # A comprehension's variable shadows nothing outside it.
        "comprehension": ["REGISTRY"],
    }


def test_a_diff_names_the_state_a_changed_function_writes_in_either_version() -> None:
    removed = diff_indexes(index(STATE), index(STATE.replace("_CURRENT.locale = None", "pass")))
    assert removed.scopes == {"deactivate"}
    assert removed.state == {"_CURRENT"}
    unrelated = diff_indexes(index(STATE), index(STATE.replace('get("x")', 'get("y")')))
    assert unrelated.scopes == {"reads"}
    assert unrelated.state == set()
    # An index written before tia noted state does not say.
    old = FileIndex.from_json({k: v for k, v in index(STATE).to_json().items() if k != "state"})
    assert old.state is None
    assert diff_indexes(old, index(STATE.replace('get("x")', 'get("y")'))).state is None


# --- diff_indexes ----------------------------------------------------------------------------------

BASE = '''
    """A module."""
    import json

    LIMIT = 10


    def add(a, b):
        return a + b


    def mul(a, b):
        # multiply
        return a * b


    class Box:
        SIZE = 3

        def area(self, scale=1):
            return self.SIZE * self.SIZE * scale
    '''


def test_an_identical_version_is_unchanged() -> None:
    result = diff(BASE, BASE)
    assert result == UNCHANGED
    assert result.changed is False


def test_comments_and_blank_lines_are_no_change() -> None:
    new = BASE.replace("# multiply", "# multiply two numbers\n\n\n    # and more")
    new = new.replace('"""A module."""', '"""A module."""\n\n    # header comment\n')
    new = new.replace("return a + b", "return a + b  # sum\n\n")
    assert new != BASE
    assert diff(BASE, new) == UNCHANGED


def test_moving_a_function_up_or_down_is_no_change() -> None:
    moved = (
        BASE.replace("    def add(a, b):\n        return a + b\n", "\n\n\n")
        + "\n\n    def add(a, b):\n        return a + b\n"
    )
    assert "def add" in moved and moved.index("def add") > moved.index("class Box")
    assert diff(BASE, moved) == UNCHANGED
    assert diff(moved, BASE) == UNCHANGED


def test_a_changed_docstring_changes_its_scope_only() -> None:
    new = BASE.replace("def add(a, b):\n", 'def add(a, b):\n        """Sum."""\n')
    result = diff(BASE, new)
    assert result.module_changed is False
    assert result.scopes == {"add"}
    assert result.changed is True


def test_a_changed_module_docstring_is_a_module_change() -> None:
    assert diff(BASE, BASE.replace("A module.", "The module.")).module_changed is True


def test_changing_a_function_body_changes_only_that_scope() -> None:
    result = diff(BASE, BASE.replace("return a * b", "return b * a"))
    assert result == FileDiff(module_changed=False, scopes=frozenset({"mul"}))


CACHED = """
    import functools
    from functools import lru_cache


    @functools.cache
    def table():
        return {"a": 1}


    class Parser:
        @lru_cache(maxsize=None)
        def grammar(self):
            return "g1"

        @functools.cached_property
        def size(self):
            return 3

        def parse(self):
            return self.grammar()
"""


@pytest.mark.parametrize(
    ("old", "new"),
    [('{"a": 1}', '{"a": 2}'), ('"g1"', '"g2"'), ("return 3", "return 4")],
    ids=["cache", "lru_cache on a method", "cached_property"],
)
def test_changing_a_cached_body_is_a_module_change(old: str, new: str) -> None:
    # It runs once per process, inside whichever test needs it first: no recording
    # credits it to the tests that get its cached result.
    assert diff(CACHED, CACHED.replace(old, new)).module_changed is True


def test_changing_an_uncached_method_next_to_cached_ones_changes_only_it() -> None:
    result = diff(CACHED, CACHED.replace("return self.grammar()", "return self.grammar() * 2"))
    assert result == FileDiff(module_changed=False, scopes=frozenset({"Parser.parse"}))


def test_changing_a_method_body_changes_only_that_method() -> None:
    result = diff(BASE, BASE.replace("* scale", "* scale * 1"))
    assert result.module_changed is False
    assert result.scopes == {"Box.area"}


NESTED = """
    def outer(x):
        y = x + 1
        def inner(z=2):
            return z * 3
        return inner() + y
    """


def test_changing_an_outer_body_does_not_change_its_nested_function() -> None:
    result = diff(NESTED, NESTED.replace("y = x + 1", "y = x + 2"))
    assert result.module_changed is False
    assert result.scopes == {"outer"}


def test_changing_a_nested_body_does_not_change_the_outer_function() -> None:
    result = diff(NESTED, NESTED.replace("return z * 3", "return z * 4"))
    assert result.module_changed is False
    assert result.scopes == {"outer.<locals>.inner"}


def test_changing_a_nested_functions_default_changes_the_outer_function_only() -> None:
    result = diff(NESTED, NESTED.replace("z=2", "z=5"))
    assert result.module_changed is False
    assert result.scopes == {"outer"}


def test_changing_a_method_of_a_class_inside_a_function_changes_only_that_method() -> None:
    old = """
        def factory():
            class C:
                KIND = 1
                def m(self):
                    return self.KIND
            return C
        """
    assert diff(old, old.replace("return self.KIND", "return 2")).scopes == {"factory.<locals>.C.m"}
    assert diff(old, old.replace("KIND = 1", "KIND = 2")).scopes == {"factory"}


def test_changing_an_async_function_body_changes_its_scope() -> None:
    old = """
        async def fetch(client):
            return await client.get()
        """
    result = diff(old, old.replace("client.get()", "client.post()"))
    assert result == FileDiff(module_changed=False, scopes=frozenset({"fetch"}))


def test_changing_a_lambda_or_comprehension_changes_the_enclosing_function() -> None:
    old = """
        def f(items):
            key = lambda item: item[0]
            return [key(i) for i in items]
        """
    assert diff(old, old.replace("item[0]", "item[1]")).scopes == {"f"}
    assert diff(old, old.replace("for i in items", "for i in reversed(items)")).scopes == {"f"}
    assert diff(old, old.replace("item[0]", "item[1]")).module_changed is False


def test_changing_a_module_level_lambda_is_a_module_change() -> None:
    old = "square = lambda v: v * v\n"
    assert diff(old, "square = lambda v: v ** 2\n").module_changed is True


def test_changing_a_match_case_changes_the_function_that_holds_it() -> None:
    old = """
        def handle(command):
            match command:
                case ["go", direction]:
                    return direction
                case _:
                    return None
        """
    result = diff(old, old.replace('case ["go", direction]', 'case ["walk", direction]'))
    assert result == FileDiff(module_changed=False, scopes=frozenset({"handle"}))


def test_changing_a_property_setter_changes_only_the_numbered_scope() -> None:
    old = """
        class Box:
            @property
            def size(self):
                return self._size

            @size.setter
            def size(self, value):
                self._size = value
        """
    result = diff(old, old.replace("self._size = value", "self._size = int(value)"))
    assert result == FileDiff(module_changed=False, scopes=frozenset({"Box.size#2"}))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("LIMIT = 10", "LIMIT = 11"),
        ("SIZE = 3", "SIZE = 4"),
        ("def add(a, b):", "def add(a, b=0):"),
        ("def area(self, scale=1):", "def area(self, scale=2):"),
        ("import json", "import json as js"),
    ],
    ids=["module-constant", "class-attribute", "free-def-default", "method-default", "import"],
)
def test_changing_import_time_code_is_a_module_change(old: str, new: str) -> None:
    assert old in BASE
    result = diff(BASE, BASE.replace(old, new))
    assert result.module_changed is True
    assert result.changed is True


def test_changing_or_adding_a_decorator_is_a_module_change() -> None:
    old = """
        import functools


        @functools.lru_cache(maxsize=2)
        def f():
            return 1
        """
    assert diff(old, old.replace("maxsize=2", "maxsize=3")).module_changed is True
    assert diff(BASE, BASE.replace("    def mul", "    @staticmethod\n    def mul")).module_changed is True


def test_changing_a_module_level_match_is_a_module_change() -> None:
    old = """
        match MODE:
            case "fast":
                SPEED = 2
        """
    assert diff(old, old.replace("SPEED = 2", "SPEED = 3")).module_changed is True


@pytest.mark.parametrize("kind", ["def", "async def"])
def test_adding_an_unused_function_only_binds_its_name(kind: str) -> None:
    # Nothing calls it; code that lists the module's names sees it (`tia.names`).
    new = BASE + f"\n\n    {kind} brand_new(x):\n        return json.dumps(x)\n"
    result = diff(BASE, new)
    assert result.new_defs is True
    assert result.names == frozenset({"brand_new"})
    assert result.scopes == frozenset()


def test_adding_an_unused_function_to_a_module_that_star_imports_only_binds_its_name() -> None:
    # Whether the import bound that name already is for `tia.names`, which sees the source.
    old = "from .core import *\n\n\ndef helper():\n    return 1\n"
    result = diff_indexes(index_source(old), index_source(old + "\n\ndef _unused():\n    return 2\n"))
    assert result.new_defs is True
    assert result.names == frozenset({"_unused"})


def test_adding_an_unused_function_whose_default_runs_code_is_a_module_change() -> None:
    new = BASE + "\n\n    def brand_new(x=json.loads('1')):\n        return x\n"
    result = diff(BASE, new)
    assert result.module_changed is True
    assert result.names is None


def test_adding_a_function_that_module_code_refers_to_is_a_module_change() -> None:
    # `__all__` already names `sub`, so defining it changes what `from m import *` gives.
    old = "__all__ = ['add', 'sub']\n\n\ndef add():\n    pass\n"
    new = old + "\n\ndef sub():\n    pass\n"
    assert diff_indexes(index_source(old), index_source(new)).module_changed is True


@pytest.mark.parametrize(
    ("binding", "name"),
    [
        ("from os import path", "path"),
        ("import json", "json"),
        ("import os.path as osp", "osp"),
        ("LIMIT = 3", "LIMIT"),
        ("first, second = 1, 2", "second"),
        ("for item in range(3):\n    pass", "item"),
        ("class Thing:\n    pass", "Thing"),
    ],
    ids=["from-import", "import", "import-as", "assignment", "unpacking", "for-target", "class"],
)
def test_adding_a_function_that_shadows_an_existing_binding_is_a_module_change(
    binding: str, name: str
) -> None:
    old = f"{binding}\n\n\ndef user():\n    return {name}\n"
    new = f"{old}\n\ndef {name}():\n    return 1\n"
    result = diff_indexes(index_source(old), index_source(new))
    assert result.module_changed is True


def test_replacing_a_binding_with_a_function_of_the_same_name_is_a_module_change() -> None:
    old = "helper = None\n\n\ndef user():\n    return helper\n"
    new = "def helper():\n    return None\n\n\ndef user():\n    return helper\n"
    assert diff_indexes(index_source(old), index_source(new)).module_changed is True


def test_adding_a_function_that_shadows_a_match_capture_is_a_module_change() -> None:
    old = "match VALUE:\n    case [mode, *rest]:\n        pass\n"
    new = old + "\n\ndef mode():\n    return 1\n"
    assert diff_indexes(index_source(old), index_source(new)).module_changed is True


def test_adding_a_function_that_shadows_a_builtin_used_by_the_file_is_a_change() -> None:
    old = "def count(items):\n    return len(items)\n"
    new = old + "\n\ndef len(items):\n    return 0\n"
    assert diff_indexes(index_source(old), index_source(new)).changed is True


@pytest.mark.parametrize(
    "name", ["pytest_configure", "pytest_collection_modifyitems", "__getattr__", "__dir__"]
)
def test_adding_a_pytest_hook_or_dunder_function_is_a_module_change(name: str) -> None:
    new = BASE + f"\n\n    def {name}(*args):\n        return None\n"
    result = diff(BASE, new)
    assert result.module_changed is True


def test_removing_a_top_level_function_is_a_module_change() -> None:
    result = diff(BASE, BASE.replace("    def mul(a, b):\n        # multiply\n        return a * b\n", ""))
    assert result.module_changed is True
    assert result.scopes == {"mul"}


def test_renaming_a_top_level_function_is_a_module_change() -> None:
    result = diff(BASE, BASE.replace("def mul(", "def times("))
    assert result.module_changed is True
    assert "mul" in result.scopes


def test_removing_a_method_is_a_module_change_and_lists_the_method() -> None:
    old = "class C:\n    def keep(self):\n        return 1\n\n    def drop(self):\n        return 2\n"
    new = "class C:\n    def keep(self):\n        return 1\n"
    result = diff_indexes(index_source(old), index_source(new))
    assert result.module_changed is True
    assert result.scopes == {"C.drop"}


def test_changing_a_free_defs_signature_is_a_module_change() -> None:
    result = diff(BASE, BASE.replace("def add(a, b):", "def add(a, *, b):"))
    assert result.module_changed is True
    assert "add" in result.detail


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("def f():\n    return 1\n", "def f(:\n    return 1\n"),
        ("def f(:\n    return 1\n", "def f():\n    return 1\n"),
        ("def f(:\n    return 1\n", "def f(:\n    return 1\n"),
    ],
    ids=["new-is-broken", "old-is-broken", "both-broken"],
)
def test_a_file_that_does_not_parse_is_a_module_change(old: str, new: str) -> None:
    result = diff_indexes(index_source(old), index_source(new))
    assert result.module_changed is True
    assert result.changed is True
    assert result.detail
