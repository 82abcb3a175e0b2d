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
of the project's code, an import, ``if``, a dunder such as ``__all__`` but not
``__version__``) may do
more, and `changed_names` then answers ``None``: the whole module changed.
"""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import itertools
import operator
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

from tia.values import FrozenValue

FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
# Stored with every index's units: change it whenever what counts as pure changes,
# except to count more statements pure: `changed_names` needs a changed unit pure in
# both versions, so an older index's stricter judgement only makes it answer None.
UNITS_VERSION = 3

# Callables whose result depends only on their arguments and whose call changes
# nothing else, written as the code spells them.
_PURE_CALLS = frozenset(
    {
        "frozenset", "set", "tuple", "list", "dict", "int", "str", "float", "bool", "bytes",
        "len", "object", "range", "re.compile", "TypeVar", "typing.TypeVar", "t.TypeVar",
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
# Standard-library bases whose class creation runs only `abc.ABCMeta`, which works out
# the abstract methods: a member rebound with the same decorators leaves them as they
# were.  (`ByteString`'s metaclass also warns, on 3.12+.)  Calling such a class is
# another matter: it raises while a method is abstract (`Purity.bare_class`).
_ABC_BASES = frozenset(
    {
        "abc.ABC",
        *(
            f"collections.abc.{name}"
            for name in (
                "AsyncGenerator", "AsyncIterable", "AsyncIterator", "Awaitable", "Buffer",
                "Callable", "Collection", "Container", "Coroutine", "Generator", "Hashable",
                "ItemsView", "Iterable", "Iterator", "KeysView", "Mapping", "MappingView",
                "MutableMapping", "MutableSequence", "MutableSet", "Reversible", "Sequence",
                "Set", "Sized", "ValuesView",
            )
        ),
    }
)  # fmt: skip
_PURE_NODES = (
    ast.Constant, ast.Name, ast.Attribute, ast.Tuple, ast.List, ast.Set, ast.Dict,
    ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.JoinedStr,
    ast.FormattedValue, ast.Subscript, ast.Slice, ast.Starred, ast.ListComp,
    ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.comprehension, ast.keyword,
    ast.expr_context, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)  # fmt: skip


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


# Dunders only code that spells them reads: no import machinery or protocol does.
_METADATA_DUNDERS = frozenset(
    {
        "__version__", "__version_info__", "__author__", "__email__", "__license__",
        "__copyright__", "__credits__", "__maintainer__", "__status__", "__title__",
        "__url__", "__uri__", "__summary__", "__description__", "__docformat__",
    }
)  # fmt: skip


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
        risks: fingerprints of the parts of what it runs at import time that may raise
            (see `_Risks`); empty for a unit that is not pure.
        dead: a def whose binding nothing can see: the next statement of the same body
            binds the name again, as a pure def that does not read it first
            (`_rebound_at_once`: an ``@overload`` stub before the next one or the
            implementation).
    """

    __slots__ = ("dead", "fp", "kind", "names", "owner", "pure", "risks", "scope")

    def __init__(
        self,
        kind: str,
        owner: str,
        fp: str,
        names: tuple[str, ...],
        pure: bool,
        scope: str = "",
        risks: tuple[str, ...] = (),
        dead: bool = False,
    ) -> None:
        self.kind = kind
        self.owner = owner
        self.fp = fp
        self.names = names
        self.pure = pure
        self.scope = scope
        self.risks = risks
        self.dead = dead

    def to_json(self) -> list[Any]:
        names, risks = list(self.names), list(self.risks)
        return [self.kind, self.owner, self.fp, names, self.pure, self.scope, risks, self.dead]

    @classmethod
    def from_json(cls, data: Any) -> Unit:
        if not (
            isinstance(data, list)
            and len(data) == 8
            and data[0] in ("class", "def", "stmt")
            and isinstance(data[1], str)
            and isinstance(data[2], str)
            and isinstance(data[3], list)
            and all(isinstance(n, str) for n in data[3])
            and isinstance(data[4], bool)
            and isinstance(data[5], str)
            and isinstance(data[6], list)
            and all(isinstance(r, str) for r in data[6])
            and isinstance(data[7], bool)
        ):
            raise ValueError("malformed file index: units")
        return cls(data[0], data[1], data[2], tuple(data[3]), data[4], data[5], tuple(data[6]), data[7])


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


