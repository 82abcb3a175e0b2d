"""Selection: from the map and what changed, which known tests must run, and why.

`select` is pure: the coordinator hands it the recorded tests (from the roster), the
versions of each file they ran against and a way to look up who depends on a file
(the store's index: only files that differ are looked up), listings of the work
tree (now, at each test's last run, at the ``--since`` merge-base), a `diff`
function that compares two versions of a file in scopes, and the import graph.
Tests the map has never seen are added by the pytest plugin at collection time
(rule ``new``), since only collection knows them.

The rules, each a `Reason.rule`:

* ``changed``: since the test last ran, a file it depends on changed in a scope
  it executed or in its module scope; or a module scope changed in a file its
  test module, conftest files or package imports (statically or at import time);
  but a module-level change that only rebinds names selects instead the tests that
  ran code reading them (`tia.names`); or a changed function ran, as far as the
  tests tell, as part of filling a hand-written cache the test may have got a kept
  result from (`tia.memos`); or a distribution it imported was upgraded, downgraded
  or removed;
* ``since``: the same against the merge-base of ``--since REF``;
* ``failed``: it failed or errored last time;
* ``all``: a file that configures the run changed, the interpreter changed, a
  distribution was installed, the test started a process when any distribution changed,
  the module scope of the root conftest.py changed, or code that ran outside
  any test (a pytest hook) changed.  A deeper conftest.py's module scope or
  hooks select the tests below it, under ``changed`` or ``since``.
"""

from __future__ import annotations

import functools
import posixpath
import re
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from tia.records import MODULE, TEXT, Deps, RunFacts
from tia.values import FrozenValue, Value

if TYPE_CHECKING:  # the coordinator loads tia.scopes when a file changed: `diff` hands its FileDiffs
    from tia.names import Narrowing
    from tia.scopes import FileDiff


class Reason(FrozenValue):
    """Why one test was selected."""

    __slots__ = ("detail", "file", "rule", "scope")

    def __init__(
        self, rule: str, file: str | None = None, scope: str | None = None, detail: str = ""
    ) -> None:
        self.rule = rule
        self.file = file
        self.scope = scope
        self.detail = detail

    def to_json(self) -> dict[str, str]:
        out = {"rule": self.rule}
        if self.file:
            out["file"] = self.file
        if self.scope:
            out["scope"] = self.scope
        if self.detail:
            out["detail"] = self.detail
        return out

    def __str__(self) -> str:
        where = self.file or ""
        if self.scope:
            where += f"::{self.scope}"
        text = f"{self.rule}: {where}" if where else self.rule
        return f"{text} ({self.detail})" if self.detail else text


class Selection(Value):
    """The outcome of `select`: known tests to run with their reasons, and the failed ones."""

    __slots__ = ("reasons",)

    def __init__(self, reasons: dict[str, list[Reason]] | None = None) -> None:
        self.reasons = {} if reasons is None else reasons

    def add(self, nodeid: str, reason: Reason) -> None:
        reasons = self.reasons.setdefault(nodeid, [])
        if reason not in reasons and len(reasons) < 8:
            reasons.append(reason)

    @property
    def failed(self) -> list[str]:
        return sorted(n for n, rs in self.reasons.items() if any(r.rule == "failed" for r in rs))


class Importers(Protocol):
    def importers(self, path: str) -> set[str]: ...


class ChangeSource(FrozenValue):
    """Listings to compare, and the tests the comparison applies to."""

    __slots__ = ("old", "rule", "tests")

    def __init__(self, rule: str, old: dict[str, str], tests: frozenset[str]) -> None:
        self.rule = rule  # "changed" or "since"
        self.old = old
        self.tests = tests


def changed_paths(old: dict[str, str], current: dict[str, str]) -> set[str]:
    """Paths whose blob differs between two listings: modified, added or deleted."""
    # The pairs in one listing and not the other, in C: a path per pair, whether it was
    # modified (two pairs), added or deleted (one).
    return {path for path, _ in old.items() ^ current.items()}


def test_file(nodeid: str, rootdir: str) -> str:
    """The repository-relative path of the file a node id lives in."""
    path = nodeid.split("::", 1)[0]
    return posixpath.join(rootdir, path) if rootdir else path


