"""Changes between two versions of a file, in scopes.

`Versions` finds the scope index of any version tia meets (by blob id): from
the store, where every recorded version's index is kept, else from git's
object store or the work tree, indexing it once.  `Versions.diff` answers the
selector's one question: how do these two versions of this file differ?
"""

from __future__ import annotations

from collections.abc import Callable

from tia.scopes import UNCHANGED, FileDiff, FileIndex, diff_indexes, index_source


class Versions:
    """Scope indexes by blob id, cached; and file diffs built from them.

    Attributes:
        new: indexes computed here that the store did not have yet.
        unknown: blob ids whose index was nowhere to be had (not in the store, git or
            the work tree); a diff against one counts as a module change.
    """

    def __init__(
        self,
        stored: Callable[[str], FileIndex | None],
        blob: Callable[[str], bytes | None],
        worktree: Callable[[str], bytes | None],
        current: dict[str, str],
    ) -> None:
        self._stored = stored
        self._blob = blob
        self._worktree = worktree
        self._current = current
        self._cache: dict[str, FileIndex | None] = {}
        self._diffs: dict[tuple[str, str | None, str | None], FileDiff] = {}
        self.new: dict[str, FileIndex] = {}
        self.unknown: set[str] = set()

    def index(self, path: str, sha: str) -> FileIndex | None:
        """The index of version `sha` of `path`, or None if that version is nowhere to be had."""
        if sha in self._cache:
            return self._cache[sha]
        index = self._stored(sha)
        if index is None:
            content = self._worktree(path) if self._current.get(path) == sha else None
            if content is None:
                content = self._blob(sha)
            if content is not None:
                index = index_source(content, path)
                self.new[sha] = index
            else:
                self.unknown.add(sha)
        self._cache[sha] = index
        return index

    def current_index(self, path: str) -> FileIndex | None:
        sha = self._current.get(path)
        return self.index(path, sha) if sha else None

    def diff(self, path: str, old: str | None, new: str | None) -> FileDiff:
        key = (path, old, new)
        if key not in self._diffs:
            self._diffs[key] = self._compute(path, old, new)
        return self._diffs[key]

    def _compute(self, path: str, old: str | None, new: str | None) -> FileDiff:
        if old == new:
            return UNCHANGED
        if old is None:
            return FileDiff(module_changed=True, detail="new file")
        if new is None:
            return FileDiff(module_changed=True, detail="deleted")
        if not path.endswith(".py"):
            return FileDiff(module_changed=True, detail="content changed")
        before, after = self.index(path, old), self.index(path, new)
        if after is not None and after.error:
            return FileDiff(module_changed=True, detail=f"does not parse: {after.error}")
        if before is None or after is None:
            return FileDiff(module_changed=True, detail="previous version unknown")
        return diff_indexes(before, after)
