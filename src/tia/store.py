"""The map on disk: a diskcache `Cache` in `.tia/`, holding JSON only, behind a lock.

This is the only module that uses diskcache.  Keys are strings, values are
zlib-compressed JSON kept inside the SQLite file: `json_disk` refuses to
unpickle anything, and `Store.open` checks the cache's settings table before
diskcache reads it, because diskcache turns ``sqlite_*`` settings into PRAGMA
statements.  A `.tia/` directory may come from a CI cache or a teammate.
The portable single-file form of the map (`tia cache export`/`import`) is
`tia.share`'s; it writes an imported map here with `Store.replace_map`.

Layout (schema 3)::

    meta              {"schema": 3, "rootdir": "", "commit": ..., "env": ..., ...}
    test:<nodeid>     a `TestRecord`
    tests:<file>      {nodeid: `TestSummary` row}: the tests of one test file, without their
                      dependencies
    roster            {file: [[epoch, env, failed outcome or "", [nodeid, ...]], ...]}: every
                      test, as a `Roster` groups them
    deps:<path>       [[blob id, [scope, ...], [nodeid, ...]], ...]: the tests that depend on
                      `path`, grouped by the version they ran against and the scopes they used
    versions          {path: [blob id, ...]}: the versions of each file some test ran against
    index:<blob id>   a `FileIndex` (content-addressed: computed once per file version)
    snap:<id>         {path: blob id} of the work tree a run started from
    stat              {path: [mtime_ns, size, blob id]} so unchanged files are not re-hashed
    facts             `RunFacts`
    env               {"stamp": ..., "env": Environment}: the environment's fingerprint, reused
                      while `tia.environment.stamp` is the same
    quiet             the last plan that found nothing to run, with what it was computed from
                      (see `tia.project`); `write_run`, `evict` and `replace_map` drop it

The ``env`` and ``quiet`` records are caches: any tia may ignore or delete them.

``tests:``, ``roster``, ``deps:`` and ``versions`` index the test records, and every
write of test records updates them in the same transaction.  Planning reads them
instead of the records: the roster, then only the ``deps:`` entries of files that
have a version some test did not run against, then the summary rows of the files of
the tests it selected.  A write rewrites only the entries of the test files and
dependencies its tests touch, and the roster.

Schema history:

1. First version.
2. The index (``tests:``, ``deps:``, ``versions``); a map of schema 1 gets it built
   from its records when opened.
3. The ``roster``; a map of schema 2 gets it built from its summaries when opened.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import itertools
import json
import os
import sqlite3
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tia.errors import CorruptStoreError, StoreError
from tia.records import (
    Deps,
    RecordError,
    Roster,
    RunFacts,
    TestRecord,
    TestSummary,
    deps_to_json,
    safe_paths,
    scope_set,
    strings,
)

if TYPE_CHECKING:
    import diskcache  # loads with the first write: a run that finds nothing to do makes none

    from tia.scopes import FileIndex  # loads when an index is read: a run with nothing to do reads none

SCHEMA = 5
ENV = "env"
QUIET = "quiet"
SUMMARY = "tests:"
ROSTER = "roster"
VERSIONS = "versions"
DEPS = "deps:"

# Settings diskcache writes itself, with the values tia asks for; anything else
# in the Settings table means the file was not written by tia.
_SETTINGS = {
    "count": int,
    "size": int,
    "hits": int,
    "misses": int,
    "statistics": int,
    "tag_index": int,
    "eviction_policy": {"none"},
    "size_limit": int,
    "cull_limit": int,
    "sqlite_auto_vacuum": int,
    "sqlite_cache_size": int,
    "sqlite_journal_mode": {"wal", "delete"},
    "sqlite_mmap_size": int,
    "sqlite_synchronous": int,
    "disk_min_file_size": int,
    "disk_pickle_protocol": int,
}
_CACHE_SETTINGS: dict[str, Any] = {
    "eviction_policy": "none",
    "size_limit": 2**40,
    "cull_limit": 0,
    "statistics": 0,
    "disk_min_file_size": 2**31,  # every value stays inside SQLite: no side files to trust
}


@functools.cache
def json_disk() -> type[diskcache.Disk]:
    """The `diskcache.Disk` of tia's maps: strings for keys, compressed JSON for values,
    and never pickle.  Defined on first use, as diskcache is imported then (12 ms)."""
    import diskcache

    class SafeJSONDisk(diskcache.Disk):
        def put(self, key: Any) -> tuple[Any, bool]:
            if not isinstance(key, str):
                raise TypeError("tia store keys are strings")
            return super().put(key)

        def get(self, key: Any, raw: bool) -> Any:
            if not raw or not isinstance(key, str):
                raise CorruptStoreError("the map holds a key that is not a string")
            return key

        def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
            # Values are built by tia from records, never self-referencing: no cycle check.
            text = json.dumps(value, separators=(",", ":"), check_circular=False)
            data = zlib.compress(text.encode("utf-8"), 1)
            return super().store(data, False, key=key)

        def remove(self, file_path: Any) -> None:
            # tia never writes side files, so a row that names one was not written by tia:
            # deleting "its" file could delete anything the user can write.
            return None

        def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
            return _decode(mode, filename, value)

    return SafeJSONDisk


# diskcache.core.MODE_RAW: how diskcache marks a value stored as the bytes it was given.
MODE_RAW = 1


def _decode(mode: Any, filename: Any, value: Any) -> Any:
    """A value of the Cache table as `json_disk` wrote it: compressed JSON, inline."""
    if mode != MODE_RAW or filename is not None or not isinstance(value, bytes):
        raise CorruptStoreError("the map holds a value that is not compressed JSON")
    try:
        return json.loads(zlib.decompress(value).decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, ValueError) as exc:
        raise CorruptStoreError(f"unreadable value in the map: {exc}") from exc


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Keep Python's cyclic garbage collector from running while a bulk of objects is built
    from the map: as tens of thousands of them pile up it scans them again and again (at
    20,000 tests, a tenth of a plan's time), and what JSON decodes to holds no cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _connect(db: Path, mode: str) -> sqlite3.Connection:
    """A connection that reads cache.db directly, beside diskcache's own: ``mode=ro`` in a
    process that must never write, ``mode=rw`` in the store, whose reads may be all a run
    does: the last connection to close removes the write-ahead log, and a read-only one
    cannot (in the map directory, it would leave two files behind)."""
    return sqlite3.connect(db.resolve().as_uri() + "?mode=" + mode, uri=True)


# The rows tia never writes (a value in a side file, a key diskcache would unpickle), in an
# index of their own, so that the check on every open reads that index rather than every
# value of the map: 56 ms at 100,000 tests.  An index by that name with another definition
# (a map tia did not write) gets the full scan instead; and every read checks its row too.
_FOREIGN_ROWS = "filename IS NOT NULL OR raw = 0"
_FOREIGN_INDEX = f"CREATE INDEX Cache_tia_foreign ON Cache(raw) WHERE {_FOREIGN_ROWS}"


def _check_settings(con: sqlite3.Connection, db: Path) -> bool:
    """Refuse a cache.db whose Settings table tia did not write, or that holds a row tia
    would not write: a value in a side file, a key diskcache would unpickle.  Return
    whether it has tia's index of such rows (else the next write adds it)."""
    try:
        rows = con.execute("SELECT key, value FROM Settings").fetchall()
        # fetchall: a statement not stepped to its end keeps its read lock, and this
        # connection stays open for the store's reads while diskcache's writes.
        index = con.execute("SELECT sql FROM sqlite_master WHERE name = 'Cache_tia_foreign'").fetchall()
        indexed = index == [(_FOREIGN_INDEX,)]
        table = "Cache INDEXED BY Cache_tia_foreign" if indexed else "Cache"
        [(side_files, pickled_keys)] = con.execute(
            f"SELECT count(filename), total(raw = 0) FROM {table} WHERE {_FOREIGN_ROWS}"
        ).fetchall()
    except sqlite3.Error as exc:
        raise CorruptStoreError(f"{db} is not a tia map: {exc}") from exc
    if side_files:
        raise CorruptStoreError(f"{db} has entries stored outside the database, which tia never writes")
    if pickled_keys:
        raise CorruptStoreError("the map holds a key that is not a string, which tia never writes")
    for key, value in rows:
        expected = _SETTINGS.get(key)
        if expected is None:
            raise CorruptStoreError(f"{db} has an unexpected setting {key!r}")
        ok = isinstance(value, int) if expected is int else str(value).lower() in expected
        if not ok:
            raise CorruptStoreError(f"{db} has an unexpected value for setting {key!r}")
    return indexed