def files_of(nodeids: Iterable[str], rootdir: str) -> dict[str, str]:
    """`test_file` of each node id, worked out once per file: a file holds many tests."""
    paths: dict[str, str] = {}
    out = {}
    for nodeid in nodeids:
        part = nodeid.partition("::")[0]
        path = paths.get(part)
        if path is None:
            path = paths[part] = test_file(part, rootdir)
        out[nodeid] = path
    return out


def _roots(path: str, files: set[str]) -> set[str]:
    """What pytest imports to run the tests of `path`: it, its conftests, its packages."""
    roots = {path}
    directory = posixpath.dirname(path)
    in_package = True
    while True:
        conftest = posixpath.join(directory, "conftest.py") if directory else "conftest.py"
        if conftest in files:
            roots.add(conftest)
        init = posixpath.join(directory, "__init__.py") if directory else "__init__.py"
        in_package = in_package and init in files
        if in_package:
            roots.add(init)
        if not directory:
            return roots
        directory = posixpath.dirname(directory)


class _RootsOf:
    """`_roots` of every test file, worked out when a module-level change first needs them."""

    def __init__(self, test_files: Mapping[str, str], paths: set[str]) -> None:
        self._test_files = test_files
        self._paths = paths

    @functools.cached_property
    def all(self) -> dict[str, set[str]]:
        return {f: _roots(f, self._paths) for f in set(self._test_files.values())}


def _under(directory: str, path: str) -> bool:
    return not directory or path.startswith(directory + "/")


def select(
    *,
    tests: Collection[str],
    failed: Mapping[str, str],
    envs: Mapping[str, Collection[str]],
    test_files: Mapping[str, str],
    versions: Mapping[str, frozenset[str]],
    dependents: Callable[[str], Deps],
    facts: RunFacts,
    current: dict[str, str],
    sources: Iterable[ChangeSource],
    diff: Callable[[str, str | None, str | None], FileDiff],
    graph: Importers,
    rootdir: str,
    env_difference: Callable[[str], tuple[str, str] | None],
    runs_all: Callable[[str], bool],
    ignored: Callable[[str], bool],
    narrow: Callable[[str, FileDiff], Narrowing | None] = lambda path, d: None,
    text_of: Callable[[str], bytes | None] = lambda path: None,
) -> Selection:
    """Decide which of the known tests `tests` to run: `failed` maps those that failed
    last time to their outcome, `envs` each environment id to its tests, `test_files`
    each test to its file.  `narrow` finds the readers of the names a module-level
    change rebinds (`tia.names`), or answers None: every importer counts.  `text_of`
    reads a file of the work tree (the text of a test file that is not Python)."""
    sel = Selection()
    for nodeid in sorted(failed):
        sel.add(nodeid, Reason("failed", detail=f"{failed[nodeid]} last time"))
    for env_id, nodeids in envs.items():
        env_change = env_difference(env_id)
        if env_change is not None:
            reason = Reason(env_change[0], detail=f"environment changed: {env_change[1]}")
            for nodeid in sorted(nodeids):
                sel.add(nodeid, reason)
    roots_of = _RootsOf(test_files, set(current))
    test_paths = set(test_files.values())
    given_narrow = narrow

    def narrow(path: str, d: FileDiff) -> Narrowing | None:
        # A test module's module scope decides which tests it holds: any change to it
        # counts for all of them, but a new function (a new test) leaves them as they were.
        return None if path in test_paths and not d.new_defs else given_narrow(path, d)

    # Dependencies recorded per test, against the version each test ran with: only the
    # files with a version that is not the current one have dependents to check.
    for path in sorted(versions):
        now = current.get(path)
        shas = versions[path]
        if (len(shas) == 1 and now in shas) or ignored(path):
            continue
        for nodeid, (sha, scopes) in dependents(path).items():
            if sha != now and nodeid in tests:
                d = diff(path, sha, now)
                _check_dep(
                    sel,
                    nodeid=nodeid,
                    rule="changed",
                    path=path,
                    scopes=scopes,
                    d=d,
                    facts=facts,
                    narrow=narrow,
                )

    for source in sources:
        for path in sorted(p for p in changed_paths(source.old, current) if not ignored(p)):
            d = diff(path, source.old.get(path), current.get(path))
            if source.rule == "since" and path in versions:
                # An AST-unchanged file still reaches a test that read its text.
                for nodeid, (_, scopes) in dependents(path).items():
                    if nodeid in source.tests:
                        _check_dep(
                            sel,
                            nodeid=nodeid,
                            rule="since",
                            path=path,
                            scopes=scopes,
                            d=d,
                            facts=facts,
                            narrow=narrow,
                        )
            if not d.changed:
                continue
            _structural(
                sel,
                source=source,
                path=path,
                d=d,
                facts=facts,
                files_of=test_files,
                roots_of=roots_of,
                graph=graph,
                rootdir=rootdir,
                runs_all=runs_all,
                dependents=dependents,
                narrow=narrow,
                text_of=text_of,
            )
    _whole_documents(sel, tests, test_files)
    return sel


