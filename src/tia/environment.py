"""The Python environment tests run in: interpreter version and installed distributions.

A change here can change a test's outcome, so tests recorded in another
environment are selected again.  The project's own distribution, installed
editable or from the repository, is not part of the environment: its code is
tracked file by file.

Each test is recorded against a *slice* of the environment: the interpreter and
the distributions its process had imported from when it finished
(`ImportedDistributions`), or the whole environment when it started another
process, whose imports are not seen.  `difference` decides whether a test must
run again: a new interpreter or a newly installed distribution (an optional
import or a plugin found through entry points may now succeed) runs everything;
an upgraded, downgraded or removed distribution runs the tests that imported it.

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
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tia.values import FrozenValue

if TYPE_CHECKING:
    from importlib import metadata

# A file modified this recently may change again within the filesystem's timestamp
# resolution and keep its mtime, so a stamp that saw one vouches for nothing
# (git's "racy clean" problem; tia.worktree waits out the same window).
_RACY_SECONDS = 2.0
# What `current` reads from a distribution's metadata directory: Name and Version from
# the first two, and whether it is the project itself from the last.
_READ_FILES = ("METADATA", "PKG-INFO", "direct_url.json")


class Environment(FrozenValue):
    """A fingerprint of the interpreter and its installed distributions.

    `complete` is False for a slice (`only`): the distributions some tests imported,
    not every installed one.
    """

    __slots__ = ("complete", "distributions", "python")

    def __init__(self, python: str, distributions: dict[str, str], complete: bool = True) -> None:
        self.python = python
        self.distributions = distributions
        self.complete = complete

    @property
    def id(self) -> str:
        parts: list[object] = [self.python, sorted(self.distributions.items())]
        if not self.complete:
            parts.append("slice")
        return hashlib.blake2b(json.dumps(parts).encode(), digest_size=8).hexdigest()

    def only(self, names: Iterable[str]) -> Environment:
        """The slice of this environment that holds the distributions in `names`."""
        dists = self.distributions
        return Environment(self.python, {n: dists[n] for n in sorted(names) if n in dists}, complete=False)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"python": self.python, "distributions": self.distributions}
        if not self.complete:
            out["complete"] = False
        return out

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
        complete = data.get("complete", True)
        if not isinstance(complete, bool):
            raise ValueError("not an environment fingerprint")
        return cls(python=python, distributions=dict(dists), complete=complete)

    def describe_change(self, old: dict[str, object]) -> str:
        """A short phrase naming what differs from an older fingerprint."""
        if old.get("python") != self.python:
            return f"Python {old.get('python')} -> {self.python}"
        before = old.get("distributions")
        if not isinstance(before, dict):
            return "installed packages changed"
        changes = _changes(before.keys() | self.distributions.keys(), before, self.distributions)
        return _listed(changes) or "installed packages changed"


def difference(now: Environment, then: Environment, base: Environment | None) -> tuple[str, str] | None:
    """Whether a test recorded in `then` may behave differently in `now`.

    `base` is the complete environment `then` was sliced from.  Returns None, or
    ``("all", why)`` when the change can reach any test, or ``("changed", why)``
    when it reaches the test only through distributions it imported.
    """
    if then.python != now.python:
        return "all", f"Python {then.python} -> {now.python}"
    if then.complete:
        if then.distributions == now.distributions:
            return None
        return "all", now.describe_change(then.to_json())
    if base is None or base.python != then.python:
        return "all", "installed packages changed"
    added = sorted(now.distributions.keys() - base.distributions.keys())
    if added:
        more = f" (and {len(added) - 1} more)" if len(added) > 1 else ""
        return "all", f"{added[0]} {now.distributions[added[0]]} installed{more}"
    changes = _changes(then.distributions.keys(), then.distributions, now.distributions)
    return ("changed", "imports " + _listed(changes)) if changes else None


def _changes(names: Iterable[str], before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """``NAME OLD -> NEW`` for each of `names` installed on one side only, or at two versions."""
    return [
        f"{name} {before.get(name) or '(none)'} -> {after.get(name) or '(none)'}"
        for name in sorted(names)
        if (name in before) != (name in after) or before.get(name) != after.get(name)
    ]


def _listed(changes: list[str]) -> str:
    return ", ".join(changes[:3]) + (" ..." if len(changes) > 3 else "")


def read_environments(value: Any) -> dict[str, tuple[Environment, str | None]]:
    """The map's recorded environments, ``{id: {"env": ..., "base": id}}``, read back.

    An entry that is malformed, or whose id does not match its content, is left out:
    a test recorded in it then counts as recorded in an unknown environment.
    """
    out: dict[str, tuple[Environment, str | None]] = {}
    if not isinstance(value, dict):
        return out
    for env_id, entry in value.items():
        try:
            env = Environment.from_json(entry.get("env"))
        except (ValueError, AttributeError):
            continue
        base = entry.get("base")
        if env.id == env_id and (base is None or isinstance(base, str)):
            out[env_id] = (env, base)
    return out


def environments_to_json(envs: dict[str, tuple[Environment, str | None]]) -> dict[str, Any]:
    return {
        env_id: {"env": env.to_json(), **({"base": base} if base else {})}
        for env_id, (env, base) in envs.items()
    }


class Slices:
    """The environments one run's tests are recorded in: the whole one, and slices of it."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.entries: dict[str, tuple[Environment, str | None]] = {env.id: (env, None)}
        self._ids: dict[frozenset[str], str] = {}

    def of(self, names: Iterable[str] | None) -> str:
        """The id of the slice for a test that imported from `names`; None: it may
        have used anything (it started a process)."""
        if names is None:
            return self.env.id
        key = frozenset(names)
        if key not in self._ids:
            part = self.env.only(key)
            self.entries[part.id] = (part, self.env.id)
            self._ids[key] = part.id
        return self._ids[key]


