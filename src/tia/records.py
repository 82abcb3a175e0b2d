"""The map's records: what tia knows about each test and about the run as a whole.

These are plain value classes (`tia.values`) with JSON converters that validate every field:
what tia reads back from disk may come from another machine, so it is data to
check, never code to run.  Paths are POSIX paths relative to the git root.
"""

from __future__ import annotations

import collections
import functools
import itertools
import re
from collections.abc import Iterable, Iterator
from typing import Any

from tia.values import Value

FAILED_OUTCOMES = frozenset({"failed", "error"})
# The scope of a Python file whose text a test read, as data rather than as code:
# any change to the file, a comment included, can change what the test saw.
TEXT = "<text>"
MODULE = "<module>"  # the scope of a file's import-time code, in reasons and escapes
OUTCOMES = frozenset({"passed", "failed", "error", "skipped"})

# path -> (blob id of the version the test ran against, function scopes it executed)
Deps = dict[str, tuple[str, frozenset[str]]]
# Control characters and backslashes have no place in a repository-relative posix path.
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x1f\\]")
# Those characters but the newline, which joins many paths for one check (`safe_paths`).
_UNSAFE_JOINED = re.compile(r"[\x00-\x09\x0b-\x1f\\]")


class RecordError(ValueError):
    """A stored record does not have the shape tia writes."""


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise RecordError(f"{what} must be a string")
    return value


_FLOAT_OR_INT = (float, int)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"{what} must be a number")
    return float(value)


def safe_path(value: Any) -> str:
    """Check that a path read from outside is relative and stays inside the repository."""
    return _checked_path(_str(value, "a path"))


def safe_paths(values: Iterable[Any]) -> list[str]:
    """`safe_path` for many paths at once (a record that names every file of the map),
    checked in a few passes in C over the paths joined by newlines."""
    paths = list(values)
    if set(map(type, paths)) <= {str} and "" not in paths:
        joined = "\n".join(paths)
        if (
            joined.count("\n") == len(paths) - 1  # else a path holds a newline
            and not joined.startswith("/")
            and "\n/" not in joined
            and ".." not in joined  # a rare name like "a..b" is checked on its own below
            and not _UNSAFE_JOINED.search(joined)
        ):
            return paths
    # Each path on its own: the first that fails raises, with its own message.
    return [safe_path(value) for value in paths]


# The meta record's field naming the Python files git ignores that tests ran or read:
# every listing of the work tree takes them in (`tia.project.Project`).
IGNORED_SOURCES = "ignored_sources"


def ignored_sources(meta: dict[str, Any]) -> list[str]:
    """The meta record's `IGNORED_SOURCES`, checked: paths tia will hash on every run."""
    value = meta.get(IGNORED_SOURCES, [])
    if not isinstance(value, list):
        raise RecordError(f"meta {IGNORED_SOURCES} must be a list of paths")
    return safe_paths(value)


# A map names the same few thousand paths over and over: check each once.
@functools.lru_cache(maxsize=1 << 16)
def _checked_path(path: str) -> str:
    if not path or path.startswith("/") or ".." in path.split("/") or _UNSAFE_CHARACTERS.search(path):
        raise RecordError(f"unsafe path {path!r}: paths are relative to the repository root")
    return path


def deps_to_json(deps: Deps) -> dict[str, list[Any]]:
    return {path: [sha, sorted(scopes)] for path, (sha, scopes) in sorted(deps.items())}


def deps_from_json(data: Any) -> Deps:
    if not isinstance(data, dict):
        raise RecordError("dependencies must be an object")
    deps: Deps = {}
    for path, entry in data.items():
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], list)):
            raise RecordError(f"malformed dependency entry for {path!r}")
        deps[safe_path(path)] = (_str(entry[0], "a blob id"), scope_set(entry[1]))
    return deps


def scope_set(value: Any) -> frozenset[str]:
    """A list of scope names read from outside, checked, as a set."""
    if not isinstance(value, list):
        raise RecordError("scopes must be a list")
    try:
        return _scope_set(tuple(value))
    except TypeError:  # an element that cannot be hashed: not a string either
        raise RecordError("a scope must be a string") from None


def strings(value: Any, what: str) -> list[str]:
    """A list of strings read from outside, checked (the list itself, when it is one)."""
    if not isinstance(value, list):
        raise RecordError(f"expected a list of {what}s")
    # One pass in C for the common case: the roster alone holds every node id of the map.
    if set(map(type, value)) <= {str}:
        return value
    return [_str(item, what) for item in value]


# Tests share their scope sets (a file's fixture, a module's functions): check and build
# each distinct one once, and keep one copy of it in memory.
@functools.lru_cache(maxsize=1 << 16)
def _scope_set(scopes: tuple[Any, ...]) -> frozenset[str]:
    return frozenset(_str(s, "a scope") for s in scopes)