def _whole_documents(sel: Selection, tests: Collection[str], files_of: Mapping[str, str]) -> None:
    """Select, with a test collected from a file that is not Python, the other tests of
    that file.  Sybil makes a test of each example of an ``.rst`` document, in one
    namespace: an example reads what the ones before it left (cssselect 1.2.0's
    ``print(expression)`` runs no code of the project, the example before it computed
    ``expression``), as Python tests read the state code tia parses leaves."""
    documents: dict[str, list[str]] = {}
    for nodeid in tests:
        file = files_of.get(nodeid, "")
        if file and not file.endswith(".py"):
            documents.setdefault(file, []).append(nodeid)
    for file, nodeids in sorted(documents.items()):
        # A test that only failed last time, with nothing changed, leaves what it left.
        changed = {n: r for n in nodeids for r in sel.reasons.get(n, ()) if r.rule != "failed"}
        if not changed or len(changed) == len(nodeids):
            continue
        first = min(changed)
        reason = Reason(changed[first].rule, file, detail=f"shares its document with {first}")
        for nodeid in sorted(nodeids):
            if nodeid not in sel.reasons:
                sel.add(nodeid, reason)


def _narrowing(
    d: FileDiff, path: str, facts: RunFacts, narrow: Callable[[str, FileDiff], Narrowing | None]
) -> Narrowing | None:
    """The readers of what a module-level change rebinds, when the change only rebinds
    names; None when every importer counts."""
    if not d.module_changed or d.names is None:
        return None
    if posixpath.basename(path) == "conftest.py" and not d.new_defs:
        return None  # its module scope decides how the tests it governs run
    if d.scopes & facts.import_time.get(path, frozenset()):
        return None  # a function that ran at import time changed too: its effect has no name
    return narrow(path, d)


def _check_dep(
    sel: Selection,
    *,
    nodeid: str,
    rule: str,
    path: str,
    scopes: frozenset[str],
    d: FileDiff,
    facts: RunFacts,
    narrow: Callable[[str, FileDiff], Narrowing | None],
) -> None:
    if TEXT in scopes:  # called only for a file whose content differs
        sel.add(nodeid, Reason(rule, path, detail="read as text"))
        return
    if d.module_changed:
        narrowed = _narrowing(d, path, facts, narrow)
        if narrowed is None:
            sel.add(nodeid, Reason(rule, path, MODULE, d.detail))
            return
        # Readers in other files are the structural rule's: it runs for this change too.
        own = narrowed.readers.get(path, {})
        read = sorted(scopes & own.keys())
        if read:
            sel.add(nodeid, Reason(rule, path, MODULE, _reads(own[read[0]], path, read[0])))
            return
    hit = scopes & d.scopes
    if hit:
        sel.add(nodeid, Reason(rule, path, sorted(hit)[0]))
        return
    import_time = d.scopes & facts.import_time.get(path, frozenset())
    if import_time:
        sel.add(nodeid, Reason(rule, path, sorted(import_time)[0], "runs at import time"))


