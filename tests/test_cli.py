"""The reporting commands: explain, status, graph, cache, help."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import GitProject
from tia.cli import COMMANDS, _parser

pytestmark = pytest.mark.slow


def test_explain_a_test_lists_its_files_and_scopes(mapped: GitProject) -> None:
    result = mapped.tia("explain", "tests/test_core.py::test_add")
    assert result.rc == 0, result
    assert "tests/test_core.py::test_add: passed" in result.stdout
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert lines["pkg/core.py"].endswith("add")
    assert lines["tests/conftest.py"].endswith("two")


def test_explain_a_line_names_its_scope_and_the_tests_that_ran_it(mapped: GitProject) -> None:
    line = mapped.read("pkg/core.py").splitlines().index("    return a * b") + 1
    result = mapped.tia("explain", f"pkg/core.py:{line}")
    assert result.rc == 0, result
    assert f"pkg/core.py:{line} is in mul" in result.stdout
    assert result.stdout.splitlines()[-1].strip() == "tests/test_core.py::test_mul"
    assert "1 mapped tests executed or read scope mul" in result.stdout


def test_explain_a_data_file_lists_its_readers(mapped: GitProject) -> None:
    result = mapped.tia("explain", "pkg/data.json")
    assert "tests/test_reader.py::test_load" in result.stdout


def test_explain_something_unknown_is_a_clear_error(mapped: GitProject) -> None:
    result = mapped.tia("explain", "/nowhere/else.py")
    assert result.rc == 2
    assert "tia: error:" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_describes_the_map(mapped: GitProject) -> None:
    mapped.replace("pkg/core.py", "return a * b", "return b * a")
    result = mapped.tia("status")
    assert result.rc == 0
    assert "tests: 6 (0 failed last time)" in result.stdout
    assert "stale files (changed since tests that depend on them ran): 1" in result.stdout
    assert "  pkg/core.py" in result.stdout
    assert "(unchanged)" in result.stdout


def test_graph_exports_json_and_graphml(mapped: GitProject) -> None:
    doc = json.loads(mapped.tia("graph", "--format", "json").stdout)
    edges = {(e["source"], e["target"]) for e in doc["edges"]}
    assert ("tests/test_core.py::test_mul", "pkg/core.py:mul") in edges
    kinds = {n["id"]: n["kind"] for n in doc["nodes"]}
    assert {kinds[t] for t in ("tests/test_core.py::test_mul", "tests/test_uses.py::test_scaled")} == {"test"}
    assert ("tests/test_reader.py::test_load", "pkg/data.json") in edges
    out = mapped.path / "deps.graphml"
    assert mapped.tia("graph", "--format", "graphml", "-o", str(out)).rc == 0
    root = ET.parse(out).getroot()
    assert root.tag.endswith("graphml")


def test_cache_info_and_clear(mapped: GitProject) -> None:
    info = mapped.tia("cache", "info").stdout
    assert "test entries: 6" in info
    assert (mapped.path / ".tia" / ".gitignore").read_text().strip().endswith("*")
    assert mapped.git("status", "--porcelain") == ""
    assert mapped.tia("cache", "clear").rc == 0
    assert "no map yet" in mapped.tia("cache", "info").stdout
    assert "no map yet" in mapped.tia("run").stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help_with_an_example(mapped: GitProject, command: str) -> None:
    result = mapped.tia(command, "--help")
    assert result.rc == 0
    assert f"example: {COMMANDS[command][1]}" in result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--since", "main", "-n", "2", "--engine", "coverage", "--dry-run", "--shard", "1/2", "--"],
        ["run", "--since-upstream", "--all", "--json-report", "r.json", "--cache-dir", "d"],
        ["select", "--json", "--since", "HEAD~1"],
        ["map", "-n", "auto", "--", "-q", "-k", "x"],
        ["explain", "pkg/core.py:3"],
        ["status"],
        ["graph", "--format", "graphml", "-o", "g.xml"],
        ["install-hook", "--force"],
        ["cache", "export", "map.json.gz"],
    ],
)
def test_the_parser_of_one_command_reads_its_arguments_as_the_whole_parser_does(argv: list[str]) -> None:
    # `tia.cli.main` builds the parser of the command being run only.
    assert vars(_parser(argv[0]).parse_args(argv)) == vars(_parser().parse_args(argv))


def test_version_answers_without_a_repository(tmp_path) -> None:
    project = GitProject.__new__(GitProject)
    project.path = tmp_path
    result = project.tia("--version")
    assert result.rc == 0
    assert result.stdout.startswith("tia ")


def test_cache_clear_removes_a_map_from_a_newer_tia(mapped: GitProject) -> None:
    import sqlite3

    # Stand in for a newer tia: rewrite the schema number through SQL, not through tia.
    db = sqlite3.connect(mapped.path / ".tia" / "cache.db")
    db.execute("DELETE FROM Cache WHERE key = 'meta'")
    db.commit()
    db.close()
    code = (
        "import sys; from pathlib import Path; import diskcache; from tia.store import json_disk; "
        "c = diskcache.Cache(sys.argv[1], disk=json_disk()); c.set('meta', {'schema': 99}); c.close()"
    )
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", code, str(mapped.path / ".tia")], check=True)
    assert "newer tia" in mapped.tia("run").stderr
    assert mapped.tia("cache", "clear").rc == 0
    assert "no map yet" in mapped.run().stderr


def test_explain_refuses_unknown_tests_paths_and_lines(mapped: GitProject) -> None:
    for target, needle in [
        ("tests/test_core.py::test_nosuch", "no test tests/test_core.py::test_nosuch in the map"),
        ("pkg/nosuch.py", "neither a test in the map nor a file"),
        ("pkg/core.py:999", "has no line 999"),
        ("pkg/data.json:1", "not a Python file"),
    ]:
        result = mapped.tia("explain", target)
        assert result.rc == 2, result
        assert needle in result.stderr


def test_reading_commands_leave_no_map_behind(project: GitProject) -> None:
    assert "no map yet" in project.tia("status").stdout
    assert not (project.path / ".tia").exists()
