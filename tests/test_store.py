"""The map on disk: a real diskcache `Cache` in a temp dir, JSON only, refusing anything else.

Nothing here mocks diskcache or sqlite: tampered maps are built by writing rows
with `sqlite3` into a cache.db that tia created, exactly as a hostile CI cache
or a teammate's `.tia/` could arrive.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pickle
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import diskcache
import pytest
from diskcache.core import MODE_BINARY, MODE_PICKLE, MODE_RAW

from tia import store as store_module
from tia.errors import CorruptStoreError, StoreError
from tia.records import Roster, RunFacts, TestRecord
from tia.scopes import FileIndex
from tia.store import SCHEMA, Lock, Store

# -- helpers -------------------------------------------------------------------


def make_record(
    nodeid: str = "tests/test_a.py::test_one", outcome: str = "passed", deps: dict | None = None
) -> TestRecord:
    return TestRecord(
        nodeid=nodeid,
        outcome=outcome,
        duration=0.25,
        when=1_700_000_000.0,
        epoch="snap1",
        env="env1",
        deps=deps if deps is not None else {"pkg/core.py": ("a" * 40, frozenset({"add", "<module>"}))},
    )


def make_index(module: str = "m1") -> FileIndex:
    return FileIndex(
        module=module,
        scopes={"add": "f1", "Calc.mul": "f2"},
        spans=[("add", 3, 4), ("Calc.mul", 7, 8)],
        free_defs={"add": "d1"},
        bound=frozenset({"LIMIT"}),
        imports=[["os", 0], ["pkg.util", 1]],
        dynamic_imports=True,
        error=None,
    )


class Warnings(list):
    """A `warn` callback that remembers what it was told."""

    def __call__(self, message: str) -> None:
        self.append(message)


@pytest.fixture
def warnings() -> Warnings:
    return Warnings()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / ".tia"


def write_sample(
    store: Store,
    *,
    tests: dict[str, TestRecord] | None = None,
    replace_all: bool = True,
    facts: RunFacts | None = None,
    meta: dict | None = None,
) -> None:
    store.write_run(
        tests=tests if tests is not None else {"tests/test_a.py::test_one": make_record()},
        indexes={"b" * 40: make_index()},
        snapshot=("snap1", {"pkg/core.py": "b" * 40}),
        facts=facts or RunFacts(),
        meta=meta or {"rootdir": "", "commit": "c0ffee"},
        replace_all=replace_all,
    )


def new_map(directory: Path, **kwargs) -> None:
    """A valid map written by tia, then closed."""
    store = Store(directory, Warnings()).open()
    write_sample(store, **kwargs)
    store.close()


def put_row(
    directory: Path,
    key: str | bytes,
    *,
    value: bytes | None = None,
    mode: int = MODE_RAW,
    raw: int = 1,
    filename: str | None = None,
) -> None:
    """Write one row into the Cache table behind diskcache's back."""
    con = sqlite3.connect(directory / "cache.db")
    with con:
        con.execute("DELETE FROM Cache WHERE key = ? AND raw = ?", (key, raw))
        con.execute(
            "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count,"
            " tag, size, mode, filename, value) VALUES (?, ?, 0, NULL, 0, 0, NULL, 0, ?, ?, ?)",
            (key, raw, mode, filename, value),
        )
    con.close()


def quarantined(directory: Path) -> list[Path]:
    return sorted(directory.parent.glob(f"{directory.name}.corrupt-*"))


