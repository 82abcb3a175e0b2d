"""The coordinator: a repository under tia, and the loop record -> store -> select -> run -> record.

`Project` owns the configuration, the git repository, the work tree and the
store, and passes what each step needs down to it: `plan` gathers what changed
and asks `tia.selection` what to run; `tia.runner` runs it; `fold` stores what
the run recorded.  Nothing below this module imports it.
"""

from __future__ import annotations

import contextlib
import posixpath
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tia import __version__
from tia.config import Config
from tia.environment import (
    Environment,
    Owners,
    Slices,
    current,
    difference,
    environments_to_json,
    read_environments,
    read_owners,
    stamp,
)
from tia.errors import PytestExit, StoreError, TiaError
from tia.gitrepo import UNKNOWN_BLOB, Base, GitRepo
from tia.records import (
    FAILED_OUTCOMES,
    IGNORED_SOURCES,
    MODULE,
    Deps,
    RecordError,
    Roster,
    RunFacts,
    TestRecord,
    deps_from_json,
    ignored_sources,
    safe_path,
)
from tia.selection import ChangeSource, Reason, Selection, select
from tia.store import Store, gc_paused
from tia.values import FrozenValue, Value
from tia.worktree import WorkTree, settled_blob, snapshot_id

if TYPE_CHECKING:  # tia.scopes loads when a file changed or a run is stored, not to find nothing to do
    from tia.names import Narrowing, Readers
    from tia.scopes import FileDiff, FileIndex


class Plan(Value):
    """What a run will do, decided before pytest starts.

    Attributes:
        mode: ``"all"`` (run and map everything) or ``"select"``.
        why_all: the reason for ``"all"``.
        selection: known tests to run, with reasons (``"select"`` only).
        known: node ids in the map; anything else pytest collects is new.
        listing: the work tree at the start: path -> blob id, for the files git lists and
            the Python files it ignores that the map knows tests use; `Project.fold` adds
            the ones the run found tests using for the first time.
        snapshot: the content address of `listing`.
        durations: the recorded durations of the tests it will run.
        touched: files that differ from some test's last run or from the base.
        needs_pytest: whether pytest must start at all (to run, or to look for new tests).
        base: the ``--since`` merge-base, if any.
        skip_files: test files (repository-relative) that pytest need not collect.
        owners: the distributions by importable name, for the plugin, if tia read them.
        retry: for `rest`'s plan, pytest's header line.
    """

    __slots__ = (
        "base",
        "durations",
        "env",
        "known",
        "listing",
        "mode",
        "needs_pytest",
        "owners",
        "retry",
        "selection",
        "skip_files",
        "snapshot",
        "started",
        "touched",
        "why_all",
    )

    def __init__(
        self,
        mode: str,
        why_all: str | None,
        selection: Selection,
        known: set[str],
        listing: dict[str, str],
        snapshot: str,
        env: Environment,
        durations: dict[str, float],
        touched: set[str] | None = None,
        base: Base | None = None,
    ) -> None:
        self.mode = mode
        self.why_all = why_all
        self.selection = selection
        self.known = known
        self.listing = listing
        self.snapshot = snapshot
        self.env = env
        self.durations = durations
        self.touched = set() if touched is None else touched
        self.needs_pytest = True
        self.base = base
        self.skip_files: set[str] = set()
        self.started = time.time()
        self.owners: Owners | None = None
        self.retry: str | None = None

    @property
    def selected(self) -> list[str]:
        return sorted(self.selection.reasons)

    def _affected(self) -> tuple[int, int, str]:
        """Tests selected by a change (not only as last failures), the files that chose
        them, and `` since REF (merge-base SHA)`` when there is a base."""
        affected = [rs for rs in self.selection.reasons.values() if any(r.rule != "failed" for r in rs)]
        files = {r.file for rs in affected for r in rs if r.file}
        since = f" since {self.base.ref} (merge-base {self.base.commit[:7]})" if self.base else ""
        return len(affected), len(files), since

    def summary(self) -> str:
        """One line: how many tests, chosen by which kind of rule."""
        if self.mode == "all":
            return f"running every test: {self.why_all}"
        sel = self.selection
        affected, files, since = self._affected()
        return (
            f"{len(sel.reasons)} of {len(self.known)} mapped tests selected: {affected} affected by "
            f"changes to {files} file{'' if files == 1 else 's'}{since}, "
            f"{len(sel.failed)} failed last time"
        )

    def header(self) -> str:
        """One line for pytest's header, in pytest's voice."""
        if self.retry:
            return self.retry
        if self.mode == "all":
            return f"tia: running every test: {self.why_all}"
        affected, files, since = self._affected()
        line = (
            f"tia: {affected:,} of {len(self.known):,} tests affected by {files:,} changed "
            f"file{'' if files == 1 else 's'}{since}"
        )
        failed = self.selection.failed
        if failed:
            line += f"; {len(failed):,} failed last time"
        return line

    def unaffected_uncollected(self, rootdir: str) -> int:
        """Mapped tests in the files pytest will not even collect."""
        from tia.selection import files_of

        return sum(1 for path in files_of(self.known, rootdir).values() if path in self.skip_files)

    def to_plugin(
        self, rootdir: str, record: bool, engine: str, shard: tuple[int, int] | None = None
    ) -> dict[str, Any]:
        """The plan as the pytest plugin reads it (JSON)."""
        return {
            "engine": engine,
            "mode": self.mode,
            "selected": self.selected,
            "known": sorted(self.known),
            "failed": self.selection.failed,
            "record": record,
            "header": self.header(),
            "reasons": {n: [str(r) for r in rs] for n, rs in self.selection.reasons.items()},
            "skip_files": sorted(self.skip_files),
            "uncollected": self.unaffected_uncollected(rootdir),
            "shard": list(shard) if shard else None,
            "durations": self.durations if shard else {},
            "owners": self.owners.to_json() if self.owners else None,
        }

    def rest(self, reported: Collection[str]) -> Plan:
        """The part of this plan that a run which reported `reported` did not do: its
        tests that did not report, and new tests that did not either."""
        if self.mode == "all":
            reasons = {nodeid: [Reason("all", detail=self.why_all or "")] for nodeid in self.known}
        else:
            reasons = dict(self.selection.reasons)
        rest = Plan(
            "select",
            None,
            Selection({n: rs for n, rs in reasons.items() if n not in reported}),
            self.known | set(reported),
            self.listing,
            self.snapshot,
            self.env,
            {n: d for n, d in self.durations.items() if n not in reported},
            self.touched,
            self.base,
        )
        rest.skip_files = self.skip_files
        rest.owners = self.owners
        rest.started = self.started
        rest.retry = "tia: the tests the first attempt did not run or record, without workers"
        return rest


