"""Both recording engines record the same dependencies: coverage.py's lines and sys.monitoring's
code objects, reduced to scopes, must agree test by test (the monitoring engine is the default
on Python 3.12+ only because they do)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SAMPLE, GitProject
from tia.store import Store

pytestmark = pytest.mark.slow

needs_monitoring = pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is Python 3.12+")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "shop"

# Beyond the sample: a generator started in one test and resumed in another, a thread,
# a subprocess, a session fixture, a class-scoped fixture, a decorated function, two
# files whose functions compile to equal code objects (equal name, line and body), and a
# hand-written cache that one test fills, the next finds filled, and a third fills again.
TWIN = """
    def same():
        return 1
    """
EXTRAS = {
    "pkg/twin_a.py": TWIN,
    "pkg/twin_b.py": TWIN,
    "tests/test_twins.py": """
        from pkg import twin_a, twin_b


        def test_a():
            assert twin_a.same() == 1


        def test_b():
            assert twin_b.same() == 1
        """,
    "pkg/flow.py": """
        import functools
        import subprocess
        import sys
        import threading


        def numbers():
            yield 1
            yield 2


        STREAM = numbers()


        def traced(func):
            @functools.wraps(func)
            def wrapper(*args):
                return func(*args)

            return wrapper


        @traced
        def double(x):
            return 2 * x


        def in_thread():
            out = []
            worker = threading.Thread(target=lambda: out.append(double(4)))
            worker.start()
            worker.join()
            return out[0]


        def in_subprocess():
            code = "import pkg.consts; print(pkg.consts.FACTOR)"
            return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
        """,
    "pkg/kept.py": """
        _KEPT = {}


        def kept(key):
            if key in _KEPT:
                return _KEPT[key]
            _KEPT[key] = value = make(key)
            return value


        def make(key):
            return key * 2
        """,
    "tests/test_kept.py": """
        from pkg.kept import kept


        def test_fills():
            assert kept(1) == 2


        def test_finds():
            assert kept(1) == 2


        def test_fills_another():
            assert kept(2) == 4
        """,
    "tests/test_flow.py": """
        import pytest

        from pkg import flow


        @pytest.fixture(scope="session")
        def started():
            return next(flow.STREAM)


        class TestFlow:
            @pytest.fixture(scope="class")
            def doubled(self):
                return flow.double(1)

            def test_first(self, started, doubled):
                assert (started, doubled) == (1, 2)

            def test_second(self):
                assert next(flow.STREAM) == 2


        def test_thread():
            assert flow.in_thread() == 8


        def test_subprocess():
            assert flow.in_subprocess().strip() == "2"
        """,
}


def load(path: Path, name: str) -> Any:
    """The module at `path`, imported under `name` without touching sys.path or sys.modules."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flat(groups: Any) -> dict[str, dict[str, set[int]]]:
    """`Recorder.lines`, each file's groups of lines made one set."""
    return {ctx: {path: set().union(*g) for path, g in files.items()} for ctx, files in groups.items()}


def mapped_with(source: Path, target: Path, engine: str) -> tuple[dict[str, Any], dict[str, Any]]:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".tia", ".git"))
    project = GitProject(target)
    project.commit("initial")
    result = project.tia("map", "-n", "0", "--engine", engine)
    assert result.rc == 0, result
    store = Store(target / ".tia", print).open()
    try:
        deps = {n: {p: scopes for p, (_, scopes) in r.deps.items()} for n, r in store.tests().items()}
        return deps, store.facts().to_json()
    finally:
        store.close()


@needs_monitoring
@pytest.mark.parametrize("source", ["sample", "example"])
def test_both_engines_record_the_same_dependencies(source: str, tmp_path: Path) -> None:
    origin = EXAMPLE
    if source == "sample":
        origin = tmp_path / "origin"
        GitProject(origin).write_all({**SAMPLE, **EXTRAS})
    by_coverage = mapped_with(origin, tmp_path / "coverage", "coverage")
    by_monitoring = mapped_with(origin, tmp_path / "monitoring", "monitoring")
    assert by_monitoring == by_coverage
    deps = by_coverage[0]
    assert deps, "nothing was recorded"
    if source == "sample":
        # The generator resumed by test_second, the thread's and the subprocess's code all count.
        assert "numbers" in deps["tests/test_flow.py::TestFlow::test_second"]["pkg/flow.py"]
        assert "double" in deps["tests/test_flow.py::test_thread"]["pkg/flow.py"]
        assert "pkg/consts.py" in deps["tests/test_flow.py::test_subprocess"]
        assert deps["tests/test_twins.py::test_b"]["pkg/twin_b.py"] == frozenset({"same"})
        # The first call fills the cache, the second finds what it kept, a new key fills it.
        filled = {"kept", "make", "<fills kept>"}
        assert deps["tests/test_kept.py::test_fills"]["pkg/kept.py"] == filled
        assert deps["tests/test_kept.py::test_finds"]["pkg/kept.py"] == {"kept", "<hits kept>"}
        assert deps["tests/test_kept.py::test_fills_another"]["pkg/kept.py"] == filled
        assert by_coverage[1]["memos"] == {"pkg/kept.py": ["kept"]}
        assert "same" not in deps["tests/test_twins.py::test_b"].get("pkg/twin_a.py", ())