class _OpensMarker:
    """Unpickling this calls ``open(marker, "w")``: the marker file appears."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_pickle(marker: Path) -> bytes:
    return pickle.dumps(_OpensMarker(marker), protocol=pickle.HIGHEST_PROTOCOL)


# -- round trip ----------------------------------------------------------------


def test_a_run_written_to_the_map_reads_back_identically_from_a_new_store(cache_dir, warnings):
    records = {
        "tests/test_a.py::test_one": make_record(),
        "tests/test_a.py::test_two[x-1]": make_record("tests/test_a.py::test_two[x-1]", "failed", deps={}),
    }
    indexes = {"b" * 40: make_index("m1"), "c" * 40: make_index("m2")}
    listing = {"pkg/core.py": "b" * 40, "tests/test_a.py": "c" * 40}
    facts = RunFacts(
        session={"conftest.py": ("d" * 40, frozenset({"pytest_configure"}))},
        import_time={"pkg/core.py": frozenset({"helper"})},
        reads={"pkg/core.py": frozenset({"data/table.csv"})},
    )
    store = Store(cache_dir, warnings).open()
    store.write_run(
        tests=records,
        indexes=indexes,
        snapshot=("snap1", listing),
        facts=facts,
        meta={"rootdir": "sub", "commit": "c0ffee", "env": {"python": "3.11"}},
        replace_all=True,
    )
    store.close()

    reopened = Store(cache_dir, warnings).open()
    assert reopened.tests() == records
    assert reopened.index("b" * 40) == indexes["b" * 40]
    assert reopened.index("c" * 40) == indexes["c" * 40]
    assert reopened.index("e" * 40) is None
    assert reopened.snapshot("snap1") == listing
    assert reopened.snapshot("other") is None
    assert reopened.facts() == facts
    meta = reopened.meta()
    assert meta is not None
    assert meta["schema"] == SCHEMA
    assert {k: meta[k] for k in ("rootdir", "commit", "env")} == {
        "rootdir": "sub",
        "commit": "c0ffee",
        "env": {"python": "3.11"},
    }
    assert isinstance(meta["updated"], float)
    assert reopened.counts() == {
        **{"test": 2, "index": 2, "snap": 1, "facts": 1, "meta": 1},
        **{"tests": 1, "roster": 1, "versions": 1, "deps": 1},  # the index: one file is depended on
    }
    assert warnings == []
    assert reopened.rebuilt_reason is None
    reopened.close()


def test_an_empty_new_store_reads_as_empty(cache_dir, warnings):
    store = Store(cache_dir, warnings).open()
    assert store.tests() == {}
    assert store.meta() is None
    assert store.facts() == RunFacts()
    assert store.stat_cache() == {}
    assert store.index("a" * 40) is None
    assert warnings == []
    store.close()


def test_replace_all_drops_test_records_that_are_not_in_the_new_run(cache_dir):
    new_map(cache_dir, tests={"t::old": make_record("t::old"), "t::kept": make_record("t::kept")})
    store = Store(cache_dir, Warnings()).open()
    write_sample(
        store,
        tests={"t::kept": make_record("t::kept", "failed"), "t::new": make_record("t::new")},
        replace_all=True,
    )
    store.close()

    tests = Store(cache_dir, Warnings()).open().tests()
    assert set(tests) == {"t::kept", "t::new"}
    assert tests["t::kept"].outcome == "failed"


def test_without_replace_all_records_of_tests_not_in_the_run_are_kept(cache_dir):
    new_map(cache_dir, tests={"t::old": make_record("t::old"), "t::kept": make_record("t::kept")})
    store = Store(cache_dir, Warnings()).open()
    write_sample(
        store,
        tests={"t::kept": make_record("t::kept", "failed"), "t::new": make_record("t::new")},
        replace_all=False,
    )
    store.close()

    tests = Store(cache_dir, Warnings()).open().tests()
    assert set(tests) == {"t::old", "t::kept", "t::new"}
    assert tests["t::kept"].outcome == "failed"
    assert tests["t::old"].outcome == "passed"


def test_a_partial_run_merges_its_facts_into_the_stored_ones(cache_dir):
    first = RunFacts(
        session={"conftest.py": ("s1", frozenset({"hook"}))},
        import_time={"a.py": frozenset({"x"}), "b.py": frozenset({"y"})},
    )
    second = RunFacts(import_time={"a.py": frozenset({"z"})}, reads={"c.py": frozenset({"d.txt"})})
    new_map(cache_dir, facts=first)
    store = Store(cache_dir, Warnings()).open()
    write_sample(store, facts=second, replace_all=False)
    assert store.facts() == RunFacts(
        session={"conftest.py": ("s1", frozenset({"hook"}))},
        import_time={"a.py": frozenset({"z"}), "b.py": frozenset({"y"})},
        reads={"c.py": frozenset({"d.txt"})},
    )
    store.close()


def test_a_full_run_replaces_the_stored_facts(cache_dir):
    new_map(cache_dir, facts=RunFacts(import_time={"a.py": frozenset({"x"})}))
    store = Store(cache_dir, Warnings()).open()
    newer = RunFacts(reads={"c.py": frozenset({"d.txt"})})
    write_sample(store, facts=newer, replace_all=True)
    assert store.facts() == newer
    store.close()


def test_meta_keeps_earlier_keys_and_always_carries_this_schema(cache_dir):
    new_map(cache_dir, meta={"mapped": 1.0, "commit": "old", "schema": 999})
    store = Store(cache_dir, Warnings()).open()
    write_sample(store, meta={"commit": "new"}, replace_all=False)
    meta = store.meta()
    assert meta is not None
    assert meta["mapped"] == 1.0
    assert meta["commit"] == "new"
    assert meta["schema"] == SCHEMA
    store.close()


def test_indexes_and_snapshots_are_content_addressed_and_never_overwritten(cache_dir):
    new_map(cache_dir)
    store = Store(cache_dir, Warnings()).open()
    store.write_run(
        tests={},
        indexes={"b" * 40: make_index("different")},
        snapshot=("snap1", {"other.py": "f" * 40}),
        facts=RunFacts(),
        meta={},
        replace_all=False,
    )
    index = store.index("b" * 40)
    assert index is not None and index.module == "m1"
    assert store.snapshot("snap1") == {"pkg/core.py": "b" * 40}
    store.close()


def test_a_run_that_fails_midway_leaves_the_map_as_it_was(cache_dir):
    new_map(cache_dir)
    store = Store(cache_dir, Warnings()).open()
    unserializable = FileIndex(module="m", imports=[[object()]])
    with pytest.raises(TypeError):
        store.write_run(
            tests={"t::new": make_record("t::new")},
            indexes={"9" * 40: unserializable},
            snapshot=("snap2", {}),
            facts=RunFacts(),
            meta={},
            replace_all=True,
        )
    store.close()

    reopened = Store(cache_dir, Warnings()).open()
    assert set(reopened.tests()) == {"tests/test_a.py::test_one"}
    assert reopened.snapshot("snap2") is None
    reopened.close()


def test_replace_map_swaps_in_another_map_and_keeps_only_the_stat_cache(cache_dir):
    new_map(cache_dir, facts=RunFacts(import_time={"a.py": frozenset({"x"})}))
    store = Store(cache_dir, Warnings()).open()
    store.put_stat_cache({"a.py": [1, 2, "s" * 40]})
    record = make_record("t::imported", deps={"pkg/other.py": ("c" * 40, frozenset({"f"}))})
    facts = RunFacts(reads={"pkg/other.py": frozenset({"data.csv"})})
    store.replace_map(
        tests={"t::imported": record},
        indexes={"c" * 40: make_index("imported")},
        snapshots={"snap9": {"pkg/other.py": "c" * 40}},
        facts=facts,
        meta={"rootdir": "sub", "commit": "beef"},
    )
    store.close()

    reopened = Store(cache_dir, Warnings()).open()
    assert reopened.tests() == {"t::imported": record}
    assert reopened.index("b" * 40) is None
    assert reopened.index("c" * 40) == make_index("imported")
    assert reopened.snapshot("snap1") is None
    assert reopened.snapshot("snap9") == {"pkg/other.py": "c" * 40}
    assert reopened.facts() == facts
    assert reopened.meta() == {"rootdir": "sub", "commit": "beef", "schema": SCHEMA}
    assert reopened.stat_cache() == {"a.py": [1, 2, "s" * 40]}
    reopened.close()


def test_a_replace_map_that_fails_midway_leaves_the_map_as_it_was(cache_dir):
    new_map(cache_dir)
    store = Store(cache_dir, Warnings()).open()
    with pytest.raises(TypeError):
        store.replace_map(
            tests={"t::new": make_record("t::new")},
            indexes={"9" * 40: FileIndex(module="m", imports=[[object()]])},
            snapshots={},
            facts=RunFacts(),
            meta={},
        )
    store.close()

    reopened = Store(cache_dir, Warnings()).open()
    assert set(reopened.tests()) == {"tests/test_a.py::test_one"}
    assert reopened.snapshot("snap1") == {"pkg/core.py": "b" * 40}
    reopened.close()


def test_the_stat_cache_round_trips(cache_dir):
    # Its entries are checked where they are used: test_worktree's malformed-entry test.
    new_map(cache_dir)
    store = Store(cache_dir, Warnings()).open()
    store.put_stat_cache({"a.py": [1, 2, "s" * 40], "b.py": [3, 4, "t" * 40]})
    store.close()
    assert Store(cache_dir, Warnings()).open().stat_cache() == {
        "a.py": [1, 2, "s" * 40],
        "b.py": [3, 4, "t" * 40],
    }


def test_a_stat_cache_that_is_not_an_object_reads_as_empty(cache_dir):
    store = Store(cache_dir, Warnings()).open()
    store.cache.set("stat", ["not", "a", "dict"])
    assert store.stat_cache() == {}
    store.close()


def test_opening_creates_a_gitignore_that_ignores_everything(cache_dir):
    Store(cache_dir, Warnings()).open().close()
    ignore = cache_dir / ".gitignore"
    assert ignore.is_file()
    lines = [line.strip() for line in ignore.read_text().splitlines()]
    assert "*" in lines


def test_an_existing_gitignore_is_left_alone(cache_dir):
    cache_dir.mkdir()
    (cache_dir / ".gitignore").write_text("# mine\n*\n!keep\n")
    Store(cache_dir, Warnings()).open().close()
    assert (cache_dir / ".gitignore").read_text() == "# mine\n*\n!keep\n"


def test_git_ignores_the_whole_map_directory(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    new_map(tmp_path / ".tia")
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out == ""


def test_using_a_store_before_opening_it_is_an_error(cache_dir):
    with pytest.raises(StoreError, match="not open"):
        Store(cache_dir, Warnings()).tests()


def test_a_store_that_only_reads_leaves_diskcache_unopened_and_no_log_behind(cache_dir):
    new_map(cache_dir)
    before = sorted(p.name for p in cache_dir.iterdir())

    store = Store(cache_dir, Warnings()).open()
    assert store.tests().keys() == {"tests/test_a.py::test_one"}
    assert store.meta()["schema"] == SCHEMA
    assert store._cache is None
    store.close()
    assert sorted(p.name for p in cache_dir.iterdir()) == before == [".gitignore", "cache.db"]


def test_reads_decode_values_as_diskcache_marks_raw_bytes():
    assert store_module.MODE_RAW == MODE_RAW


# -- eviction ------------------------------------------------------------------


def test_evict_removes_only_unreferenced_indexes_and_snapshots(cache_dir):
    store = Store(cache_dir, Warnings()).open()
    store.write_run(
        tests={"t::a": make_record("t::a")},
        indexes={"1" * 40: make_index(), "2" * 40: make_index(), "3" * 40: make_index()},
        snapshot=("keep", {}),
        facts=RunFacts(),
        meta={},
        replace_all=True,
    )
    store.write_run(tests={}, indexes={}, snapshot=("drop", {}), facts=RunFacts(), meta={}, replace_all=False)
    store.put_stat_cache({"a.py": [1, 2, "3"]})

    gone = store.evict({"1" * 40, "3" * 40}, {"keep"})

    assert gone == 2
    assert store.index("1" * 40) is not None
    assert store.index("2" * 40) is None
    assert store.index("3" * 40) is not None
    assert store.snapshot("keep") == {}
    assert store.snapshot("drop") is None
    assert set(store.tests()) == {"t::a"}
    assert store.meta() is not None
    assert store.stat_cache() == {"a.py": [1, 2, "3"]}
    assert store.counts() == {
        **{"test": 1, "index": 2, "snap": 1, "facts": 1, "meta": 1, "stat": 1},
        **{"tests": 1, "roster": 1, "versions": 1, "deps": 1},
    }
    store.close()


# -- the index: roster, summaries, versions and dependents say what the records say ----------


def indexed(store: Store) -> dict[str, TestRecord]:
    """The test records as the index tells them: summaries, plus dependents per file; and
    the roster groups the summaries as they are."""
    summaries = store.summaries()
    by_file: dict[str, list] = {}
    for nodeid, summary in summaries.items():
        by_file.setdefault(nodeid.partition("::")[0], []).append(summary)
    assert store.roster().files == {part: Roster.entry(group) for part, group in by_file.items()}
    out = {
        n: TestRecord(s.nodeid, s.outcome, s.duration, s.when, s.epoch, s.env) for n, s in summaries.items()
    }
    for path, shas in store.versions().items():
        dependents = store.dependents(path)
        assert {sha for sha, _ in dependents.values()} == shas, path
        for nodeid, dep in dependents.items():
            out[nodeid].deps[path] = dep
    return out


def assert_counts_right(store: Store) -> None:
    """diskcache's own count and size of the map (its Settings table) match its rows:
    the index is written in batches beside diskcache, not through it."""
    con = sqlite3.connect(store.directory / "cache.db")
    rows, size = con.execute("SELECT count(*), coalesce(sum(size), 0) FROM Cache").fetchone()
    con.close()
    assert len(store.cache) == rows
    assert store.cache.volume() >= size
    assert store.cache.reset("size", update=False) == size


def random_records(rng: random.Random, nodeids: list[str]) -> dict[str, TestRecord]:
    paths = ["pkg/a.py", "pkg/b.py", "tests/conftest.py", "data/x.json", "pkg/c.py"]
    records = {}
    for nodeid in nodeids:
        deps = {
            path: (
                rng.choice("12") * 40,
                frozenset(rng.sample(["f", "g", "<module>", "<text>"], rng.randint(0, 2))),
            )
            for path in rng.sample(paths, rng.randint(0, len(paths)))
        }
        records[nodeid] = TestRecord(
            nodeid, rng.choice(["passed", "failed"]), 0.5, 1.0, "snap1", "env1", deps
        )
    return records


def test_the_index_says_what_the_records_say_through_any_sequence_of_writes(cache_dir):
    rng = random.Random(7)
    nodeids = [f"tests/test_{i % 4}.py::test_{i}" for i in range(30)]
    store = Store(cache_dir, Warnings()).open()
    write_sample(store, tests=random_records(rng, nodeids), replace_all=True)
    assert indexed(store) == store.tests()
    for _ in range(25):
        rewritten = random_records(rng, rng.sample(nodeids, rng.randint(1, 10)))
        stored = store.tests()
        for nodeid, record in rewritten.items():
            # A rerun test mostly keeps its dependencies: keep some as stored, change the rest.
            if nodeid in stored and rng.random() < 0.5:
                kept = {p: d for p, d in stored[nodeid].deps.items() if rng.random() < 0.7}
                record.deps = {**record.deps, **kept}
        present = sorted(set(stored) - set(rewritten))
        removed = rng.sample(present, min(len(present), rng.randint(0, 3)))
        store.write_run(
            tests=rewritten,
            indexes={},
            snapshot=("snap1", {}),
            facts=RunFacts(),
            meta={},
            replace_all=rng.random() < 0.1,
            remove=removed,
        )
        assert indexed(store) == store.tests()
        assert set(store.summaries()) == set(store.tests())
        assert_counts_right(store)
    store.replace_map(
        tests=random_records(rng, nodeids[:5]), indexes={}, snapshots={}, facts=RunFacts(), meta={}
    )
    assert indexed(store) == store.tests()
    assert len(store.tests()) == 5
    store.close()


def test_a_schema_1_map_gets_its_index_built_from_its_records(cache_dir, warnings):
    records = random_records(random.Random(3), [f"tests/test_a.py::test_{i}" for i in range(12)])
    store = Store(cache_dir, Warnings()).open()
    write_sample(store, tests=records)
    # What tia of schema 1 left: the records, and no index.
    for key in [k for k in store.cache.iterkeys() if k.startswith(("deps:", "tests:")) or k == "versions"]:
        store.cache.delete(key)
    store.cache.set("meta", {**store.meta(), "schema": 1})
    store.close()

    store = Store(cache_dir, warnings).open()
    assert store.meta()["schema"] == SCHEMA
    assert store.tests() == records
    assert indexed(store) == records
    assert warnings == []
    assert store.rebuilt_reason is None
    store.close()


def test_a_schema_2_map_gets_its_roster_built_from_its_summaries(cache_dir, warnings):
    records = random_records(random.Random(5), [f"tests/test_{i % 3}.py::test_{i}" for i in range(12)])
    store = Store(cache_dir, Warnings()).open()
    write_sample(store, tests=records)
    expected = store.roster()
    assert sum(len(group.nodeids) for groups in expected.files.values() for group in groups) == 12
    # What tia of schema 2 left: everything but the roster.
    store.cache.delete("roster")
    store.cache.set("meta", {**store.meta(), "schema": 2})
    store.close()

    store = Store(cache_dir, warnings).open()
    assert store.meta()["schema"] == SCHEMA
    assert store.roster() == expected
    assert indexed(store) == records
    assert (warnings, store.rebuilt_reason) == ([], None)
    store.close()


@pytest.mark.parametrize(("schema", "lacking"), [(3, "state"), (4, "memos")])
def test_an_older_map_loses_its_file_indexes_and_keeps_the_rest(cache_dir, warnings, schema, lacking):
    from tia.scopes import index_source

    records = random_records(random.Random(7), [f"tests/test_{i % 3}.py::test_{i}" for i in range(6)])
    store = Store(cache_dir, Warnings()).open()
    write_sample(store, tests=records)
    # What an older tia left: indexes that do not say what shared state a function writes
    # (schema 3), or which functions keep a hand-written cache (4).
    old = index_source("X = {}\n\ndef f():\n    X[1] = 2\n").to_json()
    del old[lacking]
    store.cache.set("index:" + "a" * 40, old)
    store.cache.set("meta", {**store.meta(), "schema": schema})
    roster = store.roster()
    store.close()

    store = Store(cache_dir, warnings).open()
    assert store.meta()["schema"] == SCHEMA
    assert store.index("a" * 40) is None  # built again when a plan needs it
    assert store.roster() == roster
    assert indexed(store) == records
    assert (warnings, store.rebuilt_reason) == ([], None)
    store.close()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("tests:t", ["t::a"], "invalid test summary: tests:t is not an object"),
        ("tests:t", {"t::a": ["passed", 1, 1, "e"]}, "five fields"),
        ("tests:t", {"t::a": ["maybe", 1, 1, "e", "v"]}, "unknown outcome"),
        ("versions", {"../x.py": ["1"]}, "unsafe path"),
        ("versions", {"x.py": "1"}, "expected a list"),
        ("deps:x.py", [["1", ["f"]]], "a group must be"),
        ("deps:x.py", [["1", "f", ["t::a"]]], "scopes must be a list"),
        ("deps:x.py", [["1", [["f"]], ["t::a"]]], "a scope must be a string"),
        ("deps:x.py", [["1", ["f"], [1]]], "node id"),
        ("roster", [], "the roster record is not an object"),
        ("roster", {"t": "e"}, "must be a list"),
        ("roster", {"t": [["e", "v", "", ["t::a"], 1]]}, "four fields"),
        ("roster", {"t": [["e", "v", "maybe", ["t::a"]]]}, "unknown outcome"),
        ("roster", {"t": [["e", "v", ["failed"], ["t::a"]]]}, "outcome must be a string"),
        ("roster", {"t": [["e", 1, "", ["t::a"]]]}, "env must be a string"),
        ("roster", {"t": [["e", "v", "", [1]]]}, "node id"),
        ("roster", {"t": [["e", "v", "", ["u::a"]]]}, "a test of another file"),
    ],
    ids=[
        "summary-list",
        "summary-short",
        "summary-outcome",
        "versions-path",
        "versions-str",
        "deps-short",
        "deps-scopes-str",
        "deps-scope-list",
        "deps-nodeid-int",
        "roster-list",
        "roster-str",
        "roster-long",
        "roster-outcome",
        "roster-outcome-list",
        "roster-env",
        "roster-nodeid-int",
        "roster-other-file",
    ],
)
def test_an_index_entry_of_the_wrong_shape_raises_corrupt_store_error(cache_dir, key, value, message):
    new_map(cache_dir)
    store = Store(cache_dir, Warnings()).open()
    store.cache.set(key, value)
    reads = {"tests:t": store.summaries, "versions": store.versions, "roster": store.roster}
    read = reads.get(key, lambda: store.dependents("x.py"))
    with pytest.raises(CorruptStoreError, match=message):
        read()
    store.close()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("deps:x.py", "x", "not a list"),
        ("deps:x.py", [["1", ["f"]]], "a group must be"),
        ("deps:x.py", [["1", [["f"]], ["t::a"]]], "a scope must be a string"),
        ("deps:x.py", [["1", ["f"], [1, "t::a"]]], "node id"),
        ("deps:x.py", [["1", ["f"], [["t::a"]]]], "node id"),
        # The run rewrites test_two's summary and carries test_one's over: the roster is built
        # from both, so the one it did not write is checked too.
        (
            "tests:tests/test_b.py",
            {"tests/test_b.py::test_one": ["maybe", 1, 1, "e", "v"]},
            re.escape("invalid test summary in tests:tests/test_b.py: unknown outcome"),
        ),
    ],
    ids=["not-list", "short", "scope-list", "nodeid-int", "nodeid-list", "carried-summary"],
)
def test_storing_a_run_over_an_index_entry_of_the_wrong_shape_raises_corrupt_store_error(
    cache_dir, key, value, message
):
    new_map(cache_dir)
    store = Store(cache_dir, Warnings()).open()
    store.cache.set(key, value)
    record = TestRecord(
        "tests/test_b.py::test_two", "passed", 0.1, 1.0, "snap1", "env1", {"x.py": ("1", frozenset())}
    )
    with pytest.raises(CorruptStoreError, match=message):
        write_sample(store, tests={record.nodeid: record}, replace_all=False)
    store.close()


def test_evicting_with_everything_referenced_removes_nothing(cache_dir):
    new_map(cache_dir)
    store = Store(cache_dir, Warnings()).open()
    before = store.counts()
    assert store.evict({"b" * 40}, {"snap1"}) == 0
    assert store.counts() == before
    store.close()


# -- corrupt and tampered maps -------------------------------------------------


def test_a_cache_db_of_random_bytes_is_moved_aside_and_a_new_map_started(cache_dir, warnings):
    cache_dir.mkdir()
    garbage = random.Random(1234).randbytes(8192)
    assert not garbage.startswith(b"SQLite format 3")
    (cache_dir / "cache.db").write_bytes(garbage)
    (cache_dir / "notes.txt").write_text("left by someone")

    store = Store(cache_dir, warnings).open()

    [aside] = quarantined(cache_dir)
    assert aside.name.startswith(".tia.corrupt-")
    assert (aside / "cache.db").read_bytes() == garbage
    assert (aside / "notes.txt").read_text() == "left by someone"
    assert len(warnings) == 1
    assert "unreadable" in warnings[0]
    assert str(aside) in warnings[0]
    assert store.rebuilt_reason == "corrupt map moved aside"
    assert (cache_dir / ".gitignore").is_file()
    assert not (cache_dir / "notes.txt").exists()
    assert store.tests() == {}
    write_sample(store)
    store.close()
    assert set(Store(cache_dir, Warnings()).open().tests()) == {"tests/test_a.py::test_one"}


def test_an_empty_cache_db_file_is_moved_aside(cache_dir, warnings):
    cache_dir.mkdir()
    (cache_dir / "cache.db").write_bytes(b"")
    store = Store(cache_dir, warnings).open()
    assert len(quarantined(cache_dir)) == 1
    assert len(warnings) == 1
    assert store.tests() == {}
    store.close()


def test_a_map_with_entries_but_no_meta_is_moved_aside(cache_dir, warnings):
    store = Store(cache_dir, Warnings()).open()
    store.cache.set("test:t::a", make_record("t::a").to_json())
    store.close()

    store = Store(cache_dir, warnings).open()
    assert len(quarantined(cache_dir)) == 1
    assert "no meta record" in warnings[0]
    assert store.tests() == {}
    store.close()


@pytest.mark.parametrize(
    "meta",
    [["schema", 1], "schema 1", {"schema": "1"}, {"schema": None}, {}],
    ids=["list", "string", "schema-as-string", "schema-null", "no-schema"],
)
def test_a_malformed_meta_record_gets_the_map_moved_aside(cache_dir, warnings, meta):
    new_map(cache_dir)
    store = Store(cache_dir, Warnings()).open()
    store.cache.set("meta", meta)
    store.close()

    store = Store(cache_dir, warnings).open()
    assert len(quarantined(cache_dir)) == 1
    assert len(warnings) == 1
    assert store.tests() == {}
    assert store.meta() is None
    store.close()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sqlite_journal_mode", "wal; ATTACH DATABASE '{target}' AS pwn; --"),
        ("sqlite_mmap_size", "0; ATTACH DATABASE '{target}' AS pwn"),
        ("sqlite_x; ATTACH DATABASE '{target}' AS pwn; --", 1),
        ("sqlite_writable_schema", 1),
        ("sqlite_journal_mode", "off"),
        ("eviction_policy", "least-recently-used"),
        ("size_limit", "huge"),
        ("made_up_setting", "{target}"),
    ],
    ids=[
        "journal-mode-attach",
        "mmap-size-attach",
        "key-attach",
        "writable-schema",
        "journal-off",
        "eviction-policy",
        "size-limit-text",
        "unknown-key",
    ],
)
def test_a_tampered_settings_table_is_quarantined_without_running_its_sql(
    tmp_path, cache_dir, warnings, key, value
):
    target = tmp_path / "attached.db"
    new_map(cache_dir)
    key = key.format(target=target)
    value = value.format(target=target) if isinstance(value, str) else value
    con = sqlite3.connect(cache_dir / "cache.db")
    with con:
        con.execute("INSERT OR REPLACE INTO Settings VALUES (?, ?)", (key, value))
    con.close()

    store = Store(cache_dir, warnings).open()

    assert not target.exists()
    [aside] = quarantined(cache_dir)
    assert len(warnings) == 1
    assert "setting" in warnings[0]
    assert repr(key) in warnings[0]
    # The quarantined file still holds the tampered row: it was moved, not rewritten.
    con = sqlite3.connect(f"file:{aside / 'cache.db'}?mode=ro", uri=True)
    assert con.execute("SELECT value FROM Settings WHERE key = ?", (key,)).fetchone() == (value,)
    con.close()
    # The new map has only settings tia writes, and works.
    assert store.tests() == {}
    write_sample(store)
    store.close()
    reopened = Store(cache_dir, warnings).open()
    assert set(reopened.tests()) == {"tests/test_a.py::test_one"}
    assert len(warnings) == 1
    reopened.close()


def test_a_fresh_map_has_only_settings_tia_accepts(cache_dir, warnings):
    new_map(cache_dir)
    for _ in range(2):
        Store(cache_dir, warnings).open().close()
    assert warnings == []
    assert quarantined(cache_dir) == []


# -- never unpickle --------------------------------------------------------------


def test_the_pickle_payload_used_below_is_live_under_plain_diskcache(tmp_path, cache_dir):
    """Control: the same rows *would* run code under diskcache's default Disk."""
    marker = tmp_path / "pwned-by-value"
    key_marker = tmp_path / "pwned-by-key"
    new_map(cache_dir)
    put_row(cache_dir, "test:t::evil", value=evil_pickle(marker), mode=MODE_PICKLE)
    put_row(cache_dir, evil_pickle(key_marker), raw=0, value=b"x")
    plain = tmp_path / "plain"
    shutil.copytree(cache_dir, plain)

    cache = diskcache.Cache(str(plain))
    handle = cache.get("test:t::evil")
    keys = list(cache.iterkeys())
    cache.close()
    handle.close()
    for key in keys:
        if hasattr(key, "close"):
            key.close()

    assert marker.exists()
    assert key_marker.exists()