class Settled(FrozenValue):
    """What `Project.settle` made of a run: how many tests it recorded, and whether
    pytest found nothing to run because the selection was empty."""

    __slots__ = ("nothing_affected", "recorded")

    def __init__(self, recorded: int, nothing_affected: bool) -> None:
        self.recorded = recorded
        self.nothing_affected = nothing_affected


def selected_after_collection(payload: dict[str, Any] | None) -> list[str] | None:
    """The node ids the plugin kept after collection, or None if it never got there."""
    for part in (payload or {}).get("parts", []):
        if part.get("selected") is not None:
            return list(part["selected"])
    return None


def unreported(payload: dict[str, Any] | None) -> list[str]:
    """Tests pytest kept after collection that did not run to the end."""
    outcomes = (payload or {}).get("outcomes") or {}
    return [n for n in selected_after_collection(payload) or () if n not in outcomes]


def internal_error(exitstatus: int, payload: dict[str, Any] | None) -> bool:
    """Whether pytest, or one of its xdist workers, ended in an internal error: then tests
    it selected may not have run, though xdist can still end with status 0."""
    return exitstatus == PytestExit.INTERNAL_ERROR or bool((payload or {}).get("internal_error"))


def left_unrun(exitstatus: int, payload: dict[str, Any] | None) -> str | None:
    """The warning for a run whose internal error left selected tests unrun, if it did."""
    unrun = unreported(payload)
    if not unrun or not internal_error(exitstatus, payload):
        return None
    return (
        f"pytest ended in an internal error before {len(unrun)} selected tests reported "
        f"({unrun[0]} first); they are selected again next time"
    )


