"""The portable map file behind `tia cache export` and `tia cache import`.

This module owns that file's format, as `tia.store` owns `.tia/`: the store is
one machine's diskcache, this is a single file that CI writes and a developer
reads, so it is read as untrusted input.

Format (version 1): gzip-compressed UTF-8 JSON holding one object::

    {"format": "tia-map", "version": 1, "schema": 1, "tia": "0.1.0",
     "meta": {"rootdir": "", "commit": ..., "env": ..., "env_id": ..., ...},
     "facts": RunFacts, "tests": {nodeid: TestRecord},
     "indexes": {blob id: FileIndex}, "snapshots": {id: {path: blob id}}}

An export holds every test record, the snapshots and file indexes those records
reach, the run facts and the portable meta fields (`META_FIELDS`).  The stat
cache is left out: its mtimes and sizes describe one machine's files.  Every
path is repository-relative POSIX, and export checks its own document with the
checks import applies, so it never writes a file import would refuse.

Import checks the whole file before it touches the map, reading at most
`MAX_BYTES` of JSON, then replaces the map in one transaction under the lock.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tia import __version__
from tia.environment import read_environments
from tia.errors import StoreError
from tia.records import IGNORED_SOURCES, RecordError, RunFacts, TestRecord, ignored_sources, safe_path
from tia.scopes import FileIndex
from tia.store import SCHEMA, Store
from tia.values import Value

FORMAT = "tia-map"
VERSION = 1

# Decompressed JSON read at most: far more than a large suite's map, and a bound on
# what a gzip bomb (a small file that inflates without end) can make tia allocate.
MAX_BYTES = 1 << 30

# The meta fields that describe the map rather than the machine that wrote it.
META_FIELDS = frozenset(
    {
        "rootdir",
        "commit",
        "env",
        "env_id",
        "environments",
        "mapped",
        "updated",
        "collect_seconds",
        IGNORED_SOURCES,
    }
)

_FIELDS = frozenset({"format", "version", "schema", "tia", "meta", "facts", "tests", "indexes", "snapshots"})
_GZIP_MAGIC = b"\x1f\x8b"
# Blob ids, snapshot ids and commits are hex digests; they become store keys.
_ID = re.compile(r"[0-9A-Za-z]{1,128}")
# Later steps allocate a table as long as a file's last span and walk a relative
# import's level up the tree: bounds keep a forged index from stalling them.
_MAX_LINE = 10_000_000
_MAX_LEVEL = 1000
_MAX_MESSAGE = 300


class SharedMap(Value):
    """A validated map, as read from or written to a map file."""

    __slots__ = ("facts", "indexes", "meta", "snapshots", "tests")

    def __init__(
        self,
        tests: dict[str, TestRecord],
        indexes: dict[str, FileIndex],
        snapshots: dict[str, dict[str, str]],
        facts: RunFacts,
        meta: dict[str, Any],
    ) -> None:
        self.tests = tests
        self.indexes = indexes
        self.snapshots = snapshots
        self.facts = facts
        self.meta = meta

    def summary(self) -> str:
        return (
            f"{_count(self.tests, 'test', 'tests')}, {_count(self.indexes, 'file index', 'file indexes')} "
            f"and {_count(self.snapshots, 'snapshot', 'snapshots')}"
        )


def _count(items: dict[str, Any], one: str, many: str) -> str:
    return f"{len(items)} {one if len(items) == 1 else many}"


# -- export ----------------------------------------------------------------------


def export_map(store: Store, path: Path, notify: Callable[[str], None]) -> SharedMap:
    """Write the map in `store` to `path` as a map file; return what it holds."""
    if not store.exists():
        raise StoreError(f"there is no map to export in {store.directory}", hint="run `tia map` first")
    with store.locked(notify):
        if not store.is_open:
            store.open()
        doc = _document(store)
    try:
        shared = _decode(doc)
    except ValueError as exc:
        raise StoreError(f"the map in {store.directory} cannot be exported: {_clip(str(exc))}") from exc
    _write(doc, path)
    return shared


def _document(store: Store) -> dict[str, Any]:
    """The map file's document: every test and what selection needs to judge it."""
    tests = store.tests()
    if not tests:
        raise StoreError(f"the map in {store.directory} holds no tests to export", hint="run `tia map` first")
    facts = store.facts()
    snapshots: dict[str, dict[str, str]] = {}
    for epoch in sorted({r.epoch for r in tests.values()}):
        listing = store.snapshot(epoch)
        if listing is not None:
            snapshots[epoch] = listing
    # The versions tests ran against, and the Python files of the snapshots: the
    # indexes selection diffs against and builds the import graph from.
    wanted = {sha for r in tests.values() for sha, _ in r.deps.values()}
    wanted |= {sha for sha, _ in facts.session.values()}
    wanted |= {sha for listing in snapshots.values() for p, sha in listing.items() if p.endswith(".py")}
    indexes = {}
    for sha in sorted(wanted):
        index = store.index(sha)
        if index is not None:
            indexes[sha] = index.to_json()
    meta = store.meta() or {}
    return {
        "format": FORMAT,
        "version": VERSION,
        "schema": SCHEMA,
        "tia": __version__,
        "meta": {k: v for k, v in meta.items() if k in META_FIELDS},
        "facts": facts.to_json(),
        "tests": {nodeid: r.to_json() for nodeid, r in sorted(tests.items())},
        "indexes": indexes,
        "snapshots": snapshots,
    }