def test_a_pickled_test_record_is_refused_and_never_unpickled(tmp_path, cache_dir, warnings):
    marker = tmp_path / "pwned"
    new_map(cache_dir)
    put_row(cache_dir, "test:t::evil", value=evil_pickle(marker), mode=MODE_PICKLE)

    store = Store(cache_dir, warnings).open()
    with pytest.raises(CorruptStoreError, match="not compressed JSON"):
        store.tests()
    with pytest.raises(CorruptStoreError):
        store.cache.get("test:t::evil")
    store.close()

    assert not marker.exists()


def test_a_pickled_meta_record_gets_the_map_quarantined_on_open(tmp_path, cache_dir, warnings):
    marker = tmp_path / "pwned"
    new_map(cache_dir)
    put_row(cache_dir, "meta", value=evil_pickle(marker), mode=MODE_PICKLE)

    store = Store(cache_dir, warnings).open()

    assert not marker.exists()
    [aside] = quarantined(cache_dir)
    assert (aside / "cache.db").exists()
    assert len(warnings) == 1
    assert "not compressed JSON" in warnings[0]
    assert store.meta() is None
    assert store.tests() == {}
    store.close()
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["index", "snap", "facts", "stat"])
def test_a_pickled_index_snapshot_facts_or_stat_value_is_refused(tmp_path, cache_dir, kind):
    marker = tmp_path / "pwned"
    new_map(cache_dir)
    key = {"index": "index:" + "b" * 40, "snap": "snap:snap1", "facts": "facts", "stat": "stat"}[kind]
    put_row(cache_dir, key, value=evil_pickle(marker), mode=MODE_PICKLE)

    store = Store(cache_dir, Warnings()).open()
    read = {
        "index": lambda: store.index("b" * 40),
        "snap": lambda: store.snapshot("snap1"),
        "facts": store.facts,
        "stat": store.stat_cache,
    }[kind]
    with pytest.raises(CorruptStoreError):
        read()
    store.close()

    assert not marker.exists()


