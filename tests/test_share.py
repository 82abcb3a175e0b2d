"""`tia cache export` / `tia cache import`: one portable map file, read back as untrusted input.

The end-to-end tests map a real repository, export it, clone the repository to
another directory and import there; the refusal tests hand `tia cache import`
files broken in one way each and check that the map it would replace is intact.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SAMPLE, GitProject, Result
from tia.errors import StoreError
from tia.records import RunFacts, TestRecord
from tia.scopes import FileIndex
from tia.share import FORMAT, META_FIELDS, VERSION, export_map, import_map, read_map_file
from tia.store import SCHEMA, Store

FAILING = "tests/test_fail.py::test_fails"
MUL = "tests/test_core.py::test_mul"
LOAD = "tests/test_reader.py::test_load"


class Source:
    """A mapped repository (one of its tests fails) and the map file exported from it."""

    def __init__(self, project: GitProject, export: Path) -> None:
        self.project = project
        self.export = export

    @property
    def doc(self) -> dict[str, Any]:
        """A fresh copy of the exported document, to break in one place."""
        return json.loads(gzip.decompress(self.export.read_bytes()))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    root = tmp_path_factory.mktemp("share")
    project = GitProject(root / "a")
    project.write_all(SAMPLE)
    project.write("tests/test_fail.py", "def test_fails():\n    assert False\n")
    project.commit("initial")
    # Files older than the racy window go into the stat cache, which must not be exported.
    old = time.time() - 3600
    for path in project.path.rglob("*"):
        if ".git" not in path.parts:
            os.utime(path, (old, old))
    mapped = project.tia("map")
    assert mapped.rc == 1, mapped  # test_fails fails: the map records it
    export = root / "map.json.gz"
    result = project.tia("cache", "export", str(export))
    assert result.rc == 0, result
    return Source(project, export)


def clone(source: Source, name: str) -> GitProject:
    target = source.project.path.parent / name
    subprocess.run(["git", "clone", "-q", str(source.project.path), str(target)], check=True)
    return GitProject(target)


def refused(result: Result, rc: int = 3) -> str:
    """The single line a refused command printed."""
    assert result.rc == rc, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result
    assert lines[0].startswith("tia: error: "), result
    return lines[0]


# -- across clones ---------------------------------------------------------------


@pytest.mark.slow
def test_a_map_imported_into_another_clone_selects_exactly_what_it_would_have_selected(source):
    other = clone(source, "b")
    assert not (other.path / ".tia").exists()

    result = other.tia("cache", "import", str(source.export))
    assert result.rc == 0, result
    assert "imported 7 tests" in result.stderr
    assert "test entries: 7" in other.tia("cache", "info").stdout

    # Nothing changed: only the test that failed in the first clone is selected.
    selected = other.select()
    assert set(selected) == {FAILING}
    assert [r["rule"] for r in selected[FAILING]] == ["failed"]

    other.replace("pkg/core.py", "return a * b", "return b * a")
    other.write("pkg/data.json", '{"value": 5, "unused": 1}\n')
    selected = other.select()
    assert set(selected) == {FAILING, MUL, LOAD}
    assert {"rule": "changed", "file": "pkg/core.py", "scope": "mul"}.items() <= selected[MUL][0].items()
    assert selected[LOAD][0]["file"] == "pkg/data.json"

    run = other.run()
    assert run.rc == 1, run
    assert run.ran() == {FAILING, MUL, LOAD}
    assert set(other.select()) == {FAILING}
    assert "test entries: 7" in other.tia("cache", "info").stdout


@pytest.mark.slow
def test_the_export_holds_no_absolute_path_and_no_stat_cache(source):
    store = Store(source.project.path / ".tia", print).open()
    stat = store.stat_cache()
    store.close()
    assert stat, "the source map should have a stat cache for this test to mean something"

    raw = source.export.read_bytes()
    text = gzip.decompress(raw).decode("utf-8")
    for directory in {str(source.project.path), os.path.realpath(source.project.path)}:
        assert directory.encode() not in raw
        assert directory not in text
    assert not any(str(mtime) in text for mtime, _, _ in stat.values())

    doc = json.loads(text)
    assert set(doc) == {
        "format",
        "version",
        "schema",
        "tia",
        "meta",
        "facts",
        "tests",
        "indexes",
        "snapshots",
    }
    assert (doc["format"], doc["version"], doc["schema"]) == (FORMAT, VERSION, SCHEMA)
    assert set(doc["meta"]) <= META_FIELDS
    assert doc["meta"]["rootdir"] == ""
    assert len(doc["tests"]) == 7
    deps = {path for record in doc["tests"].values() for path in record["deps"]}
    assert "pkg/core.py" in deps
    assert all(not p.startswith("/") for p in deps)


# -- refusals --------------------------------------------------------------------


def _gzip_json(doc: Any) -> bytes:
    return gzip.compress(json.dumps(doc).encode("utf-8"))


def _edited(edit: Callable[[dict[str, Any]], None]) -> Callable[[Source], bytes]:
    def build(source: Source) -> bytes:
        doc = source.doc
        edit(doc)
        return _gzip_json(doc)

    return build


def _first(section: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda doc: doc[section][min(doc[section])]


def _corrupted(source: Source) -> bytes:
    data = bytearray(source.export.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    return bytes(data)


def _renamed_test(name: str) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["tests"][name] = doc["tests"].pop(MUL)

    return edit


BROKEN: dict[str, tuple[Callable[[Source], bytes], str]] = {
    "truncated": (lambda s: s.export.read_bytes()[: s.export.stat().st_size // 2], "truncated"),
    "corrupted": (_corrupted, "cannot import"),
    "not gzip": (lambda s: json.dumps(s.doc).encode("utf-8"), "not a gzip file"),
    "not json": (lambda s: gzip.compress(b'{"format": "tia-map", '), "not JSON"),
    "NaN": (_edited(lambda d: _first("tests")(d).update(duration=float("nan"))), "NaN is not a JSON number"),
    "not an object": (lambda s: _gzip_json([1, 2]), "not a tia map file"),
    "wrong format marker": (_edited(lambda d: d.update(format="other-map")), "not a tia map file"),
    "newer version": (
        _edited(lambda d: d.update(version=VERSION + 1)),
        f"file format version {VERSION + 1}; this tia reads version {VERSION}",
    ),
    "newer schema": (
        _edited(lambda d: d.update(schema=SCHEMA + 1)),
        f"map schema {SCHEMA + 1}; this tia reads schema {SCHEMA}",
    ),
    "version as a string": (_edited(lambda d: d.update(version="1")), "invalid file format version"),
    "tests as a list": (_edited(lambda d: d.update(tests=[])), "tests must be an object"),
    "duration as a string": (
        _edited(lambda d: _first("tests")(d).update(duration="fast")),
        "duration must be a number",
    ),
    "index module as a number": (
        _edited(lambda d: _first("indexes")(d).update(module=5)),
        "malformed file index",
    ),
    "facts as a string": (_edited(lambda d: d.update(facts="x")), "run facts must be an object"),
    "meta env as a list": (_edited(lambda d: d["meta"].update(env=[])), "meta env must be an object"),
    "unexpected field": (_edited(lambda d: d.update(stat={})), "unexpected field 'stat'"),
    "../ dependency": (
        _edited(lambda d: _first("tests")(d)["deps"].update({"../outside.py": ["a" * 40, []]})),
        "unsafe path '../outside.py'",
    ),
    "absolute snapshot path": (
        _edited(lambda d: _first("snapshots")(d).update({"/etc/passwd": "a" * 40})),
        "unsafe path '/etc/passwd'",
    ),
    "../ ignored source": (
        _edited(lambda d: d["meta"].update(ignored_sources=["../outside.py"])),
        "unsafe path '../outside.py'",
    ),
    "ignored sources as a string": (
        _edited(lambda d: d["meta"].update(ignored_sources="pkg/_version.py")),
        "meta ignored_sources must be a list of paths",
    ),
    "absolute rootdir": (_edited(lambda d: d["meta"].update(rootdir="/srv/app")), "unsafe path '/srv/app'"),
    "../ data file read": (
        _edited(lambda d: d["facts"]["reads"].update({"pkg/reader.py": ["../secret.json"]})),
        "unsafe path '../secret.json'",
    ),
    "../ node id": (_edited(_renamed_test("../evil.py::test_mul")), "invalid node id '../evil.py::test_mul'"),
    "node id with a newline": (_edited(_renamed_test("tests/a.py::t\nx")), "invalid node id"),
    "blob id as a path": (
        _edited(lambda d: d["indexes"].update({"../x": _first("indexes")(d)})),
        "invalid blob id '../x'",
    ),
    "malformed import record": (
        _edited(lambda d: _first("indexes")(d).update(imports=[["from"]])),
        "malformed import record",
    ),
    "huge line number": (
        _edited(lambda d: _first("indexes")(d).update(spans=[["f", 1, 10**12]])),
        "line number out of range",
    ),
}


# What the command line is tested with, end to end; every case is also read in process below.
CLI_CASES = (
    "truncated",
    "corrupted",
    "not gzip",
    "newer version",
    "newer schema",
    "tests as a list",
    "duration as a string",
    "../ dependency",
    "../ node id",
)


@pytest.mark.slow
@pytest.mark.parametrize("case", CLI_CASES)
def test_a_broken_map_file_is_refused_in_one_line_and_the_map_stays_intact(source, tmp_path, case):
    build, needle = BROKEN[case]
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(build(source))

    line = refused(source.project.tia("cache", "import", str(bad)))
    assert line.startswith(f"tia: error: cannot import {bad}: "), line
    assert needle in line

    # The map is exactly as it was: it exports to the same bytes, and still selects.
    again = tmp_path / "again.json.gz"
    assert source.project.tia("cache", "export", str(again)).rc == 0
    assert again.read_bytes() == source.export.read_bytes()
    assert set(source.project.select()) == {FAILING}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_broken_map_file_is_refused_with_a_one_line_reason_before_any_map_is_touched(
    source, tmp_path, case
):
    build, needle = BROKEN[case]
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(build(source))
    store = Store(tmp_path / ".tia", print).open()
    _write(store, "t::local", "b" * 40, "snapb")
    before = store.tests()

    with pytest.raises(StoreError) as refusal:
        import_map(store, bad, print)
    assert needle in str(refusal.value)
    assert "\n" not in str(refusal.value)
    assert store.tests() == before
    assert store.snapshot("snapb") is not None


@pytest.mark.slow
def test_a_map_file_of_schema_1_imports_with_its_index(source, tmp_path):
    old = tmp_path / "schema1.json.gz"
    old.write_bytes(_edited(lambda d: d.update(schema=1))(source))
    store = Store(tmp_path / ".tia", print).open()
    import_map(store, old, print)
    exported = Store(source.project.path / ".tia", print).open()
    assert store.tests() == exported.tests()
    assert store.summaries() == exported.summaries()
    assert store.versions() == exported.versions()
    assert store.meta()["schema"] == SCHEMA
    exported.close()
    store.close()


@pytest.mark.slow
def test_importing_a_missing_file_is_refused_in_one_line(source, tmp_path):
    line = refused(source.project.tia("cache", "import", str(tmp_path / "nosuch.json.gz")))
    assert "No such file or directory" in line


@pytest.mark.slow
def test_exporting_without_a_map_is_a_clear_error_and_creates_nothing(project, tmp_path):
    target = tmp_path / "map.json.gz"
    line = refused(project.tia("cache", "export", str(target)))
    assert "there is no map to export" in line
    assert not target.exists()
    assert not (project.path / ".tia").exists()


@pytest.mark.slow
def test_export_and_import_need_a_file_and_info_and_clear_take_none(project):
    for args, needle in [
        (("export",), "`tia cache export` needs a FILE"),
        (("import",), "`tia cache import` needs a FILE"),
        (("info", "map.json.gz"), "`tia cache info` takes no FILE"),
    ]:
        assert refused(project.tia("cache", *args), rc=2).startswith(f"tia: error: {needle}")


# -- in process: the store side ----------------------------------------------------


def _record(nodeid: str, sha: str, epoch: str = "snap1") -> TestRecord:
    return TestRecord(
        nodeid=nodeid,
        outcome="passed",
        duration=0.5,
        when=1_700_000_000.0,
        epoch=epoch,
        env="env1",
        deps={"pkg/core.py": (sha, frozenset({"add"}))},
    )


def _write(store: Store, nodeid: str, sha: str, snap: str, meta: dict[str, Any] | None = None) -> None:
    store.write_run(
        tests={nodeid: _record(nodeid, sha, snap)},
        indexes={sha: FileIndex(module="m-" + sha[:4], scopes={"add": "f"}, spans=[("add", 2, 3)])},
        snapshot=(snap, {"pkg/core.py": sha}),
        facts=RunFacts(reads={"pkg/core.py": frozenset({"pkg/data.json"})}),
        meta=meta or {"rootdir": "", "commit": "c" * 40, "env": {"python": "CPython 3.11.7"}},
        replace_all=True,
    )


def test_import_replaces_the_whole_map_but_keeps_this_work_trees_stat_cache(tmp_path):
    source = Store(tmp_path / "a", print).open()
    _write(source, "t::exported", "a" * 40, "snapa")
    path = tmp_path / "map.json.gz"
    exported = export_map(source, path, print)
    assert exported.summary() == "1 test, 1 file index and 1 snapshot"

    target = Store(tmp_path / "b", print).open()
    _write(target, "t::local", "b" * 40, "snapb")
    target.put_stat_cache({"pkg/core.py": [1, 2, "b" * 40]})
    import_map(target, path, print)

    assert target.tests() == source.tests()
    assert target.index("a" * 40) == source.index("a" * 40)
    assert target.index("b" * 40) is None
    assert target.snapshot("snapa") == {"pkg/core.py": "a" * 40}
    assert target.snapshot("snapb") is None
    assert target.facts() == source.facts()
    meta, source_meta = target.meta(), source.meta()
    assert meta is not None and source_meta is not None
    assert meta == {k: v for k, v in source_meta.items() if k in META_FIELDS} | {"schema": SCHEMA}
    assert target.stat_cache() == {"pkg/core.py": [1, 2, "b" * 40]}


def test_exporting_the_same_map_twice_gives_the_same_bytes(tmp_path):
    store = Store(tmp_path / "a", print).open()
    _write(store, "t::one", "a" * 40, "snapa")
    export_map(store, tmp_path / "one.json.gz", print)
    export_map(store, tmp_path / "two.json.gz", print)
    assert (tmp_path / "one.json.gz").read_bytes() == (tmp_path / "two.json.gz").read_bytes()


def test_a_map_holding_an_absolute_path_is_not_exported(tmp_path):
    store = Store(tmp_path / "a", print).open()
    _write(store, "t::one", "a" * 40, "snapa", meta={"rootdir": str(tmp_path)})
    with pytest.raises(StoreError, match="cannot be exported: unsafe path"):
        export_map(store, tmp_path / "map.json.gz", print)
    assert list(tmp_path.glob("*map.json.gz*")) == []


def test_an_export_that_cannot_be_written_is_a_store_error_and_leaves_no_temporary_file(tmp_path):
    store = Store(tmp_path / "a", print).open()
    _write(store, "t::one", "a" * 40, "snapa")
    (tmp_path / "out").mkdir()
    with pytest.raises(StoreError, match="cannot write"):
        export_map(store, tmp_path / "out", print)  # a directory: the final rename fails
    assert list((tmp_path).glob(".out.tmp-*")) == []


def test_a_map_file_that_inflates_beyond_the_limit_is_refused_after_reading_only_the_limit(tmp_path):
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(b" " * (64 << 20)))  # 64 MiB of JSON whitespace, 64 KiB on disk
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(StoreError, match=f"more than {1 << 20} bytes of JSON"):
        read_map_file(bomb, limit=1 << 20)


def test_a_valid_map_file_reads_back_as_the_records_it_was_written_from(tmp_path):
    store = Store(tmp_path / "a", print).open()
    _write(store, "t::one", "a" * 40, "snapa")
    path = tmp_path / "map.json.gz"
    export_map(store, path, print)
    shared = read_map_file(path)
    assert shared.tests == store.tests()
    assert shared.indexes == {"a" * 40: store.index("a" * 40)}
    assert shared.facts == store.facts()
    doc = json.loads(gzip.decompress(path.read_bytes()))
    assert doc["tests"]["t::one"]["deps"] == {"pkg/core.py": ["a" * 40, ["add"]]}
