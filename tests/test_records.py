"""The map's records: JSON converters that check every field of what they read back."""

from __future__ import annotations

import json

import pytest

from tia.records import RecordError, RunFacts, TestRecord, deps_from_json, deps_to_json, safe_path, safe_paths


def good_json(**overrides) -> dict:
    data = {
        "outcome": "passed",
        "duration": 0.5,
        "when": 1_700_000_000.0,
        "epoch": "snap1",
        "env": "env1",
        "deps": {"pkg/core.py": ["a" * 40, ["<module>", "add"]]},
    }
    data.update(overrides)
    return data


# -- TestRecord -------------------------------------------------------------------


def test_a_test_record_survives_a_json_round_trip():
    record = TestRecord(
        nodeid="tests/test_a.py::test_one[x]",
        outcome="failed",
        duration=1.25,
        when=1_700_000_000.5,
        epoch="snap1",
        env="env1",
        deps={
            "pkg/core.py": ("a" * 40, frozenset({"add", "<module>"})),
            "tests/test_a.py": ("b" * 40, frozenset()),
        },
    )
    text = json.dumps(record.to_json())
    assert TestRecord.from_json(record.nodeid, json.loads(text)) == record


def test_to_json_sorts_dependencies_and_scopes_so_equal_records_serialize_equally():
    record = TestRecord(
        "t",
        "passed",
        1.0,
        1.0,
        "e",
        "v",
        deps={"z.py": ("s", frozenset({"b", "a"})), "a.py": ("s", frozenset({"y", "x"}))},
    )
    data = record.to_json()
    assert list(data["deps"]) == ["a.py", "z.py"]
    assert data["deps"]["a.py"] == ["s", ["x", "y"]]
    assert data["deps"]["z.py"] == ["s", ["a", "b"]]


def test_to_json_rounds_durations_to_microseconds():
    record = TestRecord("t", "passed", 0.1234567891, 1.0, "e", "v")
    assert record.to_json()["duration"] == 0.123457


def test_a_record_without_deps_reads_back_with_none():
    data = good_json()
    del data["deps"]
    assert TestRecord.from_json("t", data).deps == {}


def test_integer_durations_and_times_read_back_as_floats():
    record = TestRecord.from_json("t", good_json(duration=2, when=3))
    assert record.duration == 2.0 and isinstance(record.duration, float)
    assert record.when == 3.0 and isinstance(record.when, float)


@pytest.mark.parametrize(
    ("outcome", "failed"), [("passed", False), ("skipped", False), ("failed", True), ("error", True)]
)
def test_only_failed_and_error_outcomes_count_as_failed(outcome, failed):
    assert TestRecord.from_json("t", good_json(outcome=outcome)).failed is failed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"outcome": 3}, "outcome must be a string"),
        (good_json(outcome="xfailed"), "unknown outcome"),
        (good_json(outcome=None), "outcome must be a string"),
        (good_json(duration=True), "duration must be a number"),
        (good_json(duration="1.0"), "duration must be a number"),
        (good_json(when=None), "when must be a number"),
        (good_json(epoch=7), "epoch must be a string"),
        (good_json(env=["v"]), "env must be a string"),
        (good_json(deps=[]), "dependencies must be an object"),
        (good_json(deps={"a.py": ["s"]}), "malformed dependency entry"),
        (good_json(deps={"a.py": ["s", "add"]}), "malformed dependency entry"),
        (good_json(deps={"a.py": ["s", ["add"], "extra"]}), "malformed dependency entry"),
        (good_json(deps={"a.py": [None, ["add"]]}), "a blob id must be a string"),
        (good_json(deps={"a.py": ["s", [1]]}), "a scope must be a string"),
        ([], "must be an object"),
        ("passed", "must be an object"),
        (None, "must be an object"),
    ],
    ids=[
        "outcome-int",
        "outcome-unknown",
        "outcome-missing",
        "duration-bool",
        "duration-text",
        "when-missing",
        "epoch-int",
        "env-list",
        "deps-list",
        "dep-short",
        "dep-scopes-text",
        "dep-long",
        "dep-sha-null",
        "dep-scope-int",
        "list",
        "string",
        "null",
    ],
)
def test_a_record_of_the_wrong_shape_is_rejected(data, message):
    with pytest.raises(RecordError, match=message):
        TestRecord.from_json("t", data)


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "../outside.py", "pkg/../../outside.py", "pkg/..", "..", "pkg\\..\\x.py", "C:\\x.py", ""],
    ids=[
        "absolute",
        "dotdot-start",
        "dotdot-middle",
        "dotdot-end",
        "dotdot-only",
        "backslash",
        "windows",
        "empty",
    ],
)
def test_a_dependency_path_that_could_leave_the_repository_is_rejected(path):
    with pytest.raises(RecordError, match="unsafe path"):
        TestRecord.from_json("t", good_json(deps={path: ["s", []]}))


def test_record_error_is_a_value_error():
    assert issubclass(RecordError, ValueError)


# -- safe_path ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "a.py",
        "pkg/sub/mod.py",
        "..hidden/x.py",
        "pkg/...py",
        "a..b/c.py",
        ".github/workflows/ci.yml",
        "name with spaces.py",
        "ünïcode/ß.py",
    ],
)
def test_safe_path_accepts_relative_paths_inside_the_repository(path):
    assert safe_path(path) == path
    assert safe_paths(["x.py", path, "y/z.py"]) == ["x.py", path, "y/z.py"]


