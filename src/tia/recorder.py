"""The recording engines: which repository lines ran, and which repository files were opened, per context.

This is the only module that uses coverage.py or `sys.monitoring`.  A *context*
is a label the pytest plugin switches as the session moves on (see
`tia.mapping` for the labels).  Both engines measure the repository's own files
only; an audit hook on ``open`` sees every file a test reads, whether through
`open`, `Path.read_text`, `os.open` or `importlib.resources`; Python
subprocesses record through coverage.py under either engine.

* `CoverageRecorder` (engine ``coverage``, every Python): coverage.py's lines.
  Its ``sysmon`` core keeps only the first context to reach each line
  (coverage.py #2200), so the recorder always asks for the ``ctrace`` core.  At
  each switch it takes the lines traced since the last one from the tracers' sets
  itself, rather than having coverage.py write them to its SQLite data and read
  them back (`_line_sets`).
* `MonitoringRecorder` (engine ``monitoring``, Python 3.12+): a ``PY_START`` and
  ``PY_RESUME`` event per code object of the repository, disabled after its first
  hit and re-armed, on the code objects that hit, at every context switch.  A
  scope that was entered in a context is what tia keeps of the lines anyway
  (`tia.mapping` reduces lines to scopes), so the engine reports the lines of each
  code object entered, without the prologue before its ``RESUME``.

`Recorder.paused` records nothing for the length of a block, in either engine: the
pytest plugin pauses while pytest writes a failing test's report.

coverage.py traces with one measurement at a time: one started later pauses the
one before until it stops.  When another measurement is running as tia starts
(pytest-cov's ``--cov``), the coverage engine runs on top of it and, when it
stops, hands it the lines of the files it measures, so its report is whole.  One
started after tia's (pytest-cov starts at session start on xdist workers) is put
back underneath by `take_over`; if another takes over later still, tia's
recording is blind from then on, so the run is marked `interrupted_by` and
records nothing.  The monitoring engine has its own tool id and leaves
coverage.py alone.
"""

from __future__ import annotations

import atexit
import contextlib
import dis
import fnmatch
import operator
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from types import CodeType, FrameType
from typing import Any, NoReturn

# context -> repository-relative path -> groups of executed line numbers (see `Recorder.lines`)
LineGroups = dict[str, dict[str, list[Collection[int]]]]

# A private reference, so a test that mocks os.path cannot reach the audit hook.
_abspath = os.path.abspath
_O_ACCMODE = getattr(os, "O_ACCMODE", 3)

TAKEN_OVER = "another coverage.py measurement started after tia's and took over"


def make_recorder(engine: str, root: Path, import_contexts: tuple[str, ...]) -> Recorder:
    if engine == "monitoring":
        return MonitoringRecorder(root, import_contexts)
    return CoverageRecorder(root, import_contexts)