class TestSummary(Value):
    """One test's last run under tia, without its dependencies: what planning needs of
    every test (the dependencies it reads from the store's per-file index instead).

    Attributes:
        nodeid: pytest's node id, relative to the pytest rootdir.
        outcome: passed, failed, error (setup or teardown failed) or skipped.
        duration: seconds spent in setup, call and teardown.
        when: the run's start, seconds since the epoch.
        epoch: id of the snapshot of the work tree the test ran against.
        env: id of the (slice of the) Python environment it ran in.
    """

    __test__ = False  # not a pytest test class, despite the name
    __slots__ = ("duration", "env", "epoch", "nodeid", "outcome", "when")

    def __init__(self, nodeid: str, outcome: str, duration: float, when: float, epoch: str, env: str) -> None:
        self.nodeid = nodeid
        self.outcome = outcome
        self.duration = duration
        self.when = when
        self.epoch = epoch
        self.env = env

    @property
    def failed(self) -> bool:
        return self.outcome in FAILED_OUTCOMES

    def to_row(self) -> list[Any]:
        return [self.outcome, round(self.duration, 6), self.when, self.epoch, self.env]

    @classmethod
    def from_row(cls, nodeid: str, row: Any) -> TestSummary:
        # Planning reads a row per test: the common, well-formed row takes one test per
        # field; anything else goes the long way, which says what is wrong.
        if type(row) is list and len(row) == 5:
            outcome, duration, when, epoch, env = row
            if (
                type(outcome) is str
                and outcome in OUTCOMES
                and type(duration) in _FLOAT_OR_INT
                and type(when) in _FLOAT_OR_INT
                and type(epoch) is str
                and type(env) is str
            ):
                return cls(nodeid, outcome, float(duration), float(when), epoch, env)
        if not (isinstance(row, list) and len(row) == 5):
            raise RecordError(f"summary of {nodeid} must be a list of five fields")
        outcome, duration, when, epoch, env = row
        return cls(
            nodeid,
            _outcome(outcome),
            _number(duration, "duration"),
            _number(when, "when"),
            _str(epoch, "epoch"),
            _str(env, "env"),
        )


# A plain namedtuple: `typing.NamedTuple` compiles each annotation of a module under
# ``from __future__ import annotations``, 3 ms of every run.
class RosterGroup(collections.namedtuple("RosterGroup", ["epoch", "env", "failed", "nodeids"])):
    """Tests of one file that planning tells apart from others only as a group."""

    __slots__ = ()
    epoch: str
    env: str
    failed: str  # the outcome, if they failed last time; else ""
    nodeids: list[str]


class Roster(Value):
    """Every mapped test, file by file (the part of its node id before ``::``), grouped by
    the snapshot and environment it last ran in and by whether it failed.

    This is what planning reads of every test: at 20,000 tests, decoding and checking
    this one entry took a quarter of the time the 20,000 summaries took (0.056 against
    0.217 s under cProfile).  Durations and the rest are read from the summaries, for
    the tests a plan selects.
    """

    __slots__ = ("files",)

    def __init__(self, files: dict[str, list[RosterGroup]] | None = None) -> None:
        self.files = {} if files is None else files

    @staticmethod
    def entry(summaries: Iterable[TestSummary]) -> list[RosterGroup]:
        """The groups of one file's tests (stored as they are: JSON writes each group, a
        tuple, as the list `from_json` reads)."""
        groups: dict[tuple[str, str, str], list[str]] = {}
        for s in summaries:
            key = (s.epoch, s.env, s.outcome if s.failed else "")
            groups.setdefault(key, []).append(s.nodeid)
        return [RosterGroup(*key, sorted(nodeids)) for key, nodeids in sorted(groups.items())]

    def nodeids(self) -> Iterator[str]:
        for groups in self.files.values():
            for group in groups:
                yield from group.nodeids

    @classmethod
    def from_json(cls, data: Any) -> Roster:
        if not isinstance(data, dict):
            raise RecordError("the roster must be an object")
        files: dict[str, list[RosterGroup]] = {}
        for part, groups in data.items():
            if not isinstance(groups, list):
                raise RecordError(f"the roster of {part!r} must be a list")
            out = []
            for row in groups:
                if not (isinstance(row, list) and len(row) == 4):
                    raise RecordError(f"a group of {part!r} in the roster must be a list of four fields")
                epoch, env, failed, nodeids = row
                failed = _str(failed, "outcome")
                if failed and failed not in FAILED_OUTCOMES:
                    raise RecordError(f"unknown outcome {failed!r}")
                nodeids = strings(nodeids, "node id")
                # A node id filed under another test file would escape that file's checks.
                # (A part never holds "::": that is where a node id's file ends.)
                prefix = f"{part}::"
                if "::" in part or not all(map(str.startswith, nodeids, itertools.repeat(prefix))):
                    raise RecordError(f"the roster of {part!r} holds a test of another file")
                out.append(RosterGroup(_str(epoch, "epoch"), _str(env, "env"), failed, nodeids))
            files[part] = out
        return cls(files)


