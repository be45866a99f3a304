"""The trees of a series and of its steps (patches 1..k) are the cache's: each is exactly the
tree git gives for that commit, and shares every file it does not change with its base
(hard links), so a bisect's trees cost megabytes; nothing of the base or of the tester's
repository is ever changed through a link."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from harness.kernel import patched
from harness.mail import series
from tests.unit.test_series import ENV, git


def _commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """base, then four patches: a change, a deleted file (its directory goes with it), a new
    file and a mode change, a change again with a retargeted symlink."""
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    r = tmp_path / "repo"
    (r / "dir").mkdir(parents=True)
    git(r, "init", "-q", "-b", "main")
    (r / "README").write_text("hello\n")
    (r / "same.c").write_text("int same;\n")
    (r / "dir" / "gone.c").write_text("int gone;\n")
    (r / "run.sh").write_text("#!/bin/sh\n")
    (r / "run.sh").chmod(0o755)
    os.symlink("README", r / "link")
    _commit(r, "base")
    git(r, "tag", "base")
    (r / "README").write_text("hello\nworld\n")
    _commit(r, "README: world")
    (r / "dir" / "gone.c").unlink()
    (r / "dir").rmdir()
    _commit(r, "dir: gone")
    (r / "new").mkdir()
    (r / "new" / "added.c").write_text("int added;\n")
    (r / "run.sh").chmod(0o644)
    _commit(r, "new: added; run.sh: not run")
    (r / "README").write_text("hello\nworld\nagain\n")
    (r / "link").unlink()
    os.symlink("same.c", r / "link")
    _commit(r, "README: again; link: to same.c")
    return r


def _tree_hash(tree: Path, work: Path) -> str:
    """The git tree `tree`'s files make, as `git add -A` sees them."""
    env = {**ENV, "GIT_DIR": str(work / "scratch.git"), "GIT_WORK_TREE": str(tree),
           "GIT_INDEX_FILE": str(work / "scratch.index")}
    subprocess.run(["git", "init", "-q", "--bare", str(work / "scratch.git")], check=True,
                   env=ENV)
    (work / "scratch.index").unlink(missing_ok=True)
    subprocess.run(["git", "add", "-A"], check=True, env=env)
    return subprocess.run(["git", "write-tree"], check=True, env=env, capture_output=True,
                          text=True).stdout.strip()


def test_each_step_is_its_commits_tree_sharing_what_it_does_not_change(
        repo: Path, tmp_path: Path) -> None:
    sent = tmp_path / "sent"
    git(repo, "format-patch", "-q", "-o", str(sent), "base..main")
    s = series.read(sent, tmp_path)
    head = git(repo, "rev-parse", "HEAD")
    status = git(repo, "status", "--porcelain")
    applied = series.apply(s, repo, "base")
    base = patched.step_tree(applied, 0)
    assert patched.step_tree(applied, 4) == applied.tree
    for k in range(5):  # each step is the tree of the branch's commit k, byte for byte
        tree = patched.step_tree(applied, k)
        assert _tree_hash(tree, tmp_path) == git(repo, "rev-parse", f"main~{4 - k}^{{tree}}"), k
        assert not (tree / ".git").exists()
        record = patched.marker(tree)
        assert record is not None and record["base"] == git(repo, "rev-parse", "base")
        # what nearest.py compares: the files the step differs from the base in
        assert record["changed"] == sorted(git(repo, "diff", "--name-only", "--no-renames",
                                               "base", f"main~{4 - k}").split()), k
    assert not (patched.step_tree(applied, 1) / "dir" / "gone.c").is_symlink()
    assert not (patched.step_tree(applied, 2) / "dir").exists()  # gone with its last file
    # unchanged files are the base's own inodes; changed ones are new, and the base's
    # files kept their content and their time (2000-01-01): nothing wrote through a link
    same = {patched.step_tree(applied, k).joinpath("same.c").stat().st_ino for k in range(5)}
    assert same == {(base / "same.c").stat().st_ino}
    assert (applied.tree / "README").stat().st_ino != (base / "README").stat().st_ino
    assert (patched.step_tree(applied, 1) / "README").read_text() == "hello\nworld\n"
    assert (base / "README").read_text() == "hello\n"
    assert os.readlink(base / "link") == "README" and os.readlink(applied.tree / "link") == "same.c"
    assert (base / "run.sh").stat().st_mode & stat.S_IXUSR
    assert not (applied.tree / "run.sh").stat().st_mode & stat.S_IXUSR
    for dirpath, _, files in os.walk(base):
        for f in files:
            p = Path(dirpath, f)
            if not p.is_symlink():
                assert p.stat().st_mtime_ns == patched.BASE_TIME_NS, p
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "status", "--porcelain") == status
    # asked again: the same entries, nothing made anew
    again = series.apply(series.read(sent, tmp_path), repo, "base")
    assert patched.step_tree(again, 2) == patched.step_tree(applied, 2)


