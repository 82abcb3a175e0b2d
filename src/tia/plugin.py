"""tia's pytest plugin: applies a selection plan and records what every test executes.

Registered through the ``pytest11`` entry point but inert unless ``--tia-plan``
names a plan (which `tia run` and `tia map` pass), or ``--tia``, ``--tia-since
REF`` or ``--tia-all`` ask pytest itself to plan and to update the map
(`TiaDriver`).  This module imports only the standard library and pytest, so an
ordinary ``pytest`` run pays nothing; the rest of tia loads only when asked for.

Under pytest-xdist the controller runs no tests: it takes outcomes from the
reports it receives and dependencies from each worker's ``workeroutput``, and
only the controller writes the results file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Generator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tia.recorder import Recorder

_PLUGIN_NAME = "tia-session"
# `pytest --tia` under xdist: the controller plans once; workers (started by xdist with
# the controller's environment) find the plan through this variable.
PLAN_ENV = "TIA_PLUGIN_PLAN"
# `tia.runner.GO_ENV` (this module imports nothing of tia's until it has a plan).
GO_ENV = "TIA_PLAN_GO_FD"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tia", "test impact analysis (tia)")
    group.addoption("--tia-plan", dest="tia_plan", default=None, help=argparse.SUPPRESS)
    group.addoption(
        "--tia",
        action="store_true",
        dest="tia",
        help="run only the tests affected by changes since each test last ran, plus last failures "
        "and new tests; update tia's map from this run",
    )
    group.addoption(
        "--tia-since",
        metavar="REF",
        dest="tia_since",
        default=None,
        help="like --tia, also selecting for every change since the merge-base of REF and HEAD",
    )
    group.addoption(
        "--tia-all",
        action="store_true",
        dest="tia_all",
        help="run every test and rebuild tia's map from this run",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # Start as early as pytest lets a plugin, so the conftest files' imports are recorded.
    options = early_config.known_args_namespace
    plan_path = getattr(options, "tia_plan", None)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    go = os.environ.pop(GO_ENV, None)  # never seen by the tests' own subprocesses
    if go is not None and not worker:
        _wait_for_plan(go)
    driver = None
    if not plan_path and (options.tia or options.tia_since or options.tia_all):
        if worker:
            plan_path = os.environ.get(PLAN_ENV)
        else:
            driver = TiaDriver.start(
                early_config, options.tia_since, options.tia_all, record=not options.collectonly
            )
            plan_path = str(driver.plan_file)
            os.environ[PLAN_ENV] = plan_path
    if not plan_path:
        return
    controller = not worker and bool(getattr(options, "numprocesses", None))
    session = TiaSession(Path(plan_path), controller=controller, driver=driver)
    early_config.pluginmanager.register(session, _PLUGIN_NAME)
    if not controller:
        session.start_recording()


def _wait_for_plan(go: str) -> None:
    """Wait until `tia run` has written the plan and says go (`tia.runner.EarlyPytest`);
    if it gave up instead, end this process: nothing has run yet."""
    try:
        fd = int(go)
        try:
            word = os.read(fd, 1)
        finally:
            os.close(fd)
    except KeyboardInterrupt:
        word = b""  # tia, interrupted too, stops this process
    except (ValueError, OSError) as exc:
        raise pytest.UsageError(f"tia: {GO_ENV}={go} is not a pipe from tia to wait on: {exc}") from None
    if not word:
        raise SystemExit(pytest.ExitCode.INTERRUPTED)


def _say(message: str) -> None:
    print(f"tia: {message}", file=sys.stderr, flush=True)


def _warn(message: str) -> None:
    print(f"tia: warning: {message}", file=sys.stderr, flush=True)


class TiaDriver:
    """tia inside an ordinary pytest command (``pytest --tia``): what `tia run` does around pytest.

    Lifecycle: `start`, from `pytest_load_initial_conftests` before any conftest is
    imported, takes the map's lock, plans and writes the plan for this process and
    its xdist workers; `finish`, at the end of the session on the controller (or a
    lone process), folds the results into the map; `close`, at unconfigure, drops
    the plan and releases the lock.
    """

    def __init__(self, project: Any, plan: Any, plan_file: Path, stack: ExitStack, record: bool) -> None:
        self.project = project
        self.plan = plan
        self.plan_file = plan_file
        self.stack = stack
        self.record = record  # --collect-only runs nothing, so it records nothing

    @classmethod
    def start(cls, config: pytest.Config, since: str | None, run_all: bool, record: bool) -> TiaDriver:
        from tia.config import load_config
        from tia.errors import TiaError
        from tia.gitrepo import find_root
        from tia.project import Project

        stack = ExitStack()
        try:
            cwd = Path(config.invocation_params.dir)
            root = find_root(cwd)
            project = Project(load_config(root, cwd), _warn)
            stack.enter_context(project.store.locked(_say))
            plan = project.plan(since or project.config.since, run_all=run_all, why="--tia-all")
            plan_file = project.config.cache_dir / f"plan-{os.getpid()}.json"
            plugin_plan = plan.to_plugin(project.rootdir(), record, project.config.engine)
            doc = {**plugin_plan, "root": str(root), "results": "", "cache": str(project.config.cache_dir)}
            plan_file.write_text(json.dumps(doc), encoding="utf-8")
        except TiaError as exc:
            stack.close()
            raise pytest.UsageError(f"tia: {exc}") from None
        except BaseException:
            stack.close()
            raise
        driver = cls(project, plan, plan_file, stack, record)
        config.add_cleanup(driver.close)
        return driver

    def finish(self, payload: dict[str, Any], session: pytest.Session) -> None:
        from tia.errors import TiaError
        from tia.project import left_unrun

        unrun = left_unrun(int(session.exitstatus), payload)
        if unrun:
            _warn(unrun)
            if session.exitstatus == pytest.ExitCode.OK:
                # xdist ends with status 0 when a worker's internal error stopped it.
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        if not self.record:
            return
        try:
            settled = self.project.settle(
                self.plan, payload, int(session.exitstatus), False, replace_all=self.plan.mode == "all"
            )
        except TiaError as exc:
            _warn(f"the map is unchanged: {exc}")
            return
        if settled.nothing_affected:
            # pytest says 5 when every test was deselected; for tia that is success.
            session.exitstatus = pytest.ExitCode.OK

    def close(self) -> None:
        self.plan_file.unlink(missing_ok=True)
        if os.environ.get(PLAN_ENV) == str(self.plan_file):
            del os.environ[PLAN_ENV]
        self.stack.close()


def _encodable(value: Any) -> Any:
    """`value` (JSON-like), with each string that UTF-8 cannot encode written with
    backslash escapes (``\\udc80``) instead."""
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    # Exact types: what a report's JSON is made of (a subclass is left as it is).
    if type(value) is dict:
        return {_encodable(key): _encodable(item) for key, item in value.items()}
    if type(value) is list:
        return [_encodable(item) for item in value]
    if type(value) is tuple:
        return tuple(_encodable(item) for item in value)
    return value


class _Uncollected:
    """Stands, in the terminal's statistics, for a test in a file pytest did not collect."""


