"""The Python environment tests run in: interpreter version and installed distributions.

A change here can change any test's outcome, so tests recorded in another
environment are selected again.  The project's own distribution, installed
editable or from the repository, is not part of the environment: its code is
tracked file by file.

`current` reads every distribution's metadata, which costs tens of milliseconds;
`stamp` only lists and stats what that reading depends on, so the coordinator can
reuse the fingerprint it computed last while the stamp is the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib import metadata

# A file modified this recently may change again within the filesystem's timestamp
# resolution and keep its mtime, so a stamp that saw one vouches for nothing
# (git's "racy clean" problem; tia.worktree waits out the same window).
_RACY_SECONDS = 2.0
# What `current` reads from a distribution's metadata directory: Name and Version from
# the first two, and whether it is the project itself from the last.
_READ_FILES = ("METADATA", "PKG-INFO", "direct_url.json")


@dataclass(frozen=True)
class Environment:
    """A fingerprint of the interpreter and its installed distributions."""

    python: str
    distributions: dict[str, str]

    @property
    def id(self) -> str:
        text = json.dumps([self.python, sorted(self.distributions.items())])
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def to_json(self) -> dict[str, object]:
        return {"python": self.python, "distributions": self.distributions}

    @classmethod
    def from_json(cls, data: Any) -> Environment:
        """Read back what `to_json` wrote; ValueError if `data` does not have its shape."""
        python = data.get("python") if isinstance(data, dict) else None
        dists = data.get("distributions") if isinstance(data, dict) else None
        # A distribution without a Version header has None for its version.
        if (
            not isinstance(python, str)
            or not isinstance(dists, dict)
            or not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in dists.items())
        ):
            raise ValueError("not an environment fingerprint")
        return cls(python=python, distributions=dict(dists))

    def describe_change(self, old: dict[str, object]) -> str:
        """A short phrase naming what differs from an older fingerprint."""
        if old.get("python") != self.python:
            return f"Python {old.get('python')} -> {self.python}"
        before = old.get("distributions")
        if not isinstance(before, dict):
            return "installed packages changed"
        changes = []
        for name in sorted(before.keys() | self.distributions.keys()):
            a, b = before.get(name), self.distributions.get(name)
            if a != b:
                changes.append(f"{name} {a or '(none)'} -> {b or '(none)'}")
        return ", ".join(changes[:3]) + (" ..." if len(changes) > 3 else "") or "installed packages changed"


def _inside(path: str, root: Path) -> bool:
    try:
        Path(path).resolve().relative_to(root)
    except (ValueError, OSError):
        return False
    return True


def _is_project(dist: metadata.Distribution, root: Path) -> bool:
    """Whether `dist` is the project itself: installed from the repository, or living in it."""
    location = str(dist.locate_file(""))
    # An egg-info beside the sources (`setup.py develop`), but not a virtualenv kept in the repository.
    if _inside(location, root) and not {"site-packages", "dist-packages"} & set(Path(location).parts):
        return True
    text = dist.read_text("direct_url.json")
    if not text:
        return False
    try:
        url = json.loads(text).get("url", "")
    except (ValueError, AttributeError):
        return False
    return isinstance(url, str) and url.startswith("file://") and _inside(url[7:], root)


def current(root: Path) -> Environment:
    """The environment of this interpreter, minus the project in `root`."""
    import platform
    from importlib import metadata

    python = f"{platform.python_implementation()} {'.'.join(map(str, sys.version_info[:3]))}"
    dists: dict[str, str] = {}
    for dist in metadata.distributions():
        # `dist.version` would parse the metadata a second time.
        fields = dist.metadata
        name = fields["Name"]
        if not name or _is_project(dist, root):
            continue
        dists[name.lower().replace("_", "-")] = fields["Version"]
    return Environment(python=python, distributions=dists)


def stamp(root: Path) -> str | None:
    """A digest of everything `current(root)` depends on, or None if it cannot vouch for it.

    `current` finds distributions as importlib.metadata does: a ``*.dist-info`` or
    ``*.egg-info`` entry (or an ``.egg`` entry's ``EGG-INFO``) in a directory on
    `sys.path`, and reads the files in `_READ_FILES`.  The digest covers the
    interpreter, `root`, the working directory (an empty `sys.path` entry means it),
    `sys.path`, the identity and mtime of each directory on it (adding, removing or
    renaming a distribution changes its directory's mtime), the identity, mtime and
    size of each metadata entry and of the files read from it, and where each local
    ``file://`` install points now (its path may pass through a symlink).  A zip file
    on `sys.path` counts by its own identity, mtime and size.

    None when a finder other than the standard path finder can provide
    distributions (what it reads is unknown here), or when anything covered was
    modified in the last two seconds.
    """
    from importlib.machinery import PathFinder

    for finder in sys.meta_path:
        if finder is not PathFinder and getattr(finder, "find_distributions", None) is not None:
            return None
    parts: list[object] = [sys.version, sys.implementation.name, str(root), os.getcwd(), sys.path]
    mtimes: list[int] = []

    def entry(path: str) -> os.stat_result | None:
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            parts.append((path, None))
            return None
        parts.append((path, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
        mtimes.append(st.st_mtime_ns)
        return st

    for directory in dict.fromkeys(p or "." for p in sys.path):
        st = entry(directory)
        if st is None or not stat.S_ISDIR(st.st_mode):
            continue
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        egg = os.path.basename(directory).lower().endswith(".egg")
        for name in names:
            low = name.lower()
            if not (low.endswith((".dist-info", ".egg-info")) or (egg and low == "egg-info")):
                continue
            info = os.path.join(directory, name)
            if entry(info) is None:
                continue
            for file in _READ_FILES:
                if entry(os.path.join(info, file)) is not None and file == "direct_url.json":
                    parts.append(_install_target(os.path.join(info, file)))
    if any(time.time() - mtime / 1e9 < _RACY_SECONDS for mtime in mtimes):
        return None
    # ASCII JSON: a file name that is not valid UTF-8 comes out escaped, not as an error.
    return hashlib.blake2b(json.dumps(parts).encode("ascii"), digest_size=16).hexdigest()


def _install_target(direct_url: str) -> str | None:
    """Where a ``file://`` install recorded in `direct_url` resolves to now, else None."""
    try:
        with open(direct_url, encoding="utf-8") as f:
            url = json.load(f).get("url", "")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(url, str) or not url.startswith("file://"):
        return None
    return os.path.realpath(url[7:])