class Project:
    """A git work tree with tia's map; see the module docstring."""

    def __init__(self, config: Config, warn: Callable[[str], None], git: GitRepo | None = None) -> None:
        self.config = config
        self.root = config.root
        self.warn = warn
        self.git = GitRepo(config.root) if git is None else git
        self.store = Store(config.cache_dir, warn)
        self._tests: dict[str, TestRecord] | None = None
        self._roster: Roster | None = None
        self._dependents: dict[str, Deps] = {}
        # Indexes of file versions that planning computed: fold stores those a run references.
        self._new_indexes: dict[str, FileIndex] = {}
        # Which distributions provide each importable name: read with the environment,
        # handed to the plugin with the plan.
        self.owners: Owners | None = None

    @contextlib.contextmanager
    def locked(self, notify: Callable[[str], None]) -> Iterator[None]:
        """The store's lock (`Store.locked`), for a plan and the run that follows it."""

        def waiting(message: str) -> None:
            # git may have started listing the work tree (`GitRepo.start_listing`): a
            # listing from before the wait would miss what changes during it.
            self.git.discard_listing()
            notify(message)

        with self.store.locked(waiting):
            yield

    # -- reading the map ---------------------------------------------------------

    def open_store(self) -> Store:
        if not self.store.is_open:
            self.store.open()
        return self.store

    def _has_map(self) -> bool:
        # Reading the map never creates one: `tia status` on a fresh clone leaves no trace.
        return self.store.exists() or self.store.is_open

    def tests(self) -> dict[str, TestRecord]:
        """Every test record, dependencies included (planning reads `roster` instead)."""
        if self._tests is None:
            self._tests = self._guarded(self.open_store().tests) if self._has_map() else {}
        return self._tests

    def roster(self) -> Roster:
        """Every test, as the roster groups them."""
        if self._roster is None:
            self._roster = self._guarded(self.open_store().roster) if self._has_map() else Roster()
        return self._roster

    def durations(self, nodeids: Collection[str] | None) -> dict[str, float]:
        """The recorded durations of `nodeids` (of every test if None): read from the
        summaries of their files only, since a plan mostly runs a few of them."""
        if not self._has_map():
            return {}
        parts = None if nodeids is None else {n.partition("::")[0] for n in nodeids}
        summaries = self._guarded(lambda: self.open_store().summaries(parts))
        wanted = summaries.keys() if nodeids is None else nodeids
        return {n: summaries[n].duration for n in wanted if n in summaries}

    def versions(self) -> dict[str, frozenset[str]]:
        """For each file tests depend on, the versions they ran against."""
        return self._guarded(self.open_store().versions) if self._has_map() else {}

    def dependents(self, path: str) -> Deps:
        """The tests that depend on `path`, with the version and scopes each used."""
        if path not in self._dependents:
            self._dependents[path] = self._guarded(lambda: self.open_store().dependents(path))
        return self._dependents[path]

    def _guarded(self, read: Callable[[], Any]) -> Any:
        """Read from the store; a corrupt map is moved aside and read again, empty."""
        from tia.errors import CorruptStoreError

        try:
            return read()
        except CorruptStoreError as exc:
            self.store.quarantine(str(exc))
            self.store.open()
            self._roster, self._tests, self._dependents = None, None, {}
            return read()

    def meta(self) -> dict[str, Any]:
        if not self._has_map():
            return {}
        return self.open_store().meta() or {}

    def rootdir(self) -> str:
        value = self.meta().get("rootdir", "")
        return value if isinstance(value, str) else ""

    def worktree(self) -> WorkTree:
        stat = self.open_store().stat_cache() if self.store.exists() else {}
        return WorkTree(self.root, stat)

    def environment(self) -> Environment:
        """The environment tests run in, reusing the fingerprint the map holds while the
        environment's stamp (see `tia.environment.stamp`) is the same; `owners` is set
        from the same record, or read with the fingerprint."""
        key = stamp(self.root)
        cache = key is not None and (self.store.is_open or self.store.exists())
        if cache:
            try:
                env, owners = self._guarded(lambda: self.open_store().environment(key))
                self.owners = Owners.from_json(owners)
                return Environment.from_json(env)
            except ValueError:
                pass  # none saved with this stamp, or not in the shape tia writes
        env = current(self.root)
        self.owners = read_owners()
        if cache:
            self.store.put_environment(key, env.to_json(), self.owners.to_json())
        return env

    # -- planning ----------------------------------------------------------------

    def plan(
        self, since: str | None, run_all: bool, why: str = "--all", working: Callable[[], None] | None = None
    ) -> Plan:
        """Decide what to run: every test, or the affected ones and the last failures.

        Without ``--since`` or ``--all``, a plan that finds nothing to run is saved
        (`Store.put_quiet`) with what it was computed from; while those inputs are the
        same, it is the answer again, without reading a test record (see `_quiet_key`).
        `working`, if given, is called once the plan is known to take more than that:
        where `tia run` starts pytest, to load while tia plans.
        """
        quarantines = self.store.quarantines
        plan = self._plan(since, run_all, why, working)
        if self.store.quarantines != quarantines and plan.mode != "all":
            # The map was found corrupt midway: what was read of it before went aside with it,
            # and a selection from it would be stored into the new, empty map.
            plan = self._plan(since, True, "the map was unreadable: mapping the whole suite again", None)
        plan.owners = self.owners
        return plan

    def _plan(self, since: str | None, run_all: bool, why: str, working: Callable[[], None] | None) -> Plan:
        from tia.selection import test_file

        may_be_quiet = since is None and not run_all
        if working is not None and not may_be_quiet:
            working()
        self.open_store()
        worktree = self.worktree()
        files = self.git.worktree_files()
        unlisted = self._ignored_sources(files)
        listing = worktree.listing(files + unlisted)
        if worktree.dirty:
            self.store.put_stat_cache(worktree.stat)
        env = self.environment()
        snap = snapshot_id(listing)
        quiet_key = self._quiet_key(snap, env) if may_be_quiet else None
        if quiet_key is not None:
            quiet = self._quiet_plan(quiet_key, listing, snap, env)
            if quiet is not None:
                return quiet
        if working is not None and may_be_quiet:
            working()
        roster = self.roster()
        facts = self._guarded(self.store.facts)
        rootdir = self.rootdir()
        known = set(roster.nodeids())
        test_files: dict[str, str] = {}
        failed: dict[str, str] = {}
        by_env: dict[str, set[str]] = {}
        by_epoch: dict[str, set[str]] = {}
        for part, groups in roster.files.items():
            path = test_file(part, rootdir)
            # Tests whose file is gone cannot run; the next fold drops them from the map.
            if path not in listing:
                continue
            for group in groups:
                test_files.update(dict.fromkeys(group.nodeids, path))
                by_env.setdefault(group.env, set()).update(group.nodeids)
                by_epoch.setdefault(group.epoch, set()).update(group.nodeids)
                if group.failed:
                    failed.update(dict.fromkeys(group.nodeids, group.failed))
        tests = test_files.keys()
        base = self.git.merge_base(since) if since else None
        empty = Selection()
        why_all = why if run_all else None
        if not tests:
            why_all = why_all or "no map yet: the first run maps the whole suite"
        if why_all:
            return Plan("all", why_all, empty, known, listing, snap, env, self.durations(None), base=base)

        versions = self.file_versions(listing, worktree)
        recorded_versions = self.versions()
        sources = []
        stale: set[str] = set()
        for epoch, nodeids in by_epoch.items():
            old = self._guarded(lambda e=epoch: self.store.snapshot(e))
            if old is None:
                stale |= nodeids
                continue
            sources.append(ChangeSource("changed", old, frozenset(nodeids)))
        if base is not None:
            # git has no history of a file it ignores: what changed in one is what changed
            # since each test ran (the sources above), never a difference from the base.
            ignored_now = {path: listing[path] for path in unlisted if path in listing}
            sources.append(ChangeSource("since", {**ignored_now, **base.files}, frozenset(tests)))
        graph = LazyImportGraph(listing, versions, facts, [source.old for source in sources])
        selection = select(
            tests=tests,
            failed=failed,
            envs=by_env,
            test_files=test_files,
            versions=recorded_versions,
            dependents=self.dependents,
            facts=facts,
            current=listing,
            sources=sources,
            diff=versions.diff,
            graph=graph,
            rootdir=rootdir,
            env_difference=self._env_difference(env),
            runs_all=self.config.runs_all,
            ignored=self.config.ignored,
            text_of=worktree.read,
            **(
                {"narrow": _narrower(listing, worktree, self.dependents, graph, facts)}
                if self.config.narrow_module_changes
                else {}
            ),
        )
        for nodeid in stale:
            selection.add(nodeid, Reason("changed", detail="the snapshot of its last run is gone"))
        self._new_indexes = versions.new
        touched = self._touched(recorded_versions, sources, listing)
        durations = self.durations(selection.reasons)
        plan = Plan("select", None, selection, known, listing, snap, env, durations, touched, base=base)
        # Tests whose file is gone leave the map when a run is stored: pytest must run for that.
        plan.needs_pytest = (
            bool(selection.reasons)
            or len(tests) < len(known)
            or _may_add_tests(touched, set(test_files.values()), recorded_versions.keys())
        )
        plan.skip_files = _skippable_files(test_files, selection, touched)
        # A version whose index could not be had diffed as a module change; once git has it
        # (a fetch), the same inputs can give another answer, so such a plan is not saved.
        if quiet_key is not None and not plan.needs_pytest and not versions.unknown:
            quiet_doc = {
                "key": quiet_key,
                "known": sorted(known),
                "touched": sorted(touched),
                "skip_files": sorted(plan.skip_files),
            }
            self.store.put_quiet(quiet_doc, versions.new)
        return plan

    def _ignored_sources(self, files: list[str]) -> list[str]:
        """The Python files git ignores (generated code, a local settings module) that the
        map's tests ran or read: git does not list them, but a change to one counts all
        the same, so the work tree's listing takes them in (`fold` finds them)."""
        paths = self._guarded(self._recorded_ignored_sources)
        listed = set(files) if paths else set()
        return [path for path in paths if path not in listed]

    def _recorded_ignored_sources(self) -> list[str]:
        from tia.errors import CorruptStoreError

        try:
            return ignored_sources(self.meta())
        except RecordError as exc:
            raise CorruptStoreError(str(exc)) from None

    def _env_difference(self, env: Environment) -> Callable[[str], tuple[str, str] | None]:
        """For a test's recorded environment id, how `env` differs from it, if it does
        (`tia.environment.difference`); memoized, since many tests share an id."""
        meta = self.meta()
        known = read_environments(meta.get("environments"))
        old_env = meta.get("env")
        answers: dict[str, tuple[str, str] | None] = {env.id: None}

        def env_difference(env_id: str) -> tuple[str, str] | None:
            if env_id not in answers:
                then = known.get(env_id)
                if then is None:  # recorded before slices, or its entry is gone
                    why = env.describe_change(old_env if isinstance(old_env, dict) else {})
                    answers[env_id] = ("all", why)
                else:
                    base = known.get(then[1]) if then[1] else None
                    answers[env_id] = difference(env, then[0], base[0] if base else None)
            return answers[env_id]

        return env_difference

    def _quiet_key(self, snap: str, env: Environment) -> dict[str, Any]:
        """Everything a plan without ``--since`` or ``--all`` is computed from.

        The map's content is named by its ``updated`` stamp, which every write of test
        records sets (this tia also drops the saved plan whenever it writes the map, but a
        tia without the ``quiet`` record does not); the work tree by its snapshot id, a
        digest of every file's blob id; the environment by its id; the configuration by
        the globs that decide what selects everything and what is ignored; the rules by
        tia's version.  The map's file indexes are inputs too: the saved plan is stored
        together with any the plan computed (from git or the work tree) that the map lacked.
        """
        return {
            "tia": __version__,
            "updated": self.meta().get("updated"),
            "snapshot": snap,
            "env": env.id,
            "run_all": list(self.config.run_all),
            "ignore": list(self.config.ignore),
        }

    def _quiet_plan(
        self, key: dict[str, Any], listing: dict[str, str], snap: str, env: Environment
    ) -> Plan | None:
        """The saved plan that found nothing to run, if it was computed from `key`."""
        doc = self._guarded(self.store.quiet)
        if not isinstance(doc, dict) or doc.get("key") != key:
            return None
        known, touched, skip_files = doc.get("known"), doc.get("touched"), doc.get("skip_files")
        if not (_strings(known) and _strings(touched) and _strings(skip_files)):
            return None  # not the shape tia writes: plan from the records instead
        self._new_indexes = {}
        # Nothing runs, so no duration is needed.
        plan = Plan("select", None, Selection(), set(known), listing, snap, env, {})
        plan.touched = set(touched)
        plan.needs_pytest = False
        plan.skip_files = set(skip_files)
        return plan

    def index_ahead(self, plan: Plan, done: Callable[[], bool]) -> None:
        """While pytest runs (until `done`), store in the map the file indexes planning
        computed and, for a run of every test, the index of each Python file version of the
        work tree that the map lacks.

        tia's plugin indexes every file the run executed when the run ends, on pytest's
        critical path, unless the map holds that version's index already; this does the
        work beforehand on a core pytest leaves idle (at a ``tia map`` of click 8.1.8, a
        second of pure Python).  A selection mostly executes files whose index the map
        has: it gets planning's only, so that a run of one test never waits for a file
        being indexed.  Best effort: a file that changed since the listing was made is
        skipped, and a failed write ends it."""
        from tia.gitrepo import blob_id
        from tia.scopes import index_source

        wanted: dict[str, str] = {}
        if plan.mode == "all":
            wanted = {sha: path for path, sha in sorted(plan.listing.items()) if path.endswith(".py")}
        try:
            self.store.ready_to_write()  # for this, and for storing the run when pytest ends
            missing = self.store.lacking_indexes(wanted.keys() | self._new_indexes.keys())
        except StoreError:
            return  # the map is read again, and moved aside if need be, when the run is stored
        batch = {sha: index for sha, index in self._new_indexes.items() if sha in missing}
        flushed = time.monotonic()
        for sha, path in wanted.items():
            if done():
                break
            if sha not in missing or sha in batch:
                continue
            try:
                content = (self.root / path).read_bytes()
            except OSError:
                continue
            if blob_id(content) == sha:
                batch[sha] = index_source(content, path)
            # In small transactions, so that the plugin finds each soon after it is made.
            if batch and time.monotonic() - flushed > 0.1:
                if not self.store.add_indexes(batch):
                    return
                batch, flushed = {}, time.monotonic()
        if batch:
            self.store.add_indexes(batch)

    def file_versions(self, listing: dict[str, str], worktree: WorkTree) -> Any:
        from tia.changes import Versions

        return Versions(
            stored=lambda sha: self._guarded(lambda: self.store.index(sha)),
            blob=self.git.blob,
            worktree=worktree.read,
            current=listing,
        )

    def _touched(
        self, versions: dict[str, frozenset[str]], sources: list[ChangeSource], listing: dict[str, str]
    ) -> set[str]:
        """Files that differ from a version some test ran against, or from a source's."""
        from tia.selection import changed_paths

        touched: set[str] = set()
        for source in sources:
            touched |= changed_paths(source.old, listing)
        for path, shas in versions.items():
            if len(shas) > 1 or listing.get(path) not in shas:
                touched.add(path)
        return {p for p in touched if not self.config.ignored(p)}

    # -- storing a run -------------------------------------------------------------

    @gc_paused()
    def fold(self, plan: Plan, payload: dict[str, Any], replace_all: bool) -> int:
        """Store what a run recorded: one transaction, then evict what nobody references.

        Returns how many tests were recorded."""
        from tia.scopes import FileIndex

        rootdir = self._rootdir_of(payload)
        envs = Slices(plan.env)
        records: dict[str, TestRecord] = {}
        facts = RunFacts()
        indexes: dict[str, FileIndex] = dict(self._new_indexes)
        deps_by_test: dict[str, dict[str, tuple[str, frozenset[str]]]] = {}
        imported: dict[str, list[str] | None] = {}
        collected: set[str] = set()
        narrowed = False
        unlisted: dict[str, str | None] = {}
        try:
            for part in payload.get("parts", []):
                collected |= set(part.get("collected") or [])
                narrowed = narrowed or bool(part.get("narrowed"))
                blobs = part.get("blobs", {})
                for sha, data in part.get("indexes", {}).items():
                    indexes[sha] = FileIndex.from_json(data)
                for nodeid, deps in part.get("deps", {}).items():
                    deps_by_test[nodeid] = self._pin(deps_from_json(deps), blobs, plan, unlisted)
                part_facts = RunFacts.from_json(part.get("facts", {}))
                part_facts.session = self._pin(part_facts.session, blobs, plan, unlisted)
                facts.merge(part_facts)
                imported.update(_imported_distributions(part))
            # The run's listing, with the ignored files it found tests using for the first
            # time: next time they are listed, and must not look new to this run's snapshot.
            found = {path: sha for path, sha in unlisted.items() if sha is not None}
            if found:
                plan.listing = {**plan.listing, **found}
                plan.snapshot = snapshot_id(plan.listing)
            for nodeid, result in payload.get("outcomes", {}).items():
                if nodeid not in deps_by_test and result.get("outcome") not in FAILED_OUTCOMES:
                    # Ran, but its recording was lost (a crashed worker): keep what the map had,
                    # so the test is not taken for one that depends on nothing.
                    continue
                records[nodeid] = TestRecord.from_json(
                    nodeid,
                    {
                        "outcome": result.get("outcome"),
                        "duration": result.get("duration"),
                        "when": plan.started,
                        "epoch": plan.snapshot,
                        "env": envs.of(imported.get(nodeid)),
                        "deps": {},
                    },
                )
                records[nodeid].deps = deps_by_test.get(nodeid, {})
        except (RecordError, ValueError, AttributeError, TypeError, IndexError) as exc:
            raise TiaError(f"the results of the pytest run are malformed: {exc}") from exc
        # A run that did not see the whole suite cannot say which tests are gone.
        replace_all = replace_all and not narrowed and bool(records)
        gone = self._gone(plan, collected if not narrowed else set())
        if not records and not replace_all and not gone:
            return 0
        collect = [p["collect_seconds"] for p in payload.get("parts", []) if "collect_seconds" in p]
        meta = {
            "rootdir": rootdir,
            "commit": self.git.head(),
            "env": plan.env.to_json(),
            "env_id": plan.env.id,
        }
        if collect and isinstance(collect[0], (int, float)):
            meta["collect_seconds"] = collect[0]
        recorded = self._recorded_ignored_sources()
        ignored = set(recorded) & plan.listing.keys() | found.keys()
        if ignored or recorded:
            meta[IGNORED_SOURCES] = sorted(ignored)
        if replace_all:
            meta["mapped"] = plan.started
        env_ids, epochs = self._kept(records, gone, replace_all)
        meta["environments"] = self._environments_for(env_ids, envs)
        # Keep the indexes of the files the run executed and of the .py files as they are now.
        wanted = {sha for r in records.values() for sha, _ in r.deps.values()}
        wanted |= {sha for p, sha in plan.listing.items() if p.endswith(".py")}
        blobs = self.store.write_run(
            tests=records,
            indexes={sha: i for sha, i in indexes.items() if sha in wanted},
            snapshot=(plan.snapshot, plan.listing),
            facts=facts,
            meta=meta,
            replace_all=replace_all,
            remove=gone,
        )
        blobs |= {sha for p, sha in plan.listing.items() if p.endswith(".py")}
        self.store.evict(blobs, epochs | {plan.snapshot})
        self._roster = None
        self._tests = None
        self._dependents = {}
        return len(records)

    def _kept(
        self, records: dict[str, TestRecord], gone: set[str], replace_all: bool
    ) -> tuple[set[str], set[str]]:
        """The environment ids and snapshots the map's tests refer to once `records` are
        stored and `gone` removed: the roster's groups tell them without a test's summary."""
        env_ids = {r.env for r in records.values()}
        epochs = {r.epoch for r in records.values()}
        if not replace_all:
            rewritten = records.keys() | gone
            for groups in self.roster().files.values():
                for group in groups:
                    if (group.env not in env_ids or group.epoch not in epochs) and any(
                        n not in rewritten for n in group.nodeids
                    ):
                        env_ids.add(group.env)
                        epochs.add(group.epoch)
        return env_ids, epochs

    def _environments_for(self, env_ids: set[str], envs: Slices) -> dict[str, Any]:
        """The recorded environments `env_ids`, with the ones they were sliced from."""
        known = {**read_environments(self.meta().get("environments")), **envs.entries}
        keep = {env_id: known[env_id] for env_id in env_ids if env_id in known}
        for _, base in list(keep.values()):
            if base and base in known:
                keep[base] = known[base]
        return environments_to_json(keep)

    def settle(
        self, plan: Plan, payload: dict[str, Any], exitstatus: int, interrupted: bool, replace_all: bool
    ) -> Settled:
        """Fold a finished pytest run into the map and say what it amounted to.

        A run that was interrupted, hit collection errors (pytest's exit status 2) or
        an internal error did not see every test, so it never replaces the whole map."""
        complete = not interrupted and exitstatus != 2 and not internal_error(exitstatus, payload)
        recorded = self.fold(plan, payload, replace_all=replace_all and complete)
        selected = selected_after_collection(payload)
        return Settled(recorded, nothing_affected=exitstatus == 5 and selected == [])

    def _gone(self, plan: Plan, collected: set[str]) -> set[str]:
        """Mapped tests that no longer exist: their file is gone, or pytest collected
        their file whole and did not find them."""
        from tia.selection import files_of, test_file

        rootdir = self.rootdir()
        collected_files = set(files_of(collected, rootdir).values())
        gone: set[str] = set()
        # File by file first: a map of 20,000 tests holds some 2,000 test files.
        for part, groups in self.roster().files.items():
            path = test_file(part, rootdir)
            if path not in plan.listing:
                gone.update(n for group in groups for n in group.nodeids)
            elif path in collected_files:
                gone.update(n for group in groups for n in group.nodeids if n not in collected)
        return gone

    def _pin(
        self,
        deps: dict[str, tuple[str, frozenset[str]]],
        blobs: dict[str, str],
        plan: Plan,
        unlisted: dict[str, str | None],
    ) -> dict[str, tuple[str, frozenset[str]]]:
        """Pin each dependency to the version the run started from.

        A file that changed while the run went on is pinned to no version, so
        it counts as changed next time; a file that did not exist when the run
        started (a test wrote it) is no input of the test and is dropped.

        A Python file the listing lacks is one git ignores, or one a test wrote.  If
        it was last modified before the run started, it is pinned to its content now and
        noted in `unlisted` (`Project._ignored_sources`); otherwise to no version.
        """
        pinned = {}
        for path, (_, scopes) in deps.items():
            before = plan.listing.get(path)
            if before is None:
                if not path.endswith(".py"):
                    continue
                if path not in unlisted:
                    unlisted[path] = settled_blob(self.root, path, plan.started)
                before = unlisted[path] or UNKNOWN_BLOB
            after = blobs.get(path, before)
            pinned[path] = (before if after == before else UNKNOWN_BLOB, scopes)
        return pinned

    def _rootdir_of(self, payload: dict[str, Any]) -> str:
        raw = payload.get("rootdir")
        if not isinstance(raw, str):
            return self.rootdir()
        try:
            rel = Path(raw).resolve().relative_to(self.root).as_posix()
        except ValueError:
            raise StoreError(f"pytest's rootdir {raw} is outside the git repository {self.root}") from None
        return "" if rel == "." else safe_path(rel)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _imported_distributions(part: dict[str, Any]) -> dict[str, list[str] | None]:
    """Per test, the distributions its process had imported from (see the plugin's
    `_local_results`); None where it started a process, so anything may matter."""
    sets = part.get("dist_sets", [])
    if not isinstance(sets, list) or not all(isinstance(s, list) and _strings(s) for s in sets):
        raise RecordError("dist_sets must be lists of distribution names")
    out: dict[str, list[str] | None] = {}
    for nodeid, index in part.get("dists", {}).items():
        if not isinstance(index, int) or not -1 <= index < len(sets):
            raise RecordError(f"bad distribution set for {nodeid!r}")
        out[nodeid] = None if index == -1 else sets[index]
    return out