def _outcome(phases: dict[str, pytest.TestReport]) -> str:
    setup, call, teardown = phases.get("setup"), phases.get("call"), phases.get("teardown")
    if (setup and setup.failed) or (teardown and teardown.failed):
        return "error"
    if call and call.failed:
        return "failed"
    if (setup and setup.skipped) or (call and call.skipped):
        return "skipped"
    return "passed"


@contextmanager
def _failure_reports_untraced(item: pytest.Item, recorder: Recorder) -> Iterator[None]:
    """While the block runs, `item.repr_failure` runs with `recorder` paused, unless the
    test is expected to fail (xfail).

    pytest writes a failed test's report (its traceback with the source around each
    frame, the repr of its arguments, the exception's text) inside the test's protocol.
    Under coverage.py's tracer that was most of a run where many tests fail: humanize
    with 218 of 243 tests failing, 7.4 s against 5.4 s.  pytest decided the test failed
    before it wrote the report, and a test that failed runs again next time whatever it
    depends on.  An xfail test's failure is reported as a skip, which does not."""
    shadowed = vars(item).get("repr_failure")
    report = item.repr_failure

    def repr_failure(excinfo: pytest.ExceptionInfo[BaseException], *args: Any, **kwargs: Any) -> Any:
        if excinfo.errisinstance(pytest.xfail.Exception) or item.get_closest_marker("xfail"):
            return report(excinfo, *args, **kwargs)
        with recorder.paused():
            return report(excinfo, *args, **kwargs)

    item.repr_failure = repr_failure  # type: ignore[method-assign]
    try:
        yield
    finally:
        if shadowed is None:
            del item.repr_failure
        else:
            item.repr_failure = shadowed  # type: ignore[method-assign]


