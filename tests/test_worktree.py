"""The work tree's blob ids: what git would compute, reusing a stat cache for unchanged files."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tia.selection import changed_paths
from tia.worktree import WorkTree, posix_relative, snapshot_id

FAKE = "f" * 40


def git_hash(root: Path, rel: str) -> str:
    out = subprocess.run(
        ["git", "hash-object", "--no-filters", rel], cwd=root, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def age(path: Path, seconds: float = 60.0) -> os.stat_result:
    """Backdate `path` so it is past the racy window; return its stat."""
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path.stat()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize(
    "content",
    [b"", b"print('hello')\n", b"line one\r\nline two\r\n", bytes(range(256)) * 3, "ünïcode ✓\n".encode()],
    ids=["empty", "text", "crlf", "binary", "utf8"],
)
def test_blob_ids_equal_what_git_hash_object_prints(tmp_path, content):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "f.bin").write_bytes(content)
    assert WorkTree(tmp_path, {}).blob("pkg/f.bin") == git_hash(tmp_path, "pkg/f.bin")


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_blob_ids_equal_the_ids_git_stores_on_commit(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "config", "core.autocrlf", "false"], cwd=tmp_path, check=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.txt").write_bytes(b"\x00\x01binary")
    subprocess.run(["git", "add", "a.py", "b.txt"], cwd=tmp_path, check=True)
    staged = subprocess.run(
        ["git", "ls-files", "-s"], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout
    ids = {line.split("\t")[1]: line.split()[1] for line in staged.splitlines()}
    assert WorkTree(tmp_path, {}).listing(["a.py", "b.txt"]) == ids


def test_an_unchanged_file_keeps_its_cached_blob_id_without_being_hashed(tmp_path):
    path = tmp_path / "a.py"
    path.write_text("x = 1\n")
    st = age(path)
    tree = WorkTree(tmp_path, {"a.py": [st.st_mtime_ns, st.st_size, FAKE]})
    assert tree.blob("a.py") == FAKE
    assert tree.dirty is False
    assert tree.stat == {"a.py": [st.st_mtime_ns, st.st_size, FAKE]}


@pytest.mark.parametrize(
    "entry",
    [
        [],
        "x",
        None,
        ["m", "s", FAKE],
        ["MTIME", "SIZE"],
        ["MTIME", "SIZE", 7],
        ["MTIME", "SIZE", FAKE, "more"],
        {"0": "MTIME", "1": "SIZE", "2": FAKE},
    ],
)
def test_a_stat_cache_entry_not_in_the_shape_tia_writes_is_hashed_afresh(tmp_path, entry):
    # The stat cache comes back from the map unchecked (it may come from anywhere): an
    # entry is trusted only as [mtime_ns, size, blob id] matching the file's stat.
    path = tmp_path / "a.py"
    path.write_text("x = 1\n")
    st = age(path)
    fields = {"MTIME": st.st_mtime_ns, "SIZE": st.st_size}

    def filled(value):
        if isinstance(value, list):
            return [fields.get(v, v) if isinstance(v, str) else v for v in value]
        if isinstance(value, dict):
            return {k: fields.get(v, v) for k, v in value.items()}
        return value

    true_id = git_hash(tmp_path, "a.py")
    assert WorkTree(tmp_path, {"a.py": filled(entry)}).blob("a.py") == true_id
    tree = WorkTree(tmp_path, {"a.py": filled(entry)})
    assert tree.listing(["a.py"]) == {"a.py": true_id}
    assert tree.stat == {"a.py": [st.st_mtime_ns, st.st_size, true_id]}
    assert tree.dirty is True


def test_a_file_whose_content_and_size_changed_is_hashed_again(tmp_path):
    path = tmp_path / "a.py"
    path.write_text("x = 1\n")
    st = age(path)
    tree = WorkTree(tmp_path, {"a.py": [st.st_mtime_ns, st.st_size, FAKE]})
    path.write_text("x = 22\n")
    new = age(path, 30.0)

    sha = tree.blob("a.py")

    assert sha != FAKE
    assert sha == WorkTree(tmp_path, {}).blob("a.py")
    assert tree.stat["a.py"] == [new.st_mtime_ns, new.st_size, sha]
    assert tree.dirty is True


def test_a_file_with_the_same_size_but_a_new_mtime_is_hashed_again(tmp_path):
    path = tmp_path / "a.py"
    path.write_text("x = 1\n")
    st = age(path, 60.0)
    tree = WorkTree(tmp_path, {"a.py": [st.st_mtime_ns, st.st_size, FAKE]})
    path.write_text("x = 2\n")
    new = age(path, 30.0)
    assert new.st_size == st.st_size

    sha = tree.blob("a.py")

    assert sha not in (None, FAKE)
    assert tree.stat["a.py"][2] == sha


def test_an_old_file_hashed_for_the_first_time_enters_the_stat_cache(tmp_path):
    path = tmp_path / "a.py"
    path.write_text("x = 1\n")
    st = age(path)
    tree = WorkTree(tmp_path, {})
    sha = tree.blob("a.py")
    assert tree.stat == {"a.py": [st.st_mtime_ns, st.st_size, sha]}
    assert tree.dirty is True


def test_a_file_modified_in_the_last_two_seconds_is_hashed_but_not_cached(tmp_path):
    path = tmp_path / "a.py"
    path.write_text("x = 1\n")
    tree = WorkTree(tmp_path, {})
    assert tree.blob("a.py") is not None
    assert tree.stat == {}
    assert tree.dirty is False


@pytest.mark.parametrize("kind", ["missing", "directory", "fifo"])
def test_a_path_that_is_not_a_regular_file_has_no_blob_id(tmp_path, kind):
    if kind == "directory":
        (tmp_path / "x").mkdir()
    elif kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs here")
        os.mkfifo(tmp_path / "x")
    tree = WorkTree(tmp_path, {})
    assert tree.blob("x") is None
    assert tree.stat == {}


def test_listing_maps_regular_files_and_forgets_stat_entries_for_other_paths(tmp_path):
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text(name)
        age(tmp_path / name)
    (tmp_path / "d").mkdir()
    tree = WorkTree(tmp_path, {"gone.py": [1, 2, FAKE]})

    listing = tree.listing(["a.py", "b.py", "d", "missing.py"])

    assert set(listing) == {"a.py", "b.py"}
    assert "gone.py" not in tree.stat
    assert set(tree.stat) == {"a.py", "b.py"}
    assert tree.dirty is True


def test_listing_of_unchanged_cached_files_leaves_the_stat_cache_clean(tmp_path):
    path = tmp_path / "a.py"
    path.write_text("x")
    st = age(path)
    tree = WorkTree(tmp_path, {"a.py": [st.st_mtime_ns, st.st_size, FAKE]})
    assert tree.listing(["a.py"]) == {"a.py": FAKE}
    assert tree.dirty is False


def test_read_returns_the_bytes_or_none(tmp_path):
    (tmp_path / "a.py").write_bytes(b"\x00data")
    tree = WorkTree(tmp_path, {})
    assert tree.read("a.py") == b"\x00data"
    assert tree.read("missing.py") is None


def test_a_path_with_a_nul_byte_has_no_blob_id(tmp_path):
    assert WorkTree(tmp_path, {}).blob("a\x00b.py") is None


def test_a_snapshot_id_depends_on_content_not_on_order():
    one = snapshot_id({"a.py": "1", "b.py": "2"})
    assert one == snapshot_id({"b.py": "2", "a.py": "1"})
    assert one != snapshot_id({"a.py": "1", "b.py": "3"})
    assert one != snapshot_id({"a.py": "1"})
    assert len(one) == 24


def test_posix_relative_gives_a_path_inside_the_root_or_none(tmp_path):
    root = tmp_path.resolve()
    (root / "pkg").mkdir()
    assert posix_relative(root / "pkg" / "a.py", root) == "pkg/a.py"
    assert posix_relative(root, root) == "."
    assert posix_relative(root.parent / "elsewhere.py", root) is None


def test_changed_paths_are_those_modified_added_or_deleted_between_two_listings() -> None:
    old = {"same.py": "1", "modified.py": "2", "deleted.py": "3", "moved_from.py": "4"}
    new = {"same.py": "1", "modified.py": "5", "added.py": "6", "moved_to.py": "4"}
    expected = {"modified.py", "deleted.py", "added.py", "moved_from.py", "moved_to.py"}
    assert changed_paths(old, new) == expected
    assert changed_paths(new, old) == expected
    assert changed_paths(old, dict(old)) == set()
    assert changed_paths({}, new) == set(new)