class Recorder:
    """Lines executed and files read, by context: what both engines share.

    Lifecycle: ``Recorder(root, import_contexts)``, `start`, any number of
    `switch`, `stop`, then `lines`, `reads` and `openers`.  Python subprocesses
    started meanwhile record with coverage.py into a temporary directory that
    `lines` reads and removes.

    Attributes:
        context: the current context label.
        interrupted_by: why the recording is incomplete (another coverage.py
            measurement took over), or None.
        file_reads: context -> absolute paths of files opened for reading.
        import_reads: Python file -> data files opened while that file was on the
            stack during collection or session set-up (its import-time reads).
        spawned: contexts in which the process started another process or forked.
        lazy_imports: a repository module's file -> (file, line) of the repository's frames
            on the stack when a test or fixture first imported it (see `importers`).
    """

    def __init__(self, root: Path, import_contexts: tuple[str, ...]) -> None:
        self.root = root
        self._prefix = str(root) + os.sep
        self._import_contexts = import_contexts
        self.context = ""
        self.file_reads: dict[str, set[str]] = {}
        self.import_reads: dict[str, set[str]] = {}
        self.spawned: set[str] = set()
        self.lazy_imports: dict[str, set[tuple[str, int]]] = {}
        self._importing: list[tuple[str, set[tuple[str, int]]]] = []  # module name, frames
        # `sys.modules` as the current context began, unless it is one of `import_contexts`.
        self._modules_before: dict[str, Any] = {}
        self._active = False
        self._subdir = ""
        self._saved_env: dict[str, str | None] = {}
        # Absolute path -> repository-relative one (None outside it): asked for every
        # context's files, thousands of times for the same few paths.
        self._relatives: dict[str, str | None] = {}
        self._files: dict[str, str | None] = {}  # co_filename -> `_repository_file`
        self._archives: dict[str, str | None] = {}  # path -> `_archive_of`
        self.interrupted_by: str | None = None
        self._paused = False
        # A file's hand-written caches (`tia.memos`): scope -> (fill lines, hit lines), by
        # repository-relative path.  The plugin sets it; the monitoring engine watches those lines.
        self.memo_lines: Callable[[str], dict[str, tuple[frozenset[int], frozenset[int]]]] = lambda path: {}
        self._omit = [
            f"{root}/.tia/*",
            f"{root}/.git/*",
            "*/site-packages/*",
            "*/dist-packages/*",
            f"{sys.prefix}/*",
            f"{sys.base_prefix}/*",
        ]

    def start(self) -> None:
        _install_audit_hook(self)
        self._measure_subprocesses()
        self._start_engine()
        self._active = True
        self.switch("S")

    def _start_engine(self) -> None:
        raise NotImplementedError

    def _switch_engine(self, context: str) -> None:
        raise NotImplementedError

    def _stop_engine(self) -> None:
        raise NotImplementedError

    def _engine_lines(self) -> dict[str, dict[str, list[Collection[int]]]]:
        """context -> absolute path -> groups of line numbers (see `lines`), from this process."""
        raise NotImplementedError

    def take_over(self) -> None:
        """Put tia's measurement back on top of one that started after it (coverage engine only)."""

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Record nothing while the block runs: no line, file read, import or process it
        starts counts in any context.  The pytest plugin pauses while pytest writes a
        failing test's report, which cannot change the test's outcome."""
        if not self._active or self._paused or self.interrupted_by is not None:
            yield
            return
        self._paused = True
        self._pause_engine()
        try:
            yield
        finally:
            self._resume_engine()
            self._paused = False

    def _pause_engine(self) -> None:
        raise NotImplementedError

    def _resume_engine(self) -> None:
        raise NotImplementedError

    def _measure_subprocesses(self) -> None:
        """Have Python subprocesses record too, under the context of the test that started them.

        coverage.py's ``.pth`` hook starts measurement in any Python process that
        finds ``COVERAGE_PROCESS_START``; the configuration reads the context from
        ``TIA_CONTEXT``, which `switch` keeps current.
        """
        self._subdir = tempfile.mkdtemp(prefix="tia-sub-")
        rcfile = os.path.join(self._subdir, "coveragerc")
        omit = "\n    ".join(self._omit)
        with open(rcfile, "w", encoding="utf-8") as f:
            f.write(
                "[run]\n"
                f"data_file = {self._subdir}/sub\n"
                "parallel = True\n"
                "branch = False\n"
                "core = ctrace\n"
                "context = ${TIA_CONTEXT}\n"
                f"include = {self.root}/*\n"
                f"omit =\n    {omit}\n"
            )
        self._saved_env = {k: os.environ.get(k) for k in ("COVERAGE_PROCESS_START", "TIA_CONTEXT")}
        os.environ["COVERAGE_PROCESS_START"] = rcfile

    def switch(self, context: str) -> str:
        previous = self.context
        self.context = context
        if self._importing:
            self._file_imports()
        self._modules_before = {} if context.startswith(self._import_contexts) else sys.modules.copy()
        if self._active:
            self._switch_engine(context)
            os.environ["TIA_CONTEXT"] = context
        return previous

    def stop(self) -> None:
        if self._active:
            self._active = False
            self._stop_engine()
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def lines(self) -> LineGroups:
        """context -> repository-relative path -> groups of executed line numbers.

        A group the engine saw in several contexts (a code object's lines) is one object
        in each, so that what is worked out from a group can be worked out once.  Code
        imported from an archive of the repository (``pkg.zip/mod.py``) is no file of the
        work tree: the archive counts as read, in `file_reads`, by the context that ran it
        (call `reads` after this)."""
        out: LineGroups = {}
        for ctx, files in self._engine_lines().items():
            target: dict[str, list[Collection[int]]] | None = None
            for filename, groups in files.items():
                rel = self._work_tree_path(ctx, filename)
                if rel is not None:
                    if target is None:
                        target = out.setdefault(ctx, {})
                    target.setdefault(rel, []).extend(groups)
        subs = sorted(Path(self._subdir).glob("sub.*"))
        if subs:
            import coverage

            for path in subs:
                sub = coverage.CoverageData(str(path))
                try:
                    sub.read()
                except Exception:  # a subprocess killed while writing: keep what the others saw
                    continue
                for ctx, files in _groups_by_context(sub).items():
                    for filename, groups in files.items():
                        rel = self._work_tree_path(ctx, filename)
                        if rel is not None:
                            out.setdefault(ctx, {}).setdefault(rel, []).extend(groups)
        shutil.rmtree(self._subdir, ignore_errors=True)
        return out

    def _relative(self, path: str) -> str | None:
        try:
            return self._relatives[path]
        except KeyError:
            pass
        rel = Path(path[len(self._prefix) :]).as_posix() if path.startswith(self._prefix) else None
        self._relatives[path] = rel
        return rel

    def _work_tree_path(self, ctx: str, filename: str) -> str | None:
        """The repository-relative path of a file code ran from in `ctx`; None outside the
        repository, or for a member of an archive, which `ctx` then counts as having read."""
        rel = self._relative(filename)
        archive = self._archive_of(filename) if rel is not None else None
        if archive is None:
            return rel
        self.file_reads.setdefault(ctx, set()).add(archive)
        return None

    def _archive_of(self, path: str) -> str | None:
        """The archive a path inside the repository names a member of, when the path is
        no file but a file is above it: ``/repo/tests/pkg.zip/mod.py`` -> its ``pkg.zip``."""
        try:
            return self._archives[path]
        except KeyError:
            pass
        found = None
        if not os.path.isfile(path):
            above = os.path.dirname(path)
            while len(above) + 1 > len(self._prefix) and not os.path.isdir(above):
                if os.path.isfile(above):
                    found = above
                    break
                above = os.path.dirname(above)
        self._archives[path] = found
        return found

    def reads(self) -> dict[str, set[str]]:
        """context -> repository-relative paths of files opened for reading."""
        out: dict[str, set[str]] = {}
        for ctx, paths in self.file_reads.items():
            rels = {r for r in map(self._relative, paths) if r}
            if rels:
                out[ctx] = rels
        return out

    def importers(self) -> dict[str, dict[str, list[Collection[int]]]]:
        """Repository module a test or fixture imported -> the repository lines on the stack
        as it did, by file (repository-relative; one group of lines per file).

        A module imported once stays in ``sys.modules``: a later test that uses it may
        depend, without running it, on the code that imported it (markdown loads an
        extension's module by name, and a later test reaches it as an attribute of its
        package)."""
        self._file_imports()
        out: dict[str, dict[str, list[Collection[int]]]] = {}
        for filename, frames in self.lazy_imports.items():
            module = self._relative(filename)
            if module is None:
                continue
            by_file: dict[str, set[int]] = {}
            for path, line in frames:
                rel = self._relative(path)
                if rel is not None:
                    by_file.setdefault(rel, set()).add(line)
            if by_file:
                out[module] = {path: [lines] for path, lines in by_file.items()}
        return out

    def on_import(self, name: str) -> None:
        """Called by `_ImportWatch` as the process starts importing module `name`."""
        if self._paused or not self._active:
            return
        if name in sys.modules or self.context.startswith(self._import_contexts):
            return  # what collection and start-up import, the import graph covers
        frames: set[tuple[str, int]] = set()
        frame = sys._getframe(1)
        while frame is not None:
            path = self._repository_file(frame.f_code.co_filename)
            if path is not None:
                frames.add((path, frame.f_lineno))
            frame = frame.f_back
        if frames:
            self._importing.append((name, frames))

    def _file_imports(self) -> None:
        """File the imports begun since the last switch under their modules' files (tests may
        take a module out of ``sys.modules`` again; it is there when its importer is done).
        Not when ``sys.modules`` holds, as the context ends, the module it held as the
        context began: the import's own module was thrown away (dateutil's tests of lazy
        imports take its modules out, import them anew, then put the old ones back), and
        no later test can have used it."""
        pending, self._importing = self._importing, []
        for name, frames in pending:
            module = sys.modules.get(name)
            if module is not None and self._modules_before.get(name) is module:
                continue
            filename = getattr(module, "__file__", None)
            path = self._repository_file(filename) if isinstance(filename, str) else None
            if path is not None:  # not when the import failed or found code outside the repository
                self.lazy_imports.setdefault(path, set()).update(frames)

    def _repository_file(self, filename: str) -> str | None:
        """The canonical path of a code object's file if tia records it, else None."""
        try:
            # Once per file, not per code object: `realpath` costs a `lstat` per part.
            return self._files[filename]
        except KeyError:
            pass
        path: str | None = None
        if os.path.isabs(filename):  # not "<frozen os>", "<string>"
            # As coverage.py does: `pythonpath = ..` or a symlink gives a path that is not canonical.
            path = os.path.realpath(filename)
            if not path.startswith(self._prefix) or any(fnmatch.fnmatchcase(path, p) for p in self._omit):
                path = None
        self._files[filename] = path
        return path

    def openers(self) -> dict[str, set[str]]:
        """Python file -> data files it read at import time, repository-relative."""
        out: dict[str, set[str]] = {}
        for opener, paths in self.import_reads.items():
            rel_opener = self._relative(opener)
            if rel_opener:
                out[rel_opener] = {r for r in map(self._relative, paths) if r}
        return out

    def measure_forked_child(self) -> None:
        """In a child forked while recording (multiprocessing's default start method on
        Linux before Python 3.14): measure it with coverage.py, as a Python subprocess is
        measured, and save that when the child ends.  This copy of the recorder stops: what it
        would record dies with the child."""
        if not self._active:
            return
        self._active = False
        import coverage

        measurement = coverage.Coverage(config_file=os.environ["COVERAGE_PROCESS_START"], data_suffix=True)
        measurement.start()
        saved: list[bool] = []

        def save() -> None:
            if not saved:
                saved.append(True)
                measurement.stop()
                measurement.save()

        atexit.register(save)
        # A forked child usually ends with os._exit (multiprocessing's does), which skips
        # atexit. The child has its own memory: this replaces os._exit in the child only.
        real_exit = os._exit

        def exit_after_saving(status: int) -> NoReturn:
            with contextlib.suppress(Exception):
                save()
            real_exit(status)

        os._exit = exit_after_saving

    def on_spawn(self) -> None:
        """Called by the audit hook when the process starts another process or forks."""
        if self._active and not self._paused:
            self.spawned.add(self.context)

    def on_open(self, path: object, mode: object, flags: object) -> None:
        """Called by the audit hook for every ``open`` event in the process."""
        if not self._active or self._paused:
            return
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        elif not isinstance(path, str):
            if isinstance(path, os.PathLike):
                path = os.fspath(path)
            if not isinstance(path, str):
                return  # a file descriptor
        if path.endswith(".pyc"):
            return
        if isinstance(mode, str):
            if "r" not in mode and "+" not in mode:
                return
        elif isinstance(flags, int) and flags & _O_ACCMODE == os.O_WRONLY:
            return
        full = _abspath(path)
        if not full.startswith(self._prefix):
            return
        if path.endswith(".py") and _reads_code(sys._getframe(2)):
            return  # an import, a traceback, pytest rewriting asserts: the engine sees the code
        context = self.context
        self.file_reads.setdefault(context, set()).add(full)
        if context.startswith(self._import_contexts):
            frame = sys._getframe(2)
            while frame is not None:
                filename = frame.f_code.co_filename
                if filename.startswith(self._prefix) and filename.endswith(".py"):
                    self.import_reads.setdefault(filename, set()).add(full)
                frame = frame.f_back