def defaults(args: ast.arguments) -> list[ast.expr]:
    """The default values a def or lambda evaluates when it is made."""
    return [d for d in [*args.defaults, *args.kw_defaults] if d is not None]


def parameters(args: ast.arguments) -> list[ast.arg]:
    return [a for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg] if a]


def own_nodes(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.AST]:
    """The nodes of a function's body that run when it runs: not nested functions' bodies."""
    stack: list[ast.AST] = list(node.body)
    while stack:
        child = stack.pop()
        yield child
        if isinstance(child, FUNCTION_NODES):
            stack.extend([*child.decorator_list, *defaults(child.args)])
        else:
            stack.extend(ast.iter_child_nodes(child))


def module_names(
    node: ast.FunctionDef | ast.AsyncFunctionDef, own: list[ast.AST], shared: set[str]
) -> tuple[set[str], set[str]]:
    """Of a function whose own nodes (`own_nodes`) are `own`: the names it declares
    ``global``, and the names through which its body reaches the module's objects:
    `shared` (what the module binds, imports aside) and those it declares, less its
    parameters and locals.  A comprehension's variable is the comprehension's own."""
    declared = {n for s in own if isinstance(s, ast.Global) for n in s.names}
    params = {a.arg for a in parameters(node.args)}
    inner = {id(t) for c in own if isinstance(c, ast.comprehension) for t in ast.walk(c.target)}
    stored = {
        n.id
        for n in own
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load) and id(n) not in inner
    }
    local = (params | stored) - declared
    return declared, (shared | declared) - local


def annotations(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.expr]:
    """A def's annotations, which it evaluates when it is made unless the module postpones them."""
    return [a for a in [*(p.annotation for p in parameters(node.args)), node.returns] if a is not None]


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

    def __init__(self, tree: ast.Module, nodes: Iterable[ast.AST] | None = None) -> None:
        """`nodes`: every node of `tree` (`ast.walk`), when the caller has them already."""
        # A call of `set` is not the builtin's where the module binds `set` itself.
        self.shadowed = {s.name for s in tree.body if isinstance(s, (*FUNCTION_NODES, ast.ClassDef))}
        self.hooks = False
        for n in ast.walk(tree) if nodes is None else nodes:
            if isinstance(n, ast.Name):
                if isinstance(n.ctx, ast.Store):
                    self.shadowed.add(n.id)
            elif isinstance(n, FUNCTION_NODES):
                self.hooks = self.hooks or n.name in _CLASS_HOOKS
            elif isinstance(n, ast.ClassDef):
                self.hooks = self.hooks or any(k.arg == "metaclass" for k in n.keywords)
        self.classes = {s.name: s for s in tree.body if isinstance(s, ast.ClassDef)}
        self.postponed = postponed_annotations(tree)
        self._plain: dict[str, bool] = {}
        self._imported = _imported_modules(tree)

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
        return all(self.expr(d) for d in defaults(args)) and all(
            self.annotation(a.annotation) for a in parameters(args)
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
        return (
            simple
            and not any(_is_dunder(n.id) and n.id not in _METADATA_DUNDERS for n in names)
            and self.expr(node.value)
        )

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
            not self._abc_base(b)
            and (not isinstance(b, ast.Name) or b.id not in self.classes or self.bare_class(b.id))
            for b in node.bases
        )

    def _plain_base(self, base: ast.expr, plain_elsewhere: Collection[str]) -> bool:
        spelled = dotted(base)
        if spelled is not None and spelled.rsplit(".", 1)[-1] in plain_elsewhere:
            return True
        if self._abc_base(base):
            return True
        if not isinstance(base, ast.Name):
            return False
        if base.id in self.classes:
            return self.plain_class(base.id)
        return base.id in BUILTIN_CLASSES and base.id not in self.shadowed

    def _abc_base(self, base: ast.expr) -> bool:
        """Whether `base` spells one of `_ABC_BASES` through the module's imports."""
        spelled = dotted(base)
        if spelled is None:
            return False
        head, _, rest = spelled.partition(".")
        module = self._imported.get(head)
        if module is None or head in self.shadowed:
            return False
        return (f"{module}.{rest}" if rest else module) in _ABC_BASES


