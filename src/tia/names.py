"""Who reads a name: a module-level change narrowed to the code that reads what it rebinds.

When `tia.bindings` shows that a module-level change only rebinds names
(``RATE = 3``, a class attribute, a default value, a decorator such as
``@property``), only code that reads one of those names can behave differently.
`Readers.narrow` finds that code in the work tree as it is now:

* **readers**: every function scope, in any file, whose own code mentions a
  rebound name: as a variable, an attribute (``self.LIMIT``), an imported name,
  a keyword argument, or a word of a short string (``getattr(obj, "LIMIT")``,
  ``mock.patch("shop.tax.RATE")``); every scope that reads names nobody can list
  (``getattr`` with a computed name, ``vars()``, ``dir()``, ``__dict__``,
  ``globals()``, ``eval``...); and the scopes of the defs whose ``def`` line
  changed.  A test is affected when it ran one of them.
* **the closure**: module-level code that mentions a rebound name and is pure
  (``DOUBLE = RATE * 2``, ``from shop.tax import RATE``, ``class Special(Cart)``)
  rebinds its own names in turn: those are rebound too, to a fixed point.
* **fallback files**: files whose module-level code mentions a rebound name
  and may do more than bind (``register(RATE)``, a decorator, ``if RATE:``).  For
  them the whole-module rule applies: every test that imports them.

`narrow` answers ``None``, and the whole-module rule applies to the changed
file itself, when narrowing cannot be trusted: its own module-level code uses a
rebound name impurely, its dotted name appears in a configuration file
(`tia.configured`) or in a string that import-time code holds (something may
import it by name and read any of its attributes), or code hands its module
object around as a value.  A string in a function body voids the narrowing
only once a test ran that function (`Narrowing.escapes`), and the narrowing of
new functions not even then (`Readers.narrow`'s ``by_name``).
"""

from __future__ import annotations

import ast
import functools
import posixpath
import re
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

from tia import configured
from tia.bindings import (
    BUILTIN_CLASSES,
    FUNCTION_NODES,
    ModuleNames,
    Purity,
    annotations,
    binds,
    defaults,
    dotted,
    parameters,
    star_import,
    type_checking_only,
    unpacks,
)
from tia.imports import ModuleResolver, module_stem
from tia.records import MODULE
from tia.scopes import ScopeCollector, is_cached
from tia.values import FrozenValue

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LONGEST_STRING = 200  # longer strings are prose, not names
# Calls that read the names of a module they reach on their own: any module's.
_READS_MODULES = frozenset({"globals", "eval", "exec", "__import__", "import_module"})
_IMPORTS = frozenset({"__import__", "import_module"})
# Calls that list the names of an object, or of the caller's module.
_LISTS = frozenset({"vars", "dir", "getmembers", "getmembers_static", "globals", "locals"})
# Calls that read the names of an object they are handed: a module's only if the
# file holds the module, a class's only if the test met the class (`Narrowing`).
_READS_OBJECT = frozenset(
    {"vars", "dir", "getmembers", "getmembers_static", "get_type_hints", "signature", "get_annotations"}
)
# Calls that make objects of classes named in data, not in code.
_UNPICKLES = frozenset(
    {
        "pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "dill.loads",
        "cloudpickle.load", "cloudpickle.loads", "yaml.load", "yaml.unsafe_load",
        "yaml.full_load", "jsonpickle.decode", "shelve.open",
    }
)  # fmt: skip
# Calls that find objects, of any class, without naming them.
_FINDS_OBJECTS = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents"})
_BY_NAME = frozenset({"getattr", "hasattr", "setattr", "delattr", "attrgetter", "methodcaller"})
# Comparisons that read no name of a module: it compares by identity.
_IDENTITY = (ast.Is, ast.IsNot, ast.Eq, ast.NotEq)
# Comparisons of strings: a string compared is not one handed to an import.
_COMPARES = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)
# Calls that take a module's dotted name as the name of something else, and import
# nothing by it: a logger, a gettext domain, an installed distribution.
_NAMES_NO_MODULE = frozenset(
    {
        "getLogger", "translation", "bindtextdomain", "textdomain", "dgettext", "dngettext",
        "metadata.version", "metadata.metadata", "metadata.distribution", "metadata.requires",
    }
)  # fmt: skip
# Attributes that hold, or read, an object's names.
_READS_ALL_ATTRS = frozenset({"__dict__", "__getattribute__", "__annotations__"})
# A file that spells none of these has no scope that reads names dynamically.
DYNAMIC_HINT = re.compile(
    rb"\b(?:"
    + b"|".join(
        sorted(
            n.encode()
            for n in {
                *_READS_MODULES,
                *_READS_OBJECT,
                *_BY_NAME,
                *_READS_ALL_ATTRS,
                "modules",
                "__subclasses__",
                "gc",
                *(u.split(".")[0] for u in _UNPICKLES),
            }
        )
    )
    + rb")\b"
)
ANY = "*"  # what a scope that reads names dynamically reads
ATTRIBUTES = "*."  # what a scope that reads an object's names dynamically reads
# How a scope reads names it does not spell: not at all, an object's, or any module's.
NONE, OBJECT, MODULES = 0, 1, 2


def _is_name_string(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _called(call: ast.Call) -> str:
    """The last part of the name a call calls: ``getattr``, ``import_module``."""
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def mentions(
    nodes: Iterable[ast.AST], local: frozenset[str] = frozenset(), handed: frozenset[int] = frozenset()
) -> tuple[set[str], int]:
    """The identifiers code mentions, and how it reads names it does not spell (`NONE`,
    `OBJECT`, `MODULES`).  `nodes` come parents first; `local` are names the code binds
    itself (a parameter called ``dir`` is no builtin); `handed` are the ids of import
    calls that only hand a submodule to whoever asked the package for it
    (`_lazy_submodules`)."""
    found: set[str] = set()
    dynamic = NONE
    called: set[int] = set()  # nodes whose use spells the name they read (`getattr(o, "x")`)
    for node in nodes:
        if isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Store):
                found.add(node.id)
                # `map(getattr, ...)`, `default=vars`: handed on, they read names all the same.
                if id(node) not in called and node.id not in local:
                    if node.id in _READS_MODULES:
                        dynamic = MODULES
                    elif node.id in _READS_OBJECT | _BY_NAME:
                        dynamic = max(dynamic, OBJECT)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
            if dotted(node) == "sys.modules" or node.attr == "__subclasses__":
                dynamic = MODULES  # every module, or classes nobody names
            elif node.attr in _READS_ALL_ATTRS and id(node) not in called:
                dynamic = max(dynamic, OBJECT)
        elif isinstance(node, ast.Subscript):
            # `obj.__dict__["stack"]` spells the name it reads.
            if _is_name_string(node.slice):
                called.add(id(node.value))
        elif isinstance(node, ast.alias):
            found.update(node.name.split("."))
        elif isinstance(node, ast.keyword):
            if node.arg:
                found.add(node.arg)
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, str) and len(node.value) <= _LONGEST_STRING:
                found.update(_IDENTIFIER.findall(node.value))
        elif isinstance(node, ast.Call):
            if id(node) in handed:
                called.add(id(node.func))
            else:
                dynamic = max(dynamic, _call_reads(node, local, called))
    return found, dynamic


def _starts_with_dot(node: ast.expr) -> bool:
    """Whether a string expression certainly starts with a dot: ``"." + name``, ``f".{name}"``."""
    while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        node = node.left
    if isinstance(node, ast.JoinedStr) and node.values:
        node = node.values[0]
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(".")


