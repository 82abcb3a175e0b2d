"""A pytest plugin that appends every test's outcome to ``$SAFETY_OUTCOMES`` (JSON lines).

The benchmark loads it with ``-p safety_outcomes`` through ``PYTEST_ADDOPTS``, so it sees the
tests that the full suite, tia and pytest-testmon actually ran.  Under pytest-xdist
the controller receives every worker's reports, so only the controller writes.
"""

from __future__ import annotations

import json
import os

import pytest

_state = {"worker": False}


def pytest_configure(config: pytest.Config) -> None:
    _state["worker"] = hasattr(config, "workerinput")


def _write(nodeid: str, when: str, outcome: str) -> None:
    path = os.environ.get("SAFETY_OUTCOMES")
    if path and not _state["worker"]:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"nodeid": nodeid, "when": when, "outcome": outcome}) + "\n")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        _write(report.nodeid, report.when, report.outcome)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    # A module that no longer imports fails as a whole: its node id stands for its tests.
    if report.failed:
        _write(report.nodeid, "collect", "failed")