def _imported_modules(tree: ast.Module) -> dict[str, str]:
    """What the module's top-level absolute imports bind each name to, as a dotted
    name (``from collections import abc``: ``abc`` -> ``collections.abc``); a name
    imported twice, from different places, is left out."""
    bound: dict[str, str | None] = {}
    for stmt in tree.body:
        pairs: list[tuple[str, str]] = []
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    pairs.append((alias.asname, alias.name))
                else:
                    head = alias.name.split(".")[0]
                    pairs.append((head, head))
        elif isinstance(stmt, ast.ImportFrom) and not stmt.level and stmt.module:
            pairs.extend((a.asname or a.name, f"{stmt.module}.{a.name}") for a in stmt.names)
        for name, target in pairs:
            bound[name] = target if bound.get(name, target) == target else None
    return {name: target for name, target in bound.items() if target is not None}


def binds(stmt: ast.stmt) -> tuple[str, ...]:
    if isinstance(stmt, (*FUNCTION_NODES, ast.ClassDef)):
        return (stmt.name,)
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return tuple((a.asname or a.name).split(".")[0] for a in stmt.names)
    found = [n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
    return tuple(dict.fromkeys(found))


def units_of(
    tree: ast.Module, fp: Callable[[ast.stmt], str], nodes: Iterable[ast.AST] | None = None
) -> list[Unit]:
    """The units of a module (see the module docstring), in order.  `fp` fingerprints
    what a statement runs at import time, as the module's fingerprint sees it; `nodes`
    are every node of `tree`, when the caller has them."""
    purity = Purity(tree, nodes)
    names = ModuleNames(tree, purity)
    risks = _Risks(purity.postponed, names)
    bound = set(_MODULE_NAMES)  # the module's names bound so far, as its statements run
    known: dict[str, Any] = {}  # and the values tia works out of them (`ModuleNames.run`)
    units: list[Unit] = []

    def unit(
        stmt: ast.stmt,
        following: ast.stmt | None,
        owner: str,
        visible: set[str],
        values: dict[str, Any],
        slotted: bool = False,
    ) -> Unit:
        if isinstance(stmt, ast.Pass) or type_checking_only(stmt):
            return Unit("stmt", owner, fp(stmt), (), True)
        # A nested class is one opaque member: `statement` finds it impure.
        pure = purity.statement(stmt)
        # A change to an impure unit is the whole module's: its risks do not matter.
        found = risks.of(stmt, visible, values) if pure else ()
        if slotted and pure:
            # A class attribute named in `__slots__` fails the class: a new member may.
            found += (_fingerprint(ast.Tuple(elts=[ast.Constant(n) for n in binds(stmt)], ctx=ast.Load())),)
        if isinstance(stmt, FUNCTION_NODES):
            scope = f"{owner}.{stmt.name}" if owner else stmt.name
            dead = _rebound_at_once(stmt, following, purity)
            return Unit("def", owner, fp(stmt), (stmt.name,), pure, scope, found, dead)
        return Unit("stmt", owner, fp(stmt), binds(stmt), pure, "", found)

    for stmt, following in _with_next(tree.body):
        if not isinstance(stmt, ast.ClassDef):
            units.append(unit(stmt, following, "", bound, known))
            bound |= bound_anywhere(stmt)
            names.run(stmt, known, purity)
            continue
        body = stmt.body
        stmt.body = []
        try:
            header = fp(stmt)
        finally:
            stmt.body = body
        plain = purity.plain_class(stmt.name)
        found = risks.of(stmt, bound, known) if plain else ()
        units.append(Unit("class", "", header, (stmt.name,), plain, "", found))
        # A class body sees the module's names and its own, as they are bound.
        visible = bound | _CLASS_NAMES
        values = dict(known)
        slotted = any("__slots__" in bound_anywhere(member) for member in body)
        for member, after in _with_next(body):
            units.append(unit(member, after, stmt.name, visible, values, slotted))
            visible |= bound_anywhere(member)
            names.run(member, values, purity)
        bound.add(stmt.name)
        names.run(stmt, known, purity)
    return units


def _with_next(body: list[ast.stmt]) -> Iterator[tuple[ast.stmt, ast.stmt | None]]:
    return itertools.zip_longest(body, body[1:])


def _rebound_at_once(
    stmt: ast.FunctionDef | ast.AsyncFunctionDef, following: ast.stmt | None, purity: Purity
) -> bool:
    """Whether `following`, the statement right after the def `stmt` in the same body, is
    a pure def that binds the same name again without reading it first: in its
    decorators, defaults or evaluated annotations.  Then nothing can see what `stmt`
    bound, and a change to it that only rebinds its name changes no binding anyone
    reads: removing ``@overload`` from a stub, or adding one.  (``@total.setter`` reads
    the name; a decorator tia does not know may look it up through the caller's frame.)"""
    if not isinstance(following, FUNCTION_NODES) or following.name != stmt.name:
        return False
    evaluated = [*following.decorator_list, *defaults(following.args)]
    if not purity.postponed:
        evaluated += annotations(following)
    read = any(isinstance(n, ast.Name) and n.id == stmt.name for e in evaluated for n in ast.walk(e))
    return not read and purity.function(following)


# Names a module, or a class body, has before any of its statements runs.
_MODULE_NAMES = frozenset(
    {
        "__name__", "__file__", "__doc__", "__spec__", "__loader__", "__package__",
        "__builtins__", "__path__", "__cached__",
    }
)  # fmt: skip
_CLASS_NAMES = frozenset({"__module__", "__qualname__"})
_BUILTIN_NAMES = frozenset(dir(builtins))


def bound_anywhere(stmt: ast.stmt) -> set[str]:
    """Every name a statement may bind where it runs (not in the bodies of the defs,
    classes and lambdas it holds): assignments, imports, ``except ... as``, defs and
    classes, also inside ``if``, ``try``, ``with`` and loops."""
    found: set[str] = set()
    stack: list[ast.AST] = [stmt]
    while stack:
        node = stack.pop()
        if isinstance(node, (*FUNCTION_NODES, ast.ClassDef)):
            found.add(node.name)
            stack.extend(node.decorator_list)
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, ast.alias):
            found.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            found.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            found.add(node.rest)
        stack.extend(ast.iter_child_nodes(node))
    return found