def _skippable_files(test_files: dict[str, str], selection: Selection, touched: set[str]) -> set[str]:
    """Test files pytest need not even collect: none of their tests is selected, and they
    did not change, so they hold no new tests either (what their collection ran is part of
    every one of their tests' dependencies)."""
    files = set(test_files.values())
    needed = {test_files[n] for n in selection.reasons}
    return files - needed - touched


def _narrower(
    listing: dict[str, str],
    worktree: WorkTree,
    dependents: Callable[[str], Deps],
    graph: LazyImportGraph,
    facts: RunFacts,
) -> Callable[[str, FileDiff], Narrowing | None]:
    """`select`'s `narrow`: the readers, in the work tree, of what a change rebinds;
    once code of the narrowing's `escapes` may have run, what `Readers.narrow` makes of
    that (``by_name``)."""
    readers: Readers | None = None

    def ran(file: str, scopes: set[str]) -> bool:
        deps = dependents(file)
        if any(scopes & recorded for _, recorded in deps.values()):
            return True
        # Its import-time code: run if any test depends on the file, something imports
        # it, or code of it ran outside tests or at import time.
        return MODULE in scopes and bool(
            deps or graph.importers(file) != {file} or file in facts.session or file in facts.import_time
        )

    def narrow(path: str, d: FileDiff) -> Narrowing | None:
        nonlocal readers
        if readers is None:
            from tia.names import Readers

            readers = Readers(listing, worktree.read)
        names = d.names or frozenset()
        narrowed = readers.narrow(path, names, d.defs, d.new_defs)
        if narrowed is not None and any(ran(f, s) for f, s in narrowed.escapes.items()):
            return readers.narrow(path, names, d.defs, d.new_defs, by_name=True)
        return narrowed

    return narrow