def test_a_pickled_key_beside_tias_entries_is_refused_on_open_and_never_unpickled(tmp_path, cache_dir):
    marker = tmp_path / "pwned"
    new_map(cache_dir)
    put_row(cache_dir, evil_pickle(marker), raw=0, value=b"x")

    told = Warnings()
    store = Store(cache_dir, told).open()
    assert len(quarantined(cache_dir)) == 1
    assert any("not a string" in message for message in told)
    assert store.tests() == {}
    assert store.counts() == {}
    store.close()

    assert not marker.exists()


def test_a_key_diskcache_would_unpickle_is_refused_by_every_read_that_meets_it(tmp_path, cache_dir):
    # Written after the map was opened (and checked): reads refuse it on their own.
    marker = tmp_path / "pwned"
    new_map(cache_dir)
    store = Store(cache_dir, Warnings()).open()
    put_row(cache_dir, evil_pickle(marker), raw=0, value=b"x")
    put_row(cache_dir, "test:t::a", raw=0, value=b"x")

    with pytest.raises(CorruptStoreError, match="not a string"):
        store.tests()
    with pytest.raises(CorruptStoreError):
        store.counts()
    store.close()

    assert not marker.exists()


def test_a_map_holding_only_a_pickled_key_is_quarantined_on_open(tmp_path, cache_dir, warnings):
    marker = tmp_path / "pwned"
    Store(cache_dir, Warnings()).open().close()
    put_row(cache_dir, evil_pickle(marker), raw=0, value=b"x")

    store = Store(cache_dir, warnings).open()

    assert len(quarantined(cache_dir)) == 1
    assert len(warnings) == 1
    assert store.tests() == {}
    store.close()
    assert not marker.exists()