@needs_monitoring
def test_the_monitoring_engine_is_the_default_on_python_3_12(mapped: GitProject) -> None:
    from tia.config import load_config

    assert load_config(mapped.path, mapped.path, environ={}).engine == "monitoring"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the engine exists on Python 3.12+")
def test_the_monitoring_engine_before_python_3_12_is_a_usage_error(mapped: GitProject) -> None:
    result = mapped.tia("map", "--engine", "monitoring")
    assert result.rc == 2, result
    assert result.stderr.strip() == (
        "tia: error: the monitoring engine needs Python 3.12 or later (this Python can use: coverage)"
    )


@needs_monitoring
def test_the_monitoring_engine_records_each_context_a_function_runs_in_and_rearms_only_those(
    tmp_path: Path,
) -> None:
    import json as outside  # a module outside the repository, called in every context

    from tia.recorder import MonitoringRecorder

    root = tmp_path.resolve()
    (root / "mod.py").write_text("def f():\n    return 1\n\n\ndef g():\n    return 2\n")
    recorder = MonitoringRecorder(root, ())
    recorder.start()
    try:
        module = load(root / "mod.py", "tia_engine_probe")  # in "S", the session
        for context, calls in [("a", "f"), ("b", "ff"), ("c", ""), ("d", "fg"), ("a", "g")]:
            recorder.switch(context)
            outside.dumps([1])
            for name in calls:
                getattr(module, name)()
            # Only the repository's code objects wait to be re-armed by the next switch.
            assert {code.co_filename for code in recorder._current} <= {str(root / "mod.py")}
    finally:
        recorder.stop()
    groups = recorder.lines()
    lines = flat(groups)
    assert lines["S"] == {"mod.py": {1, 5}}  # the module body: its two def statements
    assert lines["a"] == {"mod.py": {2, 6}}
    assert lines["b"] == {"mod.py": {2}}
    assert "c" not in lines
    assert lines["d"] == {"mod.py": {2, 6}}
    # A code object's lines are one object in every context it ran in: reduced once.
    (f_lines,) = groups["b"]["mod.py"]
    assert any(g is f_lines for g in groups["a"]["mod.py"])
    assert any(g is f_lines for g in groups["d"]["mod.py"])


