"""Deterministic single-edit mutations of a project, one list per kind.

A mutation is a list of file operations: ``edit`` (replace characters ``start:end`` of
a file with ``new``), ``delete`` and ``rename``.  Edits are a few
characters on one line, as a developer's change would be, found through the AST so
that each one is valid Python.  The kinds:

* ``body-compare``, ``body-arith``, ``body-bool``, ``body-const``, ``body-return``,
  ``body-remove``: inside a function of the code under test, a comparison flipped,
  ``+``/``-``/``*`` swapped, ``and``/``or`` swapped, a literal changed, a returned
  value replaced by ``None``, a statement replaced by ``pass``;
* ``constant``, ``classattr``, ``default``: a module constant, a class attribute or a
  default argument value changed (code that runs at import time);
* ``decorator``: a decorator line removed;
* ``test-constant``: a module-level literal in a test module (such as ``parametrize``
  arguments, built at collection time);
* ``conftest-fixture``, ``conftest-hook``: a body edit in a fixture or a ``pytest_*``
  hook of a conftest.py;
* ``data``: one character of a non-Python file next to the tests;
* ``addfunc``: a new function that nothing calls (must select no test);
* ``delete-module``, ``rename-module``: a module of the code under test removed, or
  moved to a new name;
* ``newtest``: a new failing test appended to a test module.

The same project files and seed give the same mutations, on any machine.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path

BODY_KINDS = ("compare", "arith", "bool", "const", "return", "remove")
KINDS = (
    *(f"body-{k}" for k in BODY_KINDS),
    "constant",
    "classattr",
    "default",
    "decorator",
    "test-constant",
    "conftest-fixture",
    "conftest-hook",
    "data",
    "addfunc",
    "delete-module",
    "rename-module",
    "newtest",
)
DATA_SUFFIXES = {".txt", ".json", ".html", ".htm", ".cfg", ".ini", ".yaml", ".yml", ".csv", ".xml", ".j2"}
_SWAPS = {
    ast.Eq: "!=",
    ast.NotEq: "==",
    ast.Lt: "<=",
    ast.LtE: "<",
    ast.Gt: ">=",
    ast.GtE: ">",
    ast.Is: "is not",
    ast.IsNot: "is",
    ast.In: "not in",
    ast.NotIn: "in",
}
_COMPARE_TEXT = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}
_ARITH = {ast.Add: ("+", "-"), ast.Sub: ("-", "+"), ast.Mult: ("*", "+")}
NEW_TEST = "\n\ndef test_added_by_the_safety_benchmark():\n    assert False, 'a new failing test'\n"
NEW_FUNCTION = "\n\ndef _added_by_the_safety_benchmark():\n    return 42\n"


class Source:
    """A Python file's text, with AST positions turned into character offsets."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode()[:col].decode(errors="replace"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self.offset(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )

    def edit(self, kind: str, start: int, end: int, new: str) -> dict:
        line = self.text.count("\n", 0, start) + 1
        old = self.text[start:end]
        return {
            "kind": kind,
            "ops": [{"op": "edit", "path": self.path, "start": start, "end": end, "old": old, "new": new}],
            "where": f"{self.path}:{line}",
            "what": f"{old!r} -> {new!r}",
        }


def _literal_edit(src: Source, kind: str, node: ast.expr) -> dict | None:
    """A changed literal: a flipped bool, an int plus one, a string with one more character."""
    if not isinstance(node, ast.Constant) or node.lineno != node.end_lineno:
        return None
    start, end = src.span(node)
    value = node.value
    if isinstance(value, bool):
        return src.edit(kind, start, end, str(not value))
    if isinstance(value, int):
        return src.edit(kind, start, end, str(value + 1))
    if isinstance(value, float):
        return src.edit(kind, start, end, repr(value * 2 + 1))
    if isinstance(value, str) and value:
        text = src.text[start:end]
        if text[:1] in "'\"" and len(text) >= 2 and text[-1] == text[0]:
            return src.edit(kind, end - 1, end - 1, "x")
    return None