class CoverageRecorder(Recorder):
    """The ``coverage`` engine: coverage.py's ctrace core with a context per label."""

    def __init__(self, root: Path, import_contexts: tuple[str, ...]) -> None:
        import coverage

        super().__init__(root, import_contexts)
        self._other = coverage.Coverage.current()
        self._cov = coverage.Coverage(
            data_file=None,
            config_file=False,
            branch=False,
            include=[f"{root}/*"],
            omit=self._omit,
        )
        # Per-test contexts need a core that supports them: never sysmon (coverage.py #2200).
        self._cov.set_option("run:core", "ctrace")
        if self._other is not None and self._other.config.branch:
            # What we hand over must be of the kind the other measurement collects.
            self._cov.set_option("run:branch", True)
        # The collector's live sets of lines by file, when tia takes each context's lines
        # from them itself (`_line_sets`); else None, and coverage.py's contexts are used.
        self._taken: tuple[dict[str, set[int]], Callable[[str], str]] | None = None
        self._lines: dict[str, dict[str, set[int]]] = {}  # context -> file -> lines, when taken
        self._label = ""
        self._paused_tracer: Any = None  # this thread's trace function, while `paused`

    def _start_engine(self) -> None:
        self._cov.start()
        self._taken = _line_sets(self._cov)

    def _switch_engine(self, context: str) -> None:
        if self.interrupted_by is None and coverage_on_top() is not self._cov:
            self.interrupted_by = TAKEN_OVER
        if self._taken is None:
            self._cov.switch_context(context)
            return
        self._take(self._label)
        self._label = context

    def _take(self, context: str) -> None:
        """File the lines traced since the last switch under `context`, emptying coverage.py's
        sets in place (its tracers, and frames on the stack, hold them)."""
        assert self._taken is not None
        live, mapped = self._taken
        target = self._lines.setdefault(context, {})
        for filename, lines in live.copy().items():
            if lines:
                taken = lines.copy()
                lines.difference_update(taken)
                target.setdefault(mapped(filename), set()).update(taken)

    def _pause_engine(self) -> None:
        # This thread's tracer only, put back as it was: coverage.py's own pause stops every
        # thread's tracer and restarts them all on this one, and a thread a test left
        # running would go on untraced.
        if coverage_on_top() is self._cov:
            self._paused_tracer = sys.gettrace()
            sys.settrace(None)

    def _resume_engine(self) -> None:
        if self._paused_tracer is not None:
            sys.settrace(self._paused_tracer)
            self._paused_tracer = None

    def _stop_engine(self) -> None:
        if self.interrupted_by is None and coverage_on_top() is not self._cov:
            self.interrupted_by = TAKEN_OVER
        if self.interrupted_by is None:
            if self._taken is not None:
                self._take(self._label)
            self._cov.stop()
            self._hand_over()

    def take_over(self) -> None:
        other = coverage_on_top()
        if not self._active or other is None or other is self._cov or self.interrupted_by:
            return
        # Only the last one started may stop; restarting keeps each one's data.
        other.stop()  # type: ignore[attr-defined]
        self._cov.stop()
        other.start()  # type: ignore[attr-defined]
        self._cov.start()
        self._cov.switch_context(self.context)
        self._other = other  # type: ignore[assignment]

    def _hand_over(self) -> None:
        """Give the measurement tia's paused (pytest-cov's) the lines it missed meanwhile."""
        other = self._other
        if other is None or coverage_on_top() is not other:
            return
        try:
            with warnings.catch_warnings():
                # Its collector was paused all along, so coverage.py finds its data empty, for now.
                warnings.filterwarnings("ignore", message="No data was collected", category=Warning)
                theirs = other.get_data()

            # coverage.py's own per-file decision, as its collector would have made it.
            def traced(filename: str) -> bool:
                return bool(other._should_trace(filename, None).trace)  # type: ignore[attr-defined]

            if self._taken is not None:
                union: dict[str, set[int]] = {}
                for files in self._lines.values():
                    for filename, lines in files.items():
                        union.setdefault(filename, set()).update(lines)
                theirs.add_lines({f: lines for f, lines in union.items() if traced(f)})
                return
            ours = self._cov.get_data()
            files = [f for f in ours.measured_files() if traced(f)]
            if ours.has_arcs():
                theirs.add_arcs({f: ours.arcs(f) or [] for f in files})
            else:
                theirs.add_lines({f: ours.lines(f) or [] for f in files})
        except Exception as exc:  # a coverage.py whose internals moved: its report lacks the tests
            print(f"tia: warning: could not share what tia measured with coverage.py: {exc}", file=sys.stderr)

    def _engine_lines(self) -> dict[str, dict[str, list[Collection[int]]]]:
        if self._taken is not None:
            return {ctx: {f: [lines] for f, lines in files.items()} for ctx, files in self._lines.items()}
        return _groups_by_context(self._cov.get_data())


