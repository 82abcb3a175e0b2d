"""End to end: tia as a pre-push hook, through pre-commit and through `tia install-hook`.

Each test pushes for real: a bare remote, a clone with tia's map, a branch whose
change breaks a test (the push is refused) or breaks nothing (it goes through).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import GitProject, Result, clean_env, clone_of, sample_remote

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]


def hook_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a developer whose test environment has tia (and pre-commit)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return clean_env(PATH=path, PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"))


def run(cwd: Path, *cmd: str, env: dict[str, str]) -> Result:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def remote_branches(remote: Path) -> set[str]:
    out = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname:short)", "refs/heads"],
        cwd=remote,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


@pytest.fixture
def clone(tmp_path: Path) -> GitProject:
    """A developer's clone of a remote holding the sample project, mapped by tia."""
    project = clone_of(sample_remote(tmp_path), tmp_path / "work")
    assert project.tia("map").rc == 0
    project.git("checkout", "-q", "-b", "feature")
    return project


def pre_commit_config(project: GitProject, tmp_path: Path, hook: str) -> None:
    """Point the clone's pre-commit at a repository holding this checkout's hook manifest."""
    hooks = GitProject(tmp_path / "hooks-repo")
    shutil.copy(REPO_ROOT / ".pre-commit-hooks.yaml", hooks.path / ".pre-commit-hooks.yaml")
    rev = hooks.commit("hooks")
    project.write(
        ".pre-commit-config.yaml",
        f"""
        repos:
          - repo: {hooks.path}
            rev: {rev}
            hooks:
              - id: {hook}
        """,
    )
    project.write(".gitignore", ".tia/\n")
    project.commit("use tia's hook")


def test_the_pre_commit_hook_blocks_a_push_that_breaks_a_test(clone: GitProject, tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    pre_commit_config(clone, tmp_path, "tia")
    installed = run(
        clone.path, sys.executable, "-m", "pre_commit", "install", "--hook-type", "pre-push", env=env
    )
    assert installed.rc == 0, installed

    clone.replace("pkg/core.py", "return a + b", "return a - b")
    clone.commit("break add")
    refused = run(clone.path, "git", "push", "-q", "origin", "feature", env=env)
    assert refused.rc != 0, refused
    assert "FAILED tests/test_core.py::test_add" in refused.output
    assert "comparing with origin/main" in refused.output
    assert "feature" not in remote_branches(tmp_path / "remote.git")

    clone.replace("pkg/core.py", "return a - b", "return a + b")
    clone.replace("pkg/core.py", "# multiply", "# multiply the two")
    clone.commit("fix add")
    pushed = run(clone.path, "git", "push", "-q", "origin", "feature", env=env)
    assert pushed.rc == 0, pushed
    assert "feature" in remote_branches(tmp_path / "remote.git")


def test_the_select_hook_lists_what_the_push_affects(clone: GitProject, tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    pre_commit_config(clone, tmp_path, "tia-select")
    clone.replace("pkg/core.py", "return a * b", "return a * b + 0")
    clone.commit("touch mul")
    result = run(clone.path, sys.executable, "-m", "pre_commit", "run", "--hook-stage", "pre-push", env=env)
    assert result.rc == 0, result
    listed = [line for line in result.output.splitlines() if line.startswith("tests/")]
    assert len(listed) == 1, result
    assert listed[0].startswith("tests/test_core.py::test_mul    [")
    assert "since: pkg/core.py::mul" in listed[0]
    assert "test_add" not in result.output


def test_install_hook_writes_a_plain_git_pre_push_hook(clone: GitProject, tmp_path: Path) -> None:
    env = hook_env(tmp_path)
    result = clone.tia("install-hook", env=env)
    assert result.rc == 0, result
    hook = clone.path / ".git" / "hooks" / "pre-push"
    assert os.access(hook, os.X_OK)

    again = clone.tia("install-hook", env=env)
    assert again.rc != 0
    assert again.stderr.strip().splitlines() == [
        f"tia: error: {hook} already exists (pass --force to replace it, or call "
        "`tia run --since-upstream` from it yourself)"
    ]
    assert clone.tia("install-hook", "--force", env=env).rc == 0

    clone.replace("pkg/uses.py", "return x * consts.FACTOR", "return x * consts.FACTOR + 1")
    clone.commit("break scaled")
    refused = run(clone.path, "git", "push", "-q", "origin", "feature", env=env)
    assert refused.rc != 0, refused
    assert "FAILED tests/test_uses.py::test_scaled" in refused.output
    assert "feature" not in remote_branches(tmp_path / "remote.git")
    clone.replace("pkg/uses.py", "return x * consts.FACTOR + 1", "return x * consts.FACTOR")
    clone.commit("fix scaled")
    assert run(clone.path, "git", "push", "-q", "origin", "feature", env=env).rc == 0


def test_since_upstream_prefers_the_upstream_then_the_remote_default_then_main(
    clone: GitProject, tmp_path: Path
) -> None:
    env = hook_env(tmp_path)
    default = clone.tia("select", "--since-upstream", env=env)
    assert "tia: comparing with origin/main" in default.stderr, default
    assert run(clone.path, "git", "push", "-q", "-u", "origin", "feature", env=env).rc == 0
    upstream = clone.tia("select", "--since-upstream", env=env)
    assert "tia: comparing with origin/feature" in upstream.stderr, upstream
    clone.git("branch", "--unset-upstream")
    clone.git("remote", "set-head", "origin", "--delete")
    fallback = clone.tia("select", "--since-upstream", env=env)
    assert "tia: comparing with main" in fallback.stderr, fallback