def _between(src: Source, left: ast.AST, right: ast.AST, symbol: str) -> tuple[int, int] | None:
    """Where ``symbol`` stands between two nodes on one line, if nothing else does."""
    if left.end_lineno != right.lineno:  # type: ignore[attr-defined]
        return None
    gap_start = src.span(left)[1]
    gap_end = src.span(right)[0]
    gap = src.text[gap_start:gap_end]
    if gap.strip(" ()") != symbol:
        return None
    at = gap_start + gap.index(symbol)
    return at, at + len(symbol)


def _body_edits(src: Source, func: ast.AST, prefix: str = "body-") -> Iterator[dict]:
    for node in ast.walk(func):
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _SWAPS:
            where = _between(src, node.left, node.comparators[0], _COMPARE_TEXT[type(node.ops[0])])
            if where:
                yield src.edit(prefix + "compare", *where, _SWAPS[type(node.ops[0])])
        elif isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            old, new = _ARITH[type(node.op)]
            where = _between(src, node.left, node.right, old)
            if where and not (isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)):
                yield src.edit(prefix + "arith", *where, new)
        elif isinstance(node, ast.BoolOp) and len(node.values) == 2:
            old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
            where = _between(src, node.values[0], node.values[1], old)
            if where:
                yield src.edit(prefix + "bool", *where, new)
        elif (
            isinstance(node, ast.Return)
            and node.value is not None
            and node.lineno == node.end_lineno
            and not (isinstance(node.value, ast.Constant) and node.value.value is None)
        ):
            yield src.edit(prefix + "return", *src.span(node.value), "None")
        if isinstance(node, ast.Constant) and not isinstance(node.value, str):
            edit = _literal_edit(src, prefix + "const", node)
            if edit:
                yield edit
        body = getattr(node, "body", None)
        if isinstance(body, list) and len(body) > 1:
            for stmt in body[1:] if _has_docstring(node) else body:
                if isinstance(stmt, (ast.Expr, ast.Assign, ast.AugAssign)) and stmt.lineno == stmt.end_lineno:
                    yield src.edit(prefix + "remove", *src.span(stmt), "pass")


def _has_docstring(node: ast.AST) -> bool:
    body = getattr(node, "body", [])
    return bool(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    )


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _module_assign_values(body: list[ast.stmt]) -> Iterator[ast.expr]:
    for stmt in body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            for node in ast.walk(stmt.value):
                if isinstance(node, ast.Constant):
                    yield node


def source_mutants(src: Source, tree: ast.Module) -> Iterator[dict]:
    """Every candidate edit of a module of the code under test."""
    for func in _functions(tree):
        yield from _body_edits(src, func)
        args = func.args
        for default in [*args.defaults, *args.kw_defaults]:
            if default is not None:
                edit = _literal_edit(src, "default", default)
                if edit:
                    yield edit
        for deco in func.decorator_list:
            if deco.lineno == deco.end_lineno:
                line_start = src.starts[deco.lineno - 1]
                line = src.lines[deco.lineno - 1]
                if line.strip().startswith("@"):
                    yield src.edit("decorator", line_start, line_start + len(line), "")
    for node in _module_assign_values(tree.body):
        edit = _literal_edit(src, "constant", node)
        if edit:
            yield edit
    for cls in ast.walk(tree):
        if isinstance(cls, ast.ClassDef):
            for node in _module_assign_values(cls.body):
                edit = _literal_edit(src, "classattr", node)
                if edit:
                    yield edit
    end = len(src.text)
    sep = "" if src.text.endswith("\n") else "\n"
    yield src.edit("addfunc", end, end, sep + NEW_FUNCTION)


def conftest_mutants(src: Source, tree: ast.Module) -> Iterator[dict]:
    for func in tree.body:
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if func.name.startswith("pytest_"):
            kind = "conftest-hook"
        elif any("fixture" in ast.unparse(d) for d in func.decorator_list):
            kind = "conftest-fixture"
        else:
            continue
        for edit in _body_edits(src, func):
            edit["kind"] = kind
            yield edit