def _line_sets(cov: Any) -> tuple[dict[str, set[int]], Callable[[str], str]] | None:
    """The dict of sets, by file, into which coverage.py's tracers put the lines they see,
    if this coverage.py has one tia can read (a private attribute: lines, not arcs).

    At each switch coverage.py writes the sets to its SQLite data and empties them in place;
    reading them back per context costs as much again.  tia takes them itself (`_take`), as
    coverage.py's ``flush_data`` does, and skips both: `tia map` of 18,866 of packaging's
    tests went from 40.0 to 35.0 s.  Anything unexpected leaves coverage.py's contexts in
    charge."""
    collector = getattr(cov, "_collector", None)
    data = getattr(collector, "data", None)
    mapped = getattr(collector, "cached_mapped_file", None)
    if getattr(collector, "branch", True) or type(data) is not dict or not callable(mapped):
        return None
    if any(type(lines) is not set for lines in data.values()):
        return None
    return data, mapped


class MonitoringRecorder(Recorder):
    """The ``monitoring`` engine (Python 3.12+): code objects entered, per context.

    Attributes (besides `Recorder`'s):
        entered: context -> the repository's code objects that started or resumed in it.
        filled: context -> (code object, line) of the lines of hand-written caches'
            code objects (`tia.memos`) that ran in it, the first time in the context.

    A cache's code object gets ``LINE`` events too, so that a context that ran one of
    its fill or hit lines says so.  The events are set once the next switch finds the code
    object is a cache's; the context the process first called it in, which filled the
    empty cache unless import-time code did, counts as having run its fill lines.

    Code objects are never told apart by equality (two functions with the same name,
    line and body in different files compare equal), nor by `id`, which raises an audit
    event that tia's own hook receives: tens of thousands of times at the end of a run.
    What fixes a code object's lines (`_LINES_KEY`) tells them apart where it matters.
    """

    # coverage.py takes id 1 (sys.monitoring.COVERAGE_ID); debuggers 0, profilers 2,
    # optimizers 5: tia takes the two left.
    _TOOL_IDS = (3, 4)
    # The label of what runs while `paused`: filed like any other, then dropped.
    _PAUSED = "\0paused"

    def __init__(self, root: Path, import_contexts: tuple[str, ...]) -> None:
        super().__init__(root, import_contexts)
        self.entered: dict[str, list[CodeType]] = {}
        # The repository's code objects whose event fired since the last switch (and is
        # disabled now), in the context `_label`: the switch files them under it and
        # re-arms these, and only these.  A list: a callback is as short as it can be.
        self._current: list[CodeType] = []
        self._label = ""
        # The repository's code objects the recording tool's events are set on.
        self._armed: list[CodeType] = []
        self._tools: tuple[int, int] | None = None
        self._events = 0  # PY_START | PY_RESUME, once started (sys.monitoring is 3.12+)
        self.filled: dict[str, list[tuple[CodeType, int]]] = {}
        self._lines_run: list[tuple[CodeType, int]] = []  # since the last switch
        # The caches' code objects, and each one's fill and hit lines by `_LINES_KEY`.
        self._memo_codes: list[CodeType] = []
        self._fill_lines: dict[tuple[str, int, bytes], frozenset[int]] = {}
        self._memos_by_file: dict[str, dict[str, tuple[frozenset[int], frozenset[int]]]] = {}
        self._classified = 0  # how many of `_armed` were checked for being a cache's
        self._resume_label = ""

    def _start_engine(self) -> None:
        """Two tools: *discover*, on every code object, fires once per code object in the
        process (never re-armed) and arms *record*'s local events on each of the
        repository's; *record* fires once per code object and context.

        With one tool re-armed by `sys.monitoring.restart_events` at every switch, every
        code object that ran in a test (pytest's, pluggy's, the standard library's: seven
        in eight on click's suite) called back again in the next one: 260,000 callbacks and
        as many re-instrumented code objects for click's 650 tests, half of what mapping
        cost over a plain run."""
        monitoring = sys.monitoring  # type: ignore[attr-defined]
        free = [i for i in self._TOOL_IDS if monitoring.get_tool(i) is None]
        if len(free) < len(self._TOOL_IDS):
            from tia.errors import TiaError

            raise TiaError(
                f"sys.monitoring tool ids {self._TOOL_IDS[0]} and {self._TOOL_IDS[1]}, which "
                "tia's monitoring engine uses, are not both free",
                hint="use the coverage engine: --engine coverage",
            )
        discover, record = self._tools = self._TOOL_IDS
        events = monitoring.events
        self._events = events.PY_START | events.PY_RESUME
        for tool, callback in ((discover, self._on_new_code), (record, self._on_code)):
            monitoring.use_tool_id(tool, "tia")
            monitoring.register_callback(tool, events.PY_START, callback)
            monitoring.register_callback(tool, events.PY_RESUME, callback)
        monitoring.register_callback(record, events.LINE, self._on_line)
        monitoring.set_events(discover, self._events)

    def _on_new_code(self, code: CodeType, offset: int) -> Any:
        # Once per code object and event location: a generator's code object calls back
        # again at each new place it resumes, which is again a place it ran.
        if self._repository_file(code.co_filename) is not None:
            # This start goes to the current context; the next switch arms the recording
            # tool's events on the code object.
            self._current.append(code)
            self._armed.append(code)
        return sys.monitoring.DISABLE  # type: ignore[attr-defined]

    def _on_code(self, code: CodeType, offset: int) -> Any:
        self._current.append(code)
        return sys.monitoring.DISABLE  # type: ignore[attr-defined]

    def _on_line(self, code: CodeType, line: int) -> Any:
        self._lines_run.append((code, line))
        return sys.monitoring.DISABLE  # type: ignore[attr-defined]

    def _switch_engine(self, context: str) -> None:
        closing = self._label
        hit = self._file_current(context)
        if self._tools is None:
            return
        record, events = self._tools[1], self._events
        set_local_events = sys.monitoring.set_local_events  # type: ignore[attr-defined]
        for code in hit:
            # Clearing a code object's events and setting them again re-arms the one its
            # callback disabled (3.12 and 3.13), for this tool only.
            set_local_events(record, code, 0)
            set_local_events(record, code, events)
        self._find_memos(closing)
        line = sys.monitoring.events.LINE  # type: ignore[attr-defined]
        for code in self._memo_codes:  # a handful: re-armed whether or not they ran
            set_local_events(record, code, 0)
            set_local_events(record, code, events | line)

    def _pause_engine(self) -> None:
        # Events are the process's, not a thread's: the code objects that fire meanwhile
        # go to a label of their own and are re-armed like any others at the switch back,
        # so that the context they leave sees them when they run in it again.
        self._resume_label = self._label
        self._switch_engine(self._PAUSED)

    def _resume_engine(self) -> None:
        self._switch_engine(self._resume_label)
        self.entered.pop(self._PAUSED, None)
        self.filled.pop(self._PAUSED, None)

    def _find_memos(self, context: str) -> None:
        """Check the code objects first met since the last switch, all in `context`, for
        being a hand-written cache's; count `context` as having filled each one found."""
        for code in self._armed[self._classified :]:
            if _STORE_SUBSCR not in code.co_code[::2] and _STORING_CALLS.isdisjoint(code.co_names):
                continue  # it stores into no container: no cache's, and its file need not be read
            # Known, and in the repository: `_on_new_code` armed only such code objects.
            path = self._files[code.co_filename] or ""
            rel = self._relative(path)
            if rel is None or self._archive_of(path) is not None:
                continue
            memos = self._memos_by_file.get(rel)
            if memos is None:
                memos = self._memos_by_file[rel] = self.memo_lines(rel)
            lines = memos.get(code.co_qualname)
            if lines:
                fills, hits = lines
                self._memo_codes.append(code)
                self._fill_lines[_LINES_KEY(code)] = fills | hits
                self.filled.setdefault(context, []).extend((code, n) for n in fills)
        self._classified = len(self._armed)

    def _file_current(self, context: str) -> list[CodeType]:
        """File the code objects entered and the caches' lines run since the last switch
        under its context, and start `context`'s; return the code objects."""
        hit, self._current = self._current, []
        if hit:
            self.entered.setdefault(self._label, []).extend(hit)
        if self._lines_run:
            self.filled.setdefault(self._label, []).extend(self._lines_run)
            self._lines_run = []
        self._label = context
        return hit

    def _stop_engine(self) -> None:
        closing = self._label
        self._file_current("")
        if self._tools is None:
            return
        self._find_memos(closing)
        monitoring = sys.monitoring  # type: ignore[attr-defined]
        discover, record = self._tools
        self._tools = None
        monitoring.set_events(discover, 0)
        for code in self._armed:
            monitoring.set_local_events(record, code, 0)
        for tool in (discover, record):
            monitoring.register_callback(tool, monitoring.events.PY_START, None)
            monitoring.register_callback(tool, monitoring.events.PY_RESUME, None)
            monitoring.free_tool_id(tool)
        monitoring.register_callback(record, monitoring.events.LINE, None)

    def _engine_lines(self) -> dict[str, dict[str, list[Collection[int]]]]:
        # _LINES_KEY -> the code objects' file and lines, one frozenset shared by every
        # context that met them.
        groups: dict[tuple[str, int, bytes], tuple[str, frozenset[int]]] = {}
        out: dict[str, dict[str, list[Collection[int]]]] = {}
        for ctx, codes in self.entered.items():
            files: dict[str, list[Collection[int]]] = {}
            # A context entered more than once may have met a code object each time.
            for key, code in dict(zip(map(_LINES_KEY, codes), codes, strict=True)).items():
                found = groups.get(key)
                if found is None:
                    path = self._files[code.co_filename]  # known: `_on_new_code` looked it up
                    found = groups[key] = (path, _body_lines(code))  # type: ignore[assignment]
                files.setdefault(found[0], []).append(found[1])
            if files:
                out[ctx] = files
        for ctx, lines in self.filled.items():
            # As lines that ran, in a list of their own: each is a cache's fill or hit line.
            for code, line in lines:
                if line in self._fill_lines.get(_LINES_KEY(code), ()):
                    path = self._files[code.co_filename]
                    out.setdefault(ctx, {}).setdefault(path, []).append([line])  # type: ignore[arg-type]
        return out