class _Risks:
    """The parts of a pure unit's import-time code that may raise, as fingerprints.

    Running a pure unit binds names, or raises: then importing its module fails, and
    with it every test that imports the module.  Literals, containers of literals,
    names bound before the unit runs, lambdas, and arithmetic and `_EVALUABLE` calls on
    literals that work out here cannot raise; anything else may (an attribute, a
    subscript, a call, an operator on names, unpacking, a class's bases), and is kept
    as the fingerprint of its whole subtree.  The same subtree in the unit's old
    version ran without raising, on the same names: only a rebound name can make it
    raise now, and `tia.names` counts such uses of a rebound name as the module's.
    """

    def __init__(self, postponed: bool, names: ModuleNames) -> None:
        self.postponed = postponed
        self.names = names

    def of(self, stmt: ast.stmt, bound: Collection[str], known: dict[str, Any]) -> tuple[str, ...]:
        """`bound`: the names bound when `stmt` runs; `known`: the values tia knows of them."""
        found: list[ast.AST] = []
        expr = functools.partial(self._expr, bound=bound, known=known, found=found)
        if isinstance(stmt, ast.Assign):
            expr(stmt.value)
            if not all(unpacks(t, stmt.value) for t in stmt.targets):
                found.append(stmt)  # unpacking: a count or an iteration that may not fit
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is not None:
                expr(stmt.value)
            if not self.postponed and isinstance(stmt.target, ast.Name):
                expr(stmt.annotation)
            if not isinstance(stmt.target, ast.Name):
                found.append(stmt)
        elif isinstance(stmt, ast.ClassDef):
            for decorator in stmt.decorator_list:
                expr(decorator)
            if stmt.bases or stmt.keywords:
                # Bases decide the layout, the order of lookups, where each attribute is.
                found.append(ast.Tuple(elts=[*stmt.bases, *stmt.keywords], ctx=ast.Load()))
        elif isinstance(stmt, FUNCTION_NODES):
            for decorator in stmt.decorator_list:
                expr(decorator)
            for default in defaults(stmt.args):
                expr(default)
            if not self.postponed:
                for annotation in annotations(stmt):
                    expr(annotation)
        else:
            found.append(stmt)
        return tuple(dict.fromkeys(_fingerprint(node) for node in found))

    def _expr(
        self, node: ast.expr, bound: Collection[str], known: dict[str, Any], found: list[ast.AST]
    ) -> None:
        if isinstance(node, ast.Constant):
            return
        if isinstance(node, ast.Name):
            if node.id not in bound and not self.names.is_builtin(node.id):
                found.append(node)  # it may not be bound yet: a NameError
            return
        if isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                if isinstance(element, ast.Starred):
                    found.append(element)  # iterating may raise
                else:
                    self._expr(element, bound, known, found)
            return
        if isinstance(node, ast.Lambda):  # its body runs when called
            for default in defaults(node.args):
                self._expr(default, bound, known, found)
            return
        if isinstance(node, ast.Dict) and None not in node.keys:
            for key in node.keys:
                if not _is_constant(key):  # type: ignore[arg-type]
                    try:
                        self.names.value(key, known)  # type: ignore[arg-type]
                    except NoValue:
                        found.append(key)  # type: ignore[arg-type]  # it must hash
            for value in node.values:
                self._expr(value, bound, known, found)
            return
        try:
            self.names.value(node, known)
        except NoValue:
            found.append(node)


