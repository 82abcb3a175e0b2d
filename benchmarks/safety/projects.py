"""The real projects the safety benchmark measures: PyPI sdists at pinned versions.

Each sdist ships its tests.  ``deps`` are the test dependencies its own requirement
files name (minus coverage and linters), ``src`` the globs of the code under test,
``tests`` the globs of test files, ``data`` the folders whose non-Python files the
data mutations edit, and ``pytest_args`` what every run of the suite gets (the
same for the ground truth, tia and pytest-testmon).
"""

from __future__ import annotations

PROJECTS: dict[str, dict] = {
    "boltons": {
        "kind": "data structures and utilities",
        "version": "25.0.0",
        "deps": [],
        "src": ["boltons/*.py"],
        "tests": ["tests/test_*.py"],
        "data": ["tests"],
        "pytest_args": ["tests"],
    },
    "click": {
        "kind": "command-line interfaces",
        "version": "8.1.8",
        "deps": [],
        "src": ["src/click/*.py"],
        "tests": ["tests/test_*.py"],
        "data": ["tests"],
        "pytest_args": [],
    },
    "jinja2": {
        "kind": "templates",
        "version": "3.1.6",
        "deps": ["trio"],
        "src": ["src/jinja2/*.py"],
        "tests": ["tests/test_*.py"],
        "data": ["tests"],
        "pytest_args": [],
    },
    "parso": {
        "kind": "a Python parser",
        "version": "0.8.4",
        "deps": [],
        "src": ["parso/*.py", "parso/python/*.py", "parso/pgen2/*.py"],
        "tests": ["test/test_*.py"],
        "data": ["test", "parso/python"],
        "pytest_args": [],
    },
    "arrow": {
        "kind": "dates and times",
        "version": "1.3.0",
        "deps": ["dateparser==1.*", "pytest-mock", "pytz==2021.1", "simplejson==3.*"],
        "src": ["arrow/*.py"],
        "tests": ["tests/test_*.py"],
        "data": ["tests"],
        # tox.ini's addopts ask for pytest-cov and a coverage threshold.
        "pytest_args": ["-o", "addopts="],
    },
}
