"""The git repository: its root, its files, refs, merge-bases and old file versions.

This is the only module that talks to git.  File content is identified
everywhere in tia by its git blob id (`blob_id`), so a version tia recorded can
be fetched back from git's object store when it was committed.

Listings and other plumbing commands run the ``git`` executable directly; GitPython
is imported only when a ref must be resolved, HEAD read or an old blob fetched, since
importing it costs more than listing a large work tree (every `tia run` lists it).

Submodules are part of the project: their files are listed in place of the
gitlink that records them, both in the work tree and at a base commit (whose
gitlink names the submodule commit to list), and their object stores are
searched for old versions.  A submodule commit git cannot list counts as
unknown, so its files compare as changed, never as unchanged.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from tia.errors import GitError
from tia.values import FrozenValue

# A recorded file version that tia could not pin down (it changed during the run).
UNKNOWN_BLOB = "?"
# git's mode for a gitlink, the entry that records a submodule's commit.
_GITLINK_MODE = "160000"


def _outside_maps(path: str) -> bool:
    """Whether `path` lies outside every `.tia/` directory: a map (each pytest root of a
    monorepo has one) is never a project file, even if no .gitignore says so."""
    # The substring test first: it settles almost every path without splitting it.
    return ".tia/" not in path or ".tia" not in path.split("/")[:-1]


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


class Base(FrozenValue):
    """The commit a `--since REF` run compares against."""

    __slots__ = ("commit", "files", "ref")

    def __init__(self, ref: str, commit: str, files: dict[str, str]) -> None:
        self.ref = ref
        self.commit = commit
        self.files = files  # path -> blob id at that commit, submodules' files included


class GitRepo:
    """A git work tree, opened lazily so that commands that need no git stay fast."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._repo = None
        # Checked-out submodules met while listing, by path: old versions of their files
        # live in their own object stores.
        self._submodules: dict[str, GitRepo] = {}
        self._listing: tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]] | None = None

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
        """What ``git ARGS`` prints in the work tree (less one trailing newline), as GitPython
        would return it: decoded as file names are, in the C locale so messages read alike."""
        return self._output(self._start(*args), args[0])

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "LANGUAGE": "C", "LC_ALL": "C"}
        try:
            return subprocess.Popen(
                ["git", *args],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise GitError(f"cannot run git {args[0]}: {exc.strerror or exc}") from exc

    def _output(self, proc: subprocess.Popen[bytes], command: str) -> str:
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            message = stderr.decode("utf-8", "replace").strip()
            raise GitError(f"git {command} failed: {message or f'exit status {proc.returncode}'}")
        return stdout.decode(sys.getfilesystemencoding(), "surrogateescape").removesuffix("\n")

    def start_listing(self) -> None:
        """Start the git processes `worktree_files` reads, so that they run while tia does
        other work (loading the rest of itself: 10 ms of git, on a 1,000-file repository,
        that a run that finds nothing to do no longer waits for)."""
        if self._listing is None:
            self._listing = self._list()

    def discard_listing(self) -> None:
        """Stop the listing `start_listing` started, if any: the next one starts afresh."""
        for proc in self._listing or ():
            proc.kill()
            proc.communicate()
        self._listing = None

    def _list(self) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
        # Both at once: on two cores, each runs while the other starts.
        return (
            self._start("ls-files", "-z", "--others", "--exclude-standard"),
            self._start("ls-files", "-z", "--stage"),
        )

    def _submodule(self, path: str) -> GitRepo | None:
        """The submodule checked out at `path`, or None if it is not checked out."""
        if path not in self._submodules:
            if not (self.root / path / ".git").exists():
                return None
            self._submodules[path] = GitRepo(self.root / path)
        return self._submodules[path]

    def worktree_files(self) -> list[str]:
        """Tracked and untracked (not ignored) files, relative to the root, POSIX style,
        with the files of each checked-out submodule (tracked and untracked) in place of its gitlink."""
        # git lists gitlinks among the tracked files, and never looks inside a submodule for
        # untracked ones (`--recurse-submodules` lists tracked files only): list each submodule itself.
        others, stage = self._listing or self._list()
        self._listing = None
        files = set(self._output(others, "ls-files").split("\0"))
        for entry in self._output(stage, "ls-files").split("\0"):
            meta, _, path = entry.partition("\t")
            if not meta.startswith(_GITLINK_MODE + " "):
                files.add(path)
            elif (sub := self._submodule(path)) is not None:
                files.update(f"{path}/{p}" for p in sub.worktree_files())
        return sorted(p for p in files if p and _outside_maps(p))

    def head(self) -> str | None:
        """The commit HEAD points at, or None in a repository with no commits yet."""
        # One git process costs milliseconds; importing GitPython for this costs 0.2 s,
        # and storing a run needs nothing else of it.
        try:
            out = self._git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        except GitError:
            return None
        return out or None

    def is_shallow(self) -> bool:
        # A linked worktree's git_dir is private to it; the shallow file is in the common dir.
        return (Path(self.repo.common_dir) / "shallow").exists()

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
        """path -> blob id for every file in `commit`, and in the submodule commits it records."""
        out = self._git("ls-tree", "-r", "-z", "--full-tree", commit)
        files: dict[str, str] = {}
        for entry in out.split("\0"):
            if not entry:
                continue
            meta, _, path = entry.partition("\t")
            mode, kind, sha = meta.split(" ")
            if mode == _GITLINK_MODE:
                files.update(self._submodule_tree(path, sha))
            elif kind == "blob" and not mode.startswith("12"):  # skip symlinks: git stores their target
                files[path] = sha
        return files

    def _submodule_tree(self, path: str, commit: str) -> dict[str, str]:
        """The files of the submodule at `path` as of its `commit`, prefixed with `path`.

        A commit the submodule's clone does not have (never fetched, or pruned) gives the
        submodule's files as they are now with no known version, so each counts as changed."""
        sub = self._submodule(path)
        if sub is None:
            return {}  # not checked out: the work tree holds none of its files to compare
        try:
            files = sub.tree_files(commit)
        except GitError:
            files = dict.fromkeys(sub.worktree_files(), UNKNOWN_BLOB)
        return {f"{path}/{p}": sha for p, sha in files.items()}

    def blob(self, sha: str) -> bytes | None:
        """The content of a blob, from this repository or a submodule listed so far, or None
        if git does not have it."""
        if sha == UNKNOWN_BLOB:
            return None
        try:
            return self.repo.odb.stream(bytes.fromhex(sha)).read()
        except Exception:  # gitdb's BadObject and BadName derive from Exception only
            pass
        for sub in self._submodules.values():
            content = sub.blob(sha)
            if content is not None:
                return content
        return None

    def describe(self) -> str:
        head = self.head()
        return head[:12] if head else "(no commits)"

    def upstream(self, remote: str | None) -> str:
        """What a push of the current branch is compared with: the branch's upstream, else
        the remote's default branch (``<remote>/HEAD``), else ``main``."""
        for args in (
            ("rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}"),
            ("symbolic-ref", "--short", f"refs/remotes/{remote or 'origin'}/HEAD"),
        ):
            try:
                ref = self._git(*args).strip()
            except GitError:
                continue  # no upstream configured, or the remote has no default branch recorded
            if ref:
                return ref
        self._resolve("main")  # a one-line error naming the refs there are, if main is missing too
        return "main"

    def hooks_dir(self) -> Path:
        """Where git looks for hooks (honours ``core.hooksPath`` and linked worktrees)."""
        path = Path(self._git("rev-parse", "--git-path", "hooks").strip())
        return path if path.is_absolute() else self.root / path