def _outcome(value: Any) -> str:
    outcome = _str(value, "outcome")
    if outcome not in OUTCOMES:
        raise RecordError(f"unknown outcome {outcome!r}")
    return outcome


class TestRecord(TestSummary):
    """One test's last run under tia, with what it executed or read, file by file (`deps`)."""

    __slots__ = ("deps",)

    def __init__(
        self,
        nodeid: str,
        outcome: str,
        duration: float,
        when: float,
        epoch: str,
        env: str,
        deps: Deps | None = None,
    ) -> None:
        super().__init__(nodeid, outcome, duration, when, epoch, env)
        self.deps = {} if deps is None else deps

    def summary(self) -> TestSummary:
        return TestSummary(self.nodeid, self.outcome, self.duration, self.when, self.epoch, self.env)

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "duration": round(self.duration, 6),
            "when": self.when,
            "epoch": self.epoch,
            "env": self.env,
            "deps": deps_to_json(self.deps),
        }

    @classmethod
    def from_json(cls, nodeid: str, data: Any) -> TestRecord:
        if not isinstance(data, dict):
            raise RecordError(f"record of {nodeid} must be an object")
        return cls(
            nodeid=nodeid,
            outcome=_outcome(data.get("outcome")),
            duration=_number(data.get("duration"), "duration"),
            when=_number(data.get("when"), "when"),
            epoch=_str(data.get("epoch"), "epoch"),
            env=_str(data.get("env"), "env"),
            deps=deps_from_json(data.get("deps", {})),
        )


class RunFacts(Value):
    """What a run taught tia beyond single tests; merged across runs.

    Attributes:
        session: function scopes executed outside any test, collector or
            fixture (pytest hooks, plugins): a change there selects every test.
        import_time: function scopes executed while modules were imported or
            tests collected; a change there acts like a change to the file's
            module scope, since every importer saw its effect.
        reads: Python file -> data files it read while being imported.
        memos: Python file -> its hand-written caches (`tia.memos`) that a test or
            fixture filled; kept across runs, since a run that finds a cache filled
            by nobody (it ran none of its tests) proves nothing about it.
    """

    __slots__ = ("import_time", "memos", "reads", "session")

    def __init__(
        self,
        session: Deps | None = None,
        import_time: dict[str, frozenset[str]] | None = None,
        reads: dict[str, frozenset[str]] | None = None,
        memos: dict[str, frozenset[str]] | None = None,
    ) -> None:
        self.session = {} if session is None else session
        self.import_time = {} if import_time is None else import_time
        self.reads = {} if reads is None else reads
        self.memos = {} if memos is None else memos

    def merge(self, newer: RunFacts) -> None:
        """Fold a newer run's facts in: a file seen again is replaced, others are kept;
        the caches filled add up."""
        self.session.update(newer.session)
        for path, scopes in newer.import_time.items():
            self.import_time[path] = scopes
        for path, data in newer.reads.items():
            self.reads[path] = data
        for path, scopes in newer.memos.items():
            self.memos[path] = self.memos.get(path, frozenset()) | scopes

    def to_json(self) -> dict[str, Any]:
        return {
            "session": deps_to_json(self.session),
            "import_time": {p: sorted(s) for p, s in sorted(self.import_time.items())},
            "reads": {p: sorted(s) for p, s in sorted(self.reads.items())},
            "memos": {p: sorted(s) for p, s in sorted(self.memos.items())},
        }

    @classmethod
    def from_json(cls, data: Any) -> RunFacts:
        if not isinstance(data, dict):
            raise RecordError("run facts must be an object")

        def path_sets(value: Any) -> dict[str, frozenset[str]]:
            if not isinstance(value, dict):
                raise RecordError("expected an object of lists")
            out = {}
            for key, items in value.items():
                if not isinstance(items, list):
                    raise RecordError("expected a list")
                out[safe_path(key)] = frozenset(_str(i, "a name") for i in items)
            return out

        return cls(
            session=deps_from_json(data.get("session", {})),
            import_time=path_sets(data.get("import_time", {})),
            reads=path_sets(data.get("reads", {})),
            memos=path_sets(data.get("memos", {})),
        )
