"""tia's pytest plugin: applies a selection plan and records what every test executes.

Registered through the ``pytest11`` entry point but inert unless ``--tia-plan``
names a plan, which `tia run` and `tia map` do.  This module imports only the
standard library and pytest, so an ordinary ``pytest`` run pays nothing; the
recorder loads only when a plan asks for recording.

Under pytest-xdist the controller runs no tests: it takes outcomes from the
reports it receives and dependencies from each worker's ``workeroutput``, and
only the controller writes the results file.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

_PLUGIN_NAME = "tia-session"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tia", "test impact analysis (tia)")
    group.addoption("--tia-plan", dest="tia_plan", default=None, help=argparse.SUPPRESS)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # Start as early as pytest lets a plugin, so the conftest files' imports are recorded.
    plan_path = getattr(early_config.known_args_namespace, "tia_plan", None)
    if not plan_path:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    controller = not worker and bool(getattr(early_config.known_args_namespace, "numprocesses", None))
    session = TiaSession(Path(plan_path), controller=controller)
    early_config.pluginmanager.register(session, _PLUGIN_NAME)
    if not controller:
        session.start_recording()


def _outcome(phases: dict[str, pytest.TestReport]) -> str:
    setup, call, teardown = phases.get("setup"), phases.get("call"), phases.get("teardown")
    if (setup and setup.failed) or (teardown and teardown.failed):
        return "error"
    if call and call.failed:
        return "failed"
    if (setup and setup.skipped) or (call and call.skipped):
        return "skipped"
    return "passed"


class TiaSession:
    """One pytest session under tia.

    Lifecycle: created in `pytest_load_initial_conftests`; recording starts there
    (not on an xdist controller); collection is filtered by the plan; every test
    runs in its own recording context; at session finish the worker sends its
    results to the controller, or the controller (or a lone process) writes the
    results file that `tia run` folds into the map.
    """

    def __init__(self, plan_path: Path, controller: bool) -> None:
        self.plan: dict[str, Any] = json.loads(plan_path.read_text(encoding="utf-8"))
        self.root = Path(self.plan["root"])
        self.controller = controller
        self.recorder = None
        self.phases: dict[str, dict[str, pytest.TestReport]] = {}
        self.durations: dict[str, float] = {}
        self.test_plans: dict[str, Any] = {}
        self.collected: list[str] = []
        self.narrowed = False
        self.selected: list[str] | None = None
        self.worker_results: list[dict[str, Any]] = []
        self.started = time.time()
        self.collect_seconds = 0.0
        self.skip = {str(self.root / p) for p in self.plan.get("skip_files", [])}

    # -- recording -----------------------------------------------------------

    def start_recording(self) -> None:
        if not self.plan.get("record", True):
            return
        from tia.mapping import IMPORT_CONTEXTS
        from tia.recorder import CoverageRecorder

        self.recorder = CoverageRecorder(self.root, IMPORT_CONTEXTS)
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
            return (yield)
        finally:
            self._switch(SESSION)

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
        if self.plan["mode"] == "all":
            self.selected = list(self.collected)
            return
        chosen = set(self.plan["selected"])
        known = set(self.plan["known"])
        failed = set(self.plan["failed"])
        keep, drop = [], []
        for item in items:
            if item.nodeid in chosen or item.nodeid not in known:
                keep.append(item)
            else:
                drop.append(item)
        # Last failures first, as --failed-first does: they are the likeliest to fail again.
        keep.sort(key=lambda item: item.nodeid not in failed)
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep
        self.selected = [item.nodeid for item in keep]

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        return self.plan.get("header")

    # -- outcomes and results --------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if os.environ.get("PYTEST_XDIST_WORKER"):
            return  # the controller records outcomes from the reports workers send it
        self.phases.setdefault(report.nodeid, {})[report.when] = report
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration

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
        from tia.gitrepo import blob_id
        from tia.mapping import reduce_run, scopes_by_context
        from tia.scopes import FileIndex, index_source

        self.recorder.stop()
        blobs: dict[str, str] = {}
        indexes: dict[str, FileIndex] = {}

        def read(path: str) -> bytes | None:
            try:
                return (self.root / path).read_bytes()
            except OSError:
                return None

        def index_of(path: str) -> FileIndex | None:
            content = read(path)
            if content is None:
                return None
            sha = blob_id(content)
            blobs[path] = sha
            indexes[sha] = index_source(content, path)
            return indexes[sha]

        def blob_of(path: str) -> str:
            if path not in blobs:
                content = read(path)
                blobs[path] = blob_id(content) if content is not None else "?"
            return blobs[path]

        by_context = scopes_by_context(self.recorder.lines(), self.recorder.reads(), index_of)
        deps, facts = reduce_run(by_context, self.test_plans.values(), self.recorder.openers(), blob_of)
        from tia.records import deps_to_json

        local.update(
            deps={nodeid: deps_to_json(d) for nodeid, d in deps.items()},
            facts=facts.to_json(),
            blobs=blobs,
            indexes={sha: index.to_json() for sha, index in indexes.items()},
        )
        return local

    def _write(self, results: list[dict[str, Any]], exitstatus: int, session: pytest.Session) -> None:
        outcomes = {
            nodeid: {"outcome": _outcome(phases), "duration": self.durations.get(nodeid, 0.0)}
            for nodeid, phases in self.phases.items()
            if "teardown" in phases  # only tests that ran to completion
        }
        payload = {
            "exitstatus": exitstatus,
            "rootdir": str(session.config.rootpath),
            "outcomes": outcomes,
            "parts": results,
            "started": self.started,
        }
        target = Path(self.plan["results"])
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        tmp.replace(target)