def _lazy_submodules(node: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[int]:
    """The ids of the calls a package's ``__getattr__`` returns as they are, that import
    one of its submodules by a computed name: ``return import_module("." + name,
    __name__)`` (dateutil's), ``return importlib.import_module(f"{__name__}.{name}")``.
    They read no name: the module goes to code that asked for ``pkg.name``, and what
    that code reads is judged where it is."""
    found: set[int] = set()
    for stmt in _runs(list(node.body), False):
        call = stmt.value if isinstance(stmt, ast.Return) else None
        if not isinstance(call, ast.Call) or _called(call) != "import_module" or not call.args:
            continue
        package = [*call.args[1:2], *(k.value for k in call.keywords if k.arg == "package")]
        first = call.args[0]
        relative = (
            bool(package)
            and all(isinstance(p, ast.Name) and p.id == "__name__" for p in package)
            and _starts_with_dot(first)
        )
        below = (
            not package
            and isinstance(first, ast.JoinedStr)
            and len(first.values) >= 2
            and isinstance(first.values[0], ast.FormattedValue)
            and isinstance(first.values[0].value, ast.Name)
            and first.values[0].value.id == "__name__"
            and isinstance(first.values[1], ast.Constant)
            and str(first.values[1].value).startswith(".")
        )
        if relative or below:
            found.add(id(call))
    return frozenset(found)


def _call_reads(node: ast.Call, local: frozenset[str], called: set[int]) -> int:
    """How a call reads names it does not spell; notes in `called` the nodes it spells."""
    called.add(id(node.func))
    func = node.func
    spelled_key = bool(node.args) and _is_name_string(node.args[0])
    if isinstance(func, ast.Attribute) and func.attr in ("get", "setdefault", "pop") and spelled_key:
        called.add(id(func.value))  # `obj.__dict__.setdefault("stack", [])` spells the name
    name = _called(node)
    if isinstance(func, ast.Name) and name in local:
        return NONE
    if name in _IMPORTS and _absolute_name(node):
        return NONE  # the module it names: `Readers._named_where` looks for that
    if name in _READS_MODULES or dotted(func) in _UNPICKLES | _FINDS_OBJECTS:
        return MODULES
    if name in ("vars", "dir") and not node.args:
        return MODULES  # the caller's own names: a module's, at module level
    if name in _READS_OBJECT:
        return OBJECT
    if name in _BY_NAME:
        spelled = node.args[1:2] if name in ("getattr", "hasattr", "setattr", "delattr") else node.args
        return OBJECT if not spelled or not all(_is_name_string(a) for a in spelled) else NONE
    return NONE


def _absolute_name(call: ast.Call) -> bool:
    """Whether an import call names its module in full: one string, not relative
    (``import_module(".rates", "pkg")``), with no other argument."""
    first = call.args[0] if len(call.args) == 1 and not call.keywords else None
    return (
        isinstance(first, ast.Constant) and isinstance(first.value, str) and not first.value.startswith(".")
    )


def _locals(node: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
    """The names a function binds itself: its parameters and what its body assigns."""
    # Nested functions' bodies are their own: what they bind does not shadow here.
    assigned = {
        n.id
        for n in _runs(list(node.body), False)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    return frozenset({a.arg for a in parameters(node.args)} | assigned)


def _runs(nodes: list[ast.AST], annotations: bool) -> Iterator[ast.AST]:
    """The nodes of `nodes` that run where they are: not function bodies (unless
    cached, as in `tia.scopes`), nor strings that are statements (docstrings).
    Annotations only if `annotations`, and even then not the strings in them:
    forward references stay strings until something asks for type hints."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Expr) and _is_name_string(node.value):
            continue
        yield node
        if isinstance(node, FUNCTION_NODES):
            stack.extend([*node.decorator_list, node.args])
            if annotations and node.returns is not None:
                stack.extend(_annotation(node.returns))
            if is_cached(node):
                stack.extend(node.body)
        elif isinstance(node, ast.arguments):
            stack.extend(defaults(node))
            if annotations:
                for a in parameters(node):
                    if a.annotation is not None:
                        stack.extend(_annotation(a.annotation))
        elif isinstance(node, ast.AnnAssign):
            stack.extend(n for n in (node.target, node.value) if n is not None)
            if annotations:
                stack.extend(_annotation(node.annotation))
        elif isinstance(node, ast.ClassDef):
            stack.extend([*node.decorator_list, *node.bases, *node.keywords, *node.body])
        else:
            stack.extend(ast.iter_child_nodes(node))


def _annotation(node: ast.expr) -> list[ast.AST]:
    """The names and attributes an annotation evaluates (its strings are left out)."""
    return [n for n in ast.walk(node) if isinstance(n, (ast.Name, ast.Attribute))]


def _is_literal(node: ast.AST | None) -> bool:
    """A constant, or a container of constants: it reads no name, whatever its strings say."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _is_literal(k) for k in node.keys) and all(
            _is_literal(v) for v in node.values
        )
    return False


class _UnitReads(FrozenValue):
    """A module-level unit (see `tia.bindings`) of the current version of a file.

    ``aliases`` is set for an import: (imported name, name bound) pairs; ``scope``
    for a def: the qualified name of its body.  ``uses``: how a pure unit's
    import-time code uses what it reads (`_Uses`); ``node``: its statement.
    """

    __slots__ = (
        "aliases",
        "dynamic",
        "header",
        "mentions",
        "names",
        "node",
        "owner",
        "plain",
        "scope",
        "uses",
    )

    def __init__(
        self,
        owner: str,
        names: tuple[str, ...],
        plain: bool,
        mentions: frozenset[str],
        dynamic: bool,
        header: bool = False,
        aliases: tuple[tuple[str, str], ...] | None = None,
        scope: str = "",
        uses: _Uses | None = None,
        node: ast.stmt | None = None,
    ) -> None:
        self.owner = owner
        self.names = names
        self.plain = plain
        self.mentions = mentions
        self.dynamic = dynamic
        self.header = header
        self.aliases = aliases
        self.scope = scope
        self.uses = _NO_USES if uses is None else uses
        self.node = node

    def lists_names(self, own: bool, others: frozenset[str]) -> int:
        """How its import-time code may list names (`_lists_names`)."""
        if self.node is None:
            return NONE
        return _lists_names(_runs([self.node], True), frozenset(), own, others)


class _FileReads:
    """What one Python file's scopes and module-level units mention."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.purity = Purity(tree)
        postponed = self.purity.postponed
        collector = ScopeCollector()
        collector.statements(tree.body)
        self.scope_nodes = collector.nodes
        self._lists: dict[tuple[str, bool, frozenset[str]], int] = {}
        self.scopes: dict[str, tuple[frozenset[str], bool]] = {}
        for name, node in collector.nodes.items():
            handed = _lazy_submodules(node) if name == "__getattr__" else frozenset()
            found, dynamic = mentions(_runs(list(node.body), not postponed), _locals(node), handed)
            self.scopes[name] = (frozenset(found), dynamic)
        self.units: list[_UnitReads] = []
        for stmt in tree.body:
            if isinstance(stmt, ast.ClassDef):
                found, dynamic = mentions(
                    _runs([*stmt.decorator_list, *stmt.bases, *stmt.keywords], not postponed)
                )
                uses = _Uses(not postponed).header(stmt)
                self.units.append(
                    _UnitReads(
                        "", (stmt.name,), False, frozenset(found), dynamic, header=True, uses=uses, node=stmt
                    )
                )
                self.units.extend(self._unit(member, stmt.name) for member in stmt.body)
            else:
                self.units.append(self._unit(stmt, ""))
        self.classes = self.purity.classes

    def _unit(self, stmt: ast.stmt, owner: str) -> _UnitReads:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)) and not owner:
            # Importing again what is imported already only binds names: `from m import RATE`
            # rebinds RATE (under its alias); `import m` rebinds nothing a change to m's names touches.
            aliases = (
                tuple((a.name, a.asname or a.name) for a in stmt.names)
                if isinstance(stmt, ast.ImportFrom)
                else ()
            )
            found, _ = mentions(stmt.names)
            return _UnitReads(owner, (), True, frozenset(found), False, aliases=aliases)
        if (isinstance(stmt, ast.Expr) and _is_name_string(stmt.value)) or type_checking_only(stmt):
            return _UnitReads(owner, (), True, frozenset(), False)  # it does nothing
        plain = self.purity.statement(stmt)
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and _is_literal(stmt.value):
            found, dynamic = set(), False  # `__all__ = ["Cart"]` reads nothing
        else:
            # A plain def's annotations are read only by code that asks for type hints
            # (`get_type_hints`, `signature`: such code reads every name); an impure
            # def hands the function, annotations and all, to code tia does not see.
            annotations = not self.purity.postponed and not (isinstance(stmt, FUNCTION_NODES) and plain)
            found, dynamic = mentions(_runs([stmt], annotations))
        scope = ""
        if isinstance(stmt, FUNCTION_NODES):
            scope = f"{owner}.{stmt.name}" if owner else stmt.name
        uses = _Uses(not self.purity.postponed).statement(stmt) if plain else None
        return _UnitReads(
            owner, binds(stmt), plain, frozenset(found), dynamic, scope=scope, uses=uses, node=stmt
        )

    def lists_names(self, scope: str, own: bool, others: frozenset[str]) -> int:
        """How the scope may list names (`_lists_names`); `own`: the file is the
        changed module, or star-imports, so its own names hold new ones."""
        key = (scope, own, others)
        if key not in self._lists:
            node = self.scope_nodes[scope]
            instance = _instance_parameter(scope, node)
            self._lists[key] = _lists_names(
                _runs(list(node.body), True), _locals(node), own, others, instance
            )
        return self._lists[key]

    def outside_modules(self, tops: Collection[str]) -> frozenset[str]:
        """The names its top-level ``import`` statements bind to a module outside the
        work tree (``import builtins``; `tops`: the first part of every dotted name
        the work tree's modules have), and the builtin classes (``object.__dict__``,
        funcy's), that nothing else in the file binds."""
        names = {
            alias.asname or alias.name.split(".", 1)[0]
            for stmt in self.tree.body
            if isinstance(stmt, ast.Import)
            for alias in stmt.names
            if alias.name.split(".", 1)[0] not in tops
        }
        return frozenset((names | self._builtin_classes) - self.purity.shadowed)

    @functools.cached_property
    def _builtin_classes(self) -> frozenset[str]:
        """The builtin classes no import of the file, at any depth, binds a name of."""
        imported = {
            alias.asname or alias.name.split(".", 1)[0]
            for node in ast.walk(self.tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        return BUILTIN_CLASSES - imported

    @functools.cached_property
    def inert(self) -> frozenset[int]:
        """The ids of the strings that name no module it could import: an entry of
        ``__all__`` (``["tabulate"]`` names a function of the module), or a string only
        compared or given as another kind of name (`_compared_strings`)."""
        return frozenset({id(n) for n in _exported(self.tree)} | _compared_strings(self.tree))

    @functools.cached_property
    def star_imports(self) -> bool:
        return any(isinstance(s, ast.ImportFrom) and star_import(s) for s in self.tree.body)

    @functools.cached_property
    def names(self) -> ModuleNames:
        """Only a file whose import-time code operates on a rebound name needs it (`_values`)."""
        return ModuleNames(self.tree, self.purity)

    def plain_header(self, name: str, plain_classes: set[str]) -> bool:
        """Whether the header of this file's class `name` only makes a class, given
        that the classes named in `plain_classes` are made plainly wherever they are."""
        node = self.classes.get(name)
        return node is not None and self.purity.plain_header(node, plain_classes)


class _Uses:
    """How a pure unit's import-time code uses the names it reads.

    Attributes:
        evaluated: every name it reads, annotations that run included.
        operated: the names whose value it does more with than store it: ``RATE`` in
            ``RATE * 2``, ``total`` in ``total.setter``, ``Cart`` in ``Cart.LIMIT``,
            ``Optional[Cart]`` and ``class Special(Cart)``, both in ``Cart.LIMIT + 1``.
            For another value, that may raise; for a class made as before it does not
            (what differs is its attributes' values, and reading one as more than a
            stored value operates on it in turn).
    """

    def __init__(self, annotations: bool) -> None:
        self.annotations = annotations  # evaluated when the def or assignment runs
        self.evaluated: set[str] = set()
        self.operated: set[str] = set()

    def statement(self, stmt: ast.stmt) -> _Uses:
        if isinstance(stmt, ast.Assign):
            if all(unpacks(t, stmt.value) for t in stmt.targets):
                self._stored(stmt.value)
            else:
                self._operated(stmt.value)  # unpacking iterates it
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is not None:
                self._stored(stmt.value)
            if self.annotations:
                self._stored(stmt.annotation)
        elif isinstance(stmt, ast.AugAssign):
            self._operated(stmt.target)
            self._operated(stmt.value)
        elif isinstance(stmt, FUNCTION_NODES):
            for decorator in stmt.decorator_list:
                self._operated(decorator)  # called with the function
            for default in defaults(stmt.args):
                self._stored(default)
            if self.annotations:
                for annotation in annotations(stmt):
                    self._stored(annotation)
        return self

    def header(self, stmt: ast.ClassDef) -> _Uses:
        for node in [*stmt.bases, *stmt.decorator_list, *stmt.keywords]:
            self._operated(node)
        return self

    def _stored(self, node: ast.expr) -> None:
        """`node`'s value is only stored (bound, held in a display, a default)."""
        if isinstance(node, ast.Constant):
            return
        if isinstance(node, ast.Name):
            self.evaluated.add(node.id)
        elif isinstance(node, ast.Attribute):
            self.evaluated.add(node.attr)
            self._operated(node.value)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                self._stored(element)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if key is None:
                    self._operated(value)  # `**mapping`
                else:
                    self._operated(key)  # hashed
                    self._stored(value)
        elif isinstance(node, ast.Lambda):  # its body runs when called: its readers see that
            for default in defaults(node.args):
                self._stored(default)
        else:
            self._operated(node)

    def _operated(self, node: ast.AST) -> None:
        """Everything `node` reads is operated on (called, hashed, iterated...)."""
        stack = [node]
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.Name, ast.Attribute)):
                name = node.id if isinstance(node, ast.Name) else node.attr
                self.operated.add(name)
                self.evaluated.add(name)
            if isinstance(node, ast.Lambda):
                stack.extend(defaults(node.args))
            else:
                stack.extend(ast.iter_child_nodes(node))


_NO_USES = _Uses(False)


def _within(scope: str, def_scope: str) -> bool:
    """Whether `scope` is the body of the def named `def_scope` (any of its ``#n``) or
    nested in it."""
    return scope == def_scope or scope.startswith((def_scope + ".", def_scope + "#"))


class Narrowing(FrozenValue):
    """Where a module-level change that rebinds names can be seen (see the module docstring).

    A test is affected when it ran a scope of `readers`; or when it ran a scope of
    `attribute_readers`, which read only class attributes that changed (``obj.LIMIT``),
    and also handled one of those classes: it ran one of `readers` (which include
    every scope that names the classes) or code of one of `classes`.  Code that
    never met the class cannot hold an instance of it, whatever it reads.

    The narrowing holds only while no test has run a scope of `escapes`: code
    that imports the changed module by name may hand it to anything, in that
    test or a later one, that reads any of its names; once one ran, every
    importer counts, unless the names are new functions (`Readers.narrow`).
    (``load_tests`` naming a module for `doctest` is such a scope, and pytest
    never runs it.)  For `MODULE`, the file's import-time
    code: it holds while no test depends on the file, nothing imports it and
    none of its code ran outside tests (Sphinx's ``docs/conf.py``, which names
    the package in ``project = "pkg"``, is such a file).

    Attributes:
        readers: file -> {scope: the rebound name it reads, or `ANY`}.
        fallback: file -> a rebound name its module-level code uses impurely.
        attribute_readers: file -> {scope: the class attribute it reads}.
        classes: file -> names of its classes that changed or derive from one.
        escapes: file -> scopes whose code names the changed module in a string.
        rebound: the names the change rebinds, with those bound from them in turn
            (``PREFIX_LEN = len(PREFIX)``, ``from pkg.rates import RATE``).
    """

    __slots__ = ("attribute_readers", "classes", "escapes", "fallback", "readers", "rebound")

    def __init__(
        self,
        readers: dict[str, dict[str, str]],
        fallback: dict[str, str],
        attribute_readers: dict[str, dict[str, str]] | None = None,
        classes: dict[str, set[str]] | None = None,
        escapes: dict[str, set[str]] | None = None,
        rebound: frozenset[str] = frozenset(),
    ) -> None:
        self.readers = readers
        self.fallback = fallback
        self.attribute_readers = {} if attribute_readers is None else attribute_readers
        self.classes = {} if classes is None else classes
        self.escapes = {} if escapes is None else escapes
        self.rebound = rebound


class Readers:
    """Reads of names across the work tree's Python files, parsed when first needed."""

    def __init__(self, paths: Iterable[str], read: Callable[[str], bytes | None]) -> None:
        self._paths = sorted(paths)
        self._python = [p for p in self._paths if p.endswith(".py")]
        self._read = read
        self._texts: dict[str, bytes] = {}
        self._strings: dict[str, list[bytes] | None] = {}  # configuration files' (`_configured`)
        self._files: dict[str, _FileReads | None] = {}
        self._results: dict[tuple[str, frozenset[str], frozenset[str], bool], Narrowing | None] = {}
        self._folded: dict[str, tuple[dict[str, Any], set[int]]] = {}
        self._folding: set[str] = set()

    @functools.cached_property
    def _resolver(self) -> ModuleResolver:
        return ModuleResolver(self._python)

    @functools.cached_property
    def _top_names(self) -> frozenset[str]:
        return frozenset(name.split(".", 1)[0] for name in self._resolver.by_name)

    def _text(self, path: str) -> bytes:
        if path not in self._texts:
            self._texts[path] = self._read(path) or b""
        return self._texts[path]

    def _parsed(self, path: str) -> _FileReads | None:
        if path not in self._files:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", SyntaxWarning)
                    tree = ast.parse(self._text(path), filename=path)
            except (SyntaxError, ValueError):
                self._files[path] = None
            else:
                self._files[path] = _FileReads(tree)
        return self._files[path]

    def narrow(
        self, path: str, names: frozenset[str], defs: frozenset[str], new: bool = False, by_name: bool = False
    ) -> Narrowing | None:
        """Who reads `names`, rebound in `path` (see `Narrowing`).  `new`: they are new
        functions nothing mentioned before (`tia.scopes.FileDiff.new_defs`), which
        code that reads names dynamically sees only if it lists an object's names.

        `by_name`: code of the narrowing's `escapes` ran, and may have handed the module
        it got by name to any code.  New functions are still narrowed: that code reads
        them, and so does whatever lists an object's names, in any file.  Anything else
        is not narrowed (None)."""
        key = (path, names, defs, new, by_name)
        if key not in self._results:
            narrowed = self._narrow(path, names, defs, new, by_name) if new or not by_name else None
            if narrowed is _GREW:  # names other than the new ones are rebound: the full rules
                narrowed = None if by_name else self._narrow(path, names, defs, False, False)
            self._results[key] = narrowed if isinstance(narrowed, Narrowing) else None
        return self._results[key]

    def _narrow(
        self, path: str, names: frozenset[str], defs: frozenset[str], new: bool, by_name: bool
    ) -> Narrowing | object | None:
        named = self._named_where(path)
        if named is None or self._module_escapes(path):
            return None
        escapes, local_importers = named
        changed = self._parsed(path)
        if changed is None:
            return None
        if new and self._star_may_bind(path, names, {path}):
            return _GREW
        # Subclasses elsewhere of a plainly made class that changed are made plainly too.
        plain_classes = {c for c in names if c in changed.classes and changed.plain_header(c, set())}
        # A name a class body binds, and nothing at module level: an attribute, read as
        # `obj.LIMIT` by code that has the class or an instance of it (see `Narrowing`).
        module_level = {n for u in changed.units if not u.owner for n in u.names}
        members: dict[str, set[str]] = {}
        for unit in changed.units:
            for name in unit.names:
                if unit.owner and name in names and name not in module_level and name not in changed.classes:
                    members.setdefault(name, set()).add(unit.owner)
        plain = set(names) - members.keys()
        classes: dict[str, set[str]] = {path: {c for owners in members.values() for c in owners}}
        # Names the change unbinds: reading one at import time raises.  A member counts
        # as unbound when a changed class no longer binds it, though another class does.
        kept: dict[str, set[str]] = {}
        for unit in changed.units:
            kept.setdefault(unit.owner, set()).update(unit.names)
        removed = {
            n
            for n in names - kept.get("", set())
            if not any(n in bound for bound in kept.values())
            or any(n not in kept.get(c, set()) for c in names & changed.classes.keys())
        }
        # Classes, and nothing else, by these names: reading an attribute of one, or
        # deriving from it, works as before (its bases are unchanged: `tia.bindings`).
        made = {c for c in changed.classes if all(u.header for u in changed.units if c in u.names)}
        valued = set(names) - made  # rebound names that may be bound to something else
        hits: dict[str, dict[str, set[str]]] = {}
        runs: dict[str, dict[str, str]] = {}  # scopes whose def changed or reads a rebound default
        fallback: dict[str, str] = {}
        dynamic_done: set[str] = set()
        rebound: set[str] = set()
        batch = set(names)
        # `from module import *` brings no new function that is private (`_name`) or that a
        # literal `__all__` leaves out (a free def is named nowhere at module level).
        starred = not new or (any(not n.startswith("_") for n in names) and not _literal_all(changed.tree))
        while batch:
            rebound |= batch
            # A plain substring search: it may let through a file that only spells a longer
            # name, never keep out one that reads the name.
            pattern = re.compile(b"|".join(re.escape(n.encode()) for n in sorted(batch)))
            grown: set[str] = set()
            for file in self._python:
                text = self._text(file)
                first_dynamic = file not in dynamic_done and DYNAMIC_HINT.search(text) is not None
                if not first_dynamic and pattern.search(text) is None:
                    continue
                dynamic_done.add(file)
                reads = self._parsed(file)
                if reads is None:
                    # It cannot run either; its importers fail whatever tia selects for it.
                    continue
                own = file == path or (starred and reads.star_imports)  # its own names hold new ones
                others = reads.outside_modules(self._top_names) if new else frozenset()
                holds = functools.cache(lambda f=file: f == path or by_name or self._holds_module(f, path))
                for scope, (found, dynamic) in reads.scopes.items():
                    hit = found & batch
                    if hit:
                        hits.setdefault(file, {}).setdefault(scope, set()).update(hit)
                    if not (dynamic and first_dynamic):
                        continue
                    if new:
                        # Only a listing of the module's names sees a new function.
                        listing = reads.lists_names(scope, own, others)
                        if listing == MODULES or (listing == OBJECT and holds()):
                            hits.setdefault(file, {}).setdefault(scope, set()).add(ANY)
                        continue
                    # An object's names are the changed module's only where the file
                    # holds that module; else only a changed class's.
                    reads_what = ANY if dynamic == MODULES or holds() else ATTRIBUTES
                    hits.setdefault(file, {}).setdefault(scope, set()).add(reads_what)
                for unit in reads.units:
                    # Code that runs at import and may raise now: the file's importers fail.
                    risky = (unit.mentions | unit.uses.evaluated) & removed
                    operated = unit.uses.operated & batch - (made - valued)
                    if operated and id(unit.node) not in self._values(file)[1]:
                        risky = risky or operated
                    if risky:
                        fallback.setdefault(file, min(risky))
                        continue
                    hit = unit.mentions & batch
                    sees = unit.dynamic and first_dynamic
                    if sees and new:
                        listing = unit.lists_names(own, others)
                        sees = listing == MODULES or (listing == OBJECT and holds())
                    if not hit and not sees:
                        continue
                    name = min(hit) if hit else ANY
                    if unit.aliases is not None:
                        for imported, bound in unit.aliases:
                            if imported in batch:
                                grown.add(bound)
                                plain.add(bound)
                                (made if imported in made else valued).add(bound)
                        continue
                    if unit.header:
                        if not reads.plain_header(unit.names[0], plain_classes):
                            fallback.setdefault(file, name)
                            continue
                        plain_classes.add(unit.names[0])
                        classes.setdefault(file, set()).add(unit.names[0])
                        made.add(unit.names[0])
                    elif not unit.plain or unit.dynamic:
                        fallback.setdefault(file, name)
                        continue
                    grown.update(unit.names)
                    if not unit.header:
                        valued.update(unit.names)
                    if unit.owner:
                        grown.add(unit.owner)
                        plain.add(unit.owner)
                        made.add(unit.owner)  # a class of a file that did not change
                        classes.setdefault(file, set()).add(unit.owner)
                        for member in unit.names:
                            members.setdefault(member, set()).add(unit.owner)
                    else:
                        plain.update(unit.names)
                    # A def whose defaults changed: whatever runs its body sees them.
                    for scope in reads.scopes:
                        if unit.scope and _within(scope, unit.scope):
                            runs.setdefault(file, {}).setdefault(scope, name)
            batch = grown - rebound
            if new and batch:
                return _GREW
        if path in fallback:
            return None
        for scope in changed.scopes:
            for d in defs:
                if _within(scope, d):
                    runs.setdefault(path, {}).setdefault(scope, d.rsplit(".", 1)[-1])
        readers: dict[str, dict[str, str]] = {f: dict(s) for f, s in runs.items()}
        for file, scopes in local_importers.items():
            reads = self._parsed(file)
            for scope in scopes:
                # A new function is seen only by code that lists the module's names.
                if reads is not None and (not new or reads.lists_names(scope, False, frozenset()) != NONE):
                    readers.setdefault(file, {}).setdefault(scope, ANY)
        attribute_readers: dict[str, dict[str, str]] = {}
        for file, scopes in hits.items():
            for scope, read in scopes.items():
                named = read & plain
                if scope in readers.get(file, {}):
                    continue
                if named or ANY in read:
                    readers.setdefault(file, {})[scope] = min(named) if named else ANY
                else:
                    attribute_readers.setdefault(file, {})[scope] = min(read - {ATTRIBUTES} or read)
        classes = {f: c for f, c in classes.items() if c}
        if not classes:
            # No class changed: an object read dynamically, not the module, holds no
            # rebound name.  (parso's grammar generator runs getattr(namespace, label)
            # at import time; it made every constant's change select every test.)
            attribute_readers = {}
        if by_name:
            # The code that got the module by its name may list it with the standard
            # library's help (`doctest.DocTestSuite("pkg.rates")`).
            for file, scopes in escapes.items():
                for scope in scopes:
                    if scope == MODULE:
                        fallback.setdefault(file, ANY)
                    else:
                        readers.setdefault(file, {}).setdefault(scope, ANY)
        return Narrowing(readers, fallback, attribute_readers, classes, escapes, frozenset(rebound))

    def _values(self, file: str) -> tuple[dict[str, Any], set[int]]:
        """The values of the file's module-level names once it ran, where tia can work
        them out (literals, arithmetic on them, names imported from files where it can:
        `ModuleNames.value`), and the ids of its module-level assignments whose value it
        worked out: those run without raising, whatever names they read."""
        if file in self._folding:
            return {}, set()  # an import cycle: nothing is known for sure
        if file not in self._folded:
            self._folding.add(file)
            try:
                self._folded[file] = self._fold(file)
            finally:
                self._folding.discard(file)
        return self._folded[file]

    def _fold(self, file: str) -> tuple[dict[str, Any], set[int]]:
        known: dict[str, Any] = {}
        folded: set[int] = set()
        reads = self._parsed(file)
        if reads is None:
            return known, folded
        for stmt in reads.tree.body:
            if isinstance(stmt, ast.ImportFrom) and not star_import(stmt):
                source = self._imported_file(file, stmt)
                values = self._values(source)[0] if source else {}
                for alias in stmt.names:
                    bound = alias.asname or alias.name
                    if alias.name in values:
                        known[bound] = values[alias.name]
                    else:
                        known.pop(bound, None)
                continue
            if reads.names.run(stmt, known, reads.purity):
                folded.add(id(stmt))
        return known, folded

    def _imported_file(self, importer: str, node: ast.ImportFrom) -> str | None:
        """The file of the module a ``from ... import`` imports from, if tia can tell."""
        if node.level:
            base = importer
            for _ in range(node.level):
                base = base.rsplit("/", 1)[0] if "/" in base else ""
            stem = "/".join(filter(None, [base, *(node.module or "").split(".")]))
            candidates = {f"{stem}.py", f"{stem}/__init__.py" if stem else "__init__.py"}
            found = candidates & self._resolver.files
        else:
            found = self._resolver.by_name.get(node.module or "", set())
        return next(iter(found)) if len(found) == 1 else None

    def _star_may_bind(self, file: str, names: frozenset[str], seen: set[str]) -> bool:
        """Whether an ``import *`` in `file` may bind one of `names`: a new def by that name
        then shadows what the import brought.  A module brings a name only if its text
        spells it, or, with no ``__all__``, if the name is public and it binds names it does
        not spell or star-imports one; a module outside the work tree may bring anything."""
        reads = self._parsed(file)
        if reads is None:
            return True
        for node in ast.walk(reads.tree):
            if not star_import(node):
                continue
            assert isinstance(node, ast.ImportFrom)
            source = self._imported_file(file, node)
            if source is None:
                return True
            if source in seen:
                continue
            seen.add(source)
            text = self._text(source)
            source_reads = self._parsed(source)
            if source_reads is None or any(n.encode() in text for n in names):
                return True
            if any(isinstance(n, ast.Name) and n.id == "__all__" for n in ast.walk(source_reads.tree)):
                if not _literal_all(source_reads.tree):
                    return True
                continue
            public = frozenset(n for n in names if not n.startswith("_"))
            if public and (
                DYNAMIC_HINT.search(text)
                or public & self._submodules(source)  # bound on the package once imported
                or self._star_may_bind(source, public, seen)
            ):
                return True
        return False

    def _submodules(self, init: str) -> set[str]:
        """The names of the modules and packages right below the package of `init`, if it
        is an ``__init__.py``."""
        if posixpath.basename(init) != "__init__.py":
            return set()
        below = posixpath.dirname(init)
        prefix = f"{below}/" if below else ""
        names = set()
        for file in self._resolver.files:
            rest = file[len(prefix) :] if file.startswith(prefix) else None
            if rest and rest != "__init__.py":
                names.add(rest.split("/", 1)[0].removesuffix(".py"))
        return names

    def _holds_module(self, file: str, path: str) -> bool:
        """Whether `file` imports the module `path`, or a package above it, as an object."""
        reads = self._parsed(file)
        if reads is None:
            return True
        targets = [path]
        directory = path.rsplit("/", 1)[0] if "/" in path else ""
        while directory:
            init = f"{directory}/__init__.py"
            if init in self._resolver.files and init != path:
                targets.append(init)
            directory = directory.rsplit("/", 1)[0] if "/" in directory else ""
        if "__init__.py" in self._resolver.files and path != "__init__.py":
            targets.append("__init__.py")
        return any(
            _module_bindings(reads.tree, file, target, self._dotted_names(target), self._resolver)
            for target in targets
        )

    @functools.cached_property
    def _names_by_file(self) -> dict[str, set[str]]:
        names: dict[str, set[str]] = {}
        for name, files in self._resolver.by_name.items():
            for file in files:
                names.setdefault(file, set()).add(name)
        return names

    def _dotted_names(self, path: str) -> set[str]:
        return self._names_by_file.get(path, set())

    def _named_where(self, path: str) -> tuple[dict[str, set[str]], dict[str, set[str]]] | None:
        """Where a string names the module: code tia cannot see may import it by that
        name and read any of its attributes.  None when configuration names it
        (`_configured`), or a conftest.py or a file configuration names (pytest loads
        those at start-up) holds the string at module level; else, by file, the
        function scopes whose code holds such a string, and `MODULE` for a file whose
        import-time code does (`Narrowing.escapes`); and apart from those, the function
        scopes that hold it only to import the module into a local they only read
        attributes of (`_imports_into_a_local`): they read its names, as readers do."""
        dotted_names = self._dotted_names(path)
        if not dotted_names or self._configured(path):
            return None
        spellings = [n.encode() for n in dotted_names]
        scopes: dict[str, set[str]] = {}
        local: dict[str, set[str]] = {}
        for file in self._python:
            if not any(n in self._text(file) for n in spellings):
                continue
            reads = self._parsed(file)
            if reads is None:
                continue
            inert = reads.inert
            if _holds_name((n for n in _runs(reads.tree.body, True) if id(n) not in inert), dotted_names):
                if file.rsplit("/", 1)[-1] == "conftest.py" or self._configured(file):
                    return None
                scopes.setdefault(file, set()).add(MODULE)
            for scope, node in reads.scope_nodes.items():
                if _holds_name((n for n in _runs(list(node.body), True) if id(n) not in inert), dotted_names):
                    if _imports_into_a_local(node, dotted_names, inert):
                        local.setdefault(file, set()).add(scope)
                    else:
                        scopes.setdefault(file, set()).add(scope)
        return scopes, local

    def _configured(self, path: str) -> bool:
        """Whether a configuration file names the module `path` where something a test
        runs may read it (`tia.configured`)."""
        dotted_names = self._dotted_names(path)
        if not dotted_names:
            return False
        # The name alone: `pkg.mod.NAME` and `pkg.mod:NAME` spell what they read, and
        # `pkg/tests/` is a directory (`testpaths`, a test run's arguments): what imports a
        # module by name spells it with dots.
        pattern = re.compile(
            rb"(?<![\w./])(?:"
            + b"|".join(re.escape(n.encode()) for n in sorted(dotted_names))
            + rb")(?![\w.:/])"
        )
        for candidate in self._config_files:
            if pattern.search(self._text(candidate)) is None:
                continue
            strings = self._live_strings(candidate)
            if strings is None or any(pattern.search(s) for s in strings):
                return True
        return False

    @functools.cached_property
    def _config_files(self) -> list[str]:
        return [p for p in self._paths if p.rsplit("/", 1)[-1] in configured.FILES]

    def _live_strings(self, path: str) -> list[bytes] | None:
        if path not in self._strings:
            self._strings[path] = configured.live_strings(path.rsplit("/", 1)[-1], self._text(path))
        return self._strings[path]

    def _module_escapes(self, path: str) -> bool:
        """Whether some file uses the module object itself as a value (not ``mod.name``):
        whatever receives it may read any of its attributes."""
        dotted_names = self._dotted_names(path)
        last = module_stem(path)
        if self._package_rebinds(path, last):
            return False
        needle = last.encode()
        for file in self._python:
            if file == path or not _spelled_bare(self._text(file), needle):
                continue
            reads = self._parsed(file)
            if reads is None:
                continue
            aliases: set[int] = set()
            bound = _module_bindings(reads.tree, file, path, dotted_names, self._resolver, aliases)
            if bound and _used_as_value(reads.tree, bound, aliases):
                return True
        return False

    def _package_rebinds(self, path: str, name: str) -> bool:
        """Whether the ``__init__.py`` of the package holding the module `path`, called
        `name`, binds `name` last to something else at module level, as dateutil's
        ``from .isoparser import isoparser`` binds a class: ``from pkg import name``,
        ``pkg.name`` and ``import pkg.name as alias`` then all give that, never the
        module (only ``sys.modules`` and importing by a spelled name do, which
        `_named_where` sees)."""
        module = path.removesuffix("/__init__.py") if path.endswith("/__init__.py") else path
        init = posixpath.join(posixpath.dirname(module), "__init__.py")
        if init == path or init not in self._resolver.files:
            return False
        reads = self._parsed(init)
        if reads is None:
            return False
        other = False
        for stmt in reads.tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                other = other or stmt.name == name
            elif isinstance(stmt, ast.ImportFrom) and any((a.asname or a.name) == name for a in stmt.names):
                # `from . import name` binds the module itself; `from .mod import name`, a name of it.
                if stmt.level == 1:
                    itself = not stmt.module
                else:
                    itself = init in self._resolver.by_name.get(stmt.module or "", ())
                other = not itself and stmt.level <= 1
            elif any(_binds(node, name) for node in ast.walk(stmt)):
                return False  # bound some other way, or only on some path: it may be the module
        return other


def _binds(node: ast.AST, name: str) -> bool:
    """Whether `node` binds or unbinds `name` (conservatively: any spelling as a target)."""
    if isinstance(node, ast.Name):
        return node.id == name and not isinstance(node.ctx, ast.Load)
    if isinstance(node, ast.alias):
        return (node.asname or node.name.split(".", 1)[0]) == name
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    return False


# `Readers._narrow`'s answer when new names are not only new: the closure of them grows,
# or an ``import *`` may have bound one of them.
_GREW = object()


def _lists_names(
    nodes: Iterable[ast.AST], local: frozenset[str], own: bool, others: frozenset[str], instance: str = ""
) -> int:
    """How code may list names, the only dynamic reads that see a name nothing spelled
    before: `OBJECT`, an object's it is handed (``vars(obj)``, ``dir(obj)``,
    ``__dict__``), unless that is one of `others`, names the file binds to other
    modules (``dir(builtins)``), or `instance`, a method's ``self`` or ``cls``
    (colorama's ``AnsiCodes.__init__`` runs ``dir(self)``: a module is no instance);
    `MODULES`, any module's (``sys.modules``, ``gc.get_objects()``, ``vars`` handed
    on) or, if `own`, its module's (``globals()``, ``dir()``); else `NONE`.  Reads by a
    computed name (``getattr``, ``import_module``, ``eval``) take the name from
    somewhere that had to spell it."""

    def another_module(node: ast.expr) -> bool:
        if isinstance(node, ast.Name) and node.id == instance:
            return True
        return isinstance(node, ast.Name) and node.id in others and node.id not in local

    level = NONE
    called: set[int] = set()
    keyed: set[int] = set()  # `sys.modules[name]`, `sys.modules.get(name)`: one module, no list
    for node in nodes:
        if isinstance(node, ast.Subscript) or (
            isinstance(node, ast.Attribute) and node.attr in ("get", "pop", "setdefault")
        ):
            keyed.add(id(node.value))
        if isinstance(node, ast.Call):
            name = _called(node)
            if name in _LISTS and not (isinstance(node.func, ast.Name) and name in local):
                called.add(id(node.func))
                listed = [*node.args, *(k.value for k in node.keywords)]
                if name not in ("globals", "locals") and listed:
                    if not all(another_module(a) for a in listed):
                        level = max(level, OBJECT)
                elif own:
                    return MODULES
            elif dotted(node.func) in _FINDS_OBJECTS:
                return MODULES
        elif isinstance(node, ast.Name) and node.id in _LISTS:
            if node.id not in local and id(node) not in called:
                return MODULES  # handed on: whatever calls it may list anything
        elif isinstance(node, ast.Attribute):
            if dotted(node) == "sys.modules" and id(node) not in keyed:
                return MODULES
            if node.attr == "__dict__" and not another_module(node.value):
                level = max(level, OBJECT)
    return level


def _instance_parameter(scope: str, node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """The name of a method's first parameter (``self``, ``cls``), or "" for a function
    that is no method, a static method, or a method that rebinds that parameter."""
    parent = scope.rsplit(".", 1)[0] if "." in scope else ""
    arguments = [*node.args.posonlyargs, *node.args.args]
    if not parent or parent.endswith("<locals>") or not arguments:
        return ""
    if any((dotted(d) or "").rsplit(".", 1)[-1] == "staticmethod" for d in node.decorator_list):
        return ""
    first = arguments[0].arg
    rebound = any(
        isinstance(n, ast.Name) and n.id == first and not isinstance(n.ctx, ast.Load)
        for n in _runs(list(node.body), False)
    )
    return "" if rebound else first


def _literal_all(tree: ast.Module) -> bool:
    """Whether the module sets ``__all__``, and only to strings it spells: assigned
    literal lists or tuples of strings (``__all__ = ["a"]``, ``__all__ += ("b",)``),
    extended only with strings (``__all__.append("c")``), handed to no call.  A star
    import of it then brings no name it does not spell."""

    def literal(value: ast.expr | None) -> bool:
        items = value.elts if isinstance(value, (ast.List, ast.Tuple)) else None
        return items is not None and all(_is_name_string(e) for e in items)

    found = False
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assigned: set[int] = set()  # the `__all__` targets of assignments judged here
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            named = [t for t in targets if isinstance(t, ast.Name) and t.id == "__all__"]
            if named:
                found = True
                assigned.update(map(id, named))
                if not literal(node.value):
                    return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "__all__" and not isinstance(node.ctx, ast.Load):
            if id(node) in assigned:
                continue
            return False  # bound some other way: `for __all__ in ...`, a tuple target, `del`
        elif isinstance(node, ast.Call) and dotted(node.func) in ("__all__.append", "__all__.extend"):
            if not all(_is_name_string(a) or literal(a) for a in node.args) or node.keywords:
                return False
        elif isinstance(node, ast.Attribute) and dotted(node.value) == "__all__":
            if id(node) not in calls or node.attr not in ("append", "extend", "sort", "reverse"):
                return False  # `__all__.append` handed on, or a method that may add any name
        elif isinstance(node, ast.Call) and any(dotted(a) == "__all__" for a in node.args):
            return False  # handed to a call that may change it
    return found


def _exported(tree: ast.Module) -> Iterator[ast.AST]:
    """The nodes of the values a module assigns to ``__all__`` at module level."""
    for stmt in tree.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
        value = getattr(stmt, "value", None)
        if value is not None and any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            yield from ast.walk(value)


def _compared_strings(tree: ast.Module) -> set[int]:
    """The ids of the string constants that code only compares with another string:
    operands of ``==``, ``!=``, ``in`` and ``not in`` (or items of a literal operand),
    and arguments of ``startswith`` and ``endswith`` (dateutil's tests pick its
    modules out of ``sys.modules`` by ``name.startswith("dateutil")``; that listing
    reads names dynamically, and counts as such); and the first argument of a call
    that names something else by it (`_names_no_module`)."""
    out: set[int] = set()

    def strings(node: ast.expr) -> Iterator[ast.expr]:
        for item in node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]:
            if isinstance(item, ast.Constant) and isinstance(item.value, str):
                yield item

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and all(isinstance(op, _COMPARES) for op in node.ops):
            out.update(id(c) for operand in (node.left, *node.comparators) for c in strings(operand))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("startswith", "endswith")
        ):
            out.update(id(c) for arg in node.args for c in strings(arg))
        elif isinstance(node, ast.Call) and node.args and _names_no_module(node.func):
            out.update(id(c) for c in strings(node.args[0]))
    return out


def _names_no_module(func: ast.expr) -> bool:
    """Whether a call to `func` takes its first argument as a name that is no module's
    (`_NAMES_NO_MODULE`): ``logging.getLogger("shop")``, humanize's
    ``gettext.translation("humanize", ...)``, ``importlib.metadata.version("shop")``."""
    spelled = dotted(func) or ""
    return any(spelled == name or spelled.endswith("." + name) for name in _NAMES_NO_MODULE)


def _holds_name(nodes: Iterable[ast.AST], dotted_names: set[str]) -> bool:
    """Whether code holds a string that names one of the modules `dotted_names`, or
    imports it by name: ``__import__("pkg.sub")`` returns ``pkg``."""
    for node in nodes:
        if isinstance(node, ast.Constant) and node.value in dotted_names:
            return True
        if isinstance(node, ast.Call) and node.args and _called(node) == "__import__":
            first = node.args[0]
            if isinstance(first, ast.Constant) and str(first.value).split(".", 1)[0] in dotted_names:
                return True
    return False


def _spelled_bare(text: bytes, name: bytes) -> bool:
    """Whether `text` may use `name` other than in an import line or as ``name.attr``:
    a quick test before parsing (it errs towards yes)."""
    start = text.find(name)
    while start != -1:
        end = start + len(name)
        before = text[start - 1 : start]
        after = text[end : end + 1]
        whole = not (before.isalnum() or before == b"_") and not (after.isalnum() or after == b"_")
        if whole or before[:1] >= b"\x80" or after[:1] >= b"\x80":
            line_start = text.rfind(b"\n", 0, start) + 1
            line = text[line_start : text.find(b"\n", end) % (len(text) + 1)].lstrip()
            if line.startswith((b"import ", b"from ")):
                if b" as " in line:  # the module is bound under another name: parse to see
                    return True
            elif not text[end:].lstrip(b" \t").startswith(b"."):
                return True
        start = text.find(name, end)
    return False


def _module_bindings(
    tree: ast.Module,
    importer: str,
    module: str,
    dotted_names: set[str],
    resolver: ModuleResolver,
    aliases: set[int] | None = None,
) -> set[str]:
    """The spellings under which `importer` refers to the module object of `module`:
    its own import (``import pkg.mod``, ``from pkg import mod``), or a package's above
    it (``import pkg``, then ``pkg.mod``); the ids of the `ast.alias` nodes that bind
    them are added to `aliases`."""
    bound: set[str] = set()

    def bind(alias: ast.alias, spelling: str) -> None:
        bound.add(spelling)
        if aliases is not None:
            aliases.add(id(alias))

    def bind_below(alias: ast.alias, package: str, binding: str) -> None:
        # `binding` is the package spelled `package`: `binding.mod` is the module below it.
        for name in dotted_names:
            if name.startswith(package + "."):
                bind(alias, binding + name[len(package) :])

    below = module.removesuffix(".py").removesuffix("/__init__")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in dotted_names:
                    bind(alias, alias.asname or alias.name)
                    continue
                # `import pkg` (or `import pkg.other`) binds `pkg`; `import pkg as p` binds `p`.
                package = alias.name if alias.asname else alias.name.split(".", 1)[0]
                bind_below(alias, package, alias.asname or package)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                record = ["from", node.level, node.module or "", [alias.name]]
                if node.level:
                    # `from . import mod`: resolving the package and the name finds the module.
                    full = resolver.resolve(importer, [record]) - resolver.resolve(
                        importer, [["from", node.level, node.module or "", []]]
                    )
                    if module in full:
                        bind(alias, alias.asname or alias.name)
                    for package in full:
                        # `from . import sub`, a package above the module: `sub.mod` is it.
                        directory = package.removesuffix("__init__.py")
                        if package.endswith("/__init__.py") and below.startswith(directory):
                            rest = below[len(directory) :].replace("/", ".")
                            bind(alias, f"{alias.asname or alias.name}.{rest}")
                else:
                    named = f"{node.module}.{alias.name}"
                    if named in dotted_names:
                        bind(alias, alias.asname or alias.name)
                    bind_below(alias, named, alias.asname or alias.name)
    return bound


def _used_as_value(tree: ast.Module, bound: set[str], aliases: set[int]) -> bool:
    """Whether any spelling in `bound` (``mod`` or ``pkg.mod``), which the import
    aliases `aliases` bind, is used other than to read one of its attributes, to
    compare it (``mod is other``, ``mod == other``: a module compares by identity)
    or to test its truth."""
    nodes = list(ast.walk(tree))
    inner = _harmless_uses(nodes)
    shadowed = _shadowed_names(tree, {b.split(".", 1)[0] for b in bound}, aliases)
    for node in nodes:
        if id(node) in inner or not isinstance(node, (ast.Name, ast.Attribute)):
            continue
        spelled = dotted(node)
        if spelled is None or id(_root(node)) in shadowed:
            continue
        # The outermost spelling of a chain: `pkg.mod.X` reads X; `pkg.mod` alone is the module.
        if spelled in bound and not isinstance(getattr(node, "ctx", None), ast.Store):
            return True
    return False


def _harmless_uses(nodes: list[ast.AST]) -> set[int]:
    """The ids of the expressions among `nodes` whose module, if they hold one, no
    code gets hold of: read an attribute of, compared, truth-tested, or handed to a
    call that spells the name it reads or reads every name (which `mentions` sees)."""
    inner = {id(n.value) for n in nodes if isinstance(n, ast.Attribute)}
    inner.update(
        id(operand)
        for n in nodes
        if isinstance(n, ast.Compare) and all(isinstance(op, _IDENTITY) for op in n.ops)
        for operand in (n.left, *n.comparators)
    )
    # Its truth: rrule's lazy ``if not parser: from dateutil import parser``.
    inner.update(
        id(n.operand if isinstance(n, ast.UnaryOp) else n.test)
        for n in nodes
        if (isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not))
        or isinstance(n, (ast.If, ast.While, ast.Assert, ast.IfExp))
    )
    # `monkeypatch.setattr(mod, "RATE", 3)` spells the name; `getattr(mod, name)` and
    # `vars(mod)` make their scope read every name (`mentions`).
    inner.update(
        id(n.args[0])
        for n in nodes
        if isinstance(n, ast.Call)
        and n.args
        and (
            (len(n.args) >= 2 and _is_name_string(n.args[1]))
            or _called(n) in _BY_NAME | _READS_OBJECT | _READS_MODULES
        )
    )
    return inner


def _imports_into_a_local(
    node: ast.FunctionDef | ast.AsyncFunctionDef, dotted_names: set[str], inert: frozenset[int]
) -> bool:
    """Whether the function holds the module's name only to import it into a local it
    then only reads attributes of (humanize's tests: ``i18n =
    importlib.import_module("humanize.i18n")``, then ``i18n.activate(...)``): as
    ``import pkg.mod as i18n`` would, it reads names of the module, which it hands to
    no other code."""
    own = list(_runs(list(node.body), True))
    holding = [n for n in own if id(n) not in inert and _holds_name([n], dotted_names)]
    holding = [n for n in holding if not isinstance(n, ast.Call)]
    targets: set[str] = set()
    for stmt in own:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and isinstance(stmt.value, ast.Call)
            and _called(stmt.value) == "import_module"
            and _absolute_name(stmt.value)
        ):
            targets.add(stmt.targets[0].id)
            holding = [n for n in holding if n is not stmt.value.args[0]]
    if holding or not targets:
        return False
    # Its uses, nested functions' included: a closure may hand the local on.
    everywhere = list(ast.walk(node))
    inner = _harmless_uses(everywhere)
    return not any(
        isinstance(n, ast.Name) and n.id in targets and isinstance(n.ctx, ast.Load) and id(n) not in inner
        for n in everywhere
    )