class ModuleNames:
    """What a module's names are, as far as tia can tell without running it: which are
    the standard modules or builtins of that name, and the value of expressions made of
    literals (see `value`)."""

    def __init__(self, tree: ast.Module, purity: Purity) -> None:
        modules, imported = _imports(tree)
        self.modules = modules  # names bound by `import NAME` only: those modules
        self.taken = purity.shadowed | imported  # names bound otherwise

    def is_module(self, name: str) -> bool:
        return name in self.modules and name not in self.taken

    def is_builtin(self, name: str) -> bool:
        return name in _BUILTIN_NAMES and name not in self.taken and name not in self.modules

    def run(self, stmt: ast.stmt, known: dict[str, Any], purity: Purity) -> bool:
        """Update `known` (name -> value) as running the module-level `stmt` does: whether
        tia worked out the value it binds (`assigned`), which it then cannot raise on.
        What else it binds is no longer known; if it may run the project's code, nothing
        is (a function can rebind the module's names with ``global``)."""
        targets, expression = assigned(stmt)
        if expression is not None:
            try:
                value = self.value(expression, known)
            except NoValue:
                pass
            else:
                known.update(dict.fromkeys(targets, value))
                return True
        if star_import(stmt) or not (
            isinstance(stmt, (ast.Import, ast.ImportFrom)) or _plain_statement(stmt, purity)
        ):
            known.clear()  # `from m import *` binds names nobody spells here
        else:
            for name in bound_anywhere(stmt):
                known.pop(name, None)
        return False

    def value(self, node: ast.expr, known: dict[str, Any] | None = None) -> Any:
        """The value of an expression of literals, arithmetic, `_EVALUABLE` calls and the
        names in `known` (``-1``, ``60 * 60``, ``1 << 20``, ``frozenset({"a"})``,
        ``re.compile("x+")``, ``KB * 1024``); `NoValue` if it holds anything else, or
        raises here as it would at import."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if known is None or node.id not in known:
                raise NoValue
            return known[node.id]
        if isinstance(node, ast.Attribute):
            flag = _RE_FLAGS.get(dotted(node) or "")
            if flag is not None and self.is_module("re"):
                return flag
            if node.attr.startswith("_"):
                raise NoValue
            base = self.value(node.value, known)
            # Reading an attribute of an immutable builtin value does nothing else: `"".join`.
            if not isinstance(base, _IMMUTABLE):
                raise NoValue
            return _guarded(lambda: getattr(base, node.attr))
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            values = [self.value(e, known) for e in node.elts]
            make = {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)]
            return _guarded(lambda: make(values))
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise NoValue
            keys = [self.value(k, known) for k in node.keys]  # type: ignore[arg-type]
            values = [self.value(v, known) for v in node.values]
            return _guarded(lambda: dict(zip(keys, values, strict=True)))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            operand = self.value(node.operand, known)
            return _guarded(lambda: _UNARY[type(node.op)](operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.value(node.left, known), self.value(node.right, known)
            numbers = isinstance(left, _NUMBERS) and isinstance(right, _NUMBERS)
            # Keep the work small: no huge powers or shifts, no repeated sequences.
            if isinstance(node.op, (ast.Pow, ast.LShift)) and not (
                numbers and abs(right) <= 64 and abs(left) <= _BIG
            ):
                raise NoValue
            if isinstance(node.op, ast.Mult) and not numbers:
                raise NoValue
            return _guarded(lambda: _BINARY[type(node.op)](left, right))
        if isinstance(node, ast.Call):
            name = dotted(node.func)
            args = [self.value(a, known) for a in node.args]
            kwargs = {k.arg: self.value(k.value, known) for k in node.keywords if k.arg}
            if len(kwargs) < len(node.keywords) or any(isinstance(a, int) and abs(a) > _BIG for a in args):
                raise NoValue
            if name in _EVALUABLE and self.is_builtin(name):
                return _guarded(lambda: _EVALUABLE[name](*args, **kwargs))  # type: ignore[index]
            if name == "re.compile" and self.is_module("re"):
                return _guarded(lambda: re.compile(*args, **kwargs))
        raise NoValue


def assigned(stmt: ast.stmt) -> tuple[list[str], ast.expr | None]:
    """The names a module-level ``NAME = value`` (or ``A = B = value``, ``NAME: T = value``,
    ``NAME += value``) binds, and the expression of the value it binds them to."""
    if isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
        return [t.id for t in stmt.targets], stmt.value  # type: ignore[attr-defined]
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        return [stmt.target.id], stmt.value
    if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
        # `_NEEDS_SPACE += _BITWISE_OPERATOR`: tuples, as parso's pep8 module adds them.
        name = stmt.target.id
        return [name], ast.BinOp(left=ast.Name(name, ctx=ast.Load()), op=stmt.op, right=stmt.value)
    return [], None


def star_import(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.ImportFrom) and any(a.name == "*" for a in stmt.names)


def _plain_statement(stmt: ast.stmt, purity: Purity) -> bool:
    """Whether running a module-level statement runs none of the project's code."""
    if isinstance(stmt, ast.ClassDef):
        return purity.plain_header(stmt) and all(_plain_statement(s, purity) for s in stmt.body)
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return True  # a docstring
    return isinstance(stmt, ast.Pass) or type_checking_only(stmt) or purity.statement(stmt)