def test_a_pickled_value_kept_in_a_side_file_is_refused_and_never_unpickled(tmp_path, cache_dir):
    marker = tmp_path / "pwned"
    new_map(cache_dir)
    (cache_dir / "ab").mkdir()
    (cache_dir / "ab" / "cd.val").write_bytes(evil_pickle(marker))
    put_row(cache_dir, "test:t::evil", mode=MODE_PICKLE, filename="ab/cd.val")

    told = Warnings()
    store = Store(cache_dir, told).open()
    # A row that names a side file was not written by tia: the whole map is moved aside on open.
    assert store.tests() == {}
    store.close()

    assert any("stored outside the database" in message for message in told)
    assert not marker.exists()


def test_a_map_keeps_an_index_of_the_rows_tia_never_writes(cache_dir):
    new_map(cache_dir)
    con = sqlite3.connect(cache_dir / "cache.db")
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'Cache_tia_foreign'").fetchone()
    plan = con.execute(
        "EXPLAIN QUERY PLAN SELECT count(filename), total(raw = 0) FROM Cache INDEXED BY Cache_tia_foreign"
        " WHERE filename IS NOT NULL OR raw = 0"
    ).fetchall()
    con.close()
    assert sql == ("CREATE INDEX Cache_tia_foreign ON Cache(raw) WHERE filename IS NOT NULL OR raw = 0",)
    assert "USING INDEX Cache_tia_foreign" in str(plan)