def _shadowed_names(tree: ast.Module, names: set[str], aliases: set[int]) -> set[int]:
    """The ids of the `ast.Name` nodes, spelling one of `names`, that a function's own
    code reads where the function binds that name itself (``def parse(sql): ...
    parsestream(sql)`` beside ``from pkg import sql``): a local, not the module's.
    A ``from`` import in the function binds a local too, unless it is one of the
    `aliases` that bind the module or the function also imports the module under
    that name (``from pkg.rates import rates``, a function, beside ``from pkg import
    rates``)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        own = list(_runs(list(node.body), False))
        declared = {n for s in own if isinstance(s, (ast.Global, ast.Nonlocal)) for n in s.names}
        # A comprehension's variable is the comprehension's own, not the function's.
        inner = {id(t) for c in own if isinstance(c, ast.comprehension) for t in ast.walk(c.target)}
        stores = [n for n in own if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
        stored = {n.id for n in stores if id(n) not in inner}
        imported: dict[str, bool] = {}  # name -> whether some import binds it to the module
        for statement in own:
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                for alias in statement.names:
                    name = alias.asname or alias.name
                    # `import pkg.rates` binds `pkg`, through which `pkg.rates` is the module.
                    if isinstance(statement, ast.ImportFrom) or alias.asname:
                        imported[name] = imported.get(name, False) or id(alias) in aliases
        stored |= {name for name, module in imported.items() if not module}
        local = (({a.arg for a in parameters(node.args)} | stored) & names) - declared
        if local:
            out.update(id(n) for n in own if isinstance(n, ast.Name) and n.id in local)
    return out


def _root(node: ast.expr) -> ast.expr:
    """The innermost value of an attribute chain: `pkg` of ``pkg.mod.X``."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node