def _write(doc: dict[str, Any], path: Path) -> None:
    """Write `doc` compressed, through a temporary file, so `path` is whole or unchanged."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        # os.open honours the umask, where tempfile would make the file private.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        # No file name and no mtime in the gzip header: the same map gives the same bytes.
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as zipped,
            io.TextIOWrapper(zipped, encoding="utf-8") as text,
        ):
            json.dump(doc, text, sort_keys=True, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from exc


# -- import ----------------------------------------------------------------------


def import_map(store: Store, path: Path, notify: Callable[[str], None]) -> SharedMap:
    """Replace the map in `store` with the map file at `path`; return what it holds."""
    shared = read_map_file(path)  # all of it is checked before the map is touched
    with store.locked(notify):
        if not store.is_open:
            store.open()
        store.replace_map(
            tests=shared.tests,
            indexes=shared.indexes,
            snapshots=shared.snapshots,
            facts=shared.facts,
            meta=shared.meta,
        )
    return shared


def read_map_file(path: Path, limit: int = MAX_BYTES) -> SharedMap:
    """Read and check a map file, refusing it with a one-line `StoreError` if anything is off."""

    def refuse(detail: str) -> StoreError:
        return StoreError(f"cannot import {path}: {_clip(detail)}")

    try:
        with open(path, "rb") as raw:
            if raw.peek(2)[:2] != _GZIP_MAGIC:
                raise refuse("not a gzip file (a tia map file is gzip-compressed JSON)")
            with gzip.GzipFile(fileobj=raw) as unzipped:
                data = unzipped.read(limit + 1)
    except EOFError:
        raise refuse("the file is truncated") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise refuse(f"corrupt gzip data ({exc})") from None
    except OSError as exc:
        raise refuse(exc.strerror or str(exc)) from None
    if len(data) > limit:
        raise refuse(f"it holds more than {limit} bytes of JSON, the most tia reads")
    try:
        doc = json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise refuse(f"not JSON: {exc}") from None
    try:
        return _decode(doc)
    except ValueError as exc:
        raise refuse(str(exc)) from None


def _no_constant(name: str) -> Any:
    raise RecordError(f"{name} is not a JSON number")


def _decode(doc: Any) -> SharedMap:
    """Check a map file's document field by field; raise `ValueError` on anything tia did not write."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RecordError(f'not a tia map file (no "format": "{FORMAT}")')
    version = doc.get("version")
    if type(version) is not int or version < 1:
        raise RecordError(f"invalid file format version {version!r}")
    if version > VERSION:
        raise RecordError(
            f"written by a newer tia (file format version {version}; this tia reads version {VERSION}): "
            "upgrade tia"
        )
    schema = doc.get("schema")
    if type(schema) is not int:
        raise RecordError(f"invalid map schema {schema!r}")
    # Schema 2 added an index inside the store; the records a file holds kept their shape.
    if not 1 <= schema <= SCHEMA:
        newer = "a newer" if schema > SCHEMA else "an older"
        raise RecordError(
            f"written by {newer} tia (map schema {schema}; this tia reads schema {SCHEMA}): "
            + ("upgrade tia" if schema > SCHEMA else "export it again with this tia")
        )
    unknown = doc.keys() - _FIELDS
    if unknown:
        raise RecordError(f"unexpected field {min(unknown)!r}")
    if not isinstance(doc.get("tia"), str):
        raise RecordError('"tia" must be a string')
    tests = {
        _nodeid(nodeid): TestRecord.from_json(nodeid, data)
        for nodeid, data in _object(doc.get("tests"), "tests").items()
    }
    indexes = {
        _ident(sha, "blob id"): _index(sha, data)
        for sha, data in _object(doc.get("indexes"), "indexes").items()
    }
    snapshots = {
        _ident(snap_id, "snapshot id"): _listing(snap_id, listing)
        for snap_id, listing in _object(doc.get("snapshots"), "snapshots").items()
    }
    facts = RunFacts.from_json(doc.get("facts"))
    # RunFacts checks the files that read data, not the data files they read.
    for paths in facts.reads.values():
        for path in paths:
            safe_path(path)
    return SharedMap(tests, indexes, snapshots, facts, _meta(doc.get("meta")))


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordError(f"{what} must be an object")
    return value


def _ident(value: str, what: str) -> str:
    if not _ID.fullmatch(value):
        raise RecordError(f"invalid {what} {value!r}")
    return value


def _nodeid(nodeid: str) -> str:
    """A node id names a file under pytest's rootdir: check that part as a path."""
    if not nodeid or any(ord(c) < 32 for c in nodeid):
        raise RecordError(f"invalid node id {nodeid!r}")
    try:
        safe_path(nodeid.split("::", 1)[0])
    except RecordError as exc:
        raise RecordError(f"invalid node id {nodeid!r}: {exc}") from None
    return nodeid


def _index(sha: str, data: Any) -> FileIndex:
    index = FileIndex.from_json(data)
    if any(start < 0 or end > _MAX_LINE for _, start, end in index.spans):
        raise RecordError(f"file index {sha} has a line number out of range")
    if not all(_is_import_record(r) for r in index.imports):
        raise RecordError(f"file index {sha} has a malformed import record")
    return index


def _is_import_record(record: list[Any]) -> bool:
    """The shapes `tia.imports.extract_imports` writes: ``["import", name]`` or
    ``["from", level, module, names]``."""
    if len(record) == 2 and record[0] == "import":
        return isinstance(record[1], str)
    return (
        len(record) == 4
        and record[0] == "from"
        and type(record[1]) is int
        and 0 <= record[1] <= _MAX_LEVEL
        and isinstance(record[2], str)
        and isinstance(record[3], list)
        and all(isinstance(n, str) for n in record[3])
    )


def _listing(snap_id: str, value: Any) -> dict[str, str]:
    listing = _object(value, f"snapshot {snap_id}")
    for path, sha in listing.items():
        safe_path(path)
        if not isinstance(sha, str):
            raise RecordError(f"snapshot {snap_id} has a blob id that is not a string")
    return listing


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _meta(value: Any) -> dict[str, Any]:
    meta = _object(value, "meta")
    unknown = meta.keys() - META_FIELDS
    if unknown:
        raise RecordError(f"unexpected meta field {min(unknown)!r}")
    if meta.get("rootdir", "") != "":
        safe_path(meta["rootdir"])
    commit = meta.get("commit")
    if commit is not None and not (isinstance(commit, str) and _ID.fullmatch(commit)):
        raise RecordError("meta commit must be a commit id")
    if not isinstance(meta.get("env_id", ""), str):
        raise RecordError("meta env_id must be a string")
    for key in ("mapped", "updated", "collect_seconds"):
        if key in meta and not _is_number(meta[key]):
            raise RecordError(f"meta {key} must be a number")
    ignored_sources(meta)
    env = _object(meta.get("env", {}), "meta env")
    dists = env.get("distributions", {})
    if not (
        isinstance(env.get("python", ""), str)
        and isinstance(dists, dict)
        and all(isinstance(v, str) for v in dists.values())
    ):
        raise RecordError("meta env must name a Python and map distributions to versions")
    environments = _object(meta.get("environments", {}), "meta environments")
    if len(read_environments(environments)) != len(environments):
        raise RecordError("meta environments must map ids to the environments they fingerprint")
    return meta


def _clip(text: str) -> str:
    """Messages quote what the file holds: keep a forged megabyte-long path off the screen."""
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