@pytest.mark.parametrize("contexts", ["taken by tia", "coverage.py's own"])
def test_the_coverage_engine_records_each_context_its_lines(
    contexts: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tia import recorder as recorder_module
    from tia.recorder import CoverageRecorder

    if contexts == "coverage.py's own":
        monkeypatch.setattr(recorder_module, "_line_sets", lambda cov: None)
    root = tmp_path.resolve()
    (root / "mod.py").write_text(
        "def f():\n"
        "    return 1\n"
        "\n"
        "\n"
        "def spans(recorder):\n"
        "    before = 1\n"
        "    recorder.switch('y')\n"
        "    return before + 1\n"
        "\n"
        "\n"
        "def numbers():\n"
        "    yield 1\n"
        "    yield 2\n"
    )
    recorder = CoverageRecorder(root, ())
    recorder.start()
    try:
        assert (recorder._taken is not None) == (contexts == "taken by tia")
        module = load(root / "mod.py", "tia_coverage_probe")  # in "S", the session
        recorder.switch("a")
        module.f()
        stream = module.numbers()
        next(stream)
        recorder.switch("x")
        module.spans(recorder)  # switches to "y" halfway
        recorder.switch("b")
        next(stream)  # a frame begun in "a" resumes in "b"
        recorder.switch("a")
        module.f()
    finally:
        recorder.stop()
    groups = recorder.lines()
    lines = flat(groups)
    assert lines == {
        "S": {"mod.py": {1, 5, 11}},
        "a": {"mod.py": {2, 12}},
        "x": {"mod.py": {6, 7}},
        "y": {"mod.py": {8}},
        "b": {"mod.py": {13}},
    }


@pytest.mark.parametrize("engine", ["coverage", pytest.param("monitoring", marks=needs_monitoring)])
def test_what_runs_while_the_recorder_is_paused_counts_in_no_context(engine: str, tmp_path: Path) -> None:
    import threading

    from tia.recorder import make_recorder

    root = tmp_path.resolve()
    (root / "mod.py").write_text(
        "def f():\n"
        "    return 1\n"
        "\n"
        "\n"
        "def g():\n"
        "    return 2\n"
        "\n"
        "\n"
        "def h():\n"
        "    return 3\n"
        "\n"
        "\n"
        "def later(event, out):\n"
        "    event.wait()\n"
        "    out.append(f())\n"
    )
    data = root / "data.txt"
    data.write_text("x")
    recorder = make_recorder(engine, root, ())
    recorder.start()
    try:
        module = load(root / "mod.py", f"tia_pause_probe_{engine}")  # in "S", the session
        recorder.switch("a")
        module.f()
        with recorder.paused():
            module.g()
            data.read_text()
            with recorder.paused():  # nested: still paused after the inner block
                module.h()
            module.h()
        module.g()  # ran while paused in this context: counts when it runs again
        recorder.switch("b")
        with recorder.paused():
            module.h()
        recorder.switch("c")
        module.h()
        data.read_text()
        recorder.switch("d")
        # A thread started before a pause is measured after it, as before it.
        event, out = threading.Event(), []
        worker = threading.Thread(target=module.later, args=(event, out))
        worker.start()
        with recorder.paused():
            pass
        event.set()
        worker.join()
        assert out == [1]
    finally:
        recorder.stop()
    lines = flat(recorder.lines())
    assert lines == {
        "S": {"mod.py": {1, 5, 9, 13}},
        "a": {"mod.py": {2, 6}},
        "c": {"mod.py": {10}},
        "d": {"mod.py": {2, 14, 15}},
    }
    assert recorder.reads() == {"c": {"data.txt"}}


def test_the_recorder_notes_what_imported_a_module_while_a_test_ran(tmp_path: Path) -> None:
    from tia.mapping import IMPORT_CONTEXTS
    from tia.recorder import CoverageRecorder

    root = tmp_path.resolve()
    (root / "loader.py").write_text(
        "import importlib\n\n\ndef load(name):\n    return importlib.import_module(name)\n\n\n"
        "def reload(name):\n    return importlib.import_module(name)\n"
    )
    (root / "tia_probe_early.py").write_text("VALUE = 0\n")
    (root / "tia_probe_plug.py").write_text("VALUE = 1\n")
    (root / "tia_probe_kept.py").write_text("VALUE = 2\n")
    installed = root / "venv" / "site-packages"
    installed.mkdir(parents=True)
    (installed / "caller.py").write_text("def call(load, name):\n    return load(name)\n")

    loader = load(root / "loader.py", "tia_probe_loader")
    caller = load(installed / "caller.py", "tia_probe_caller")
    sys.path.insert(0, str(root))
    recorder = CoverageRecorder(root, IMPORT_CONTEXTS)
    recorder.start()
    try:
        loader.load("tia_probe_early")  # while the session starts: the import graph's
        recorder.switch("T:a")
        assert caller.call(loader.load, "tia_probe_plug").VALUE == 1
        loader.load("tia_probe_plug")  # imported already: nothing to note
        kept = loader.load("tia_probe_kept")
        recorder.switch("T:b")
        # Taken out, imported anew and put back, as tests of lazy imports do: the new
        # module is thrown away, no later test can use it.
        del sys.modules["tia_probe_kept"]
        assert loader.reload("tia_probe_kept") is not kept
        sys.modules["tia_probe_kept"] = kept
        recorder.switch("T:c")
    finally:
        recorder.stop()
        sys.path.remove(str(root))
        for name in ("tia_probe_early", "tia_probe_plug", "tia_probe_kept"):
            sys.modules.pop(name, None)
    # The loader's line, not the installed caller's (nor this test's: outside the root).
    assert recorder.importers() == {
        "tia_probe_plug.py": {"loader.py": [{5}]},
        "tia_probe_kept.py": {"loader.py": [{5}]},
    }