class IndexReader:
    """The file indexes a map holds, read-only, for pytest's processes (tia's plugin): a
    recorded run reuses the index of every file version the map already has, instead of
    parsing and fingerprinting that file again.

    It never writes and takes no lock (the tia process that started pytest holds it).
    Values are decoded as `json_disk` wrote them and checked by `FileIndex.from_json`;
    anything missing or unreadable reads as absent, and the file is indexed afresh."""

    def __init__(self, directory: Path) -> None:
        self._db = directory / "cache.db"
        self._con: sqlite3.Connection | None = None
        self._pid = 0

    def get(self, sha: str) -> FileIndex | None:
        from tia.scopes import FileIndex

        try:
            if self._con is None or self._pid != os.getpid():
                # A forked child opens its own: SQLite's connections do not survive a fork.
                if not self._db.is_file():
                    return None
                self._con, self._pid = _connect(self._db, "ro"), os.getpid()
            row = self._con.execute(
                "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1", ("index:" + sha,)
            ).fetchone()
            index = None if row is None else FileIndex.from_json(_decode(*row))
            # One that does not say which functions keep a cache (a map file an older tia
            # exported) is made again here: the recording needs the caches' fill lines.
            return index if index is not None and index.memos is not None else None
        except (sqlite3.Error, CorruptStoreError, ValueError):
            return None

    def close(self) -> None:
        if self._con is not None and self._pid == os.getpid():
            self._con.close()
        self._con = None


