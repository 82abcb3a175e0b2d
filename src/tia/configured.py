"""Which parts of a project's configuration files may name a module that a test run imports.

A module that configuration names (``-p pkg.plugin`` in pytest's options, a
settings module, a plugin's entry point) may be imported by name and have any
of its attributes read, so `tia.names` narrows no module-level change to it.
Much of a configuration file is read only by packaging and lint tools, never
by anything a test runs: the package name a build backend puts in the wheel
(``[tool.flit.module] name``), a distribution's metadata, isort's first-party
list.  `live_strings` leaves out those parts, listed here; everything else,
whatever tool it belongs to, counts.  A file that does not parse counts whole.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterator
from typing import Any

FILES = ("pyproject.toml", "setup.cfg", "tox.ini", "pytest.ini")

# Key paths of pyproject.toml that only packaging and lint tools read.
_INERT_TOML = frozenset(
    {
        ("build-system",),
        *(
            ("project", key)
            for key in (
                "name", "version", "description", "readme", "requires-python", "license",
                "license-files", "authors", "maintainers", "keywords", "classifiers", "urls",
                "dependencies", "optional-dependencies", "dynamic",
            )
        ),
        ("tool", "flit", "module"), ("tool", "flit", "sdist"), ("tool", "flit", "metadata"),
        ("tool", "setuptools"), ("tool", "setuptools_scm"), ("tool", "pdm", "build"),
        ("tool", "hatch", "build"), ("tool", "hatch", "version"), ("tool", "hatch", "metadata"),
        ("tool", "poetry", "name"), ("tool", "poetry", "version"), ("tool", "poetry", "packages"),
        ("tool", "poetry", "dependencies"), ("tool", "poetry", "group"),
        ("tool", "coverage", "report"), ("tool", "coverage", "paths"), ("tool", "coverage", "html"),
        ("tool", "coverage", "xml"), ("tool", "coverage", "json"),
        *(("tool", "coverage", "run", key) for key in ("source", "source_pkgs", "omit", "include")),
        *(
            ("tool", tool)
            for tool in (
                "isort", "ruff", "black", "mypy", "pyright", "pylint", "codespell", "towncrier",
                "bumpversion", "cibuildwheel", "check-manifest", "pydocstyle", "docformatter",
                "pyproject-fmt", "tia", "check-wheel-contents", "interrogate", "vulture", "deptry",
                "bandit", "pyroma", "tbump", "commitizen", "semantic_release", "maturin",
                "scikit-build", "uv",
            )
        ),
    }
)  # fmt: skip
# Tables whose keys name scripts and entry points, not modules (their values count).
_ENTRY_POINTS = (
    ("project", "scripts"), ("project", "gui-scripts"), ("project", "entry-points"),
    ("tool", "poetry", "scripts"), ("tool", "poetry", "plugins"),
)  # fmt: skip
# Sections of setup.cfg and tox.ini that only packaging and lint tools read.  tox's
# own count: tia may run inside a tox environment, with its variables
# (``DJANGO_SETTINGS_MODULE``) and commands (``tia run -- -p pkg.plugin``); so
# do hatch's environments in pyproject.toml.
_INERT_INI = re.compile(
    r"metadata|options|options\.(?:packages\.find|package_data|exclude_package_data|extras_require"
    r"|data_files)|bdist_wheel|sdist|egg_info|flake8|isort|pycodestyle|pydocstyle|pylint(?:\..*)?"
    r"|mypy(?:-.*)?|coverage:(?:report|paths|html|xml|json)|codespell|check-manifest"
    r"|bumpversion(?::.*)?|zest\.releaser"
)

# Keys of other sections that only say what coverage.py measures, as in pyproject.toml.
_INERT_INI_KEYS = {"coverage:run": frozenset({"source", "source_pkgs", "omit", "include"})}


# pytest-cov's source option (``--cov=pkg``, ``--cov pkg``): coverage.py measures the
# package, it reads none of its names.
_COVERAGE_SOURCE = re.compile(r"--cov(?:=|\s+)(?!-)\S+")
# Static checkers and formatters: a command that runs one (``flake8 pkg/``, a hatch
# script, a line of tox's ``commands``) reads the package's files, never imports it.
_STATIC_TOOLS = frozenset(
    {
        "flake8", "mypy", "ruff", "black", "isort", "pylint", "pyright", "codespell", "bandit",
        "vulture", "pydocstyle", "pycodestyle", "pyflakes", "autopep8", "yapf", "pyupgrade",
        "docformatter", "interrogate",
    }
)  # fmt: skip


def live_strings(filename: str, text: bytes) -> list[bytes] | None:
    """The strings of `text`, the content of the configuration file `filename` (one
    of `FILES`), in the parts that something a test runs may read, encoded; None when
    it does not parse, and every part counts."""
    try:
        decoded = text.decode("utf-8")
        strings = _toml_strings(decoded) if filename == "pyproject.toml" else _ini_strings(decoded)
    except (ValueError, configparser.Error):  # tomllib's errors are ValueErrors
        return None
    return [_COVERAGE_SOURCE.sub("", s).encode() for s in strings if not _runs_static_tool(s)]


def _runs_static_tool(command: str) -> bool:
    """Whether `command` is a command line that runs one of `_STATIC_TOOLS` on something
    (hatch's ``- `` prefix and ``python -m`` allowed), and nothing else: a tool's name
    alone is no command, and ``flake8 pkg && pytest -p pkg.plugin`` runs pytest too."""
    if any(op in command for op in ("&", "|", ";", "`", "$(")):
        return False
    words = command.split()
    if words[:1] == ["-"]:
        words = words[1:]
    if len(words) > 2 and words[0] in ("python", "python3") and words[1] == "-m":
        words = words[2:]
    return len(words) > 1 and words[0].rsplit("/", 1)[-1] in _STATIC_TOOLS


def _toml_strings(text: str) -> list[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return list(_live(tomllib.loads(text), ()))


def _live(value: Any, path: tuple[str, ...]) -> Iterator[str]:
    if path in _INERT_TOML:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        named = any(path[: len(p)] == p for p in _ENTRY_POINTS)
        for key, item in value.items():
            if not named:
                yield key
            yield from _live(item, (*path, key))
    elif isinstance(value, list):
        for item in value:
            yield from _live(item, path)


def _ini_strings(text: str) -> list[str]:
    parser = _KeysAsWritten(interpolation=None, strict=False)
    parser.read_string(text)
    strings: list[str] = []
    for section in parser.sections():
        if not _INERT_INI.fullmatch(section):
            strings.append(section)
            inert = _INERT_INI_KEYS.get(section, frozenset())
            for key, value in parser.items(section, raw=True):
                if key in inert:
                    continue
                if section == "options.entry_points":  # lines of `name = module:attr`
                    strings.extend(line.partition("=")[2] or line for line in value.splitlines())
                else:
                    # tox's ``commands``: a command a line, each judged on its own.
                    strings.extend((key, *value.splitlines()))
    return strings


class _KeysAsWritten(configparser.ConfigParser):
    """configparser lowercases keys; a key may spell a module's name."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr
