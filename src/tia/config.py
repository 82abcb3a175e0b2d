"""tia's settings: defaults, ``[tool.tia]`` in ``pyproject.toml``, environment, command line.

`load_config` applies them in that order, later ones winning, in one place.
Unknown keys are an error that names the key, so a typo never silently
weakens the selection.

The map lives by default in ``.tia/`` next to the pytest configuration that
governs the current directory, as pytest's own ``.pytest_cache`` does: each
pytest root of a monorepo keeps its own map, since node ids and the map's
recorded rootdir belong to one pytest root.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from pathlib import Path
from typing import Any

from tia.errors import UsageError
from tia.values import Value

# Changing one of these can change how every test runs: they select everything.
DEFAULT_RUN_ALL = (
    "pyproject.toml",
    "setup.cfg",
    "setup.py",
    "tox.ini",
    "pytest.ini",
    ".pytest.ini",
    "requirements*.txt",
    "requirements/*.txt",
    "constraints*.txt",
    "Pipfile",
    "Pipfile.lock",
    "poetry.lock",
    "pdm.lock",
    "uv.lock",
    ".python-version",
)


# The recording engines (`tia.recorder`); this module only names them, so that reading the
# configuration loads nothing of the recorder.
ENGINES = ("coverage", "monitoring")


def available_engines() -> tuple[str, ...]:
    """The engines this Python can run: sys.monitoring exists from Python 3.12."""
    return ENGINES if sys.version_info >= (3, 12) else ("coverage",)


def default_engine() -> str:
    """The fastest engine that is exact here: both record the same dependencies
    (tests/test_engines.py, benchmarks/engines.py), monitoring at a fraction of the cost."""
    return available_engines()[-1]


class Config(Value):
    """The settings of one tia invocation.

    Attributes:
        root: the git work tree's top directory.
        cache_dir: where the map lives (default ``.tia`` in `pytest_root`).
        since: the ref `tia run` and `tia select` compare with when given none.
        run_all: globs of files whose change selects every test.
        ignore: globs of files whose changes tia disregards.
        engine: the recording engine, ``coverage`` or ``monitoring`` (Python 3.12+, the default there).
        workers: ``"decide"`` (tia decides from recorded durations, the default),
            ``"auto"`` (pytest-xdist's one worker per CPU), or a count (0: no xdist).
        narrow_module_changes: follow a module-level change that only rebinds names to
            the code that reads them (`tia.names`); false: every importer's tests.
        source: where the ``[tool.tia]`` settings came from, if anywhere.
    """

    __slots__ = (
        "cache_dir",
        "engine",
        "ignore",
        "narrow_module_changes",
        "root",
        "run_all",
        "since",
        "source",
        "workers",
    )

    def __init__(
        self,
        root: Path,
        cache_dir: Path,
        since: str | None = None,
        run_all: tuple[str, ...] = DEFAULT_RUN_ALL,
        ignore: tuple[str, ...] = (),
        engine: str | None = None,
        workers: str | int = "decide",
        narrow_module_changes: bool = True,
        source: Path | None = None,
    ) -> None:
        self.root = root
        self.cache_dir = cache_dir
        self.since = since
        self.run_all = run_all
        self.ignore = ignore
        self.engine = default_engine() if engine is None else engine
        self.workers = workers
        self.narrow_module_changes = narrow_module_changes
        self.source = source

    def runs_all(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.run_all)

    def ignored(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.ignore)


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc


def _configures_pytest(path: Path) -> bool:
    """Whether `path`, a file with one of pytest's configuration file names, configures pytest."""
    name = path.name
    if name in ("pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml"):
        return True  # pytest takes these even when they are empty
    if name == "pyproject.toml":
        # [tool.pytest.ini_options], or pytest 9's native [tool.pytest].
        return isinstance(_read_toml(path).get("tool", {}).get("pytest"), dict)
    header = "[pytest]" if name == "tox.ini" else "[tool:pytest]"
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    # A section header starts its line, and may carry a comment (as pytest's iniconfig reads it).
    return any(line.startswith("[") and line.split("#")[0].split(";")[0].strip() == header for line in lines)


# The files pytest reads its configuration from, as it looks for them in each directory.
_PYTEST_FILES = (
    "pytest.toml",
    ".pytest.toml",
    "pytest.ini",
    ".pytest.ini",
    "pyproject.toml",
    "tox.ini",
    "setup.cfg",
)


def pytest_root(start: Path, root: Path) -> Path:
    """The directory pytest takes for its rootdir when it starts in `start` with no paths.

    As pytest decides: the nearest directory, from `start` up to the git root, with a
    file that configures pytest; failing that, the nearest with a pyproject.toml;
    failing that, the git root.
    """
    nearest_pyproject: Path | None = None
    for directory in (start, *start.parents):
        for name in _PYTEST_FILES:
            candidate = directory / name
            if not candidate.is_file():
                continue
            if _configures_pytest(candidate):
                return directory
            if name == "pyproject.toml" and nearest_pyproject is None:
                nearest_pyproject = directory
        if directory == root:
            break
    return nearest_pyproject or root


def _find_settings(start: Path, root: Path) -> tuple[Path | None, dict[str, Any]]:
    """The nearest pyproject.toml with a [tool.tia] table, from `start` up to `root`."""
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            table = _read_toml(candidate).get("tool", {}).get("tia")
            if table is not None:
                if not isinstance(table, dict):
                    raise UsageError(f"{candidate}: [tool.tia] must be a table")
                return candidate, table
        if directory == root:
            break
    return None, {}


def _globs(value: Any, key: str, where: Path | str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where}: [tool.tia] {key} must be a list of glob strings")
    return tuple(value)


def parse_workers(value: Any, where: str) -> str | int:
    if value in ("auto", "logical", "decide"):
        return value
    wrong = UsageError(f"{where}: workers must be 'decide', 'auto' or a whole number, not {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise wrong
    try:
        count = int(value)
    except ValueError:
        raise wrong from None
    if count < 0:
        raise UsageError(f"{where}: workers must be 'decide', 'auto' or a number >= 0, not {count}")
    return count


def load_config(
    root: Path,
    cwd: Path,
    *,
    cache_dir: str | None = None,
    workers: str | None = None,
    engine: str | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Build the settings: defaults < [tool.tia] < environment < command line."""
    environ = os.environ if environ is None else environ
    cwd = cwd.resolve()
    source, table = _find_settings(cwd, root)
    config = Config(root=root, cache_dir=pytest_root(cwd, root) / ".tia", source=source)

    allowed = {
        "since",
        "run_all",
        "extend_run_all",
        "ignore",
        "engine",
        "workers",
        "cache_dir",
        "narrow_module_changes",
    }
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UsageError(
            f"{source}: unknown key {unknown[0]!r} in [tool.tia]",
            hint=f"known keys: {', '.join(sorted(allowed))}",
        )
    where = str(source)
    if "since" in table:
        if not isinstance(table["since"], str):
            raise UsageError(f"{where}: [tool.tia] since must be a string")
        config.since = table["since"]
    if "run_all" in table:
        config.run_all = _globs(table["run_all"], "run_all", where)
    if "extend_run_all" in table:
        config.run_all = config.run_all + _globs(table["extend_run_all"], "extend_run_all", where)
    if "ignore" in table:
        config.ignore = _globs(table["ignore"], "ignore", where)
    if "engine" in table:
        config.engine = table["engine"]
    if "workers" in table:
        config.workers = parse_workers(table["workers"], where)
    if "narrow_module_changes" in table:
        if not isinstance(table["narrow_module_changes"], bool):
            raise UsageError(f"{where}: [tool.tia] narrow_module_changes must be true or false")
        config.narrow_module_changes = table["narrow_module_changes"]
    if "cache_dir" in table:
        if not isinstance(table["cache_dir"], str):
            raise UsageError(f"{where}: [tool.tia] cache_dir must be a string")
        config.cache_dir = (source.parent if source else root) / table["cache_dir"]

    if environ.get("TIA_CACHE_DIR"):
        config.cache_dir = Path(environ["TIA_CACHE_DIR"])
    if environ.get("TIA_ENGINE"):
        config.engine = environ["TIA_ENGINE"]

    if cache_dir:
        config.cache_dir = Path(cache_dir)
    if workers is not None:
        config.workers = parse_workers(workers, "-n")
    if engine is not None:
        config.engine = engine

    if config.engine not in ENGINES:
        raise UsageError(f"unknown engine {config.engine!r}", hint=f"choose one of: {', '.join(ENGINES)}")
    if config.engine not in available_engines():
        raise UsageError(
            f"the {config.engine} engine needs Python 3.12 or later",
            hint=f"this Python can use: {', '.join(available_engines())}",
        )
    config.cache_dir = config.cache_dir.resolve()
    return config