def _imports(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The names the module's own imports bind (not its functions'): those bound only by
    ``import NAME``, each that module; and those bound by any other import."""
    modules: set[str] = set()
    others: set[str] = set()
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (*FUNCTION_NODES, ast.ClassDef, ast.expr)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound = (alias.asname or alias.name).split(".")[0]
                plain = isinstance(node, ast.Import) and (alias.asname is None or alias.asname == alias.name)
                (modules if plain else others).add(bound)
        stack.extend(ast.iter_child_nodes(node))
    return modules - others, others


def _is_constant(node: ast.expr) -> bool:
    """A literal that hashes: a constant or a tuple of them."""
    if isinstance(node, ast.Constant):
        return True
    return isinstance(node, ast.Tuple) and all(_is_constant(e) for e in node.elts)


def _fingerprint(node: ast.AST) -> str:
    return hashlib.blake2b(ast.dump(node).encode("utf-8"), digest_size=8).hexdigest()


def unpacks(target: ast.expr, value: ast.expr) -> bool:
    """Whether assigning `value` to `target` cannot fail: a name, or a tuple of targets
    given a display of as many values (``A, B = 1, 2``)."""
    if isinstance(target, ast.Name):
        return True
    if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)):
        return (
            len(target.elts) == len(value.elts)
            and not any(isinstance(v, ast.Starred) for v in value.elts)
            and all(unpacks(t, v) for t, v in zip(target.elts, value.elts, strict=True))
        )
    return False


class NoValue(Exception):
    """The expression's value is not known to tia (`ModuleNames.value`)."""


