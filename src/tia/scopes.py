"""The scope index: what a version of a Python file defines, by scope, with fingerprints.

A *scope* is a function or method body, named by its qualified name as Python
spells `__qualname__`: ``Cart.add``, ``outer.<locals>.inner``.  Everything that
runs outside function bodies (imports, constants, class bodies, decorators,
signatures and default values) belongs to the file's *module scope*.

For this source::

    import json                      # line 1   module scope
    RATE = 2                         # line 2   module scope
    class Cart:                      # line 3   module scope
        LIMIT = 9                    # line 4   module scope (class body)
        @staticmethod                # line 5   module scope (decorator)
        def add(x, y=RATE):          # line 6   module scope (signature)
            def norm(v):             # line 7   Cart.add (a def inside a body runs there)
                return v * RATE      # line 8   Cart.add.<locals>.norm
            return norm(x) + y       # line 9   Cart.add

`index_source` gives ``scopes == {"Cart.add": fp1, "Cart.add.<locals>.norm": fp2}``,
``spans == [("Cart.add", 7, 9), ("Cart.add.<locals>.norm", 8, 8)]`` and a
``module`` fingerprint of everything else.

Invariants:

* Fingerprints are hashes of `ast.dump` without positions, so comments, blank
  lines and moving code up or down change nothing; a docstring is code (it can
  be read) and changes its scope's fingerprint.
* A scope's fingerprint covers its own body only: a nested function's body is
  its own scope, while its ``def`` line (decorators, defaults) is part of the
  enclosing body.  Lambdas and comprehensions belong to the scope they are in.
* A *free def* is a module-level function with no decorator, no special name
  (dunder, ``pytest_*``), defined once, not named by module-level code (not
  even in a string such as ``__all__``).  It is left out of the module
  fingerprint, so adding one is not a module change unless its name is a
  builtin or something the old version bound or read anywhere (see
  `diff_indexes`); in a module with ``import *``, the name may also be one the
  import binds, which `tia.names` checks in the modules it imports from.
* A qualified name that occurs twice (a property's getter and setter) gets
  ``#2``, ``#3``... in order of appearance.
* The body of a function behind a caching decorator (``functools.cache``,
  ``lru_cache``, ``cached_property``, see `_CACHING`) is also part of the
  enclosing scope's fingerprint, the module's for a module-level function or a
  method.  Such a body runs once, in whichever test needs it first; later tests
  get its result without running it, so no recording credits it to them, and a
  change to it selects every test that depends on the module or imports it.
* ``state`` names, for each function scope whose own body writes the module's
  shared state (`_state_writes`), the module-level names it writes through:
  ``_CURRENT.locale = None``, ``REGISTRY[key] = f``, ``CACHE.clear()``, or a
  name it declares ``global`` and assigns.  What such a body leaves behind
  outlives the test that ran it, and a later test that reads it never runs it.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tia.bindings import (
    UNITS_VERSION,
    Unit,
    changed_names,
    module_names,
    own_nodes,
    units_of,
)
from tia.memos import memo_fills
from tia.values import FrozenValue

# Names that mean something to Python or pytest just by being defined, so that a
# new function with such a name changes behaviour without being called.
_SPECIAL_NAME = re.compile(r"^(__\w+__|pytest_\w+)$")

_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
# Decorators that memoize (functools, cachetools, boltons and the common spellings),
# by the last part of their name.
_CACHING = frozenset(
    {"cache", "lru_cache", "cached_property", "cached", "cachedmethod", "memoize", "memoized"}
)
_BUILTINS = frozenset(dir(builtins))


def fingerprint(text: str) -> str:
    """A short, stable hash of a canonical AST dump."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=10).hexdigest()


def _dump(node: ast.AST | list[ast.stmt]) -> str:
    if isinstance(node, list):
        return "\n".join(ast.dump(stmt) for stmt in node)
    return ast.dump(node)