def test_mutants(src: Source, tree: ast.Module) -> Iterator[dict]:
    for node in _module_assign_values(tree.body):
        edit = _literal_edit(src, "test-constant", node)
        if edit:
            yield edit
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
            for deco in stmt.decorator_list:
                if isinstance(deco, ast.Call) and "parametrize" in ast.unparse(deco.func):
                    for node in ast.walk(deco):
                        edit = (
                            _literal_edit(src, "test-constant", node)
                            if isinstance(node, ast.Constant)
                            else None
                        )
                        if edit:
                            yield edit
    end = len(src.text)
    sep = "" if src.text.endswith("\n") else "\n"
    yield src.edit("newtest", end, end, sep + NEW_TEST)


def data_mutant(path: str, text: str) -> dict | None:
    """The first digit plus one, else the first letter in the other case."""
    for i, ch in enumerate(text):
        if ch.isdigit() and ch.isascii():
            return Source(path, text).edit("data", i, i + 1, str((int(ch) + 1) % 10))
    for i, ch in enumerate(text):
        if ch.isascii() and ch.isalpha():
            return Source(path, text).edit("data", i, i + 1, ch.swapcase())
    return None


def module_mutants(path: str) -> Iterator[dict]:
    if Path(path).name == "__init__.py":
        return
    yield {"kind": "delete-module", "ops": [{"op": "delete", "path": path}], "where": path, "what": "deleted"}
    moved = str(Path(path).with_name(Path(path).stem + "_moved.py"))
    yield {
        "kind": "rename-module",
        "ops": [{"op": "rename", "path": path, "to": moved}],
        "where": path,
        "what": f"renamed to {moved}",
    }


def candidates(root: Path, spec: dict, tracked: list[str]) -> dict[str, list[dict]]:
    """Every candidate mutation of the project, by kind, in a stable order."""

    def matching(globs: list[str]) -> list[str]:
        return sorted({p for p in tracked if any(Path(p).match(g) for g in globs)})

    pools: dict[str, list[dict]] = {kind: [] for kind in KINDS}

    def add(found: Iterator[dict]) -> None:
        for mutant in found:
            pools[mutant["kind"]].append(mutant)

    for path in matching(spec["src"]):
        text = (root / path).read_text(encoding="utf-8")
        src = Source(path, text)
        add(source_mutants(src, ast.parse(text)))
        add(module_mutants(path))
    for path in matching(spec["tests"]):
        text = (root / path).read_text(encoding="utf-8")
        add(test_mutants(Source(path, text), ast.parse(text)))
    for path in sorted(p for p in tracked if Path(p).name == "conftest.py"):
        text = (root / path).read_text(encoding="utf-8")
        add(conftest_mutants(Source(path, text), ast.parse(text)))
    for path in sorted(tracked):
        if Path(path).suffix in DATA_SUFFIXES and any(path.startswith(d + "/") for d in spec["data"]):
            try:
                text = (root / path).read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            mutant = data_mutant(path, text)
            if mutant:
                pools["data"].append(mutant)
    return pools


def choose(name: str, pools: dict[str, list[dict]], per_kind: int) -> list[dict]:
    """``per_kind`` mutations of each kind, drawn with a seed made of the project and kind."""
    chosen = []
    for kind in KINDS:
        pool = pools[kind]
        rng = random.Random(f"{name}/{kind}")
        for i, mutant in enumerate(rng.sample(pool, min(per_kind, len(pool)))):
            digest = hashlib.sha256(json.dumps(mutant["ops"], sort_keys=True).encode()).hexdigest()[:10]
            chosen.append({"id": f"{kind}-{i}", "digest": digest, **mutant})
    return chosen


def apply(root: Path, mutant: dict) -> None:
    """Make the mutation in the work tree (without committing it)."""
    for op in mutant["ops"]:
        path = root / op["path"]
        if op["op"] == "edit":
            text = path.read_text(encoding="utf-8")
            assert text[op["start"] : op["end"]] == op["old"], f"{op['path']} is not as the mutation expects"
            path.write_text(text[: op["start"]] + op["new"] + text[op["end"] :], encoding="utf-8")
        elif op["op"] == "delete":
            path.unlink()
        elif op["op"] == "rename":
            path.rename(root / op["to"])