@pytest.mark.parametrize("path", ["/abs.py", "//server/share", "../x", "a/../../b", "a/..", "a\\b", ""])
def test_safe_path_rejects_absolute_escaping_and_windows_paths(path):
    with pytest.raises(RecordError):
        safe_path(path)
    # Checked together, in first, middle or last place, an unsafe path is found all the same.
    for paths in ([path, "x.py", "y.py"], ["x.py", path, "y.py"], ["x.py", "y.py", path], [path]):
        with pytest.raises(RecordError, match="unsafe path"):
            safe_paths(paths)


@pytest.mark.parametrize("value", [None, 1, b"a.py", ["a.py"]])
def test_safe_path_rejects_values_that_are_not_strings(value):
    with pytest.raises(RecordError, match="must be a string"):
        safe_path(value)


def test_safe_path_rejects_a_nul_byte():
    with pytest.raises(RecordError):
        safe_path("pkg/a\x00b.py")


@pytest.mark.parametrize("path", ["a\nb.py", "x.py\n/etc/passwd", "a\n", "\na", "a\n..\nb", "a\rb"])
def test_safe_paths_rejects_a_path_that_holds_a_line_break(path):
    # Joined by newlines for one check, such a path would read as two safe ones.
    with pytest.raises(RecordError, match="unsafe path"):
        safe_paths(["x.py", path])


def test_safe_paths_rejects_a_value_that_is_not_a_string():
    with pytest.raises(RecordError, match="must be a string"):
        safe_paths(["x.py", 1])
    assert safe_paths([]) == []


# -- deps helpers --------------------------------------------------------------------


def test_deps_round_trip_through_json():
    deps = {"a.py": ("s1", frozenset({"f", "g"})), "b/c.py": ("s2", frozenset())}
    assert deps_from_json(json.loads(json.dumps(deps_to_json(deps)))) == deps


# -- RunFacts --------------------------------------------------------------------------


def test_run_facts_survive_a_json_round_trip():
    facts = RunFacts(
        session={"conftest.py": ("s", frozenset({"pytest_configure"}))},
        import_time={"pkg/core.py": frozenset({"helper", "Thing.setup"})},
        reads={"pkg/core.py": frozenset({"data/a.csv", "data/b.csv"})},
    )
    assert RunFacts.from_json(json.loads(json.dumps(facts.to_json()))) == facts


def test_empty_run_facts_read_from_an_empty_object():
    assert RunFacts.from_json({}) == RunFacts()


def test_merge_replaces_a_file_seen_again_and_keeps_the_others():
    older = RunFacts(
        session={"conftest.py": ("s1", frozenset({"a"})), "plugin.py": ("s2", frozenset({"b"}))},
        import_time={"a.py": frozenset({"x"}), "b.py": frozenset({"y"})},
        reads={"a.py": frozenset({"old.txt"}), "c.py": frozenset({"c.txt"})},
    )
    newer = RunFacts(
        session={"conftest.py": ("s3", frozenset({"c"}))},
        import_time={"a.py": frozenset({"z"})},
        reads={"a.py": frozenset({"new.txt"}), "d.py": frozenset({"d.txt"})},
    )
    newer_before = RunFacts.from_json(newer.to_json())

    older.merge(newer)

    assert older == RunFacts(
        session={"conftest.py": ("s3", frozenset({"c"})), "plugin.py": ("s2", frozenset({"b"}))},
        import_time={"a.py": frozenset({"z"}), "b.py": frozenset({"y"})},
        reads={"a.py": frozenset({"new.txt"}), "c.py": frozenset({"c.txt"}), "d.py": frozenset({"d.txt"})},
    )
    assert newer == newer_before


def test_merging_empty_facts_changes_nothing():
    facts = RunFacts(import_time={"a.py": frozenset({"x"})})
    facts.merge(RunFacts())
    assert facts == RunFacts(import_time={"a.py": frozenset({"x"})})


def test_merged_facts_do_not_share_dicts_with_the_newer_facts():
    older, newer = RunFacts(), RunFacts(reads={"a.py": frozenset({"x"})})
    older.merge(newer)
    newer.reads["b.py"] = frozenset({"y"})
    assert "b.py" not in older.reads


def test_to_json_sorts_fact_paths_and_names():
    facts = RunFacts(import_time={"b.py": frozenset({"z", "a"}), "a.py": frozenset()})
    assert facts.to_json()["import_time"] == {"a.py": [], "b.py": ["a", "z"]}
    assert list(facts.to_json()["import_time"]) == ["a.py", "b.py"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "run facts must be an object"),
        ({"session": []}, "dependencies must be an object"),
        ({"session": {"/abs.py": ["s", []]}}, "unsafe path"),
        ({"import_time": []}, "expected an object"),
        ({"import_time": {"a.py": "f"}}, "expected a list"),
        ({"import_time": {"../a.py": ["f"]}}, "unsafe path"),
        ({"import_time": {"a.py": [1]}}, "a name must be a string"),
        ({"reads": {"/etc/passwd": ["x"]}}, "unsafe path"),
        ({"reads": {"a.py": [None]}}, "a name must be a string"),
    ],
    ids=[
        "list",
        "session-list",
        "session-absolute",
        "import-time-list",
        "import-time-string",
        "import-time-dotdot",
        "import-time-int",
        "reads-absolute",
        "reads-null",
    ],
)
def test_run_facts_of_the_wrong_shape_are_rejected(data, message):
    with pytest.raises(RecordError, match=message):
        RunFacts.from_json(data)