class FileIndex(FrozenValue):
    """The scopes, module fingerprint and imports of one version of one file.

    Attributes:
        module: fingerprint of the module scope, free defs excluded.
        scopes: qualified name -> fingerprint of that function body.
        spans: (qualified name, first body line, last line), outer scopes first.
        free_defs: name -> fingerprint of the ``def`` statement of each free def.
        bound: names the module binds (free defs aside) or reads anywhere: a new
            free def with one of these names may change what existing code calls.
        imports: static imports, as produced by `tia.imports.extract_imports`.
        dynamic_imports: the file imports something tia cannot resolve statically.
        error: why the file could not be parsed, or ``None``.
        units: the module-level statements, a class's members one by one (see
            `Unit`), in order; ``None`` in an index written before tia kept them.
        state: function scope -> the module-level names its body writes shared state
            through (see the module docstring), for the scopes that write any;
            ``None`` in an index written before tia kept them.
        memos: function scope -> [the lines of the statements that fill its cache,
            the lines that return what it held], for the functions that keep results
            in a long-lived container (`tia.memos`); ``None`` in an index written
            before tia kept them.
    """

    __slots__ = (
        "bound",
        "dynamic_imports",
        "error",
        "free_defs",
        "imports",
        "memos",
        "module",
        "scopes",
        "spans",
        "state",
        "units",
    )

    def __init__(
        self,
        module: str,
        scopes: dict[str, str] | None = None,
        spans: list[tuple[str, int, int]] | None = None,
        free_defs: dict[str, str] | None = None,
        bound: frozenset[str] = frozenset(),
        imports: list[list[Any]] | None = None,
        dynamic_imports: bool = False,
        error: str | None = None,
        units: list[Unit] | None = None,
        state: dict[str, list[str]] | None = None,
        memos: dict[str, list[list[int]]] | None = None,
    ) -> None:
        self.module = module
        self.scopes = {} if scopes is None else scopes
        self.spans = [] if spans is None else spans
        self.free_defs = {} if free_defs is None else free_defs
        self.bound = bound
        self.imports = [] if imports is None else imports
        self.dynamic_imports = dynamic_imports
        self.error = error
        self.units = units
        self.state = state
        self.memos = memos

    def to_json(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "scopes": self.scopes,
            "spans": [list(s) for s in self.spans],
            "free_defs": self.free_defs,
            "bound": sorted(self.bound),
            "imports": self.imports,
            "dynamic_imports": self.dynamic_imports,
            "error": self.error,
            "units": None if self.units is None else [UNITS_VERSION, [u.to_json() for u in self.units]],
            "state": self.state,
            "memos": self.memos,
        }

    @classmethod
    def from_json(cls, data: Any) -> FileIndex:
        """Rebuild an index read from disk, checking every field's type."""
        if not isinstance(data, dict):
            raise ValueError("a file index must be an object")
        module = data.get("module")
        scopes = data.get("scopes", {})
        spans = data.get("spans", [])
        free_defs = data.get("free_defs", {})
        bound = data.get("bound", [])
        imports = data.get("imports", [])
        error = data.get("error")
        if not isinstance(module, str) or not _is_str_map(scopes) or not _is_str_map(free_defs):
            raise ValueError("malformed file index")
        if not isinstance(bound, list) or not all(isinstance(b, str) for b in bound):
            raise ValueError("malformed file index: bound")
        if not isinstance(imports, list) or not all(isinstance(i, list) for i in imports):
            raise ValueError("malformed file index: imports")
        if error is not None and not isinstance(error, str):
            raise ValueError("malformed file index: error")
        if not isinstance(spans, list):
            raise ValueError("malformed file index: spans")
        dynamic = data.get("dynamic_imports", False)
        if not isinstance(dynamic, bool):
            raise ValueError("malformed file index: dynamic_imports")
        checked_spans = []
        for span in spans:
            if not (
                isinstance(span, list)
                and len(span) == 3
                and isinstance(span[0], str)
                and isinstance(span[1], int)
                and isinstance(span[2], int)
            ):
                raise ValueError("malformed file index: spans")
            checked_spans.append((span[0], span[1], span[2]))
        units = data.get("units")
        if units is not None:
            if not (isinstance(units, list) and len(units) == 2 and isinstance(units[1], list)):
                raise ValueError("malformed file index: units")
            # Units judged by other rules of purity are as good as none: the diff then
            # counts the whole module as changed.
            units = [Unit.from_json(u) for u in units[1]] if units[0] == UNITS_VERSION else None
        state = data.get("state")
        if state is not None and not (
            isinstance(state, dict)
            and all(
                isinstance(k, str) and isinstance(v, list) and all(isinstance(n, str) for n in v)
                for k, v in state.items()
            )
        ):
            raise ValueError("malformed file index: state")
        memos = data.get("memos")
        if memos is not None and not (
            isinstance(memos, dict)
            and all(
                isinstance(k, str)
                and isinstance(v, list)
                and len(v) == 2
                and all(isinstance(lines, list) and all(_is_line(n) for n in lines) for lines in v)
                for k, v in memos.items()
            )
        ):
            raise ValueError("malformed file index: memos")
        return cls(
            module=module,
            scopes=scopes,
            spans=checked_spans,
            free_defs=free_defs,
            bound=frozenset(bound),
            imports=imports,
            dynamic_imports=dynamic,
            error=error,
            units=units,
            state=state,
            memos=memos,
        )

    def line_scopes(self) -> list[str | None]:
        """A lookup table: element *n* is the innermost scope of line *n* (None: module scope)."""
        last = max((end for _, _, end in self.spans), default=0)
        table: list[str | None] = [None] * (last + 1)
        # Outer scopes come first, so inner ones overwrite their lines.
        for name, start, end in self.spans:
            for line in range(start, end + 1):
                table[line] = name
        return table