class Lock:
    """An exclusive lock on the store, so two tia processes never interleave writes."""

    def __init__(self, path: Path, notify: Callable[[str], None]) -> None:
        self.path = path
        self.notify = notify
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise StoreError(f"cannot lock {self.path}: {exc.strerror}") from exc
            self.notify(f"waiting for another tia process to finish with {self.path.parent}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class Store:
    """The map in a cache directory.

    Lifecycle: ``Store(path, warn)``, then `open` (creates, validates, migrates or
    quarantines), reads, `write_run` under `locked`, `close`.
    """

    def __init__(self, directory: Path, warn: Callable[[str], None]) -> None:
        self.directory = directory
        self.warn = warn
        self._opened = False
        # diskcache's Cache, made by the first write (see `cache`); reads go through `_reader`.
        self._cache: diskcache.Cache | None = None
        self._reader: sqlite3.Connection | None = None
        self.rebuilt_reason: str | None = None
        self.quarantines = 0  # how many maps this store moved aside

    # -- opening -------------------------------------------------------------

    def exists(self) -> bool:
        return (self.directory / "cache.db").exists()

    def _prepare_directory(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            ignore = self.directory / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# Created by tia: its map never belongs in git.\n*\n")
        except OSError as exc:
            raise StoreError(
                f"cannot write the map directory {self.directory}: {exc.strerror}",
                hint="fix its permissions, or choose another with --cache-dir or TIA_CACHE_DIR",
            ) from exc
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise StoreError(
                f"the map directory {self.directory} is not writable",
                hint="fix its permissions, or choose another with --cache-dir or TIA_CACHE_DIR",
            )

    def open(self) -> Store:
        self._prepare_directory()
        try:
            self._open_checked()
        except CorruptStoreError as exc:
            self.quarantine(str(exc))
            self._open_checked()
        return self

    def _open_checked(self) -> None:
        """Check the map and read its meta record through a connection of the store's own,
        which only reads (`_connect`); diskcache opens the map now only if it is new or
        lacks tia's index, else with the first write: its Cache costs 20 ms to import and
        open, and a run that finds nothing to do writes nothing."""
        db = self.directory / "cache.db"
        indexed = False
        if db.exists():
            try:
                self._reader = _connect(db, "rw")
            except sqlite3.Error as exc:
                raise CorruptStoreError(f"cannot open {db}: {exc}") from exc
            indexed = _check_settings(self._reader, db)
        self._opened = True
        if not indexed:
            self._open_cache()  # creates the file, or adds the index
        meta = self.meta()
        if meta is None:
            if self._count() and not self.rebuilt_reason:
                raise CorruptStoreError("the map has entries but no meta record")
            return
        schema = meta.get("schema")
        if not isinstance(schema, int):
            raise CorruptStoreError("the map's meta record has no schema number")
        if schema > SCHEMA:
            self.close()
            raise StoreError(
                f"the map in {self.directory} was written by a newer tia (schema {schema}; "
                f"this tia reads schema {SCHEMA})",
                hint="upgrade tia, or discard the map with `tia cache clear`",
            )
        if schema == 1:
            self._index_records()
        elif schema == 2:
            self._add_roster()
        if 1 <= schema < SCHEMA:
            self._drop_indexes()
        elif schema < SCHEMA:
            self.warn(f"the map uses schema {schema} and this tia uses {SCHEMA}: rebuilding it")
            self.rebuilt_reason = f"schema {schema} -> {SCHEMA}"
            self.cache.clear()

    def _count(self) -> int:
        return sum(1 for _ in self.cache.iterkeys())

    def quarantine(self, reason: str) -> None:
        """Move an unusable map aside (never delete it) and start a new one."""
        import datetime

        self.close()
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        aside = self.directory.with_name(f"{self.directory.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = self.directory.with_name(f"{self.directory.name}.corrupt-{stamp}-{n}")
        try:
            self.directory.rename(aside)
        except OSError as exc:
            raise StoreError(f"the map is corrupt ({reason}) and cannot be moved aside: {exc}") from exc
        self.warn(f"the map was unreadable ({reason}); moved it to {aside} and starting a new one")
        self.rebuilt_reason = "corrupt map moved aside"
        self.quarantines += 1
        self._prepare_directory()

    @property
    def is_open(self) -> bool:
        return self._opened

    @property
    def cache(self) -> diskcache.Cache:
        """diskcache's Cache on the map, for writes: opened on first use."""
        if not self._opened:
            raise StoreError("the store is not open")
        return self._open_cache() if self._cache is None else self._cache

    def ready_to_write(self) -> None:
        """Open diskcache's Cache now rather than with the first write: for a caller with
        time to spare, as tia has while pytest runs."""
        if self._opened and self._cache is None:
            self._open_cache()

    def _open_cache(self) -> diskcache.Cache:
        import diskcache

        try:
            cache = diskcache.Cache(str(self.directory), disk=json_disk(), **_CACHE_SETTINGS)
            cache._con.execute(_FOREIGN_INDEX.replace("INDEX", "INDEX IF NOT EXISTS", 1))
        except sqlite3.Error as exc:
            db = self.directory / "cache.db"
            raise CorruptStoreError(f"{db} is not a readable SQLite database: {exc}") from exc
        self._cache = cache
        return cache

    def close(self) -> None:
        self._opened = False
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    @contextlib.contextmanager
    def locked(self, notify: Callable[[str], None]) -> Iterator[None]:
        self._prepare_directory()
        lock = Lock(self.directory / "lock", notify)
        lock.acquire()
        try:
            yield
        finally:
            lock.release()

    # -- reading -------------------------------------------------------------

    def _get(self, key: str) -> Any:
        if self._cache is None:
            rows = self._keyed([key], ", mode, filename, value")
            return _decode(*rows[0][1:]) if rows else None
        try:
            # diskcache's connection: inside a write's transaction, it sees what was written.
            return self._cache.get(key)
        except sqlite3.Error as exc:
            raise CorruptStoreError(f"cannot read {key!r}: {exc}") from exc

    def meta(self) -> dict[str, Any] | None:
        meta = self._get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise CorruptStoreError("the meta record is not an object")
        return meta

    def _rows(self, columns: tuple[str, ...], *kinds: str) -> list[tuple[Any, ...]]:
        """``(key, *columns)`` of every row of diskcache's table whose key is ``KIND:...``
        for one of `kinds`, in one read-only query rather than a lookup per key.

        Refuses the map if one of them is a key diskcache would unpickle (raw = 0): `open`
        refuses a map holding any."""
        # ";" follows ":" in ASCII: "KIND:" <= key < "KIND;" holds exactly the keys "KIND:...".
        where = " OR ".join("(key >= ? AND key < ?)" for _ in kinds)
        params = [bound for kind in kinds for bound in (kind + ":", kind + ";")]
        query = f"SELECT raw, key{''.join(', ' + c for c in columns)} FROM Cache WHERE {where}"
        rows = self._query(query, params)
        if any(not row[0] or not isinstance(row[1], str) for row in rows):
            raise CorruptStoreError("the map holds a key that is not a string")
        return [row[1:] for row in rows]

    def _keyed(self, keys: list[str], columns: str) -> list[tuple[Any, ...]]:
        """``(key, columns...)`` of the rows of `keys` that exist, as last committed, in a
        few queries rather than one per key (a stored run reads hundreds)."""
        rows: list[tuple[Any, ...]] = []
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            rows += self._query(f"SELECT key{columns} FROM Cache WHERE raw = 1 AND key IN ({marks})", chunk)
        return rows

    def _committed(self, keys: list[str]) -> dict[str, Any]:
        """The values of `keys` that exist, as last committed."""
        return {
            key: _decode(mode, filename, value)
            for key, mode, filename, value in self._keyed(keys, ", mode, filename, value")
        }

    def _query(self, query: str, params: list[str]) -> list[tuple[Any, ...]]:
        """Rows of a query on cache.db, through the store's own connection, which only reads
        (it sees what is committed): opened once, since each open costs milliseconds."""
        if not self._opened:
            raise StoreError("the store is not open")
        try:
            if self._reader is None:
                self._reader = _connect(self.directory / "cache.db", "rw")
            return self._reader.execute(query, params).fetchall()
        except sqlite3.Error as exc:
            raise CorruptStoreError(f"cannot read the map: {exc}") from exc

    @gc_paused()
    def tests(self) -> dict[str, TestRecord]:
        """Every test record, validated (at 20,000 tests, one query takes 0.06 s where a
        lookup per key took 2 s); the rows are decoded as `json_disk` would."""
        records: dict[str, TestRecord] = {}
        try:
            for key, mode, filename, value in self._rows(("mode", "filename", "value"), "test"):
                nodeid = key[5:]
                records[nodeid] = TestRecord.from_json(nodeid, _decode(mode, filename, value))
        except RecordError as exc:
            raise CorruptStoreError(f"invalid test record: {exc}") from exc
        return records

    @gc_paused()
    def summaries(self, parts: Iterable[str] | None = None) -> dict[str, TestSummary]:
        """The summary of every test, or of those of the test files `parts` (roster keys),
        validated."""
        out: dict[str, TestSummary] = {}
        if parts is None:
            rows = [
                (key, _decode(mode, filename, value))
                for key, mode, filename, value in self._rows(("mode", "filename", "value"), "tests")
            ]
        else:
            rows = list(self._committed(sorted(SUMMARY + part for part in parts)).items())
        try:
            for key, data in rows:
                if not isinstance(data, dict):
                    raise RecordError(f"{key} is not an object")
                for nodeid, row in data.items():
                    out[nodeid] = TestSummary.from_row(nodeid, row)
        except RecordError as exc:
            raise CorruptStoreError(f"invalid test summary: {exc}") from exc
        return out

    @gc_paused()
    def roster(self) -> Roster:
        """Every test, as the roster groups them: what planning reads of every test."""
        try:
            return Roster.from_json(self._object(ROSTER))
        except RecordError as exc:
            raise CorruptStoreError(f"invalid roster: {exc}") from exc

    def versions(self) -> dict[str, frozenset[str]]:
        """For each file some test depends on, the versions (blob ids) they ran against."""
        return _versions(self._object(VERSIONS))

    def dependents(self, path: str) -> Deps:
        """The tests that depend on `path`: node id -> (blob id, scopes), as their records say."""
        data = self._get(DEPS + path)
        out: Deps = {}
        if data is None:
            return out
        for sha, scopes, members in _groups(data, path):
            for nodeid in members:
                out[nodeid] = (sha, scopes)
        return out

    def index(self, sha: str) -> FileIndex | None:
        from tia.scopes import FileIndex

        data = self._get("index:" + sha)
        if data is None:
            return None
        try:
            return FileIndex.from_json(data)
        except ValueError as exc:
            raise CorruptStoreError(f"invalid file index {sha}: {exc}") from exc

    def snapshot(self, snap_id: str) -> dict[str, str] | None:
        data = self._get("snap:" + snap_id)
        if data is None:
            return None
        if not isinstance(data, dict) or not set(map(type, data.values())) <= {str}:
            raise CorruptStoreError(f"invalid snapshot {snap_id}")
        try:
            safe_paths(data)
        except RecordError as exc:
            raise CorruptStoreError(f"invalid snapshot {snap_id}: {exc}") from exc
        return data

    def stat_cache(self) -> dict[str, Any]:
        """The stat cache `put_stat_cache` saved, its entries unchecked: at 100,000 tests,
        checking each here cost 30 ms more than `WorkTree` checking those it uses."""
        data = self._get("stat")
        return data if isinstance(data, dict) else {}

    def facts(self) -> RunFacts:
        data = self._get("facts")
        if data is None:
            return RunFacts()
        try:
            return RunFacts.from_json(data)
        except RecordError as exc:
            raise CorruptStoreError(f"invalid run facts: {exc}") from exc

    def environment(self, stamp: str) -> tuple[Any, Any]:
        """The environment fingerprint and the distributions by importable name that
        `put_environment` saved with `stamp` (unchecked JSON: the caller validates them),
        or (None, None)."""
        data = self._get(ENV)
        if not isinstance(data, dict) or data.get("stamp") != stamp:
            return None, None
        return data.get("env"), data.get("owners")

    def quiet(self) -> Any:
        """The plan saved by `put_quiet` (unchecked JSON: the caller validates it), or None."""
        return self._get(QUIET)

    # -- writing -------------------------------------------------------------

    def _write_error(self, exc: Exception) -> StoreError:
        return StoreError(f"cannot write the map in {self.directory}: {exc}")

    def _put_cache(self, what: str, write: Callable[[], None]) -> bool:
        """Run `write` in a transaction (best effort: a failure is a warning, and False); on
        a map that has no meta record yet (no run stored), write one too, so that the next
        open does not take the map for corrupt."""
        try:
            with self.cache.transact():
                if self.meta() is None:
                    self.cache.set("meta", {"schema": SCHEMA})
                write()
        except (sqlite3.Error, OSError) as exc:
            self.warn(f"could not save {what}: {exc}")
            return False
        return True

    def put_stat_cache(self, stat: dict[str, list[Any]]) -> None:
        self._put_cache("file hashes", lambda: self.cache.set("stat", stat))

    def put_environment(self, stamp: str, env: dict[str, Any], owners: dict[str, Any]) -> None:
        record = {"stamp": stamp, "env": env, "owners": owners}
        self._put_cache("the environment's fingerprint", lambda: self.cache.set(ENV, record))

    def put_quiet(self, quiet: dict[str, Any], indexes: dict[str, FileIndex]) -> None:
        """Save a plan that found nothing to run, with the file indexes that computing it
        needed and the map lacked: with them, the map alone gives the same plan again."""
        try:
            with self.cache.transact():
                self._add_indexes(indexes)
                self.cache.set(QUIET, quiet)
        except (sqlite3.Error, OSError) as exc:
            self.warn(f"could not save the plan: {exc}")

    def add_indexes(self, indexes: dict[str, FileIndex]) -> bool:
        """Store file indexes the map lacks, as `_put_cache` does.  It runs while pytest
        does: an unreadable meta record is a failed write too, and the map is read again,
        and moved aside if need be, when the run is stored."""
        try:
            return self._put_cache("file indexes", lambda: self._add_indexes(indexes))
        except StoreError as exc:
            self.warn(f"could not save file indexes: {exc}")
            return False

    def lacking_indexes(self, shas: Iterable[str]) -> set[str]:
        """The blob ids among `shas` whose index the map does not hold."""
        wanted = set(shas)
        held = {key[len("index:") :] for (key,) in self._keyed(sorted("index:" + sha for sha in wanted), "")}
        return wanted - held

    def _add_indexes(self, indexes: dict[str, FileIndex]) -> None:
        """Store the file indexes the map lacks (inside the caller's transaction); content
        addressed, so one already stored is the same."""
        for sha, index in indexes.items():
            if ("index:" + sha) not in self.cache:
                self.cache.set("index:" + sha, index.to_json())

    def write_run(
        self,
        *,
        tests: dict[str, TestRecord],
        indexes: dict[str, FileIndex],
        snapshot: tuple[str, dict[str, str]],
        facts: RunFacts,
        meta: dict[str, Any],
        replace_all: bool,
        remove: Iterable[str] = (),
    ) -> set[str]:
        """Store a run's results in one transaction: all of it lands, or none of it.

        Returns the blob ids the map's dependencies refer to now (what eviction keeps)."""
        snap_id, listing = snapshot
        try:
            with self.cache.transact():
                self.cache.delete(QUIET)
                versions = self._update_index(tests, set(remove), replace_all)
                if replace_all:
                    for key in list(self.cache.iterkeys()):
                        if key.startswith("test:"):
                            self.cache.delete(key)
                self._write_many(
                    {"test:" + nodeid: record.to_json() for nodeid, record in tests.items()},
                    ["test:" + nodeid for nodeid in remove],
                )
                self._add_indexes(indexes)
                if ("snap:" + snap_id) not in self.cache:
                    self.cache.set("snap:" + snap_id, listing)
                old = RunFacts() if replace_all else self.facts()
                old.merge(facts)
                self.cache.set("facts", old.to_json())
                previous = self.meta() or {}
                self.cache.set("meta", {**previous, **meta, "schema": SCHEMA, "updated": time.time()})
        except (sqlite3.Error, OSError) as exc:
            raise self._write_error(exc) from exc
        try:
            # Eviction needs the blob ids only: the paths are checked where they are read.
            return {sha for shas in versions.values() for sha in strings(shas, "blob id")}
        except RecordError as exc:
            raise CorruptStoreError(f"invalid versions record: {exc}") from exc

    def replace_map(
        self,
        *,
        tests: dict[str, TestRecord],
        indexes: dict[str, FileIndex],
        snapshots: dict[str, dict[str, str]],
        facts: RunFacts,
        meta: dict[str, Any],
    ) -> None:
        """Replace the whole map with another (`tia cache import`) in one transaction.

        The stat cache stays: it describes this work tree's files, not the map.
        """
        try:
            with self.cache.transact():
                for key in list(self.cache.iterkeys()):
                    if key != "stat":
                        self.cache.delete(key)
                self._write_many({"test:" + nodeid: record.to_json() for nodeid, record in tests.items()})
                self._update_index(tests, set(), replace_all=True)
                for sha, index in indexes.items():
                    self.cache.set("index:" + sha, index.to_json())
                for snap_id, listing in snapshots.items():
                    self.cache.set("snap:" + snap_id, listing)
                self.cache.set("facts", facts.to_json())
                self.cache.set("meta", {**meta, "schema": SCHEMA})
        except (sqlite3.Error, OSError) as exc:
            raise self._write_error(exc) from exc

    def _update_index(
        self, tests: dict[str, TestRecord], removed: set[str], replace_all: bool
    ) -> dict[str, Any]:
        """Bring ``tests``, ``deps:`` and ``versions`` in line with records about to be
        written (`tests`), removed (`removed`), or replacing all others (`replace_all`).

        Inside the caller's transaction, before it writes any record or index entry (it
        reads them as committed): what a rewritten test depended on comes from its record
        as the map holds it.  Only the ``deps:`` entries of the paths where some rewritten
        test's dependency differs from its record's are read and, if they differ, written.
        Entries of other tests are carried over as they are, unvalidated: every read
        validates them (`summaries`, `dependents`).
        """
        rewritten = set(tests) | removed
        versions: dict[str, Any] = {}
        touched: set[str] = set()
        if replace_all:
            for (key,) in self._rows((), "deps", "tests"):
                self.cache.delete(key)
        else:
            versions = self._object(VERSIONS)
            old_records = self._committed(["test:" + n for n in rewritten])
            for nodeid in rewritten:
                old = old_records.get("test:" + nodeid)
                old_deps = old.get("deps") if isinstance(old, dict) else None
                old_deps = old_deps if isinstance(old_deps, dict) else {}
                new_deps = deps_to_json(tests[nodeid].deps) if nodeid in tests else {}
                # A path whose dependency this test keeps as it was keeps its entry as it is:
                # a rerun test mostly depends on what it depended on before.
                touched.update(
                    p for p in old_deps.keys() | new_deps.keys() if old_deps.get(p) != new_deps.get(p)
                )
        added: dict[str, Deps] = {}
        for nodeid, record in tests.items():
            for path, dep in record.deps.items():
                if replace_all or path in touched:
                    added.setdefault(path, {})[nodeid] = dep
        touched = sorted(touched | added.keys())
        stored = {} if replace_all else self._committed([DEPS + path for path in touched])
        writes: dict[str, Any] = {}
        deletes: list[str] = []
        versions_changed = replace_all
        for path in touched:
            before = stored.get(DEPS + path) or []
            groups = _regrouped(before, rewritten, added.get(path, {}), path)
            if groups == before:
                continue
            shas = sorted({group[0] for group in groups})
            if shas != versions.get(path, []):
                versions_changed = True
                if shas:
                    versions[path] = shas
                else:
                    versions.pop(path)
            if groups:
                writes[DEPS + path] = groups
            else:
                deletes.append(DEPS + path)
        keys = {SUMMARY + nodeid.partition("::")[0] for nodeid in rewritten}
        stored = {} if replace_all else self._committed(sorted(keys))
        shards: dict[str, dict[str, Any]] = {}
        for nodeid in sorted(rewritten):
            key = SUMMARY + nodeid.partition("::")[0]
            if key not in shards:
                shards[key] = stored.get(key) or {}
                if not isinstance(shards[key], dict):
                    raise CorruptStoreError(f"invalid test summary: {key} is not an object")
            shards[key].pop(nodeid, None)
            if nodeid in tests:
                shards[key][nodeid] = tests[nodeid].to_row()
        roster = {} if replace_all else self._object(ROSTER)
        for key, shard in shards.items():
            part = key[len(SUMMARY) :]
            if shard:
                writes[key] = shard
                roster[part] = Roster.entry(_summaries_of(shard, key))
            else:
                deletes.append(key)
                roster.pop(part, None)
        writes[ROSTER] = roster
        if versions_changed:
            writes[VERSIONS] = versions
        self._write_many(writes, deletes)
        return versions

    def _write_many(self, values: dict[str, Any], deleted: Iterable[str] = ()) -> None:
        """`cache.set` of `values` and `cache.delete` of `deleted`, inside the caller's
        transaction, in one statement each.

        A stored run writes hundreds of index entries; diskcache's ``set`` takes a SELECT
        and an UPDATE per key, each through its own Python layers, and was half of the
        update's time at 20,000 tests.  The rows are the ones ``set`` writes (values through
        `json_disk`, no expiry, no tag), and the triggers diskcache installs keep its
        count and size in its Settings table, as for its own writes."""
        now = time.time()
        rows = []
        for key, value in values.items():
            size, mode, filename, data = self.cache.disk.store(value, False, key=key)
            rows.append((key, now, now, size, mode, filename, data))
        # diskcache has no batch write: its connection, in the transaction `transact` began.
        con = self.cache._con
        con.executemany("DELETE FROM Cache WHERE key = ? AND raw = 1", [(key,) for key in deleted])
        con.executemany(
            "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count,"
            " tag, size, mode, filename, value) VALUES (?, 1, ?, NULL, ?, 0, NULL, ?, ?, ?, ?)"
            " ON CONFLICT (key, raw) DO UPDATE SET store_time = excluded.store_time,"
            " expire_time = NULL, access_time = excluded.access_time, access_count = 0, tag = NULL,"
            " size = excluded.size, mode = excluded.mode, filename = excluded.filename,"
            " value = excluded.value",
            rows,
        )

    def _object(self, key: str) -> dict[str, Any]:
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise CorruptStoreError(f"the {key} record is not an object")
        return value

    def _add_roster(self) -> None:
        """Build the roster of a schema-2 map from its summaries (schema 2 -> 3)."""
        by_part: dict[str, list[TestSummary]] = {}
        for nodeid, summary in self.summaries().items():
            by_part.setdefault(nodeid.partition("::")[0], []).append(summary)
        roster = {part: Roster.entry(s) for part, s in by_part.items()}
        try:
            with self.cache.transact():
                self.cache.set(ROSTER, roster)
                self.cache.set("meta", {**(self.meta() or {}), "schema": SCHEMA})
        except (sqlite3.Error, OSError) as exc:
            raise self._write_error(exc) from exc

    def _drop_indexes(self) -> None:
        """Delete the file indexes of a map of schema 4 or before (-> 5): they do not say
        what shared state each function writes (`tia.scopes.FileIndex.state`, schema 4)
        or which functions keep a hand-written cache (`FileIndex.memos`, 5).  Each is
        built again when a plan needs it, from the work tree or git; a version neither
        holds any more then counts as unknown, as its whole module changed."""
        try:
            with self.cache.transact():
                self.cache.delete(QUIET)
                for (key,) in self._rows((), "index"):
                    self.cache.delete(key)
                self.cache.set("meta", {**(self.meta() or {}), "schema": SCHEMA})
        except (sqlite3.Error, OSError) as exc:
            raise self._write_error(exc) from exc

    def _index_records(self) -> None:
        """Build the index of a schema-1 map from its test records (schema 1 -> 2)."""
        records = self.tests()
        try:
            with self.cache.transact():
                self._update_index(records, set(), replace_all=True)
                self.cache.set("meta", {**(self.meta() or {}), "schema": SCHEMA})
        except (sqlite3.Error, OSError) as exc:
            raise self._write_error(exc) from exc

    def evict(self, referenced_blobs: set[str], referenced_snaps: set[str]) -> int:
        """Delete indexes and snapshots nothing refers to any more; return how many."""
        gone = 0
        try:
            with self.cache.transact():
                # An index gone changes how a later plan diffs that version (from git, or not at all).
                self.cache.delete(QUIET)
                for (key,) in self._rows((), "index", "snap"):
                    kind, _, ident = key.partition(":")
                    if (kind == "index" and ident not in referenced_blobs) or (
                        kind == "snap" and ident not in referenced_snaps
                    ):
                        self.cache.delete(key)
                        gone += 1
        except (sqlite3.Error, OSError) as exc:
            self.warn(f"could not evict stale entries: {exc}")
        return gone

    def destroy(self) -> None:
        """Delete the map's database, whatever it holds (a newer schema, corruption)."""
        self.close()
        for path in self.directory.glob("cache.db*"):
            try:
                path.unlink()
            except OSError as exc:
                raise self._write_error(exc) from exc

    def size_on_disk(self) -> int:
        return sum(f.stat().st_size for f in self.directory.rglob("*") if f.is_file())

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for key in self.cache.iterkeys():
            kind = key.partition(":")[0]
            counts[kind] = counts.get(kind, 0) + 1
        return counts


def _summaries_of(shard: dict[str, Any], key: str) -> list[TestSummary]:
    """The rows of a ``tests:`` entry about to be written, validated: a write carries the
    rows of tests it did not run over unread, and the roster is built from all of them."""
    try:
        return [TestSummary.from_row(nodeid, row) for nodeid, row in shard.items()]
    except RecordError as exc:
        raise CorruptStoreError(f"invalid test summary in {key}: {exc}") from exc


def _versions(data: dict[str, Any]) -> dict[str, frozenset[str]]:
    """The ``versions`` record, checked."""
    try:
        paths = safe_paths(data)
        # Checked in one pass over every blob id: one call per file cost more than the rest.
        lists = list(data.values())
        if not set(map(type, lists)) <= {list}:
            raise RecordError("expected a list of blob ids for each file")
        strings(list(itertools.chain.from_iterable(lists)), "blob id")
        return dict(zip(paths, map(frozenset, lists), strict=True))
    except RecordError as exc:
        raise CorruptStoreError(f"invalid versions record: {exc}") from exc


def _groups(data: Any, path: str) -> list[tuple[str, frozenset[str], list[str]]]:
    """A stored ``deps:`` entry, checked: (blob id, scopes, node ids) for each group."""
    if not isinstance(data, list):
        raise CorruptStoreError(f"the dependents of {path} are not a list")
    out = []
    try:
        for group in data:
            if not (isinstance(group, list) and len(group) == 3 and isinstance(group[0], str)):
                raise RecordError("a group must be [blob id, scopes, node ids]")
            out.append((group[0], scope_set(group[1]), strings(group[2], "node id")))
    except RecordError as exc:
        raise CorruptStoreError(f"invalid dependents of {path}: {exc}") from exc
    return out


def _regrouped(groups: Any, nodeids: set[str], deps: Deps, path: str) -> list[list[Any]]:
    """A stored ``deps:`` entry without the tests in `nodeids`, with the tests of `deps`:
    grouped by blob id and scopes, each group's node ids sorted."""
    merged: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for sha, scopes, members in _groups(groups, path):
        kept = members if nodeids.isdisjoint(members) else [n for n in members if n not in nodeids]
        if kept:
            merged.setdefault((sha, tuple(sorted(scopes))), []).extend(kept)
    for nodeid, (sha, scopes) in deps.items():
        merged.setdefault((sha, tuple(sorted(scopes))), []).append(nodeid)
    return [[sha, list(scopes), sorted(members)] for (sha, scopes), members in sorted(merged.items())]


def default_warn(message: str) -> None:
    print(f"tia: warning: {message}", file=sys.stderr)
