"""The git repository: its root, its files, refs, merge-bases and old file versions.

This is the only module that talks to git (through GitPython).  File content is
identified everywhere in tia by its git blob id (`blob_id`), so a version tia
recorded can be fetched back from git's object store when it was committed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tia.errors import GitError

# A recorded file version that tia could not pin down (it changed during the run).
UNKNOWN_BLOB = "?"


def blob_id(content: bytes) -> str:
    """The id git gives `content` as a blob (what `git hash-object` prints)."""
    header = b"blob %d\0" % len(content)
    return hashlib.sha1(header + content, usedforsecurity=False).hexdigest()


def find_root(start: Path) -> Path:
    """The top of the git work tree containing `start`, without starting git."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    raise GitError(
        f"{start} is not inside a git repository",
        hint="tia compares versions with git; run `git init` or cd into your project",
    )


@dataclass(frozen=True)
class Base:
    """The commit a `--since REF` run compares against."""

    ref: str
    commit: str
    files: dict[str, str]  # path -> blob id at that commit


class GitRepo:
    """A git work tree, opened lazily so that commands that need no git stay fast."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._repo = None

    @property
    def repo(self):  # -> git.Repo, imported lazily
        if self._repo is None:
            try:
                import git
            except ImportError as exc:  # pragma: no cover - a broken install
                raise GitError(f"GitPython cannot be imported: {exc}") from exc
            try:
                self._repo = git.Repo(self.root)
            except git.GitError as exc:
                raise GitError(f"cannot open the git repository at {self.root}: {exc}") from exc
        return self._repo

    def _git(self, *args: str) -> str:
        import git

        try:
            return self.repo.git.execute(["git", *args], stdout_as_string=True)
        except git.GitCommandError as exc:
            stderr = (exc.stderr or "").strip().removeprefix("stderr: ").strip("'\n ")
            raise GitError(f"git {args[0]} failed: {stderr or exc}") from exc

    def worktree_files(self) -> list[str]:
        """Tracked and untracked (not ignored) files, relative to the root, POSIX style."""
        out = self._git("ls-files", "-z", "--cached", "--others", "--exclude-standard")
        return sorted({p for p in out.split("\0") if p and not p.startswith(".tia/")})

    def head(self) -> str | None:
        """The commit HEAD points at, or None in a repository with no commits yet."""
        try:
            return self.repo.head.commit.hexsha
        except ValueError:
            return None

    def is_shallow(self) -> bool:
        return (Path(self.repo.git_dir) / "shallow").exists()

    def refs(self) -> list[str]:
        """Branch and remote-branch names, for error messages."""
        return [r.name for r in self.repo.refs if r.path.startswith(("refs/heads/", "refs/remotes/"))]

    def _resolve(self, ref: str) -> str:
        import git

        try:
            return self.repo.commit(ref).hexsha
        except (git.BadName, ValueError, git.BadObject):
            known = ", ".join(self.refs()[:10]) or "none"
            raise GitError(f"unknown git ref {ref!r}", hint=f"refs in this repository: {known}") from None

    def merge_base(self, ref: str) -> Base:
        """The merge-base of `ref` and HEAD, with the blob id of every file it holds."""
        target = self._resolve(ref)
        head = self.head()
        if head is None:
            raise GitError("the repository has no commits yet, so there is nothing to compare with")
        try:
            commit = self._git("merge-base", target, head).strip() if target != head else head
        except GitError:
            commit = ""  # git exits 1 when it finds no common ancestor
        if not commit:
            if self.is_shallow():
                raise GitError(
                    f"this is a shallow clone and the merge-base of {ref} and HEAD is not in it",
                    hint="fetch more history with `git fetch --deepen=50` or `git fetch --unshallow`",
                )
            raise GitError(f"{ref} and HEAD have no common ancestor")
        return Base(ref=ref, commit=commit, files=self.tree_files(commit))

    def tree_files(self, commit: str) -> dict[str, str]:
        """path -> blob id for every file in `commit`."""
        out = self._git("ls-tree", "-r", "-z", "--full-tree", commit)
        files: dict[str, str] = {}
        for entry in out.split("\0"):
            if not entry:
                continue
            meta, _, path = entry.partition("\t")
            mode, kind, sha = meta.split(" ")
            if kind == "blob" and not mode.startswith("12"):  # skip symlinks: git stores their target
                files[path] = sha
        return files

    def blob(self, sha: str) -> bytes | None:
        """The content of a blob, or None if git does not have it."""
        if sha == UNKNOWN_BLOB:
            return None
        try:
            return self.repo.odb.stream(bytes.fromhex(sha)).read()
        except Exception:  # gitdb's BadObject and BadName derive from Exception only
            return None

    def describe(self) -> str:
        head = self.head()
        return head[:12] if head else "(no commits)"