def _is_line(value: Any) -> bool:
    return type(value) is int and value > 0


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


@contextmanager
def _stubbed(nodes: list[ast.stmt]) -> Iterator[list[ast.stmt]]:
    """`nodes` with every function body in them replaced by one ``pass``, restored on exit.

    What remains is exactly the code that runs in the enclosing scope: def lines,
    decorators, defaults, class bodies.  Stubbing in place and restoring costs far
    less than copying the tree, and dumps the same text.
    """
    saved: list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, list[ast.stmt]]] = []
    stack: list[ast.stmt] = list(nodes)
    try:
        while stack:
            node = stack.pop()
            if isinstance(node, _FUNCTION_NODES) and not is_cached(node):
                saved.append((node, node.body))
                node.body = [ast.Pass()]
            else:
                stack.extend(_inner_statements(node))
        yield nodes
    finally:
        for node, body in reversed(saved):
            node.body = body


def _inner_statements(stmt: ast.stmt) -> Iterator[ast.stmt]:
    """The statements directly inside a compound statement, in order.  Only statements
    define functions and classes, so looking for them needs no walk of the expressions
    that make up most of a tree."""
    for child in ast.iter_child_nodes(stmt):
        if isinstance(child, ast.stmt):
            yield child
        elif isinstance(child, (ast.excepthandler, ast.match_case)):
            yield from child.body


