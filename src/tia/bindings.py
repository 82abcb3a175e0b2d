"""Module-level bindings: what each module-level statement binds, and whether running it can do more.

A change to a module's import-time code is, by default, a change to everything
that imports the module.  Most such changes are narrower: ``RATE = 2`` becoming
``RATE = 3``, a class attribute, a default value, an ``@property`` removed.  Running
the new statement rebinds a name and does nothing else, so only code that reads
that name can behave differently (`tia.names` finds that code).

This module cuts a module into *units*: each module-level statement, except that
a class is cut into its header and each statement of its body.  A unit is *pure*
when running it can only bind its names: assignments of expressions made of
literals, names, attributes, operators, comprehensions, lambdas and calls of a
few side-effect-free builtins (`_PURE_CALLS`); defs whose decorators are in
`_PURE_DECORATORS` and whose defaults and annotations are pure; the header of a
class with no keywords and no decorators whose bases are builtins or plainly
made classes of the same file, in a file that defines no class-creation hook
(``__init_subclass__``, ``__set_name__``, a metaclass).  Anything else (a call
of the project's code, an import, ``if``, a dunder such as ``__all__``) may do
more, and `changed_names` then answers ``None``: the whole module changed.
"""

from __future__ import annotations

import ast
import builtins
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

from tia.values import FrozenValue

FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
# Stored with every index's units: change it whenever what counts as pure changes.
UNITS_VERSION = 1

# Callables whose result depends only on their arguments and whose call changes
# nothing else, written as the code spells them.
_PURE_CALLS = frozenset(
    {
        "frozenset", "set", "tuple", "list", "dict", "int", "str", "float", "bool", "bytes",
        "object", "range", "re.compile", "TypeVar", "typing.TypeVar", "t.TypeVar",
        "NewType", "typing.NewType", "t.NewType", "Decimal", "decimal.Decimal", "Fraction",
        "fractions.Fraction", "timedelta", "datetime.timedelta", "Path", "pathlib.Path",
        "PurePath", "pathlib.PurePath", "os.path.join", "os.path.dirname", "os.path.abspath",
        "os.path.basename", "os.getenv", "os.environ.get",
    }
)  # fmt: skip
# Decorators that only wrap or mark the function (``name.setter`` and friends too).
_PURE_DECORATORS = frozenset(
    {
        "staticmethod", "classmethod", "property", "abstractmethod", "abc.abstractmethod",
        "overload", "typing.overload", "t.overload", "cache", "functools.cache",
        "lru_cache", "functools.lru_cache", "cached_property", "functools.cached_property",
    }
)  # fmt: skip
_PROPERTY_PARTS = frozenset({"setter", "getter", "deleter"})
# Methods that calling a class runs.
_CONSTRUCTORS = frozenset({"__new__", "__init__", "__post_init__"})
# Defining one of these changes how other classes are made.
_CLASS_HOOKS = frozenset({"__init_subclass__", "__set_name__", "__prepare__", "__mro_entries__"})
BUILTIN_CLASSES = frozenset(name for name in dir(builtins) if isinstance(getattr(builtins, name), type))
_PURE_NODES = (
    ast.Constant, ast.Name, ast.Attribute, ast.Tuple, ast.List, ast.Set, ast.Dict,
    ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.JoinedStr,
    ast.FormattedValue, ast.Subscript, ast.Slice, ast.Starred, ast.ListComp,
    ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.comprehension, ast.keyword,
    ast.expr_context, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)  # fmt: skip


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


class Unit(FrozenValue):
    """One module-level statement, or one statement of a module-level class's body.

    Attributes:
        kind: ``"class"`` (a class's header: name, bases, keywords, decorators),
            ``"def"`` or ``"stmt"`` (anything else).
        owner: the class whose body holds it, ``""`` at module level.
        fp: fingerprint of what it runs at import time (function bodies stubbed).
        names: the names it binds; a class header binds the class's name.
        pure: running it can do nothing but bind `names` (see the module docstring).
        scope: for a def, the qualified name of its body's scope; else ``""``.
    """

    __slots__ = ("fp", "kind", "names", "owner", "pure", "scope")

    def __init__(
        self, kind: str, owner: str, fp: str, names: tuple[str, ...], pure: bool, scope: str = ""
    ) -> None:
        self.kind = kind
        self.owner = owner
        self.fp = fp
        self.names = names
        self.pure = pure
        self.scope = scope

    def to_json(self) -> list[Any]:
        return [self.kind, self.owner, self.fp, list(self.names), self.pure, self.scope]

    @classmethod
    def from_json(cls, data: Any) -> Unit:
        if not (
            isinstance(data, list)
            and len(data) == 6
            and data[0] in ("class", "def", "stmt")
            and isinstance(data[1], str)
            and isinstance(data[2], str)
            and isinstance(data[3], list)
            and all(isinstance(n, str) for n in data[3])
            and isinstance(data[4], bool)
            and isinstance(data[5], str)
        ):
            raise ValueError("malformed file index: units")
        return cls(data[0], data[1], data[2], tuple(data[3]), data[4], data[5])


