"""Running pytest: the command line, whether xdist pays for itself, and the run's results.

pytest runs in a subprocess with tia's plugin, so the code under test starts in
a fresh interpreter (import-time code is recorded) and ``PYTEST_ADDOPTS`` and
every other pytest setting reach it untouched.  The plan goes to the plugin
through a file; the plugin writes the results to another, which `tia.project`
folds into the map.

pytest takes 0.2 to 0.3 s to import itself and its plugins before it reads a
conftest.  `tia run` and `tia map` start it while they plan (`EarlyPytest`): tia's
plugin waits, before any conftest is imported, until tia has written the plan and
says go through a pipe.  And once the plugin has written the results, tia stores them
while pytest prints its summary and exits (`run_pytest`'s `store`).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tia.values import Value

# What starting xdist workers costs beyond collection, measured on a 2-core machine
# (pytest-xdist 3.x: about 0.6-1.0 s to spawn and connect each batch of workers).
XDIST_STARTUP_SECONDS = 1.0
# Use workers only when they promise to save this share of the serial time.
XDIST_MIN_GAIN = 0.2

_XDIST_OPTIONS = ("-n", "--numprocesses", "--dist", "--tx", "-d")


class RunResult(Value):
    __slots__ = ("exitstatus", "interrupted", "payload", "workers")

    def __init__(
        self, exitstatus: int, payload: dict[str, Any] | None, interrupted: bool, workers: int | str
    ) -> None:
        self.exitstatus = exitstatus
        self.payload = payload
        self.interrupted = interrupted  # by Ctrl-C
        self.workers = workers


def user_chose_xdist(args: list[str]) -> bool:
    """Whether the pytest arguments (or PYTEST_ADDOPTS) already decide about xdist."""
    words = [*args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    for word in words:
        name = word.split("=", 1)[0]
        if name in _XDIST_OPTIONS or (word.startswith("-n") and word[2:].isdigit()):
            return True
        if word.replace(" ", "") in ("no:xdist", "-pno:xdist"):
            return True
    return False


def choose_workers(
    setting: str | int,
    predicted_seconds: float | None,
    tests: int,
    collect_seconds: float,
    cpus: int | None = None,
) -> int | str:
    """How many xdist workers to start (0: none) for a run predicted to take so long serially.

    An explicit count, or ``"auto"``/``"logical"`` (xdist's own choice), is the
    user's.  Otherwise workers cost start-up plus collection each; they pay when
    the serial time, split over the workers, saves more than that.
    """
    if setting != "decide":
        return setting
    cpus = cpus or os.cpu_count() or 1
    if cpus < 2 or predicted_seconds is None or tests < 2:
        return 0
    best, best_time = 0, predicted_seconds
    for n in range(2, min(cpus, tests) + 1):
        parallel = XDIST_STARTUP_SECONDS + collect_seconds + predicted_seconds / n
        if parallel < best_time * (1 - XDIST_MIN_GAIN):
            best, best_time = n, parallel
    return best


def predict_seconds(selected: list[str], durations: dict[str, float]) -> float | None:
    """Serial time of a selection from recorded durations (the plan's: those of the tests it
    selected); a test without one costs their median."""
    if not durations:
        return None
    # Not `statistics.median`: importing statistics (fractions, decimal, random) costs
    # 10 ms of every run that starts pytest.
    ordered = sorted(durations.values())
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return sum(durations.get(n, median) for n in selected)


def _files(cache_dir: Path) -> tuple[Path, Path]:
    """The plan file and the results file of this tia process's pytest run."""
    pid = os.getpid()
    return cache_dir / f"plan-{pid}.json", cache_dir / f"results-{pid}.json"


def _command(plan_file: Path, pytest_args: list[str], workers: int | str, collect_only: bool) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", f"--tia-plan={plan_file}"]
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        cmd += ["-p", "tia.plugin"] + (["-p", "xdist.plugin"] if workers else [])
    if workers:
        cmd += ["-n", str(workers)]
    if collect_only:
        cmd.append("--collect-only")
    return cmd + pytest_args


# The pipe through which `EarlyPytest` says go; tia's plugin reads (and drops) it.
GO_ENV = "TIA_PLAN_GO_FD"


class EarlyPytest:
    """A pytest process started before its plan exists, so that it imports pytest and its
    plugins while tia plans.

    tia's plugin, in ``pytest_load_initial_conftests`` (before any conftest is imported
    and before anything is recorded), reads the pipe named by `GO_ENV`: a byte means the
    plan file is written; the pipe's end without one means tia gave up, and pytest exits
    without running anything.  Only a serial run can start this way: xdist's ``-n`` must
    be on pytest's command line from the start, and it is known only from the plan.

    Use as a context manager: a process never handed a plan is killed on exit.
    """

    def __init__(self, cache_dir: Path, pytest_args: list[str]) -> None:
        self.plan_file = _files(cache_dir)[0]
        self.pytest_args = pytest_args
        self.proc: subprocess.Popen[bytes] | None = None
        self._go = -1

    def __enter__(self) -> EarlyPytest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def start(self) -> None:
        """Start pytest (once; not where a pipe cannot be handed to a child)."""
        if self.proc is not None or os.name != "posix":
            return
        wait, go = os.pipe()
        try:
            env = {**os.environ, GO_ENV: str(wait)}
            cmd = _command(self.plan_file, self.pytest_args, 0, False)
            self.proc = subprocess.Popen(cmd, pass_fds=(wait,), env=env)
        except BaseException:
            os.close(go)
            raise
        finally:
            os.close(wait)
        self._go = go

    def take(
        self, pytest_args: list[str], workers: int | str, collect_only: bool, quiet: bool
    ) -> subprocess.Popen[bytes] | None:
        """The process, told to go (the plan file must be written), if it can run this
        command; else None, and it is gone."""
        proc, go = self.proc, self._go
        if proc is None or workers or collect_only or quiet or pytest_args != self.pytest_args:
            self.cancel()
            return None
        self.proc, self._go = None, -1
        try:
            os.write(go, b"1")
        except BrokenPipeError:
            pass  # pytest ended already (a usage error): its status says why
        finally:
            os.close(go)
        return proc

    def cancel(self) -> None:
        """Stop the process if it was not handed a plan: it has run nothing yet."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
        if self._go >= 0:
            os.close(self._go)
            self._go = -1


def run_pytest(
    *,
    root: Path,
    cache_dir: Path,
    plan: dict[str, Any],
    pytest_args: list[str],
    workers: int | str,
    collect_only: bool = False,
    quiet: bool = False,
    meanwhile: Callable[[Callable[[], bool]], None] | None = None,
    early: EarlyPytest | None = None,
    store: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run pytest on a plan; return its exit status and the plugin's results.

    `meanwhile`, if given, is called once pytest has started, with a function that says
    whether pytest is done: work to do in this process while pytest runs.  `early`, a
    pytest process started while tia planned, runs the plan if it can (`EarlyPytest.take`).
    `store`, if given, is called with the results as soon as the plugin has written them,
    while pytest prints its summary and exits (a tenth of a second or more of interpreter
    shutdown alone); if pytest ends without results, it is not called."""
    plan_file, results_file = _files(cache_dir)
    plan = {**plan, "root": str(root), "results": str(results_file), "cache": str(cache_dir)}
    plan_file.write_text(json.dumps(plan), encoding="utf-8")
    interrupted = False
    payload = None  # the results, once read
    storing = False  # while `store` runs
    try:
        proc = early.take(pytest_args, workers, collect_only, quiet) if early is not None else None
        if proc is None:
            cmd = _command(plan_file, pytest_args, workers, collect_only)
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL if quiet else None)
        try:
            if meanwhile is not None:
                meanwhile(lambda: proc.poll() is not None or results_file.exists())
            if store is not None:
                payload = _results_before_exit(proc, results_file)
                if payload is not None:
                    storing = True
                    store(payload)
                    storing = False
            rc = proc.wait()
        except KeyboardInterrupt:
            # pytest got the same Ctrl-C: let it finish its session and write what completed.
            interrupted = True
            try:
                rc = proc.wait(timeout=30)
            except (KeyboardInterrupt, subprocess.TimeoutExpired):
                proc.send_signal(signal.SIGKILL)
                rc = proc.wait()
            if storing:
                raise  # storing was cut short: the map stays as it was, as after a Ctrl-C later on
        except BaseException:
            if storing:
                proc.wait()  # storing failed: pytest is only reporting and exiting, let it
            else:
                # `meanwhile` failed: pytest must not outlive this process, nor run on without its plan.
                proc.kill()
                proc.wait()
            raise
        if payload is None:
            payload = _read_results(results_file)
        return RunResult(rc, payload, interrupted, workers)
    finally:
        for f in (plan_file, results_file, results_file.with_suffix(".tmp")):
            f.unlink(missing_ok=True)


def _read_results(results_file: Path) -> dict[str, Any] | None:
    try:
        payload = json.loads(results_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def _results_before_exit(proc: subprocess.Popen[bytes], results_file: Path) -> dict[str, Any] | None:
    """The plugin's results, as soon as it has written them (it renames a complete file into
    place); None if pytest ends first."""
    while proc.poll() is None:
        if results_file.exists():
            return _read_results(results_file)
        time.sleep(0.005)
    return None