def test_a_step_out_of_range_is_a_bug(repo: Path, tmp_path: Path) -> None:
    sent = tmp_path / "sent"
    git(repo, "format-patch", "-q", "-o", str(sent), "base..main")
    applied = series.apply(series.read(sent, tmp_path), repo, "base")
    with pytest.raises(ValueError):
        patched.step_tree(applied, 5)


def test_files_and_symlinks_that_become_directories_and_back(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """A step between a file (or symlink) and a directory of the same name, either way, is
    its commit's tree; the cache's build directories at the base's top are never linked."""
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    (r / "x").write_text("a file\n")
    (r / "d").mkdir()
    (r / "d" / "in.c").write_text("int in;\n")
    os.symlink("x", r / "l")
    _commit(r, "base")
    git(r, "tag", "base")
    (r / "x").unlink()
    (r / "x").mkdir()
    (r / "x" / "y").write_text("now a directory\n")
    _commit(r, "x: a directory")
    (r / "l").unlink()
    (r / "l").mkdir()
    (r / "l" / "z").write_text("was a symlink\n")
    _commit(r, "l: a directory")
    (r / "d" / "in.c").unlink()
    (r / "d").rmdir()
    (r / "d").write_text("a file now\n")
    _commit(r, "d: a file")
    sent = tmp_path / "sent"
    git(r, "format-patch", "-q", "-o", str(sent), "base..main")
    applied = series.apply(series.read(sent, tmp_path), r, "base")
    base = patched.step_tree(applied, 0)
    assert _tree_hash(base, tmp_path) == git(r, "rev-parse", "base^{tree}")
    (base / ".ltoboot-x86_64-thin-0123").mkdir()  # as a build of the base leaves it
    (base / ".ltoboot-x86_64-thin-0123" / "vmlinux").write_text("")
    for k in range(1, 4):
        tree = patched.step_tree(applied, k)
        assert _tree_hash(tree, tmp_path) == git(r, "rev-parse", f"main~{3 - k}^{{tree}}"), k
        assert not list(tree.glob(".ltoboot-*"))


def test_a_cached_series_steps_from_the_repository_it_is_tested_from(
        repo: Path, tmp_path: Path) -> None:
    """The repository the series was first applied from is gone (moved, re-cloned): the same
    series from another clone is the cache's entry, and its steps borrow the new clone's
    objects."""
    sent = tmp_path / "sent"
    git(repo, "format-patch", "-q", "-o", str(sent), "base..main")
    first = series.apply(series.read(sent, tmp_path), repo, "base")
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(repo), str(other)], check=True,
                   env=ENV)
    shutil.rmtree(repo)
    again = series.apply(series.read(sent, tmp_path), other, "base")
    assert again.tree == first.tree  # the cache's entry: the same series on the same base
    tree = patched.step_tree(again, 2)
    assert _tree_hash(tree, tmp_path) == git(other, "rev-parse", "main~2^{tree}")


def test_the_testers_git_config_does_not_change_the_trees(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tester whose git writes symlinks as files and LF as CRLF (core.symlinks=false,
    core.autocrlf=true): the base, the series and its steps are still their commits' trees."""
    config = tmp_path / "gitconfig"
    config.write_text("[core]\n\tsymlinks = false\n\tautocrlf = true\n\tfilemode = false\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    sent = tmp_path / "sent"
    git(repo, "format-patch", "-q", "-o", str(sent), "base..main")
    applied = series.apply(series.read(sent, tmp_path), repo, "base")
    for k in range(5):  # (the comparison's git runs with the environment of before)
        tree = patched.step_tree(applied, k)
        assert (tree / "link").is_symlink() and b"\r" not in (tree / "README").read_bytes()
        assert _tree_hash(tree, tmp_path) == git(repo, "rev-parse", f"main~{4 - k}^{{tree}}"), k
