"""Reports on the map for people: what a test depends on, who depends on a file, the map's status."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tia.errors import UsageError
from tia.selection import MODULE, test_file

if TYPE_CHECKING:
    from tia.project import Project


def _when(ts: object) -> str:
    if not isinstance(ts, (int, float)):
        return "never"
    return datetime.datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")


def explain(project: Project, target: str) -> Iterator[str]:
    tests = project.tests()
    if target in tests:
        record = tests[target]
        yield f"{target}: {record.outcome} in {record.duration:.3f}s, last run {_when(record.when)}"
        for path, (sha, scopes) in sorted(record.deps.items()):
            names = ", ".join(sorted(scopes)) if scopes else MODULE if path.endswith(".py") else "(read)"
            yield f"  {path}  [{sha[:8]}]  {names}"
        return
    if "::" in target:
        raise UsageError(
            f"no test {target} in the map", hint="`tia select` lists tests the map does not know yet"
        )
    path, _, line = target.rpartition(":") if ":" in target else (target, "", "")
    if not line.isdigit():
        path, line = target, ""
    rel = _relative(project, path)
    if not (project.root / rel).is_file():
        raise UsageError(f"{path} is neither a test in the map nor a file in the repository")
    scope = None
    if line:
        if not rel.endswith(".py"):
            raise UsageError(f"{path} is not a Python file: line numbers name scopes in Python files only")
        from tia.scopes import index_source

        source = (project.root / rel).read_bytes()
        index = index_source(source, rel)
        number = int(line)
        if index.error:
            raise UsageError(f"{path} does not parse ({index.error})")
        if not 1 <= number <= len(source.splitlines()):
            raise UsageError(f"{path} has no line {number}")
        table = index.line_scopes()
        scope = table[number] if number < len(table) else None
        yield f"{rel}:{line} is in {scope or 'the module scope (runs at import time)'}"
    users = []
    for nodeid, record in sorted(tests.items()):
        dep = record.deps.get(rel)
        if dep is None:
            continue
        if scope is None or scope in dep[1]:
            users.append(nodeid)
    rootdir = project.rootdir()
    is_test_file = any(test_file(n, rootdir) == rel for n in tests)
    if not users and not is_test_file and rel not in {p for r in tests.values() for p in r.deps}:
        yield f"no mapped test depends on {rel}"
        return
    what = f"scope {scope}" if scope else rel
    yield f"{len(users)} mapped tests executed or read {what}:"
    for nodeid in users:
        yield f"  {nodeid}"


def _relative(project: Project, path: str) -> str:
    from pathlib import Path

    from tia.worktree import posix_relative

    full = Path(path) if Path(path).is_absolute() else Path.cwd() / path
    rel = posix_relative(full, project.root)
    if rel is None:
        raise UsageError(f"{path} is outside the repository {project.root}")
    return rel


def status(project: Project) -> Iterator[str]:
    tests = project.tests()
    meta = project.meta()
    yield f"map: {project.store.directory}"
    if not tests:
        yield "no map yet: run `tia map` or `tia run`"
        return
    files = {p for r in tests.values() for p in r.deps}
    failed = sum(r.failed for r in tests.values())
    yield f"tests: {len(tests)} ({failed} failed last time), files: {len(files)}"
    yield f"mapped: {_when(meta.get('mapped'))}, updated: {_when(meta.get('updated'))}"
    commit = meta.get("commit")
    built = commit[:12] if isinstance(commit, str) else "(none)"
    yield f"commit: {built}; HEAD now: {project.git.describe()}"
    worktree = project.worktree()
    now = {path: worktree.blob(path) for path in files}
    stale = sorted({p for r in tests.values() for p, (sha, _) in r.deps.items() if sha != now[p]})
    yield f"stale files (changed since tests that depend on them ran): {len(stale)}"
    for path in stale[:20]:
        yield f"  {path}"
    env = project.environment()
    recorded = meta.get("env_id")
    state = "unchanged" if recorded == env.id else "CHANGED since the map was updated"
    yield f"environment: {env.python}, {len(env.distributions)} distributions, id {env.id} ({state})"
