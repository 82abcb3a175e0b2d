"""The work tree as it is now: every file's blob id, hashed only when its stat changed.

Cheapest check first: a file whose (mtime, size) matches the stat cache keeps
its cached blob id; only the others are read and hashed.  A file modified in
the last two seconds is not cached, since a second write within the
filesystem's timestamp resolution would go unseen (git's "racy clean" problem).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from stat import S_ISREG
from typing import Any

from tia.gitrepo import blob_id

_RACY_SECONDS = 2.0


class WorkTree:
    """Hashes of the files in a work tree, reusing a stat cache.

    Attributes:
        root: the git root.
        stat: path -> [mtime_ns, size, blob id], updated as files are hashed.  Read back
            from the map unchecked: an entry is used only if it has that shape (`_cached`).
        dirty: whether `stat` changed and is worth saving.
    """

    def __init__(self, root: Path, stat: dict[str, Any]) -> None:
        self.root = root
        self.stat = stat
        self.dirty = False
        # Every run stats every file: plain strings cost a fraction of a Path per file.
        self._root = os.fspath(root)

    def blob(self, path: str) -> str | None:
        """The blob id of `path` now, or None if it is not a regular file."""
        try:
            st = os.stat(os.path.join(self._root, path))
        except (OSError, ValueError):  # ValueError: a NUL byte in the name
            return None
        return self._blob(path, st)

    def _blob(self, path: str, st: os.stat_result) -> str | None:
        if not S_ISREG(st.st_mode):
            return None
        cached = _cached(self.stat.get(path), st)
        if cached is not None:
            return cached
        try:
            with open(os.path.join(self._root, path), "rb") as f:
                content = f.read()
        except OSError:
            return None
        sha = blob_id(content)
        if time.time() - st.st_mtime_ns / 1e9 > _RACY_SECONDS:
            self.stat[path] = [st.st_mtime_ns, st.st_size, sha]
            self.dirty = True
        return sha

    def listing(self, paths: list[str]) -> dict[str, str]:
        """path -> blob id for those of `paths` that are regular files now."""
        # The loop of `blob`, inlined, with the root opened once: at 20,000 files, the
        # Python around each stat cost as much as the stat itself.
        out: dict[str, str] = {}
        stat, get = os.stat, self.stat.get
        root = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for path in paths:
                try:
                    st = stat(path, dir_fd=root)
                except (OSError, ValueError):  # ValueError: a NUL byte in the name
                    continue
                sha = _cached(get(path), st) if S_ISREG(st.st_mode) else None
                if sha is None:
                    sha = self._blob(path, st)
                if sha is not None:
                    out[path] = sha
        finally:
            os.close(root)
        known = set(paths)
        for path in [p for p in self.stat if p not in known]:
            del self.stat[path]
            self.dirty = True
        return out

    def read(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except OSError:
            return None


def settled_blob(root: Path, path: str, before: float) -> str | None:
    """The blob id of `path`, if it is a regular file last modified before `before`
    by more than the racy window (so what a run that started at `before` read); None if not."""
    full = os.path.join(root, path)
    try:
        st = os.stat(full)
        if not S_ISREG(st.st_mode) or st.st_mtime_ns / 1e9 > before - _RACY_SECONDS:
            return None
        with open(full, "rb") as f:
            content = f.read()
        if os.stat(full).st_mtime_ns != st.st_mtime_ns:
            return None
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        return None
    return blob_id(content)


def _cached(entry: Any, st: os.stat_result) -> str | None:
    """The blob id a stat cache entry holds, if it is one tia wrote and `st` matches it."""
    if (
        type(entry) is list
        and len(entry) == 3
        and entry[0] == st.st_mtime_ns
        and entry[1] == st.st_size
        and type(entry[2]) is str
    ):
        return entry[2]
    return None


def snapshot_id(listing: dict[str, str]) -> str:
    """A content address for a whole listing."""
    text = json.dumps(sorted(listing.items()), separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def posix_relative(path: str | os.PathLike[str], root: Path) -> str | None:
    """`path` relative to `root` in POSIX form, or None if it lies outside."""
    try:
        rel = Path(path).resolve().relative_to(root)
    except ValueError:
        return None
    return rel.as_posix()