def _groups_by_context(data: Any) -> dict[str, dict[str, list[Collection[int]]]]:
    """context -> absolute path -> its lines (one group) in coverage.py's data `data`."""
    out: dict[str, dict[str, list[Collection[int]]]] = {}
    for filename in data.measured_files():
        by_context: dict[str, list[int]] = {}
        for lineno, contexts in data.contexts_by_lineno(filename).items():
            for ctx in contexts:
                by_context.setdefault(ctx, []).append(lineno)
        for ctx, linenos in by_context.items():
            out.setdefault(ctx, {})[filename] = [linenos]
    return out


# What a code object's executed lines follow from: its file, first line and line table
# (`_body_lines`).  Two code objects alike in all three run the same lines of the same file.
_LINES_KEY = operator.attrgetter("co_filename", "co_firstlineno", "co_linetable")


def _body_lines(code: CodeType) -> frozenset[int]:
    """The lines of a code object's own instructions after its prologue (up to ``RESUME``):
    the lines coverage.py would report once the code runs, minus the ``def`` header a
    call does not execute."""
    body_start = _after_resume(code.co_code)
    return frozenset(line for _, end, line in code.co_lines() if line and end > body_start)


_RESUME = dis.opmap.get("RESUME", -1)
# How a cache's code object stores into its container (`tia.memos`): ``C[k] = v``, or a call.
_STORE_SUBSCR = dis.opmap["STORE_SUBSCR"]
_STORING_CALLS = frozenset({"setdefault", "update", "__setitem__"})