_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.LShift: operator.lshift, ast.RShift: operator.rshift,
    ast.BitOr: operator.or_, ast.BitAnd: operator.and_, ast.BitXor: operator.xor,
}  # fmt: skip
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
    ast.Not: operator.not_,
}
# Builtins that make a value of literals and do nothing else, and that no literal of
# a source file's size can keep busy long or make hold much memory (not `bytes(10**9)`).
_EVALUABLE: dict[str, Callable[..., Any]] = {
    name: getattr(builtins, name)
    for name in ("frozenset", "set", "tuple", "list", "dict", "int", "str", "float", "bool", "complex", "len")
}
_NUMBERS = (int, float, bool)
_IMMUTABLE = (str, bytes, int, float, complex, tuple, frozenset)
_RE_FLAGS = {f"re.{name}": flag for name, flag in re.RegexFlag.__members__.items()}
_BIG = 2**64


def _guarded(make: Callable[[], Any]) -> Any:
    try:
        return make()
    except Exception:
        raise NoValue from None


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
    gone: dict[tuple[str, str, tuple[str, ...]], set[str]] = {}  # the old units' risks
    for units, keys in ((old, keys_old), (new, keys_new)):
        left = Counter(common)
        sequence = []
        for u, key in zip(units, keys, strict=True):
            if left[key]:
                left[key] -= 1
                sequence.append(key)
                continue
            changed.append(u)
            if units is old:
                gone.setdefault((u.kind, u.owner, u.names), set()).update(u.risks)
            elif not gone.get((u.kind, u.owner, u.names), set()).issuperset(u.risks):
                # It may raise where the old version ran: `A.B`, `1 / X`, a new name.
                return None
        kept.append(sequence)
    if kept[0] != kept[1] or not changed:
        return None
    headers = [_headers(old), _headers(new)]
    names: set[str] = set()
    defs: set[str] = set()
    for u in changed:
        if not u.pure:
            return None
        # What a dead def bound is bound again at once: no name, class or caller sees it.
        if not u.dead and not (u.kind == "def" and u.owner and _is_dunder(u.names[0])):
            # Python calls a dunder method itself: what runs it runs its scope, in `defs`.
            names.update(u.names)
        if u.scope and not u.dead:
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
            if not u.dead:
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