def is_cached(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether a caching decorator (`_CACHING`) wraps the function."""
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in _CACHING:
            return True
    return False


def _stubbed_dump(nodes: list[ast.stmt]) -> str:
    with _stubbed(nodes):
        return _dump(nodes)


def _first_line(stmt: ast.stmt) -> int:
    """Where a statement starts: its first decorator for a decorated def or class."""
    decorators = getattr(stmt, "decorator_list", None) or []
    return min([stmt.lineno, *(d.lineno for d in decorators)])


class ScopeCollector:
    """Walks a module's statements (`_inner_statements`, in the order of appearance
    `_unique` numbers names by), naming every function body and fingerprinting it.
    A lambda is no scope."""

    def __init__(self) -> None:
        self.prefix: list[str] = []
        self.scopes: dict[str, str] = {}
        self.spans: list[tuple[str, int, int]] = []
        self.nodes: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}

    def _unique(self, qualname: str) -> str:
        if qualname not in self.scopes:
            return qualname
        n = 2
        while f"{qualname}#{n}" in self.scopes:
            n += 1
        return f"{qualname}#{n}"

    def statements(self, stmts: list[ast.stmt]) -> None:
        for stmt in stmts:
            if isinstance(stmt, _FUNCTION_NODES):
                self._function(stmt)
            elif isinstance(stmt, ast.ClassDef):
                self.prefix.append(stmt.name)
                self.statements(stmt.body)
                self.prefix.pop()
            else:
                self.statements(list(_inner_statements(stmt)))

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        name = self._unique(".".join([*self.prefix, node.name]))
        self.scopes[name] = fingerprint(_stubbed_dump(node.body))
        self.nodes[name] = node
        self.spans.append((name, _first_line(node.body[0]), node.end_lineno or node.body[-1].lineno))
        self.prefix.extend([node.name, "<locals>"])
        self.statements(node.body)
        del self.prefix[-2:]


def _module_level_loads(tree: ast.Module) -> set[str]:
    """Names read by code that runs at import time (outside function bodies)."""
    names: set[str] = set()
    with _stubbed(tree.body):
        for stmt in tree.body:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                    names.add(node.id)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    # `__all__ = ["f"]` and `getattr(mod, "f")` name a function in a string.
                    names.add(node.value)
    return names


def _bound_names(stmts: list[ast.stmt]) -> set[str]:
    """Names that module-level statements bind."""
    names: set[str] = set()
    for stmt in stmts:
        if isinstance(stmt, (*_FUNCTION_NODES, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for alias in stmt.names:
                names.add((alias.asname or alias.name).split(".")[0])
        else:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    names.add(node.id)
                elif isinstance(node, (*_FUNCTION_NODES, ast.ClassDef)) or (
                    isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name
                ):
                    names.add(node.name)
                elif isinstance(node, ast.MatchMapping) and node.rest:
                    names.add(node.rest)
    return names


def _read_anywhere(nodes: list[ast.AST]) -> set[str]:
    """Every name read anywhere in the module (`nodes`: all of its nodes)."""
    return {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _split_free_defs(tree: ast.Module) -> tuple[list[ast.stmt], dict[str, ast.stmt]]:
    """Separate free defs (see the module docstring) from the rest of the module."""
    loads = _module_level_loads(tree)
    counts: dict[str, int] = {}
    for stmt in tree.body:
        if isinstance(stmt, (*_FUNCTION_NODES, ast.ClassDef)):
            counts[stmt.name] = counts.get(stmt.name, 0) + 1
    others = _bound_names([s for s in tree.body if not isinstance(s, _FUNCTION_NODES)])
    rest: list[ast.stmt] = []
    free: dict[str, ast.stmt] = {}
    for stmt in tree.body:
        if (
            isinstance(stmt, _FUNCTION_NODES)
            and not stmt.decorator_list
            and not _SPECIAL_NAME.match(stmt.name)
            and stmt.name not in loads
            and stmt.name not in others
            and counts[stmt.name] == 1
        ):
            free[stmt.name] = stmt
        else:
            rest.append(stmt)
    return rest, free


def _parse(source: str | bytes, filename: str) -> ast.Module:
    with warnings.catch_warnings():
        # The code's own SyntaxWarnings (invalid escapes...) are for its author, not tia's user.
        warnings.simplefilter("ignore", SyntaxWarning)
        return ast.parse(source, filename=filename)


def memos_of_source(source: str | bytes, filename: str = "<unknown>") -> dict[str, list[list[int]]]:
    """`FileIndex.memos` alone (none for a file that does not parse): what the recorder
    needs while tests run, at a fraction of the cost of `index_source`."""
    try:
        tree = _parse(source, filename)
    except (SyntaxError, ValueError):
        return {}
    return memo_fills(tree, _shared_names(tree))


def _shared_names(tree: ast.Module) -> set[str]:
    """What the module binds other than by importing: its own state."""
    return _bound_names([s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))])


def index_source(source: str | bytes, filename: str = "<unknown>") -> FileIndex:
    """Index one version of a Python file.  A file that does not parse gets ``error`` set."""
    from tia.imports import extract_imports

    try:
        tree = _parse(source, filename)
    except (SyntaxError, ValueError) as exc:
        # Every version that fails to parse is distinct: the fingerprint of the
        # raw text makes any edit to a broken file count as a module change.
        raw = source if isinstance(source, str) else source.decode("utf-8", "replace")
        return FileIndex(module="error:" + fingerprint(raw), error=f"{type(exc).__name__}: {exc}")
    collector = ScopeCollector()
    collector.statements(tree.body)
    rest, free = _split_free_defs(tree)
    shared = _shared_names(tree)
    state = {}
    for name, node in collector.nodes.items():
        written = _state_writes(node, shared)
        if written:
            state[name] = sorted(written)
    # One walk of the whole tree serves both.
    nodes = list(ast.walk(tree))
    imports, dynamic = extract_imports(tree, nodes)
    return FileIndex(
        module=fingerprint(_stubbed_dump(rest)),
        scopes=collector.scopes,
        spans=collector.spans,
        free_defs={name: fingerprint(_stubbed_dump([node])) for name, node in free.items()},
        bound=frozenset(_bound_names(rest) | _read_anywhere(nodes)),
        imports=imports,
        dynamic_imports=dynamic,
        units=units_of(tree, lambda stmt: fingerprint(_stubbed_dump([stmt])), nodes),
        state=state,
        memos=memo_fills(tree, shared, nodes),
    )


# Methods that change the object they are called on: a module-level list, dict, set,
# deque, or a `ContextVar` (`set`, `reset`).
_MUTATORS = frozenset(
    {
        "append", "extend", "insert", "pop", "popitem", "remove", "clear", "update", "setdefault",
        "add", "discard", "appendleft", "extendleft", "popleft", "sort", "reverse", "set", "reset",
        "__setitem__", "__delitem__",
    }
)  # fmt: skip


def _state_writes(node: ast.FunctionDef | ast.AsyncFunctionDef, shared: set[str]) -> set[str]:
    """The names of `shared` (what the module binds, imports aside) through which the
    function's own body writes: an attribute or item stored or deleted
    (``_CURRENT.locale = None``, ``del CACHE[key]``), a mutating method called
    (``REGISTRY.append(f)``), ``setattr`` on it, or the name itself assigned after
    ``global``.  A parameter or local of the same name is not the module's."""
    own = list(own_nodes(node))
    declared, candidates = module_names(node, own, shared)

    def root(expr: ast.expr) -> str | None:
        while isinstance(expr, (ast.Attribute, ast.Subscript)):
            expr = expr.value
        return expr.id if isinstance(expr, ast.Name) and expr.id in candidates else None

    written: set[str] = set()
    for n in own:
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load) and n.id in declared:
            written.add(n.id)
        elif isinstance(n, (ast.Attribute, ast.Subscript)) and not isinstance(n.ctx, ast.Load):
            name = root(n.value)
            if name is not None:
                written.add(name)
        elif isinstance(n, ast.Call):
            func = n.func
            if isinstance(func, ast.Attribute) and func.attr in _MUTATORS:
                name = root(func.value)
            elif isinstance(func, ast.Name) and func.id in ("setattr", "delattr") and n.args:
                name = root(n.args[0])
            else:
                name = None
            if name is not None:
                written.add(name)
    return written