def _structural(
    sel: Selection,
    *,
    source: ChangeSource,
    path: str,
    d: FileDiff,
    facts: RunFacts,
    files_of: Mapping[str, str],
    roots_of: _RootsOf,
    graph: Importers,
    rootdir: str,
    runs_all: Callable[[str], bool],
    dependents: Callable[[str], Deps],
    narrow: Callable[[str, FileDiff], Narrowing | None],
    text_of: Callable[[str], bytes | None],
) -> None:
    """Rules that follow from a changed file itself rather than from one test's record."""
    tests = source.tests
    relative = path[len(rootdir) + 1 :] if rootdir and path.startswith(rootdir + "/") else path
    if runs_all(path) or runs_all(relative):
        for nodeid in tests:
            sel.add(nodeid, Reason("all", path, detail="configures the test run"))
        return
    session_hit = d.scopes & facts.session.get(path, ("", frozenset()))[1]
    if session_hit:
        scope = sorted(session_hit)[0]
        for nodeid in tests:
            sel.add(nodeid, Reason("all", path, scope, "ran outside any test"))
        return
    import_time = d.scopes & facts.import_time.get(path, frozenset())
    module_level = d.module_changed or bool(import_time)
    if d.scopes and d.state != frozenset():
        _shared_state(
            sel,
            source=source,
            path=path,
            d=d,
            facts=facts,
            files_of=files_of,
            roots_of=roots_of,
            graph=graph,
            rootdir=rootdir,
            dependents=dependents,
            narrow=narrow,
        )
    if d.scopes and facts.memos:
        _kept_results(sel, source=source, path=path, d=d, facts=facts, dependents=dependents)
    if posixpath.basename(path) == "conftest.py":
        hooks = {s for s in d.scopes if s.startswith("pytest_") and "." not in s}
        if module_level or hooks:
            scope = MODULE if module_level else sorted(hooks)[0]
            _governed(sel, source, path, path, scope, "conftest.py governs these tests", files_of, rootdir)
        return
    if not module_level:
        return
    narrowed = _narrowing(d, path, facts, narrow)
    scope = MODULE if d.module_changed else sorted(import_time)[0]
    _text_tests(
        sel,
        source,
        path,
        scope,
        None if narrowed is None else narrowed.rebound | (d.names or set()),
        files_of,
        text_of,
    )
    if narrowed is not None:
        _readers(
            sel,
            source=source,
            path=path,
            narrowed=narrowed,
            facts=facts,
            files_of=files_of,
            roots_of=roots_of,
            graph=graph,
            rootdir=rootdir,
            dependents=dependents,
        )
        return
    _imported(sel, source, path, path, scope, d.detail, files_of, roots_of, graph)


def _text_tests(
    sel: Selection,
    source: ChangeSource,
    path: str,
    scope: str,
    names: frozenset[str] | None,
    files_of: Mapping[str, str],
    text_of: Callable[[str], bytes | None],
) -> None:
    """Select, for a module-level change to `path`, the doctests: tests of files that are
    not Python (``.rst`` or ``.txt`` files), and those in the docstrings of Python files.
    tia sees none of their code, and the objects they use may come from what fixtures
    put in their namespace (``doctest_namespace``) rather than from an import.  With the `names` a change only
    rebinds, those whose text spells one or may read names dynamically; else all."""
    pattern = None
    if names is not None:
        # As a word: `main` is read where `semver.main(...)` is spelled, not by "maintainer".
        spelled = "|".join(re.escape(n) for n in sorted(names))
        pattern = re.compile(f"(?<![A-Za-z0-9_])(?:{spelled})(?![A-Za-z0-9_])".encode())
    texts: dict[str, bytes | None] = {}  # test file -> its text, a Python file's strings
    reads: dict[str, bool] = {}  # test file -> whether its text may read one of `names`
    for nodeid in source.tests:
        file = files_of[nodeid]
        python = file.endswith(".py")
        named = _docstring_doctest(nodeid, file) if python else None
        if python and named is None:
            continue
        if file not in texts:
            text = text_of(file)
            texts[file] = _strings_of(text) if python and text is not None else text
        text = texts[file]
        # A test named as its file (`test_x.py::test_x`) is named as a module's own
        # doctest would be: it is one only if the file holds an example.
        if named == _MODULE_DOCTEST and text is not None and b">>>" not in text:
            continue
        if file not in reads:
            reads[file] = pattern is None or _may_read(text, pattern)
        if reads[file]:
            detail = (
                "a test file tia reads no code of" if names is None else "its text may read what it rebinds"
            )
            sel.add(nodeid, Reason(source.rule, path, scope, detail))


