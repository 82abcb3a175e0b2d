"""The Python environment tests run in: interpreter version and installed distributions.

A change here can change any test's outcome, so tests recorded in another
environment are selected again.  The project's own distribution, installed
editable or from the repository, is not part of the environment: its code is
tracked file by file.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


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
    python = f"{platform.python_implementation()} {'.'.join(map(str, sys.version_info[:3]))}"
    dists: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name or _is_project(dist, root):
            continue
        dists[name.lower().replace("_", "-")] = dist.version
    return Environment(python=python, distributions=dists)