class FileDiff(FrozenValue):
    """How two versions of one file differ, in scopes.

    ``module_changed`` is true when import-time code differs (or the file was
    added, deleted, or does not parse); ``scopes`` lists the function scopes
    of the old version whose body changed or disappeared.  ``names``, for a
    module change that only rebinds names (`tia.bindings.changed_names`): those
    names, and in ``defs`` the scopes of the defs whose ``def`` line changed;
    ``None`` for any other module change.  ``new_defs``: the module-level change
    is only new free defs (`diff_indexes`), which leaves the module's other
    code, a test module's tests included, as it was.  ``state``: the module-level
    names through which the changed scopes, in either version, write shared state
    (`FileIndex.state`); ``None`` when an index does not say.
    """

    __slots__ = ("defs", "detail", "module_changed", "names", "new_defs", "scopes", "state")

    def __init__(
        self,
        module_changed: bool,
        scopes: frozenset[str] = frozenset(),
        detail: str = "",
        names: frozenset[str] | None = None,
        defs: frozenset[str] = frozenset(),
        new_defs: bool = False,
        state: frozenset[str] | None = frozenset(),
    ) -> None:
        self.module_changed = module_changed
        self.scopes = scopes
        self.detail = detail
        self.names = names
        self.defs = defs
        self.new_defs = new_defs
        self.state = state

    @property
    def changed(self) -> bool:
        return self.module_changed or bool(self.scopes)