def _strings_of(source: bytes) -> bytes | None:
    """The strings of a Python file, where its doctests are (docstrings, ``__test__``);
    None, to count as any text, if it does not parse."""
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    strings = (n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str))
    return "\n".join(strings).encode("utf-8", "surrogateescape")


_MODULE_DOCTEST = "module"  # `_docstring_doctest`: the module's own docstring


def _docstring_doctest(nodeid: str, file: str) -> str | None:
    """Whether `nodeid` may be a doctest in a docstring of the Python file `file`
    (``--doctest-modules``): pytest names it after the object, dotted from the module
    (``pkg/mod.py::pkg.mod.func``: "object"), or after a top-level module alone
    (``mod.py::mod``: `_MODULE_DOCTEST`); a test function's name is its own (None)."""
    from tia.imports import module_stem

    stem = module_stem(file)  # a package's doctests are named after the package
    name = nodeid.partition("::")[2]
    if name == stem:
        return _MODULE_DOCTEST
    # A test's name has no dot (but in its parameters).
    return "object" if "." in name.partition("[")[0] and f".{stem}." in f".{name}." else None


def _may_read(text: bytes | None, names: re.Pattern[bytes]) -> bool:
    from tia.names import DYNAMIC_HINT

    return text is None or bool(names.search(text) or DYNAMIC_HINT.search(text))


def _shared_state(
    sel: Selection,
    *,
    source: ChangeSource,
    path: str,
    d: FileDiff,
    facts: RunFacts,
    files_of: Mapping[str, str],
    roots_of: _RootsOf,
    graph: Importers,
    rootdir: str,
    dependents: Callable[[str], Deps],
    narrow: Callable[[str, FileDiff], Narrowing | None],
) -> None:
    """Select, for changed functions that write the module's shared state
    (`FileDiff.state`), the tests that ran code reading it: what such a function leaves
    behind reaches later tests that never run it (humanize's ``deactivate`` resets the
    locale every later test formats in).  Every importer's tests when tia cannot tell
    who reads it, or when an index older than this rule does not say what is written."""
    from tia.scopes import FileDiff  # loaded already: `d` is one

    writer = sorted(d.scopes)[0]
    if d.state is None:
        detail = "indexed by an earlier tia, which did not note shared state written"
        _imported(sel, source, path, path, writer, detail, files_of, roots_of, graph, reached=True)
        return
    names = frozenset(d.state)
    narrowed = narrow(path, FileDiff(True, d.scopes, names=names, defs=frozenset()))
    writes = f"writes shared state through {', '.join(sorted(names))}"
    if narrowed is None:
        _imported(sel, source, path, path, writer, writes, files_of, roots_of, graph, reached=True)
        return
    _readers(
        sel,
        source=source,
        path=path,
        narrowed=narrowed,
        facts=facts,
        files_of=files_of,
        roots_of=roots_of,
        graph=graph,
        rootdir=rootdir,
        dependents=dependents,
        scope=writer,
        prefix=writes + "; ",
    )


def _kept_results(
    sel: Selection,
    *,
    source: ChangeSource,
    path: str,
    d: FileDiff,
    facts: RunFacts,
    dependents: Callable[[str], Deps],
) -> None:
    """Select, for a changed function that ran as part of filling a hand-written cache
    (`tia.memos`), the tests of that cache that may have got a kept result: such a test
    runs none of the code that made it.

    What ran as part of a fill is told from the tests, not from calls: a changed function
    counts when the tests of the cache that ran it all filled it (code a test of the
    cache runs without filling it, a compiler run on every template beside the lexer a
    cache keeps, is not what the cache keeps), or when every test that filled the cache
    ran it (a parser that a test also calls directly, beside the cache).  Of the cache's
    tests, those that ran a line returning what it held, or never filled it, are
    selected; all of them when no test ran such a line."""
    from tia.memos import filled, hit

    ran: dict[str, set[str]] = {}  # changed scope -> the tests that ran it
    for nodeid, (_, scopes) in dependents(path).items():
        for scope in scopes & d.scopes:
            ran.setdefault(scope, set()).add(nodeid)
    if not ran:
        return
    for memo_path, memos in sorted(facts.memos.items()):
        deps = dependents(memo_path)
        for memo in sorted(memos):
            marker, found = filled(memo), hit(memo)
            users = {n for n, (_, scopes) in deps.items() if memo in scopes}
            fillers = {n for n in users if marker in deps[n][1]}
            # A test gets what a cache held where it ran a line that returns it: when the
            # cache has such lines (some test ran one), the tests that ran none of them,
            # and filled, never got a result another test made.
            hitters = {n for n in users if found in deps[n][1]}
            readers = hitters | (users - fillers) if hitters else users
            for scope, tests in sorted(ran.items()):
                if not fillers & tests or not (tests & users <= fillers or fillers <= tests):
                    continue
                reason = Reason(
                    source.rule,
                    path,
                    scope,
                    f"ran while {min(fillers & tests)} filled the cache {memo_path}::{memo} keeps",
                )
                for nodeid in sorted(readers & source.tests):
                    sel.add(nodeid, reason)
                break


