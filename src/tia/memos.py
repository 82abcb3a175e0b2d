"""Hand-written caches: the functions that keep results in long-lived containers.

A function such as ::

    class Parser:
        _CACHE = {}

        def parse(self, expression):
            cached = self._CACHE.get(expression)
            if cached is not None:
                return cached
            result = self._CACHE[expression] = self._do_parse(expression)  # the fill
            return result

runs `_do_parse` (and the lexer, and everything below them) only in the first test
that parses a given expression; every later test that parses it gets the kept
result and runs none of that code.  Per-test recording credits the code to the one
test, yet a change to it changes what every test that runs ``parse`` sees.

`memo_fills` finds such functions in a module (a *memo*), the lines of the
statements that fill their container (the *fill*: the store, and the simple
statements just before it that compute what it stores) and, where there is one,
the body of the ``if`` that returns what the container held (the *hit*).  The
recorder marks each context that ran a fill line (`filled`): that context ran the
code whose result the container keeps; and each that ran a hit line (`hit`): that
context got a kept result.  `tia.selection` then treats a changed function that
ran, as far as the tests tell, as part of a fill as a change the tests that got a
kept result may see.

A memo's own body both looks up and stores into the same container, and the
container outlives a call:

* a module-level name, or an attribute or item of one: ``_lexer_cache``,
  ``_state.cache``;
* an attribute of ``self``/``cls`` (a method's first parameter) that the class body
  binds, so that it is the class's, not the instance's: ``self._CACHE``;
  any attribute for a classmethod's ``cls`` or a metaclass's method's first
  parameter (both are a class): ``cls.__instances``;
* an attribute of a module-level class, or of ``type(self)`` / ``self.__class__``.

A lookup is ``C.get(...)``, ``C[k]``, ``k in C``, ``C.setdefault(...)``; a store is
``C[k] = v`` (or ``+=``), ``C.setdefault(...)``, ``C.update(...)``.  A cache kept on
an instance (``self._cache = {}`` in ``__init__``) dies with the instance and is
not a memo: most instances live for one test.
"""

from __future__ import annotations

import ast
import bisect
from collections.abc import Callable, Iterator

from tia.bindings import FUNCTION_NODES, module_names, own_nodes

# The markers a context gets in a memo's file when it ran one of the memo's fill lines,
# and one of the lines that return what the cache held.
FILLS = "<fills "
HITS = "<hits "
_LOOKUPS = frozenset({"get", "setdefault", "__getitem__", "__contains__"})
_STORES = frozenset({"setdefault", "update", "__setitem__"})
_EMPTY = frozenset({"list", "dict", "set", "tuple", "object", "OrderedDict", "defaultdict", "deque"})
# The statements that hold others, other than defs and classes.
_COMPOUND = tuple(
    getattr(ast, name)
    for name in ("If", "For", "AsyncFor", "While", "With", "AsyncWith", "Try", "TryStar", "Match")
    if hasattr(ast, name)  # TryStar: Python 3.11+
)
# What a compound statement holds besides its header.
_INNER = (ast.stmt, ast.excepthandler, ast.match_case)


def filled(scope: str) -> str:
    """The dependency that says a context filled `scope`'s cache: ``<fills Parser.parse>``."""
    return f"{FILLS}{scope}>"


def hit(scope: str) -> str:
    """The dependency that says a context found what `scope`'s cache held: ``<hits Parser.parse>``."""
    return f"{HITS}{scope}>"


def memo_of(marker: str) -> str | None:
    """The memo scope a `filled` marker names, or None for any other scope."""
    return marker[len(FILLS) : -1] if marker.startswith(FILLS) and marker.endswith(">") else None


class _Class:
    """What a class body tells about its attributes: the names it binds, and whether
    the class is a metaclass (its attributes through the first parameter are a class's)."""

    def __init__(self, node: ast.ClassDef, metaclasses: set[str]) -> None:
        self.attributes: set[str] = set()
        for stmt in node.body:
            if isinstance(stmt, (*FUNCTION_NODES, ast.ClassDef)):
                self.attributes.add(stmt.name)
            elif not (isinstance(stmt, ast.AnnAssign) and stmt.value is None):  # binds nothing
                for target in ast.walk(stmt):
                    if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store):
                        self.attributes.add(target.id)
        bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
        self.metaclass = bool(bases & metaclasses)