def _after_resume(bytecode: bytes) -> int:
    """The offset just past the first ``RESUME`` instruction (instructions are 2 bytes wide)."""
    for offset in range(0, len(bytecode), 2):
        if bytecode[offset] == _RESUME:
            return offset + 2
    return 0


def coverage_on_top() -> object | None:
    """The coverage.py measurement that is tracing now (the last one started), if any."""
    import coverage

    return coverage.Coverage.current()


# Audit hooks cannot be removed, so one hook is installed per process and routes
# events to whichever recorder is current.
_hook_state: dict[str, Recorder | None] = {"recorder": None}
# Ways a process starts another (or a copy of itself) whose imports tia does not see.
_SPAWN_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty"}
)


# Modules through which a read of a file passes on its way from the reader.
_PASS_THROUGH = frozenset({"pathlib", "io", "_pyio", "codecs", "shutil", "fileinput"})
# Readers of .py files as code, not as a test's data: imports, source lookups for
# tracebacks and introspection, pytest (assertion rewriting), coverage.py, tia.
_CODE_READERS = frozenset(
    {"importlib", "zipimport", "runpy", "pkgutil", "linecache", "tokenize", "inspect", "traceback"}
    | {"doctest", "py_compile", "_pytest", "pytest", "coverage", "tia"}
)