UNCHANGED = FileDiff(module_changed=False)


def diff_indexes(old: FileIndex, new: FileIndex) -> FileDiff:
    """Compare two versions of a file.

    A free def that is new, whose name is no builtin and was neither bound nor
    read anywhere in the old version, is a change that only binds its name
    (``new_defs``): nothing can have called it, but code that lists the module's
    names (``vars(module)``, ``dir()``) sees it, and `tia.names` finds that code.
    A free def that disappeared or whose ``def`` line changed is a module change
    (something may have imported it).
    """
    if old.error or new.error:
        return FileDiff(module_changed=True, detail=new.error or "the old version did not parse")
    scopes = frozenset(name for name, fp in old.scopes.items() if new.scopes.get(name) != fp)
    state = _written(old, new, scopes)
    if old.module != new.module:
        return _module_change(old, new, scopes, state, "module scope changed")
    for name, fp in old.free_defs.items():
        if new.free_defs.get(name) != fp:
            return _module_change(old, new, scopes, state, f"definition of {name} changed")
    added = sorted(new.free_defs.keys() - old.free_defs.keys())
    for name in added:
        # A name the old version bound or read (a builtin such as `len` included) may be
        # called by existing code: defining it changes what that code does.
        if name in old.bound or name in _BUILTINS:
            return _module_change(old, new, scopes, state, f"{name} redefined")
    if added:
        # Its defaults and annotations run at import: `changed_names` judges them.
        d = _module_change(old, new, scopes, state, f"new function {', '.join(added)}")
        if d.names is not None:
            return FileDiff(True, scopes, d.detail, d.names, d.defs, new_defs=True, state=state)
        return d
    return FileDiff(module_changed=False, scopes=scopes, state=state)


def _written(old: FileIndex, new: FileIndex, scopes: frozenset[str]) -> frozenset[str] | None:
    """The names through which `scopes` write shared state in either version (the old
    one's write may be what the change removed), or None if an index does not say."""
    if old.state is None or new.state is None:
        return None
    return frozenset(n for scope in scopes for n in (*old.state.get(scope, ()), *new.state.get(scope, ())))


def _module_change(
    old: FileIndex, new: FileIndex, scopes: frozenset[str], state: frozenset[str] | None, detail: str
) -> FileDiff:
    rebound = None if old.units is None or new.units is None else changed_names(old.units, new.units)
    if rebound is None:
        return FileDiff(module_changed=True, scopes=scopes, detail=detail, state=state)
    names, defs = rebound
    return FileDiff(
        module_changed=True,
        scopes=scopes,
        detail=f"{detail}: rebinds {', '.join(sorted(names))}",
        names=names,
        defs=defs,
        state=state,
    )