class Owners(FrozenValue):
    """Which installed distributions provide each importable top-level name, as
    `importlib.metadata.packages_distributions` lists them (a name shared by several,
    a namespace package, lists them all); `unowned`: the distributions that provide no
    name there (metadata only, or an editable install that adds a path rather than a
    package), which may be in use without tia seeing it.  Names are `_normal`.

    Reading it costs a recorded run's pytest process 60 to 120 ms (every distribution's
    RECORD), so tia reads it with the environment's fingerprint, keeps it under the same
    stamp, and hands it to the plugin with the plan."""

    __slots__ = ("names", "unowned")

    def __init__(self, names: dict[str, list[str]], unowned: frozenset[str]) -> None:
        self.names = names
        self.unowned = unowned

    def to_json(self) -> dict[str, Any]:
        return {"names": self.names, "unowned": sorted(self.unowned)}

    @classmethod
    def from_json(cls, data: Any) -> Owners:
        """Read back what `to_json` wrote; ValueError if `data` does not have its shape."""
        names = data.get("names") if isinstance(data, dict) else None
        unowned = data.get("unowned") if isinstance(data, dict) else None
        if not (
            isinstance(names, dict)
            and all(isinstance(v, list) and all(isinstance(d, str) for d in v) for v in names.values())
            and isinstance(unowned, list)
            and all(isinstance(d, str) for d in unowned)
        ):
            raise ValueError("not a map of distributions by importable name")
        return cls(names={k: list(v) for k, v in names.items()}, unowned=frozenset(unowned))


def read_owners() -> Owners:
    """The `Owners` of this interpreter's installed distributions."""
    from importlib import metadata

    names: dict[str, list[str]] = {}
    owning: set[str] = set()
    every: set[str] = set()
    for dist in metadata.distributions():
        name = _normal(_headers(dist)[0])
        every.add(name)
        for top in _top_level_names(dist):
            names.setdefault(top, []).append(name)
            owning.add(name)
    return Owners(names, frozenset(every - owning - {""}))