def _reads_code(frame: FrameType | None) -> bool:
    """Whether the Python code opening a .py file (`frame` called ``open``) reads it as code."""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        top = module.partition(".")[0] if isinstance(module, str) else ""
        if top not in _PASS_THROUGH:
            return top in _CODE_READERS
        frame = frame.f_back
    return False


def _audit(event: str, args: tuple[object, ...]) -> None:
    recorder = _hook_state["recorder"]
    if recorder is None:
        return
    # An audit hook must never break the code under test.
    if event == "open":
        with contextlib.suppress(Exception):
            recorder.on_open(*args)
    elif event in _SPAWN_EVENTS:
        with contextlib.suppress(Exception):
            recorder.on_spawn()


def _after_fork_in_child() -> None:
    recorder = _hook_state["recorder"]
    if recorder is not None:
        with contextlib.suppress(Exception):  # never break the child the code under test forked
            recorder.measure_forked_child()


class _ImportWatch:
    """First on ``sys.meta_path``, finds nothing: tells the current recorder a module is
    being imported.  (The audit hook's ``import`` event misses `importlib.import_module`.)"""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        recorder = _hook_state["recorder"]
        if recorder is not None:
            with contextlib.suppress(Exception):  # never break an import of the code under test
                recorder.on_import(name)


def _install_audit_hook(recorder: Recorder) -> None:
    """Route ``open`` events, forks and imports to `recorder`."""
    if "installed" not in _hook_state:
        sys.addaudithook(_audit)
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _hook_state["installed"] = None
    if _ImportWatch not in sys.meta_path:
        sys.meta_path.insert(0, _ImportWatch)  # type: ignore[arg-type]
    _hook_state["recorder"] = recorder