class _FileIndexes:
    """The index of each file this run executed, by path, made at most once: the map's
    own index of that content when it has one (a lookup rather than a parse), else one
    made here, which the results hand back (`indexes`) for the map to keep.  The
    reduction to scopes asks for every file at the end; the monitoring engine asks for
    the hand-written caches of a few while tests run (`memo_lines`)."""

    def __init__(self, root: Path, cache: str | None) -> None:
        from tia.store import IndexReader

        self.root = root
        self.blobs: dict[str, str] = {}
        self.indexes: dict[str, Any] = {}  # blob id -> the FileIndex made here
        self._by_path: dict[str, Any] = {}
        self._stored = IndexReader(Path(cache)) if cache else None

    def _read(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except OSError:
            return None

    def _stored_index(self, path: str) -> tuple[bytes | None, Any]:
        """The file's content (None if it is gone), and the map's index of it, if any."""
        from tia.gitrepo import blob_id

        content = self._read(path)
        if content is None:
            return None, None
        sha = self.blobs[path] = blob_id(content)
        return content, self._stored.get(sha) if self._stored is not None else None

    def index_of(self, path: str) -> Any:
        """The `tia.scopes.FileIndex` of the file at `path` (relative), or None if it is gone."""
        if path in self._by_path:
            return self._by_path[path]
        content, index = self._stored_index(path)
        if content is not None and index is None:
            from tia.scopes import index_source

            index = self.indexes[self.blobs[path]] = index_source(content, path)
        self._by_path[path] = index
        return index

    def blob_of(self, path: str) -> str:
        if path not in self.blobs:
            from tia.gitrepo import blob_id

            content = self._read(path)
            self.blobs[path] = blob_id(content) if content is not None else "?"
        return self.blobs[path]

    def memo_lines(self, path: str) -> dict[str, tuple[frozenset[int], frozenset[int]]]:
        """The fill and hit lines of each hand-written cache of a file (`tia.memos`), by scope.

        Asked while tests run, when tia may still be storing the indexes of this run's
        files: where the map has no index yet, only the caches are worked out here, and
        the index is looked for again at the end (`index_of`)."""
        if path in self._by_path:
            content, index = None, self._by_path[path]
        else:
            content, index = self._stored_index(path)
            if index is not None:
                self._by_path[path] = index
        if index is not None:
            memos = index.memos if not index.error else None
        elif content is not None:
            from tia.scopes import memos_of_source

            memos = memos_of_source(content, path)
        else:
            memos = None
        return {scope: (frozenset(fills), frozenset(hits)) for scope, (fills, hits) in (memos or {}).items()}

    def close(self) -> None:
        if self._stored is not None:
            self._stored.close()


class TiaSession:
    """One pytest session under tia.

    Lifecycle: created in `pytest_load_initial_conftests`; recording starts there
    (not on an xdist controller); collection is filtered by the plan; every test
    runs in its own recording context; at session finish the worker sends its
    results to the controller, or the controller (or a lone process) writes the
    results file that `tia run` folds into the map.
    """

    def __init__(self, plan_path: Path, controller: bool, driver: TiaDriver | None = None) -> None:
        self.plan: dict[str, Any] = json.loads(plan_path.read_text(encoding="utf-8"))
        self.root = Path(self.plan["root"])
        self.controller = controller
        self.driver = driver
        self.recorder: Any = None
        self.files: _FileIndexes | None = None
        self.imported: Any = None
        self.loaded: dict[str, frozenset[str]] = {}
        self.phases: dict[str, dict[str, pytest.TestReport]] = {}
        self.durations: dict[str, float] = {}
        self.test_plans: dict[str, Any] = {}
        self.collected: list[str] = []
        self.narrowed = False
        self.selected: list[str] | None = None
        self.worker_results: list[dict[str, Any]] = []
        self.internal_error = False
        self.started = time.time()
        self.collect_seconds = 0.0
        self.skip = {str(self.root / p) for p in self.plan.get("skip_files", [])}

    # -- recording -----------------------------------------------------------

    def start_recording(self) -> None:
        if not self.plan.get("record", True):
            return
        from tia.environment import ImportedDistributions, Owners
        from tia.mapping import IMPORT_CONTEXTS
        from tia.recorder import make_recorder

        try:
            known = Owners.from_json(self.plan.get("owners"))
        except ValueError:
            known = None  # tia read none, or not in its shape: read them here, when first needed
        self.imported = ImportedDistributions(known)
        files = self.files = _FileIndexes(self.root, self.plan.get("cache"))
        self.recorder = make_recorder(self.plan.get("engine", "coverage"), self.root, IMPORT_CONTEXTS)
        self.recorder.memo_lines = files.memo_lines
        self.recorder.start()

    def _switch(self, context: str) -> str | None:
        if self.recorder is None:
            return None
        return self.recorder.switch(context)

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Generator[None, Any, Any]:
        from tia.mapping import COLLECT

        previous = self._switch(COLLECT + collector.nodeid)
        try:
            return (yield)
        finally:
            if previous is not None:
                self._switch(previous)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Generator[None, Any, Any]:
        if self.recorder is None or fixturedef.scope == "function":
            return (yield)
        from tia.mapping import fixture_key

        previous = self._switch(fixture_key(fixturedef.baseid, fixturedef.argname))
        try:
            return (yield)
        finally:
            if previous is not None:
                self._switch(previous)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: Any) -> Generator[None, Any, Any]:
        if self.recorder is None:
            return (yield)
        from tia.mapping import SESSION, TEST, TestPlan, fixture_key

        fixtures = []
        info = getattr(item, "_fixtureinfo", None)
        if info is not None:
            for name in item.fixturenames:  # type: ignore[attr-defined]
                for fixturedef in info.name2fixturedefs.get(name, ()):
                    if fixturedef.scope != "function":
                        fixtures.append(fixture_key(fixturedef.baseid, fixturedef.argname))
        collectors = tuple(node.nodeid for node in item.listchain()[:-1])
        self.test_plans[item.nodeid] = TestPlan(item.nodeid, collectors, tuple(fixtures))
        self._switch(TEST + item.nodeid)
        try:
            with _failure_reports_untraced(item, self.recorder):
                return (yield)
        finally:
            self._switch(SESSION)
            self.loaded[item.nodeid] = self.imported.now()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # pytest-cov starts measuring here on xdist workers, on top of tia's recording.
        if self.recorder is not None:
            self.recorder.take_over()

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, Any, Any]:
        # Stop recording as the last test's teardown ends, inside other plugins' wrappers:
        # pytest-cov stops its own coverage.py measurement after this, and only the last
        # one started may stop first.
        try:
            return (yield)
        finally:
            if self.recorder is not None:
                self.recorder.stop()

    # -- selection -----------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)  # before conftest hooks that return False to force collection
    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        # Not collecting unaffected test files saves importing them: most of a small run's time.
        if self.skip and str(collection_path) in self.skip:
            return True
        return None

    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        self.collect_seconds = time.time() - self.started
        self.collected = [item.nodeid for item in items]
        option = config.option
        # Collection that was narrowed cannot tell tia which mapped tests no longer exist.
        self.narrowed = bool(
            getattr(option, "keyword", "")
            or getattr(option, "markexpr", "")
            or getattr(option, "deselect", None)
            or getattr(option, "lf", False)
            or any("::" in arg for arg in config.args)
        )
        keep, drop = list(items), []
        if self.plan["mode"] != "all":
            chosen = set(self.plan["selected"])
            known = set(self.plan["known"])
            failed = set(self.plan["failed"])
            keep = [item for item in items if item.nodeid in chosen or item.nodeid not in known]
            drop = [item for item in items if item.nodeid not in chosen and item.nodeid in known]
            # Last failures first, as --failed-first does: they are the likeliest to fail again.
            keep.sort(key=lambda item: item.nodeid not in failed)
        if self.plan.get("shard"):
            from tia.selection import shard_of

            index, count = self.plan["shard"]
            mine = shard_of((item.nodeid for item in keep), self.plan["durations"], index, count)
            drop += [item for item in keep if item.nodeid not in mine]
            keep = [item for item in keep if item.nodeid in mine]
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep
        self.selected = [item.nodeid for item in keep]

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        lines = [self.plan["header"]] if self.plan.get("header") else []
        if config.option.verbose > 0:
            reasons = self.plan.get("reasons", {})
            lines += [f"tia:   {nodeid}  ({'; '.join(reasons[nodeid])})" for nodeid in sorted(reasons)]
        return lines

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        # Tests in files tia did not let pytest collect count as deselected in the final line,
        # so that line accounts for the whole mapped suite; --collect-only's line counts
        # collected items, so it is left alone.
        if config.option.collectonly:
            return
        count = self.plan.get("uncollected", 0)
        if self.worker_results:
            # xdist does not pass the workers' deselections on to the controller's terminal.
            first = self.worker_results[0]
            count += len(first.get("collected") or []) - len(first.get("selected") or [])
        if count and not os.environ.get("PYTEST_XDIST_WORKER"):
            terminalreporter.stats.setdefault("deselected", []).extend(_Uncollected() for _ in range(count))

    # -- outcomes and results --------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if os.environ.get("PYTEST_XDIST_WORKER"):
            return  # the controller records outcomes from the reports workers send it
        phases = self.phases.setdefault(report.nodeid, {})
        earlier = phases.get(report.when)
        # A failed subtest (unittest's `subTest`, reported by pytest 9 or pytest-subtests)
        # reports under its test's node id and phase, before the test's own report, which
        # may pass: the test failed, and must run again next time.
        if earlier is None or not earlier.failed:
            phases[report.when] = report
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration

    @pytest.hookimpl(wrapper=True)
    def pytest_report_to_serializable(self, config: pytest.Config, report: Any) -> Generator[None, Any, Any]:
        data = yield
        # An xdist worker sends reports through execnet, which takes only text UTF-8 can
        # encode: a lone surrogate in a failure's text (PyYAML's tests of unacceptable
        # characters) would stop the worker in an internal error, its other tests unrun.
        return _encodable(data) if os.environ.get("PYTEST_XDIST_WORKER") else data

    def pytest_internalerror(self, excrepr: Any, excinfo: Any) -> None:
        # xdist reports a worker's internal error this way, and may still end the session
        # with status 0: the tests that worker had left never ran.
        self.internal_error = True

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None) or {}
        if "tia" in output:
            self.worker_results.append(json.loads(output["tia"]))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        local = self._local_results()
        config = session.config
        if hasattr(config, "workeroutput"):
            config.workeroutput["tia"] = json.dumps(local)
            return
        results = [local, *self.worker_results] if local else self.worker_results
        self._write(results, int(exitstatus), session)

    def _local_results(self) -> dict[str, Any]:
        """What this process collected and selected, and its recording reduced to per-test dependencies."""
        local: dict[str, Any] = {
            "collected": self.collected,
            "narrowed": self.narrowed,
            "selected": self.selected,
            "collect_seconds": self.collect_seconds,
        }
        if self.recorder is None:
            return local if self.selected is not None else {}
        from tia.mapping import IMPORTED, reduce_run, scopes_by_context

        files = self.files
        assert files is not None  # made with the recorder
        self.recorder.stop()
        if self.recorder.interrupted_by:
            _warn(f"this run's dependencies were not recorded: {self.recorder.interrupted_by}")
            return local
        try:
            lines = self.recorder.lines()
            for module, importers in self.recorder.importers().items():
                lines[IMPORTED + module] = importers
            by_context = scopes_by_context(lines, self.recorder.reads(), files.index_of)
        finally:
            files.close()
        deps, facts = reduce_run(by_context, self.test_plans.values(), self.recorder.openers(), files.blob_of)
        from tia.records import deps_to_json

        local.update(self._imported_distributions())
        local.update(
            deps={nodeid: deps_to_json(d) for nodeid, d in deps.items()},
            facts=facts.to_json(),
            blobs=files.blobs,
            indexes={sha: index.to_json() for sha, index in files.indexes.items()},
        )
        return local

    def _imported_distributions(self) -> dict[str, Any]:
        """Per test, an index into ``dist_sets``: the distributions imported by the time
        it finished; -1 when this process started another (whose imports are unseen)
        during the test or outside any test."""
        from tia.mapping import TEST

        spawned = self.recorder.spawned
        anywhere = any(not context.startswith(TEST) for context in spawned)
        sets: dict[frozenset[str], int] = {}
        dists = {}
        for nodeid, names in self.loaded.items():
            if anywhere or TEST + nodeid in spawned:
                dists[nodeid] = -1
            else:
                dists[nodeid] = sets.setdefault(names, len(sets))
        return {"dist_sets": [sorted(names) for names in sets], "dists": dists}

    def _write(self, results: list[dict[str, Any]], exitstatus: int, session: pytest.Session) -> None:
        outcomes = {
            nodeid: {"outcome": _outcome(phases), "duration": self.durations.get(nodeid, 0.0)}
            for nodeid, phases in self.phases.items()
            if "teardown" in phases  # only tests that ran to completion
        }
        payload = {
            "exitstatus": exitstatus,
            "internal_error": self.internal_error,
            "rootdir": str(session.config.rootpath),
            "outcomes": outcomes,
            "parts": results,
            "started": self.started,
        }
        if self.driver is not None:
            self.driver.finish(payload, session)
            return
        target = Path(self.plan["results"])
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        tmp.replace(target)