@pytest.mark.parametrize(
    "index",
    [None, "CREATE INDEX Cache_tia_foreign ON Cache(raw) WHERE 0"],
    ids=["without-the-index", "an-index-of-that-name-that-holds-nothing"],
)
@pytest.mark.parametrize("row", ["side-file", "pickled-key"])
def test_a_foreign_row_is_found_on_open_whatever_index_the_map_has(tmp_path, cache_dir, index, row):
    # A map tia did not write may lack tia's index of such rows, or define one of that name
    # that hides them: the check on open then reads every row.
    marker = tmp_path / "pwned"
    new_map(cache_dir)
    con = sqlite3.connect(cache_dir / "cache.db")
    con.execute("DROP INDEX Cache_tia_foreign")
    if index:
        con.execute(index)
    con.commit()
    con.close()
    if row == "side-file":
        put_row(cache_dir, "meta", mode=MODE_PICKLE, filename="ab/cd.val")
    else:
        put_row(cache_dir, evil_pickle(marker), raw=0, value=b"x")

    warnings = Warnings()
    store = Store(cache_dir, warnings).open()
    assert len(quarantined(cache_dir)) == 1
    # Found by reading the rows themselves, not by a query the odd index made fail.
    reason = "stored outside the database" if row == "side-file" else "not a string"
    assert len(warnings) == 1 and reason in warnings[0], warnings
    assert store.meta() is None
    store.close()
    assert not marker.exists()