def postponed_annotations(tree: ast.Module) -> bool:
    """Whether the module has ``from __future__ import annotations``: then no annotation
    is evaluated, they stay strings."""
    return any(
        isinstance(s, ast.ImportFrom)
        and s.module == "__future__"
        and any(a.name == "annotations" for a in s.names)
        for s in tree.body
    )


def type_checking_only(stmt: ast.stmt) -> bool:
    """``if TYPE_CHECKING:`` without ``else``: it never runs."""
    return (
        isinstance(stmt, ast.If)
        and not stmt.orelse
        and dotted(stmt.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING", "t.TYPE_CHECKING")
    )


def dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


class Purity:
    """Decides whether expressions and statements of one module are pure."""

    def __init__(self, tree: ast.Module) -> None:
        # A call of `set` is not the builtin's where the module binds `set` itself.
        self.shadowed = {
            n.id
            for stmt in tree.body
            if not isinstance(stmt, (ast.Import, ast.ImportFrom))
            for n in ast.walk(stmt)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        } | {s.name for s in tree.body if isinstance(s, (*FUNCTION_NODES, ast.ClassDef))}
        self.hooks = any(
            (isinstance(n, FUNCTION_NODES) and n.name in _CLASS_HOOKS)
            or (isinstance(n, ast.ClassDef) and any(k.arg == "metaclass" for k in n.keywords))
            for n in ast.walk(tree)
        )
        self.classes = {s.name: s for s in tree.body if isinstance(s, ast.ClassDef)}
        self.postponed = postponed_annotations(tree)
        self._plain: dict[str, bool] = {}

    def expr(self, node: ast.AST | None) -> bool:
        if node is None:
            return True
        if isinstance(node, ast.Lambda):  # its body runs when called, not now
            return self.arguments(node.args)
        if isinstance(node, ast.Call):
            name = dotted(node.func)
            known = name in _PURE_CALLS and name.split(".")[0] not in self.shadowed
            return (
                (known or (name is not None and self.bare_class(name)))
                and all(self.expr(a) for a in node.args)
                and all(self.expr(k.value) for k in node.keywords)
            )
        if not isinstance(node, _PURE_NODES):
            return False
        return all(self.expr(child) for child in ast.iter_child_nodes(node))

    def annotation(self, node: ast.expr | None) -> bool:
        return self.postponed or self.expr(node)

    def arguments(self, args: ast.arguments) -> bool:
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        return all(self.expr(d) for d in [*args.defaults, *args.kw_defaults]) and all(
            self.annotation(a.annotation) for a in every if a is not None
        )

    def decorator(self, node: ast.expr) -> bool:
        target = node.func if isinstance(node, ast.Call) else node
        name = dotted(target)
        if name is None:
            return False
        parts = name.split(".")
        known = name in _PURE_DECORATORS or (len(parts) == 2 and parts[1] in _PROPERTY_PARTS)
        if isinstance(node, ast.Call):
            return (
                known
                and all(self.expr(a) for a in node.args)
                and all(self.expr(k.value) for k in node.keywords)
            )
        return known

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        return (
            all(self.decorator(d) for d in node.decorator_list)
            and self.arguments(node.args)
            and self.annotation(node.returns)
            and not getattr(node, "type_params", None)
        )

    def assignment(self, node: ast.stmt) -> bool:
        if isinstance(node, ast.Assign):
            targets: list[ast.expr] = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
            if isinstance(node, ast.AnnAssign) and not self.annotation(node.annotation):
                return False
        else:
            return False
        names = [n for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        simple = all(
            isinstance(n, (ast.Name, ast.Tuple, ast.List, ast.Starred, ast.expr_context))
            for t in targets
            for n in ast.walk(t)
        )
        return simple and not any(_is_dunder(n.id) for n in names) and self.expr(node.value)

    def statement(self, stmt: ast.stmt) -> bool:
        """Whether a statement (not a class's header) only binds the names it binds."""
        if isinstance(stmt, FUNCTION_NODES):
            return self.function(stmt)
        return isinstance(stmt, ast.Pass) or type_checking_only(stmt) or self.assignment(stmt)

    def plain_class(self, name: str) -> bool:
        """Whether making this module's class `name` runs nothing but `type`'s own code."""
        if name not in self._plain:
            self._plain[name] = False  # a cycle is not plain
            self._plain[name] = self.plain_header(self.classes[name])
        return self._plain[name]

    def plain_header(self, node: ast.ClassDef, plain_elsewhere: Collection[str] = ()) -> bool:
        """Whether making the class runs nothing but `type`'s own code, given that the
        classes named in `plain_elsewhere` (``Base``, ``pkg.Base``) are made plainly."""
        return (
            not self.hooks
            and not node.keywords
            and not node.decorator_list
            and not getattr(node, "type_params", None)
            and all(self._plain_base(b, plain_elsewhere) for b in node.bases)
        )

    def bare_class(self, name: str) -> bool:
        """Whether calling this module's class `name` runs no code of the project: it is
        made plainly and neither it nor a base of this module defines a constructor."""
        node = self.classes.get(name)
        if node is None or not self.plain_class(name):
            return False
        defined = {s.name for s in node.body if isinstance(s, FUNCTION_NODES)}
        return not defined & _CONSTRUCTORS and all(
            not isinstance(b, ast.Name) or b.id not in self.classes or self.bare_class(b.id)
            for b in node.bases
        )

    def _plain_base(self, base: ast.expr, plain_elsewhere: Collection[str]) -> bool:
        spelled = dotted(base)
        if spelled is not None and spelled.rsplit(".", 1)[-1] in plain_elsewhere:
            return True
        if not isinstance(base, ast.Name):
            return False
        if base.id in self.classes:
            return self.plain_class(base.id)
        return base.id in BUILTIN_CLASSES and base.id not in self.shadowed


def binds(stmt: ast.stmt) -> tuple[str, ...]:
    if isinstance(stmt, (*FUNCTION_NODES, ast.ClassDef)):
        return (stmt.name,)
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return tuple((a.asname or a.name).split(".")[0] for a in stmt.names)
    found = [n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
    return tuple(dict.fromkeys(found))


def units_of(tree: ast.Module, fp: Callable[[ast.stmt], str]) -> list[Unit]:
    """The units of a module (see the module docstring), in order.  `fp` fingerprints
    what a statement runs at import time, as the module's fingerprint sees it."""
    purity = Purity(tree)
    units: list[Unit] = []

    def unit(stmt: ast.stmt, owner: str) -> Unit:
        if isinstance(stmt, FUNCTION_NODES):
            scope = f"{owner}.{stmt.name}" if owner else stmt.name
            return Unit("def", owner, fp(stmt), (stmt.name,), purity.function(stmt), scope)
        if isinstance(stmt, ast.Pass) or type_checking_only(stmt):
            return Unit("stmt", owner, fp(stmt), (), True)
        # A nested class is one opaque member: `statement` finds it impure.
        return Unit("stmt", owner, fp(stmt), binds(stmt), purity.statement(stmt))

    for stmt in tree.body:
        if not isinstance(stmt, ast.ClassDef):
            units.append(unit(stmt, ""))
            continue
        body = stmt.body
        stmt.body = []
        try:
            header = fp(stmt)
        finally:
            stmt.body = body
        units.append(Unit("class", "", header, (stmt.name,), purity.plain_class(stmt.name)))
        units.extend(unit(member, stmt.name) for member in body)
    return units


def changed_names(old: list[Unit], new: list[Unit]) -> tuple[frozenset[str], frozenset[str]] | None:
    """What a module-level change rebinds: the names, and the scopes of the defs
    whose ``def`` line changed.  ``None`` when the change may do more than rebind
    names: a unit that changed is not pure, nor is its class's header, a dunder
    method appeared or disappeared, the units that did not change moved, or no
    unit changed at all (the module's fingerprint saw something units do not)."""
    keys_old = [(u.kind, u.owner, u.fp) for u in old]
    keys_new = [(u.kind, u.owner, u.fp) for u in new]
    common = Counter(keys_old) & Counter(keys_new)
    changed: list[Unit] = []
    kept: list[list[tuple[str, str, str]]] = []
    for units, keys in ((old, keys_old), (new, keys_new)):
        left = Counter(common)
        sequence = []
        for u, key in zip(units, keys, strict=True):
            if left[key]:
                left[key] -= 1
                sequence.append(key)
            else:
                changed.append(u)
        kept.append(sequence)
    if kept[0] != kept[1] or not changed:
        return None
    headers = [_headers(old), _headers(new)]
    names: set[str] = set()
    defs: set[str] = set()
    for u in changed:
        if not u.pure:
            return None
        if not (u.kind == "def" and u.owner and _is_dunder(u.names[0])):
            # Python calls a dunder method itself: what runs it runs its scope, in `defs`.
            names.update(u.names)
        if u.scope:
            defs.add(u.scope)
        if u.owner:
            if not all(h.get(u.owner) for h in headers):
                return None
            if (
                u.kind == "def"
                and _is_dunder(u.names[0])
                and not (_has_method(old, u.owner, u.names[0]) and _has_method(new, u.owner, u.names[0]))
            ):
                return None
            names.add(u.owner)
    return frozenset(names), frozenset(defs)


def _headers(units: list[Unit]) -> dict[str, bool]:
    """Each class name: whether every header the module gives it is pure."""
    out: dict[str, bool] = {}
    for u in units:
        if u.kind == "class":
            out[u.names[0]] = out.get(u.names[0], True) and u.pure
    return out


def _has_method(units: list[Unit], owner: str, name: str) -> bool:
    return any(u.kind == "def" and u.owner == owner and u.names[0] == name for u in units)
