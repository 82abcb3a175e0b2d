"""From recorded contexts to dependencies: what each test executed and read, in scopes.

The plugin switches the recorder between these contexts:

* ``T:<nodeid>``: a test's setup, call and teardown;
* ``F:<baseid>::<name>``: the setup of a fixture broader than a function, which
  runs once for many tests (every test whose closure holds it depends on it);
* ``C:<nodeid>``: collecting a collector: importing a test module or conftest,
  ``pytest_generate_tests``, parametrize arguments (every test below it depends on it);
* ``S``: everything else: start-up, hooks, plugins.

The plugin adds one more kind, from the recorder's `importers`:

* ``I:<path>``: the repository lines that were on the stack when a test or fixture
  first imported the module at ``<path>``; every test that depends on that module
  depends on them too (it may use the module only because they imported it).

A test or fixture context that ran a line filling a hand-written cache (`tia.memos`)
also gets the marker ``<fills SCOPE>`` among its scopes in the memo's file: it ran
the code whose result the cache keeps for later tests; one that ran a line returning
what the cache held gets ``<hits SCOPE>``.  Collection, ``S`` and ``I:``
contexts get none: what ran while modules were imported counts as import-time code.

`reduce_run` folds these into one `Deps` per test and the run's `RunFacts`.
This module is pure: the plugin hands it what the recorder saw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from tia.memos import filled, hit, memo_of
from tia.records import TEXT, Deps, RunFacts
from tia.scopes import FileIndex
from tia.values import FrozenValue

if TYPE_CHECKING:
    from tia.recorder import LineGroups

SESSION = "S"
TEST = "T:"
FIXTURE = "F:"
COLLECT = "C:"
IMPORTED = "I:"
IMPORT_CONTEXTS = (COLLECT, SESSION)


def fixture_key(baseid: str, argname: str) -> str:
    return f"{FIXTURE}{baseid}::{argname}"


class TestPlan(FrozenValue):
    """What the plugin knows of one test besides its own context."""

    __test__ = False
    __slots__ = ("collectors", "fixtures", "nodeid")

    def __init__(self, nodeid: str, collectors: tuple[str, ...], fixtures: tuple[str, ...]) -> None:
        self.nodeid = nodeid
        self.collectors = collectors  # node ids of the collectors above it, session ("") first
        self.fixtures = fixtures  # fixture_key() of every broader-than-function fixture it uses


# context -> path -> function scopes (an empty set: the module scope only, or a data file)
ScopesByContext = dict[str, dict[str, set[str]]]


def fills_count(ctx: str) -> bool:
    """Whether a context's fills of a hand-written cache count: a test's or a fixture's."""
    return ctx.startswith((TEST, FIXTURE))


def scopes_by_context(
    lines: LineGroups,
    reads: dict[str, set[str]],
    index_of: Callable[[str], FileIndex | None],
) -> ScopesByContext:
    """Turn executed lines into function scopes, and add the files each context read."""
    tables: dict[str, list[str | None]] = {}
    # path -> line -> the marker of a line that fills a memo's cache or returns what it
    # held (`tia.memos`), for files with memos.
    fill_lines: dict[str, dict[int, str]] = {}
    # path -> group -> its scopes, for the monitoring engine's groups: a code object's lines,
    # one frozenset met in many contexts (tens of thousands of times at a map of click).
    # Keyed by value, not id(), which raises an audit event tia's own hook receives; equal
    # lines of one file reduce to equal scopes.
    reduced: dict[str, dict[frozenset[int], set[str | None]]] = {}
    out: ScopesByContext = {}
    for ctx, files in lines.items():
        target = out.setdefault(ctx, {})
        for path, groups in files.items():
            table = tables.get(path)
            if table is None:
                index = index_of(path)
                table = tables[path] = index.line_scopes() if index and not index.error else []
                reduced[path] = {}
                fill_lines[path] = {
                    line: mark(scope)
                    for scope, (fills, hits) in ((index.memos or {}) if index else {}).items()
                    for lines, mark in ((fills, filled), (hits, hit))
                    for line in lines
                }
            size = len(table)
            cache = reduced[path]
            names: set[str | None] = set()
            for group in groups:
                if type(group) is frozenset:
                    scopes = cache.get(group)
                    if scopes is None:
                        scopes = cache[group] = {table[line] for line in group if line < size}
                else:  # lines that ran, each group met once: the coverage engine's
                    scopes = {table[line] for line in group if line < size}
                    fills = fill_lines[path]
                    if fills and fills_count(ctx):
                        scopes |= {fills[line] for line in group if line in fills}
                names |= scopes
            names.discard(None)
            target.setdefault(path, set()).update(names)  # type: ignore[arg-type]
    for ctx, paths in reads.items():
        target = out.setdefault(ctx, {})
        for path in paths:
            scopes = target.setdefault(path, set())
            if path.endswith(".py"):  # the recorder keeps only reads of Python files as text
                scopes.add(TEXT)
    return out


def _merge(into: dict[str, set[str]], more: dict[str, set[str]] | None) -> None:
    if more:
        for path, scopes in more.items():
            into.setdefault(path, set()).update(scopes)


def reduce_run(
    by_context: ScopesByContext,
    tests: Iterable[TestPlan],
    openers: dict[str, set[str]],
    blob_of: Callable[[str], str],
) -> tuple[dict[str, Deps], RunFacts]:
    """Per-test dependencies and run facts from one run's contexts.

    `blob_of` gives the blob id of the version of a file the run executed.
    """
    deps_by_test: dict[str, Deps] = {}
    for plan in tests:
        merged: dict[str, set[str]] = {}
        _merge(merged, by_context.get(TEST + plan.nodeid))
        for collector in plan.collectors:
            _merge(merged, by_context.get(COLLECT + collector))
        for key in plan.fixtures:
            _merge(merged, by_context.get(key))
        pending = list(merged)
        while pending:  # a module the importing code is in may itself have been imported so
            importers = by_context.get(IMPORTED + pending.pop())
            if importers:
                pending.extend(path for path in importers if path not in merged)
                _merge(merged, importers)
        deps_by_test[plan.nodeid] = {
            path: (blob_of(path), frozenset(scopes)) for path, scopes in merged.items()
        }
    session: Deps = {}
    import_time: dict[str, set[str]] = {}
    memos: dict[str, set[str]] = {}
    for ctx, files in by_context.items():
        if fills_count(ctx):
            for path, scopes in files.items():
                for scope in scopes:
                    memo = memo_of(scope)
                    if memo is not None:
                        memos.setdefault(path, set()).add(memo)
        elif ctx == SESSION:
            for path, scopes in files.items():
                if scopes:
                    session[path] = (blob_of(path), frozenset(scopes))
        elif ctx.startswith(COLLECT):
            for path, scopes in files.items():
                if scopes:
                    import_time.setdefault(path, set()).update(scopes)
    facts = RunFacts(
        session=session,
        import_time={p: frozenset(s) for p, s in import_time.items()},
        reads={p: frozenset(s) for p, s in openers.items() if s},
        memos={p: frozenset(s) for p, s in memos.items()},
    )
    return deps_by_test, facts