def memo_fills(
    tree: ast.Module, shared: set[str], nodes: list[ast.AST] | None = None
) -> dict[str, list[list[int]]]:
    """Each memo of the module, by qualified name, with the lines of its fill statements
    and those of its hit: the body of an ``if`` that returns what the cache held (empty
    when the code has no such statement).

    `shared` are the names the module binds other than by importing; a name a
    function assigns or takes as a parameter is its own unless declared ``global``."""
    out: dict[str, list[list[int]]] = {}
    metaclasses = {"type", "ABCMeta", "EnumMeta", "EnumType"}
    # Where anything is stored into a container: a function with none of these lines
    # (most of them) needs no closer look.  `nodes`: all of the tree's, if walked already.
    stores = sorted(
        n.lineno
        for n in (ast.walk(tree) if nodes is None else nodes)
        if isinstance(n, (ast.Subscript, ast.Call))
        and any(role != "lookup" for _, role in _container_uses(n))
    )
    for qualname, node, owner in _functions(tree.body, [], None, metaclasses):
        first = bisect.bisect_left(stores, node.lineno)
        if first == len(stores) or stores[first] > (node.end_lineno or node.lineno):
            continue
        fills, hits = _fill_lines(node, shared, owner)
        if fills:
            out[qualname] = [fills, hits]
    return out


def _functions(
    body: list[ast.stmt], prefix: list[str], owner: _Class | None, metaclasses: set[str]
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, _Class | None]]:
    """Functions and methods with their qualified names (as `tia.scopes` names them, but
    for the ``#2`` of a repeated name, which a memo never has in practice) and class."""
    for stmt in body:
        if isinstance(stmt, FUNCTION_NODES):
            yield ".".join([*prefix, stmt.name]), stmt, owner
            yield from _functions(stmt.body, [*prefix, stmt.name, "<locals>"], None, metaclasses)
        elif isinstance(stmt, ast.ClassDef):
            cls = _Class(stmt, metaclasses)
            if cls.metaclass:
                metaclasses.add(stmt.name)
            yield from _functions(stmt.body, [*prefix, stmt.name], cls, metaclasses)
        elif isinstance(stmt, _COMPOUND):
            for inner in ast.iter_child_nodes(stmt):
                if isinstance(inner, ast.stmt):
                    yield from _functions([inner], prefix, owner, metaclasses)
                elif isinstance(inner, (ast.excepthandler, ast.match_case)):
                    yield from _functions(inner.body, prefix, owner, metaclasses)


def _fill_lines(
    node: ast.FunctionDef | ast.AsyncFunctionDef, shared: set[str], owner: _Class | None
) -> tuple[list[int], list[int]]:
    args = [*node.args.posonlyargs, *node.args.args]
    decorators = {d.id for d in node.decorator_list if isinstance(d, ast.Name)}
    first = args[0].arg if args and owner is not None and "staticmethod" not in decorators else None
    class_level = owner is not None and (owner.metaclass or "classmethod" in decorators)
    _, globals_ = module_names(node, list(own_nodes(node)), shared)

    def long_lived(expr: ast.expr) -> str | None:
        """`expr`'s text if it is a container that outlives the call, else None."""
        root, chain = expr, []
        while isinstance(root, (ast.Attribute, ast.Subscript)):
            if isinstance(root, ast.Attribute):
                chain.append(root.attr)
            root = root.value
        if isinstance(root, ast.Call) and isinstance(root.func, ast.Name) and root.func.id == "type":
            ok = bool(chain)  # type(self).X: the class's
        elif not isinstance(root, ast.Name):
            ok = False
        elif root.id in globals_:
            ok = True
        elif root.id == first and chain and owner is not None:
            # self.X: the class's only if the class body binds X (or self is a class).
            ok = class_level or chain[-1] in owner.attributes or chain[-1] == "__class__"
        else:
            ok = False
        return ast.dump(expr) if ok else None

    looked_up: set[str] = set()
    stores: dict[str, list[int]] = {}
    for stmt, first_line, last_line in _simple_statements(node.body):
        for n in _walk_statement(stmt):
            for key, role in _container_uses(n):
                text = long_lived(key)
                if text is None:
                    continue
                if role in ("lookup", "both"):
                    looked_up.add(text)
                if role in ("store", "both"):
                    stores.setdefault(text, []).extend(range(first_line, last_line + 1))
    fills = {line for text, lines in stores.items() if text in looked_up for line in lines}
    if not fills:
        return [], []

    def looks_up(stmt: ast.AST) -> bool:
        return any(long_lived(key) for n in _walk_statement(stmt) for key, _ in _container_uses(n))

    hits: set[int] = set()
    # The simple statements just before a fill in its block make what it stores
    # (`result = self._do_parse(expression)`): a test in which they ran and raised
    # before the store filled nothing, but ran the code a fill runs.
    for block in _blocks(node.body):
        for i, stmt in enumerate(block):
            if stmt.lineno not in fills or not _simple(stmt):
                continue
            j = i
            while j > 0 and _simple(block[j - 1]) and not looks_up(block[j - 1]):
                j -= 1
                fills.update(_lines(block[j]))
            guard = block[j - 1] if j > 0 else None
            if isinstance(guard, ast.If) and _returns_a_hit(guard, block[: j - 1], looks_up, fills):
                hits.update(line for inner in guard.body for line in _lines(inner))
    return sorted(fills), sorted(hits)