class ImportedDistributions:
    """The installed distributions this process has imported modules from, so far.

    A test can only have used a distribution whose modules were imported by the
    time it finished, so what `now` returns after each test is a safe slice for it.
    Modules are mapped to distributions by their top-level name (`Owners`, read here
    on first use unless given); a distribution that owns no importable name always
    counts.
    """

    def __init__(self, known: Owners | None = None) -> None:
        self._seen: set[str] = set()
        self._size = -1
        self._frozen: frozenset[str] = frozenset()
        self._owners = known

    def now(self) -> frozenset[str]:
        modules = sys.modules
        # Modules are rarely removed, so an unchanged count means nothing was imported.
        if len(modules) == self._size:
            return self._frozen
        if self._owners is None:
            self._owners = read_owners()
        if self._size == -1:
            self._frozen = self._owners.unowned
        self._size = len(modules)
        new = set(modules) - self._seen
        self._seen.update(new)
        names = {owner for name in new for owner in self._owners.names.get(name.partition(".")[0], ())}
        if not names <= self._frozen:
            self._frozen = self._frozen | names
        return self._frozen


def _headers(dist: metadata.Distribution) -> tuple[str, str]:
    """``dist.metadata["Name"]`` and ``["Version"]`` ("" for one that is missing), read
    from the metadata's header lines only: the email parser behind ``dist.metadata``
    reads the long description too, and for every installed distribution that was most
    of the time a recorded run spent starting, and of the time tia took to read the
    environment."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the headers end at the first blank line
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key in ("name", "version"):
            found.setdefault(key, value.strip())  # the first of a repeated header, as email's
    return found.get("name", ""), found.get("version", "")


def _top_level_names(dist: metadata.Distribution) -> set[str]:
    """The importable top-level names `dist` installs, as `packages_distributions` finds
    them, without its check that each installed file still exists: that check stats every
    file of every distribution (a second in a virtualenv with docs tooling, for each
    recorded run).  A name listed for a file since deleted only attributes more tests."""
    import csv
    import inspect

    declared = (dist.read_text("top_level.txt") or "").split()
    if declared:
        return set(declared)
    record = dist.read_text("RECORD")
    if record is None:
        paths = [str(f) for f in dist.files or ()]
    else:
        paths = [row[0] for row in csv.reader(record.splitlines()) if row]
    names = set()
    for path in paths:
        top, sep, _ = path.partition("/")
        if not sep:
            top = inspect.getmodulename(path) or path
        if "." not in top:
            names.add(top)
    return names


def _normal(name: str) -> str:
    """A distribution's name as `current` keys it."""
    return name.lower().replace("_", "-")


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
        name, version = _headers(dist)
        if not name or _is_project(dist, root):
            continue
        dists[_normal(name)] = version
    return Environment(python=python, distributions=dists)


def stamp(root: Path) -> str | None:
    """A digest of everything `current(root)` depends on, or None if it cannot vouch for it.

    `current` finds distributions as importlib.metadata does: a ``*.dist-info`` or
    ``*.egg-info`` entry (or an ``.egg`` entry's ``EGG-INFO``) in a directory on
    `sys.path`, and reads the files in `_READ_FILES`.  The digest covers the
    interpreter, `root`, the working directory (an empty `sys.path` entry means it),
    `sys.path`, the identity of each directory on it and the names of the metadata
    entries it lists (not its mtime, which any file added beside them moves), the identity, mtime and
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
        try:
            st = os.stat(directory)
        except (OSError, ValueError):
            parts.append((directory, None))
            continue
        if not stat.S_ISDIR(st.st_mode):
            entry(directory)
            continue
        # A directory counts by its identity and the metadata entries it lists, not by its
        # mtime: that moves whenever any file in it is added or removed, and the project's
        # root is on sys.path, so every edit that saved through a new file (or a git
        # checkout) left the stamp untrusted for two seconds, and the fingerprint read
        # again (80 ms, importlib.metadata's import included).
        parts.append((directory, st.st_dev, st.st_ino))
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