def test_a_value_pointing_at_a_file_outside_the_map_is_refused_not_read(tmp_path, cache_dir):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"password")
    new_map(cache_dir)
    put_row(cache_dir, "meta", mode=MODE_BINARY, filename=str(secret))

    warnings = Warnings()
    store = Store(cache_dir, warnings).open()
    assert store.meta() is None
    assert len(quarantined(cache_dir)) == 1
    assert all("password" not in w for w in warnings)
    store.close()
    assert secret.read_bytes() == b"password"


@pytest.mark.parametrize(
    "value",
    [b"not zlib at all", b"x\x9c\x03\x00\x00\x00\x00\x01", __import__("zlib").compress(b"{not json")],
    ids=["not-zlib", "empty-zlib", "bad-json"],
)
def test_a_raw_value_that_is_not_compressed_json_is_refused(cache_dir, value):
    new_map(cache_dir)
    put_row(cache_dir, "test:t::bad", value=value, mode=MODE_RAW)
    store = Store(cache_dir, Warnings()).open()
    with pytest.raises(CorruptStoreError):
        store.tests()
    store.close()


# -- invalid records -------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"outcome": 3},
        {"outcome": "exploded", "duration": 1, "when": 1, "epoch": "e", "env": "v"},
        {"outcome": "passed", "duration": "1", "when": 1, "epoch": "e", "env": "v"},
        {
            "outcome": "passed",
            "duration": 1,
            "when": 1,
            "epoch": "e",
            "env": "v",
            "deps": {"/etc/passwd": ["s", []]},
        },
        {
            "outcome": "passed",
            "duration": 1,
            "when": 1,
            "epoch": "e",
            "env": "v",
            "deps": {"pkg/../../outside.py": ["s", []]},
        },
        ["passed"],
    ],
    ids=["outcome-int", "outcome-unknown", "duration-text", "dep-absolute", "dep-dotdot", "list"],
)
def test_a_test_record_of_the_wrong_shape_raises_corrupt_store_error(cache_dir, value):
    new_map(cache_dir)
    store = Store(cache_dir, Warnings()).open()
    store.cache.set("test:x", value)
    with pytest.raises(CorruptStoreError, match="invalid test record"):
        store.tests()
    store.close()


@pytest.mark.parametrize(
    "value",
    [{"module": 1}, {"module": "m", "spans": [["f", "1", 2]]}, {"module": "m", "bound": "LIMIT"}, "index"],
    ids=["module-int", "span-line-text", "bound-string", "string"],
)
def test_a_file_index_of_the_wrong_shape_raises_corrupt_store_error(cache_dir, value):
    store = Store(cache_dir, Warnings()).open()
    store.cache.set("index:" + "f" * 40, value)
    with pytest.raises(CorruptStoreError, match="invalid file index"):
        store.index("f" * 40)
    store.close()


@pytest.mark.parametrize(
    "value",
    [{"/etc/passwd": "s"}, {"../x.py": "s"}, {"a.py": 1}, ["a.py"]],
    ids=["absolute", "dotdot", "sha-int", "list"],
)
def test_a_snapshot_of_the_wrong_shape_raises_corrupt_store_error(cache_dir, value):
    store = Store(cache_dir, Warnings()).open()
    store.cache.set("snap:s", value)
    with pytest.raises(CorruptStoreError, match="invalid snapshot"):
        store.snapshot("s")
    store.close()


@pytest.mark.parametrize(
    "value",
    [[], {"import_time": {"/abs.py": ["f"]}}, {"reads": {"a.py": "data.txt"}}, {"session": []}],
    ids=["list", "absolute", "reads-string", "session-list"],
)
def test_run_facts_of_the_wrong_shape_raise_corrupt_store_error(cache_dir, value):
    store = Store(cache_dir, Warnings()).open()
    store.cache.set("facts", value)
    with pytest.raises(CorruptStoreError, match="invalid run facts"):
        store.facts()
    store.close()


def test_a_dependency_path_with_a_nul_byte_is_refused_as_corrupt(cache_dir):
    new_map(cache_dir)
    store = Store(cache_dir, Warnings()).open()
    store.cache.set(
        "test:x",
        {
            "outcome": "passed",
            "duration": 1,
            "when": 1,
            "epoch": "e",
            "env": "v",
            "deps": {"pkg/a\x00b.py": ["s", []]},
        },
    )
    with pytest.raises(CorruptStoreError):
        store.tests()
    store.close()


# -- schema versions ---------------------------------------------------------------


def test_a_map_from_a_newer_tia_is_refused_and_left_untouched(cache_dir, warnings):
    new_map(cache_dir)
    store = Store(cache_dir, Warnings()).open()
    store.cache.set("meta", {"schema": 999, "commit": "future"})
    store.close()
    before = sorted(p.name for p in cache_dir.iterdir())

    store = Store(cache_dir, warnings)
    with pytest.raises(StoreError) as info:
        store.open()
    store.close()

    assert type(info.value) is StoreError
    message = str(info.value)
    assert "schema 999" in message
    assert f"schema {SCHEMA}" in message
    assert warnings == []
    assert quarantined(cache_dir) == []
    assert sorted(p.name for p in cache_dir.iterdir()) == before
    con = sqlite3.connect(f"file:{cache_dir / 'cache.db'}?mode=ro", uri=True)
    keys = {row[0] for row in con.execute("SELECT key FROM Cache")}
    con.close()
    assert {"meta", "test:tests/test_a.py::test_one", "index:" + "b" * 40, "snap:snap1"} <= keys


def test_a_map_from_an_older_tia_is_cleared_with_a_one_line_warning(cache_dir, warnings):
    store = Store(cache_dir, Warnings()).open()
    store.cache.set("meta", {"schema": 0})
    store.cache.set("test:t::a", {"whatever": "old format"})
    store.cache.set("index:" + "1" * 40, {"old": True})
    store.close()

    store = Store(cache_dir, warnings).open()

    assert len(warnings) == 1
    assert "\n" not in warnings[0]
    assert "schema 0" in warnings[0]
    assert store.rebuilt_reason == f"schema 0 -> {SCHEMA}"
    assert store.tests() == {}
    assert store.counts() == {}
    assert quarantined(cache_dir) == []
    write_sample(store)
    store.close()

    again = Warnings()
    reopened = Store(cache_dir, again).open()
    assert again == []
    assert reopened.meta()["schema"] == SCHEMA
    reopened.close()


# -- unwritable directories ----------------------------------------------------------


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores directory permissions"
)
def test_a_read_only_map_directory_raises_a_clear_store_error(cache_dir):
    cache_dir.mkdir()
    cache_dir.chmod(0o500)
    try:
        with pytest.raises(StoreError, match="map directory") as info:
            Store(cache_dir, Warnings()).open()
    finally:
        cache_dir.chmod(0o700)
    assert str(cache_dir) in str(info.value)
    assert "--cache-dir" in str(info.value)


