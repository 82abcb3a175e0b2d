"""Which functions keep a hand-written cache, and which of their lines fill it."""

from __future__ import annotations

import textwrap

import pytest

from tia.scopes import index_source


def memos(source: str) -> dict[str, list[list[int]]] | None:
    return index_source(textwrap.dedent(source)).memos


def test_a_class_attribute_cache_fills_at_the_store_and_at_what_computes_it() -> None:
    # jmespath's Parser.parse: a parse that raises before the store ran the parser too;
    # the `return` under `if kept is not None` runs when the cache held the key.
    assert memos(
        """
        class Parser:
            _CACHE = {}

            def parse(self, text):
                kept = self._CACHE.get(text)
                if kept is not None:
                    return kept
                result = compute(text)
                self._CACHE[text] = result
                return result
        """
    ) == {"Parser.parse": [[9, 10], [8]]}


def test_a_module_level_cache_and_a_metaclass_s_cache_are_memos() -> None:
    assert memos(
        """
        _KEPT = {}


        def get(key):
            found = _KEPT.get(key)
            if found is None:
                _KEPT[key] = found = make(key)
            return found


        class Factory(type):
            def __init__(cls, *args):
                cls.__instances = {}

            def __call__(cls, key):
                if key not in cls.__instances:
                    cls.__instances.setdefault(key, cls.instance(key))
                return cls.__instances[key]
        """
    ) == {"get": [[8], []], "Factory.__call__": [[18], []]}


def test_a_hit_is_an_if_that_returns_what_the_cache_held_before_the_fill() -> None:
    assert memos(
        """
        CACHE = {}


        def direct(key):
            if key in CACHE:
                note(key)
                return CACHE[key]
            CACHE[key] = make(key)
            return CACHE[key]


        def checked(key):
            if key in CACHE:
                log(key)  # no return: the call goes on to the fill
            CACHE[key] = make(key)
            return CACHE[key]


        def elsewhere(key):
            found = CACHE.get(key)
            if found is not None:
                return found
            other = compute(key)
            if other:
                return other
            CACHE[key] = value = make(key)
            return value
        """
    ) == {"direct": [[9], [7, 8]], "checked": [[16], []], "elsewhere": [[27], []]}


@pytest.mark.parametrize(
    "source",
    [
        # A cache on the instance dies with it.
        """
        class Box:
            def __init__(self):
                self._cache = {}

            def get(self, key):
                if key not in self._cache:
                    self._cache[key] = make(key)
                return self._cache[key]
        """,
        # Collecting into a module-level dict keeps no computed result.
        """
        GROUPS = {}


        def add(key, value):
            GROUPS.setdefault(key, []).append(value)
        """,
        # A store with no lookup is a write, not a cache.
        """
        REGISTRY = {}


        def register(name, fn):
            REGISTRY[name] = fn
        """,
        # A parameter or local of the cache's name is not the module's.
        """
        CACHE = {}


        def fill(CACHE, key):
            if key not in CACHE:
                CACHE[key] = make(key)
        """,
    ],
    ids=["instance", "collects", "no-lookup", "parameter"],
)
def test_what_is_not_a_memo(source: str) -> None:
    assert memos(source) == {}