def _governed(
    sel: Selection,
    source: ChangeSource,
    path: str,
    conftest: str,
    scope: str,
    detail: str,
    files_of: Mapping[str, str],
    rootdir: str,
) -> None:
    """Select the tests a conftest.py governs, for a change to `path`."""
    directory = posixpath.dirname(conftest)
    rule = "all" if directory == rootdir or not directory else source.rule
    for nodeid in source.tests:
        if _under(directory, files_of[nodeid]):
            sel.add(nodeid, Reason(rule, path, scope, detail))


def _imported(
    sel: Selection,
    source: ChangeSource,
    path: str,
    target: str,
    scope: str,
    detail: str,
    files_of: Mapping[str, str],
    roots_of: _RootsOf,
    graph: Importers,
    reached: bool = False,
) -> None:
    """Select, for a change to `path`, the tests whose files, conftests or packages
    import `target`: `path` itself, or (`reached`) a file whose import-time code the
    change reaches, as `detail` says."""
    importers = graph.importers(target)
    via = {f for f, roots in roots_of.all.items() if roots & importers}
    for nodeid in source.tests:
        test_path = files_of[nodeid]
        if test_path in via:
            link = sorted(roots_of.all[test_path] & importers)[0]
            through = "" if link == path else f"imported through {link}"
            if reached:  # say which file's import-time code the change reaches first
                through = f"{detail}, {through}" if through else detail
            sel.add(nodeid, Reason(source.rule, path, scope, through or detail))


def _reads(name: str, file: str, scope: str) -> str:
    # `tia.names.ANY` and `tia.names.ATTRIBUTES`: names read without spelling them.
    what = {"*": "reads names dynamically", "*.": "reads attributes dynamically"}.get(name, f"{name} read")
    return f"{what} in {file}::{scope}"