def test_a_map_directory_under_a_regular_file_raises_a_clear_store_error(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("I am a file")
    cache_dir = blocker / ".tia"

    with pytest.raises(StoreError, match="cannot write the map directory") as info:
        Store(cache_dir, Warnings()).open()

    assert type(info.value) is StoreError
    assert str(cache_dir) in str(info.value)
    assert "--cache-dir" in str(info.value)
    assert blocker.read_text() == "I am a file"


def test_a_map_directory_that_is_a_regular_file_raises_a_clear_store_error(tmp_path):
    cache_dir = tmp_path / ".tia"
    cache_dir.write_text("I am a file")
    with pytest.raises(StoreError, match="cannot write the map directory"):
        Store(cache_dir, Warnings()).open()
    assert cache_dir.read_text() == "I am a file"


# -- the lock ----------------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import pathlib, sys, time
    from tia.store import Lock

    lock_path, log_path, go_path = map(pathlib.Path, sys.argv[1:4])
    def log(line):
        with log_path.open("a") as f:
            f.write(line + "\\n")
    lock = Lock(lock_path, log)
    lock.acquire()
    log("child acquired")
    deadline = time.monotonic() + 30
    while not go_path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    log("child releasing")
    lock.release()
    """
)


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_locked_waits_for_another_process_and_says_so(tmp_path, cache_dir):
    store = Store(cache_dir, Warnings())
    store.open()
    log = tmp_path / "log"
    go = tmp_path / "go"
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(cache_dir / "lock"), str(log), str(go)])
    try:
        _wait_for(lambda: log.exists() and "child acquired" in log.read_text())
        messages: list[str] = []

        def notify(message: str) -> None:
            messages.append(message)
            with log.open("a") as f:
                f.write("parent waiting\n")
            go.touch()  # only now may the child let go

        with store.locked(notify), log.open("a") as f:
            f.write("parent entered\n")
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        store.close()

    assert log.read_text().splitlines() == [
        "child acquired",
        "parent waiting",
        "child releasing",
        "parent entered",
    ]
    assert len(messages) == 1
    assert "waiting" in messages[0]
    assert str(cache_dir) in messages[0]


def test_an_uncontended_lock_is_taken_silently_and_released_afterwards(cache_dir):
    store = Store(cache_dir, Warnings())
    messages: list[str] = []
    with store.locked(messages.append):
        # flock locks belong to open file descriptions: a second one conflicts even in-process.
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR)\n"
                "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(7)",
                str(cache_dir / "lock"),
            ],
            check=False,
        )
        assert probe.returncode == 7
    assert messages == []
    second: list[str] = []
    lock = Lock(cache_dir / "lock", second.append)
    lock.acquire()
    lock.release()
    assert second == []


def test_the_lock_is_released_when_the_locked_block_raises(cache_dir):
    store = Store(cache_dir, Warnings())
    with pytest.raises(RuntimeError), store.locked(lambda m: None):
        raise RuntimeError("boom")
    messages: list[str] = []
    lock = Lock(cache_dir / "lock", messages.append)
    lock.acquire()
    lock.release()
    assert messages == []


def test_a_lock_file_that_cannot_be_created_raises_a_store_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot create the lock file"):
        Lock(blocker / "lock", lambda m: None).acquire()


# -- bugs found ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["build#1", "what?", "100%25"])
def test_a_map_under_a_path_with_uri_special_characters_reopens_intact(tmp_path, name):
    cache_dir = tmp_path / name / ".tia"
    new_map(cache_dir)
    warnings = Warnings()
    store = Store(cache_dir, warnings).open()
    try:
        assert warnings == []
        assert set(store.tests()) == {"tests/test_a.py::test_one"}
    finally:
        store.close()


def test_two_corrupt_maps_in_the_same_second_are_both_moved_aside(cache_dir):
    now = datetime.datetime.now()
    earlier = {}
    for offset in range(-1, 6):  # occupy every stamp the next open could pick
        stamp = (now + datetime.timedelta(seconds=offset)).strftime("%Y%m%d-%H%M%S")
        aside = cache_dir.with_name(f"{cache_dir.name}.corrupt-{stamp}")
        aside.mkdir(parents=True)
        (aside / "cache.db").write_bytes(b"earlier corrupt map " + stamp.encode())
        earlier[aside] = (aside / "cache.db").read_bytes()
    cache_dir.mkdir()
    (cache_dir / "cache.db").write_bytes(b"garbage" * 100)

    warnings = Warnings()
    store = Store(cache_dir, warnings).open()
    store.close()

    assert len(warnings) == 1
    for aside, content in earlier.items():
        assert (aside / "cache.db").read_bytes() == content
    assert any((p / "cache.db").read_bytes() == b"garbage" * 100 for p in quarantined(cache_dir))


@pytest.mark.parametrize("operation", ["open-old-schema", "clear", "replace-all", "overwrite", "evict"])
def test_a_tampered_row_never_makes_tia_delete_a_file_outside_the_map(tmp_path, cache_dir, operation):
    victim_dir = tmp_path / "home"
    victim_dir.mkdir()
    victim = victim_dir / "precious.txt"
    victim.write_text("precious")
    new_map(cache_dir)
    if operation == "open-old-schema":
        store = Store(cache_dir, Warnings()).open()
        store.cache.set("meta", {"schema": 0})
        store.close()
    key = "index:" + "0" * 40 if operation == "evict" else "test:tests/test_a.py::test_one"
    put_row(cache_dir, key, mode=MODE_RAW, filename=str(victim))

    with contextlib.suppress(StoreError):  # refusing is fine; deleting the victim is not
        store = Store(cache_dir, Warnings()).open()
        if operation == "clear":
            store.destroy()
        elif operation == "replace-all":
            write_sample(store, tests={}, replace_all=True)
        elif operation == "overwrite":
            write_sample(store, replace_all=False)
        elif operation == "evict":
            store.evict(set(), set())
        store.close()

    assert victim.read_text() == "precious"


def test_a_stat_cache_saved_before_the_first_run_does_not_look_corrupt_on_the_next_open(cache_dir):
    store = Store(cache_dir, Warnings()).open()
    store.put_stat_cache({"a.py": [1, 2, "s" * 40]})
    store.close()

    warnings = Warnings()
    reopened = Store(cache_dir, warnings).open()
    try:
        assert warnings == []
        assert quarantined(cache_dir) == []
        assert reopened.stat_cache() == {"a.py": [1, 2, "s" * 40]}
    finally:
        reopened.close()