def _returns_a_hit(
    stmt: ast.If, earlier: list[ast.stmt], looks_up: Callable[[ast.AST], bool], fills: set[int]
) -> bool:
    """Whether `stmt`, which a call passes on its way to a fill, is ``if <found>: ...
    return``: its body runs exactly when the cache held the key, and ends the call.
    ``<found>`` looks the cache up (``key in CACHE``) or reads a name an earlier
    statement of the block set from a lookup (``cached = CACHE.get(key)``)."""
    if stmt.orelse or not isinstance(stmt.body[-1], ast.Return):
        return False
    if any(line in fills for inner in stmt.body for line in _lines(inner)):
        return False
    if looks_up(ast.Expr(stmt.test)):
        return True
    found = {
        target.id
        for before in earlier
        if isinstance(before, ast.Assign) and looks_up(before)
        for target in before.targets
        if isinstance(target, ast.Name)
    }
    return any(isinstance(n, ast.Name) and n.id in found for n in ast.walk(stmt.test))


def _lines(stmt: ast.stmt) -> range:
    return range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1)


def _simple(stmt: ast.stmt) -> bool:
    """Whether a statement holds no others (nor defines a function or class)."""
    return not isinstance(stmt, (*FUNCTION_NODES, ast.ClassDef)) and not any(
        isinstance(c, _INNER) for c in ast.iter_child_nodes(stmt)
    )


def _blocks(body: list[ast.stmt]) -> Iterator[list[ast.stmt]]:
    """A body and every block of statements inside it, not inside nested functions."""
    yield body
    for stmt in body:
        if isinstance(stmt, (*FUNCTION_NODES, ast.ClassDef)):
            continue
        for child in ast.iter_child_nodes(stmt):
            if isinstance(child, (ast.excepthandler, ast.match_case)):
                yield from _blocks(child.body)
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                yield from _blocks(inner)


def _container_uses(n: ast.AST) -> Iterator[tuple[ast.expr, str]]:
    """The containers a node looks up in or stores into, and how."""
    if isinstance(n, ast.Subscript):
        yield n.value, "lookup" if isinstance(n.ctx, ast.Load) else "store"
    elif isinstance(n, ast.Compare):
        for op, right in zip(n.ops, n.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)):
                yield right, "lookup"
    elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
        attr = n.func.attr
        if attr == "setdefault" and not _computed(n.args[1:2]):
            # `groups.setdefault(key, []).append(x)` collects; it keeps no computed result.
            yield n.func.value, "store"
        elif attr in _LOOKUPS and attr in _STORES:
            yield n.func.value, "both"
        elif attr in _LOOKUPS:
            yield n.func.value, "lookup"
        elif attr in _STORES:
            yield n.func.value, "store"


def _computed(values: list[ast.expr]) -> bool:
    """Whether a value is computed: more than a literal or an empty container."""
    return bool(values) and not all(
        isinstance(v, (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set))
        or (isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id in _EMPTY and not v.args)
        for v in values
    )


def _simple_statements(body: list[ast.stmt]) -> Iterator[tuple[ast.stmt, int, int]]:
    """Each statement of a body with the lines to blame on it: all of a statement that
    holds no others; only the header of one that does (an ``if``'s test, a ``with``'s
    items), which runs whether or not its body does."""
    for stmt in body:
        if isinstance(stmt, (*FUNCTION_NODES, ast.ClassDef)):
            continue
        inner = [c for c in ast.iter_child_nodes(stmt) if isinstance(c, _INNER)]
        if not inner:
            yield stmt, stmt.lineno, stmt.end_lineno or stmt.lineno
            continue
        yield stmt, stmt.lineno, max(stmt.lineno, min(_first(c) for c in inner) - 1)
        for child in inner:
            yield from _simple_statements([child] if isinstance(child, ast.stmt) else child.body)


def _first(node: ast.stmt | ast.excepthandler | ast.match_case) -> int:
    return node.pattern.lineno if isinstance(node, ast.match_case) else node.lineno


def _walk_statement(stmt: ast.stmt) -> Iterator[ast.AST]:
    """The expression nodes of one statement, without the statements it holds."""
    stack: list[ast.AST] = [c for c in ast.iter_child_nodes(stmt) if not isinstance(c, _INNER)]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))