def _readers(
    sel: Selection,
    *,
    source: ChangeSource,
    path: str,
    narrowed: Narrowing,
    facts: RunFacts,
    files_of: Mapping[str, str],
    roots_of: _RootsOf,
    graph: Importers,
    rootdir: str,
    dependents: Callable[[str], Deps],
    scope: str = MODULE,
    prefix: str = "",
) -> None:
    """Select, for a change that only rebinds names, the tests that ran code reading
    them (see `Narrowing`); and for each file whose import-time code uses them, its
    importers.  Only among the tests the whole-module rule selects: those that depend
    on the file or import it.  Narrowing never selects more than that rule, which
    code reading names dynamically (`getattr(obj, name)`) run by tests that never
    import the module would otherwise do.  Reasons name `scope` as what changed, and
    their details start with `prefix`."""
    importers = graph.importers(path)
    via = {f for f, roots in roots_of.all.items() if roots & importers}
    allowed = {n for n in source.tests if files_of[n] in via} | (dependents(path).keys() & source.tests)
    source = ChangeSource(source.rule, source.old, frozenset(allowed))
    fallback = dict(narrowed.fallback)

    def why(name: str, file: str, reader: str) -> Reason:
        return Reason(source.rule, path, scope, prefix + _reads(name, file, reader))

    # Code that reads only the attributes of what it is handed can hold a changed class,
    # or an instance, at import only if something that ran before the tests met the class:
    # a reader that names it (which falls back on its own) or code of the class itself,
    # at import or at start-up (which may leave an instance behind for collection).
    met_at_import = any(
        scope.split(".", 1)[0] in classes
        for file, classes in narrowed.classes.items()
        for scope in (*facts.import_time.get(file, ()), *facts.session.get(file, ("", ()))[1])
    )
    every = [(f, s, True) for f, s in narrowed.readers.items()]
    every += [(f, s, met_at_import) for f, s in narrowed.attribute_readers.items()]
    for file, scopes, may_meet in sorted(every, key=lambda item: item[0]):
        ran = scopes.keys()
        outside = sorted(ran & facts.session.get(file, ("", frozenset()))[1])
        if outside:
            detail = prefix + _reads(scopes[outside[0]], file, outside[0]) + ", which ran outside any test"
            for nodeid in source.tests:
                sel.add(nodeid, Reason(source.rule, path, scope, detail))
            return
        at_import = sorted(ran & facts.import_time.get(file, frozenset())) if may_meet else []
        hooks = sorted(s for s in ran if s.startswith("pytest_") and "." not in s)
        if at_import or (hooks and posixpath.basename(file) == "conftest.py"):
            fallback.setdefault(file, scopes[(at_import or hooks)[0]])
    met: set[str] = set()  # tests that read a rebound name or ran code of a changed class
    for file, scopes in sorted(narrowed.readers.items()):
        for nodeid, (_, recorded) in dependents(file).items():
            if nodeid in source.tests:
                read = sorted(recorded & scopes.keys())
                if read:
                    met.add(nodeid)
                    sel.add(nodeid, why(scopes[read[0]], file, read[0]))
    if narrowed.attribute_readers:
        for file, classes in narrowed.classes.items():
            for nodeid, (_, recorded) in dependents(file).items():
                if any("." in s and s.split(".", 1)[0] in classes for s in recorded):
                    met.add(nodeid)
    for file, scopes in sorted(narrowed.attribute_readers.items()):
        for nodeid, (_, recorded) in dependents(file).items():
            if nodeid in source.tests and nodeid in met:
                read = sorted(recorded & scopes.keys())
                if read:
                    sel.add(nodeid, why(scopes[read[0]], file, read[0]))
    for file, name in sorted(fallback.items()):
        if posixpath.basename(file) != "conftest.py" and not _ran(file, dependents, facts):
            # Its import-time code never ran under pytest: what imports it in the static
            # graph gets another module by that name (PyYAML's examples/pygments-lexer/yaml.py
            # is a `yaml` no test imports).
            continue
        what = "names read dynamically" if name.startswith("*") else name
        detail = f"{prefix}{what} used at import time by {file}"
        if posixpath.basename(file) == "conftest.py":
            _governed(sel, source, path, file, scope, detail, files_of, rootdir)
        else:
            _imported(sel, source, path, file, scope, detail, files_of, roots_of, graph, reached=True)


def _ran(file: str, dependents: Callable[[str], Deps], facts: RunFacts) -> bool:
    """Whether code of `file` ran in a recorded run: in a test, at import or outside tests."""
    return bool(dependents(file)) or file in facts.import_time or file in facts.session


def shard_of(nodeids: Iterable[str], durations: Mapping[str, float], index: int, count: int) -> set[str]:
    """The tests of shard `index` (1-based) of `count`, among `nodeids`.

    Deterministic, so every job of a CI matrix computes the same split: tests with
    a recorded duration go, longest first (ties by node id), to the least loaded
    shard (ties to the one with fewest tests, then the lowest, so that tests too
    quick to time still spread); tests new to the map go by a stable hash of
    their node id.  Every test lands in exactly one shard.
    """
    nodeids = list(nodeids)
    loads = [0.0] * count
    sizes = [0] * count
    mine: set[str] = set()
    timed = sorted((n for n in nodeids if n in durations), key=lambda n: (-durations[n], n))
    for nodeid in timed:
        target = min(range(count), key=lambda i: (loads[i], sizes[i], i))
        loads[target] += durations[nodeid]
        sizes[target] += 1
        if target == index - 1:
            mine.add(nodeid)
    for nodeid in nodeids:
        if nodeid not in durations and zlib.crc32(nodeid.encode("utf-8")) % count == index - 1:
            mine.add(nodeid)
    return mine
