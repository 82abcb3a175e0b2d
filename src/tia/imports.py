"""Static imports: what a Python file imports, and which repository files that names.

`extract_imports` reads one file's AST (imports at any depth, including inside
functions and under ``if``/``try``; ``importlib.import_module`` and
``__import__`` with a literal name; ``pytest_plugins``).  `ModuleResolver`
turns those records into repository paths.  Both over-approximate on purpose:
an extra edge costs a test run, a missing one costs a missed failure.
"""

from __future__ import annotations

import ast
import posixpath
from collections.abc import Iterable
from typing import Any

# Import records, as stored in a FileIndex (JSON-friendly lists):
#   ["import", "a.b.c"]                    import a.b.c
#   ["from", level, "a.b", ["x", "y"]]     from ..a.b import x, y   (level 2)
ImportRecord = list[Any]

_DYNAMIC_CALLS = {"import_module", "__import__", "import_from_path"}


def module_stem(path: str) -> str:
    """The last part of the dotted name of the module in the Python file `path`: its
    package's name for an ``__init__.py`` ("" for one at the root)."""
    stem = posixpath.basename(path)[: -len(".py")]
    return posixpath.basename(posixpath.dirname(path)) if stem == "__init__" else stem


def _literal_strings(node: ast.AST) -> list[str] | None:
    """The strings of a literal str, list or tuple of str; None if it is anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.List, ast.Tuple)) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
    ):
        return [e.value for e in node.elts]  # type: ignore[attr-defined]
    return None


def extract_imports(tree: ast.AST, nodes: list[ast.AST] | None = None) -> tuple[list[ImportRecord], bool]:
    """Every import in `tree`, and whether some import could not be read statically.
    `nodes`: every node of `tree`, if the caller walked it already."""
    records: list[ImportRecord] = []
    dynamic = False
    for node in ast.walk(tree) if nodes is None else nodes:
        if isinstance(node, ast.Import):
            records.extend(["import", alias.name] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            records.append(["from", node.level, node.module or "", [a.name for a in node.names]])
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in _DYNAMIC_CALLS:
                names = _literal_strings(node.args[0]) if node.args else None
                # A relative name needs its `package` argument: tia cannot resolve that statically.
                if names is None or any(n.startswith(".") for n in names):
                    dynamic = True
                else:
                    records.extend(["import", n] for n in names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if node.value is not None and any(
                isinstance(t, ast.Name) and t.id == "pytest_plugins" for t in targets
            ):
                names = _literal_strings(node.value)
                if names is None:
                    dynamic = True
                else:
                    records.extend(["import", n] for n in names)
    return records, dynamic


class ModuleResolver:
    """Maps dotted module names to the repository's Python files.

    A file is known under the dotted name that its package structure gives it
    (walking up while ``__init__.py`` exists) and under every longer name its
    parent directories spell, since ``sys.path`` may hold any of them
    (``src/``, the repository root, a test directory pytest prepends).
    """

    def __init__(self, paths: Iterable[str]) -> None:
        self.files = {p for p in paths if p.endswith(".py")}
        self.by_name: dict[str, set[str]] = {}
        dirs_with_init = {posixpath.dirname(p) for p in self.files if p.endswith("/__init__.py")}
        if "__init__.py" in self.files:
            dirs_with_init.add("")
        for path in self.files:
            parts = path[:-3].split("/")
            if parts[-1] == "__init__":
                parts = parts[:-1]
                if not parts:
                    continue
            # Walk up the package chain: the shortest valid name starts at the
            # first directory above the topmost package.
            first = len(parts) - 1
            while first > 0 and "/".join(parts[:first]) in dirs_with_init:
                first -= 1
            for start in range(first, -1, -1):
                self.by_name.setdefault(".".join(parts[start:]), set()).add(path)

    def _module(self, name: str) -> set[str]:
        """Files that importing `name` executes: the module and its parent packages."""
        found: set[str] = set()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            found |= self.by_name.get(".".join(parts[:i]), set())
        return found

    def _relative_base(self, importer: str, level: int) -> str:
        base = posixpath.dirname(importer)
        for _ in range(level - 1):
            base = posixpath.dirname(base)
        return base

    def _path_module(self, directory: str, dotted: str) -> set[str]:
        """Files for a module named relative to a directory (relative imports)."""
        found: set[str] = set()
        parts = [p for p in dotted.split(".") if p]
        current = directory
        init = posixpath.join(current, "__init__.py")
        if init in self.files:
            found.add(init)
        for part in parts:
            current = posixpath.join(current, part)
            for candidate in (current + ".py", posixpath.join(current, "__init__.py")):
                if candidate in self.files:
                    found.add(candidate)
        return found

    def resolve(self, importer: str, records: list[ImportRecord]) -> set[str]:
        """The repository files that `importer`'s import records name."""
        found: set[str] = set()
        for record in records:
            if record[0] == "import":
                found |= self._module(record[1])
                continue
            _, level, module, names = record
            if level:
                base = self._relative_base(importer, level)
                found |= self._path_module(base, module)
                for n in names:
                    found |= self._path_module(base, f"{module}.{n}" if module else n)
            else:
                found |= self._module(module)
                for n in names:
                    found |= self.by_name.get(f"{module}.{n}", set())
        found.discard(importer)
        return found