def _may_add_tests(touched: set[str], test_files: set[str], dep_paths: Collection[str]) -> bool:
    """Whether a changed file could hold tests the map does not know yet."""
    return any(
        p.endswith(".py")
        and (p in test_files or p not in dep_paths or posixpath.basename(p) == "conftest.py")
        for p in touched
    )


class LazyImportGraph:
    """The import graph, built the first time a module-level change needs it.

    Its files are the work tree's Python files and those of `earlier` listings (what
    each change is measured from) that are gone now: a deleted module has no imports of
    its own any more, but the files that still import it must resolve to it, or its
    deletion would reach none of their importers."""

    def __init__(
        self, listing: dict[str, str], versions: Any, facts: RunFacts, earlier: Iterable[dict[str, str]]
    ) -> None:
        self._listing = listing
        self._versions = versions
        self._facts = facts
        self._earlier = earlier
        self._graph: Any = None

    def importers(self, path: str) -> set[str]:
        if self._graph is None:
            from tia.graph import ImportGraph

            py = {p for p in self._listing if p.endswith(".py")}
            for old in self._earlier:
                py.update(p for p in old.keys() - self._listing.keys() if p.endswith(".py"))
            self._graph = ImportGraph(sorted(py), self._versions.current_index, self._facts.reads)
        return self._graph.importers(path)
