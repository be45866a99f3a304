"""`ltoboot bisect` reads the tester's repository and writes nothing in it (.git included): it
bisects in the cache's clone. On a scratch repository with a step that builds nothing (the
real step, a kernel built and booted per commit, is tests/test_bisect.py)."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.base import progress
from harness.base.errors import BuildError
from harness.faces import cli
from harness.kernel import build, identity, nearest, source
from harness.kernel.build import Plan
from harness.kernel.model import BuildSpec, Checkout
from harness.kernel.toolchain import Toolchain
from harness.runs import bisect

OLD = 1_000_000_000  # 2001: every path of the scratch repository gets this time

# The step `git bisect run` is given, in place of `python -m harness.faces.cli bisect-step ...`: it
# must be told the tree git checked out (its cwd), and calls a commit bad when it has BAD.
FAKE_STEP = ("import os, sys\n"
             "src, = [a.split('=', 1)[1] for a in sys.argv if a.startswith('--kernel-src=')]\n"
             "if os.path.realpath(src) != os.path.realpath(os.getcwd()):\n"
             "    sys.exit(255)\n"
             "sys.exit(1 if os.path.exists('BAD') else 0)\n")


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e.invalid",
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
           "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def _commit(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", f"{name}: {text.strip()}")
    return _git(repo, "rev-parse", "HEAD")


def _age(repo: Path) -> None:
    """Every path an old time: whatever is written afterwards has another mtime, and (after a
    pause longer than the clock's tick) another ctime."""
    for dirpath, dirnames, filenames in os.walk(repo):
        for name in (*dirnames, *filenames):
            os.utime(os.path.join(dirpath, name), (OLD, OLD), follow_symlinks=False)
    os.utime(repo, (OLD, OLD))
    time.sleep(0.05)


def _scratch_repo(repo: Path) -> list[str]:
    """A small kernel-looking repository: packed and loose objects, a symlink, an executable;
    commit 4 of 6 adds BAD."""
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "gc.auto", "0")
    for name in ("Makefile", "Kconfig"):  # what makes it a kernel tree to source.resolve
        (repo / name).write_text("")
    (repo / "tool.sh").write_text("#!/bin/sh\n")
    (repo / "tool.sh").chmod(0o755)
    (repo / "link").symlink_to("Makefile")
    commits = [_commit(repo, "README", "one\n"), _commit(repo, "README", "two\n")]
    _git(repo, "repack", "-a", "-d", "-q")  # a pack a local clone would hard-link
    commits += [_commit(repo, "README", "three\n"), _commit(repo, "BAD", "bad\n"),
                _commit(repo, "README", "five\n"), _commit(repo, "README", "six\n")]
    _age(repo)
    return commits


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """(mode, size, mtime_ns, ctime_ns, symlink target or content hash) of every path under
    `root`, itself and .git included."""
    found: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for path in [dirpath] + [os.path.join(dirpath, n) for n in (*dirnames, *filenames)]:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                what = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            else:
                what = ""
            found[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns,
                                                  st.st_ctime_ns, st.st_nlink, what)
    return found


@pytest.fixture
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def fake_step(monkeypatch: pytest.MonkeyPatch) -> list[Sequence[str]]:
    """`git bisect run` runs FAKE_STEP with the argv ltoboot gives the real step; the argvs
    are kept."""
    real = bisect._bisect_run
    given: list[Sequence[str]] = []

    def run(tree: Path, argv: Sequence[str], log: Path) -> str:
        given.append(argv)
        return real(tree, [sys.executable, "-c", FAKE_STEP, *argv], log)

    monkeypatch.setattr(bisect, "_bisect_run", run)
    return given


def _bisect(repo: Path, good: str, bad: str) -> int:
    return cli.main(["bisect", "--kernel-src", str(repo), "--good", good, "--bad", bad])


def test_bisect_writes_nothing_in_the_testers_repository(
        tmp_path: Path, cache_root: Path, fake_step: list[Sequence[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "linux"
    c = _scratch_repo(repo)
    head = _git(repo, "rev-parse", "HEAD")
    before = snapshot(repo)
    assert _bisect(repo, c[0], c[4]) == 0
    out = capsys.readouterr().out
    assert f"first bad commit: {c[3]} BAD: bad" in out, out
    assert snapshot(repo) == before
    assert _git(repo, "rev-parse", "HEAD") == head
    # the step was told the clone, which the cache owns: its builds may live inside it
    clone, = (Path(a.split("=", 1)[1]) for a in fake_step[0] if a.startswith("--kernel-src="))
    assert clone.parent == cache_root / source.BISECT_TREES and source.bisect_clone(clone)
    assert not (clone / ".git" / "objects" / "info" / "alternates").exists()  # own objects
    assert not (clone / ".git" / "BISECT_LOG").exists()

    # a later bisect fetches what the clone lacks (a commit on no branch: by hash)
    _git(repo, "checkout", "-q", "--detach")
    new = _commit(repo, "README", "seven\n")
    _git(repo, "checkout", "-q", "-")
    _age(repo)
    before = snapshot(repo)
    assert _bisect(repo, c[1], new) == 0
    assert f"first bad commit: {c[3]} BAD: bad" in capsys.readouterr().out
    assert snapshot(repo) == before


def test_a_clone_a_killed_bisect_left_is_reset_and_the_testers_own_bisect_is_no_matter(
        tmp_path: Path, cache_root: Path, fake_step: list[Sequence[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "linux"
    c = _scratch_repo(repo)
    assert _bisect(repo, c[0], c[5]) == 0
    clone = bisect.clone_dir(repo)
    _git(clone, "bisect", "start", c[5], c[0])  # as a run killed mid-bisect leaves it
    _git(repo, "bisect", "start", c[5], c[0])  # the tester bisects by hand meanwhile
    before = snapshot(repo)
    said: list[str] = []
    previous = progress.set_sink(said.append)
    try:
        assert _bisect(repo, c[2], c[4]) == 0
    finally:
        progress.set_sink(previous)
    assert any("resetting the bisect a killed run left" in line for line in said), said
    assert f"first bad commit: {c[3]} BAD: bad" in capsys.readouterr().out
    assert snapshot(repo) == before


def test_a_worktree_bisecting_on_its_own_is_bisected_and_left_alone(
        tmp_path: Path, cache_root: Path, fake_step: list[Sequence[str]],
        capsys: pytest.CaptureFixture[str]) -> None:
    """A tester's own bisect in a worktree is theirs: no refusal, nothing of it touched; a
    commit on no branch (the worktree's detached HEAD) is found by hash."""
    repo = tmp_path / "linux"
    c = _scratch_repo(repo)
    wt = tmp_path / "wt"
    _git(repo, "worktree", "add", "-q", "--detach", str(wt), c[5])
    extra = _commit(wt, "README", "seven\n")
    _git(wt, "bisect", "start", extra, c[0])
    _age(repo)
    _age(wt)
    before = snapshot(repo), snapshot(wt)
    assert _bisect(wt, c[1], extra) == 0
    assert f"first bad commit: {c[3]} BAD: bad" in capsys.readouterr().out
    assert (snapshot(repo), snapshot(wt)) == before
    assert "git bisect start" in _git(wt, "bisect", "log")


def test_a_tree_with_local_changes_is_refused_by_name(
        tmp_path: Path, cache_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "linux"
    c = _scratch_repo(repo)
    (repo / "README").write_text("local change\n")
    assert _bisect(repo, c[0], c[5]) == 2
    err = capsys.readouterr().err
    assert err == f"ltoboot: error: {repo} has uncommitted changes: commit or stash them " \
        "first\n"
    assert not (cache_root / source.BISECT_TREES).exists()  # refused before any clone


def test_reading_a_trees_identity_writes_nothing(tmp_path: Path, cache_root: Path) -> None:
    """`git diff` and `describe --dirty` write the index of a tree whose file times are
    newer than it knows, even with --no-optional-locks: identity.content uses neither."""
    repo = tmp_path / "linux"
    _scratch_repo(repo)
    (repo / "README").write_text("local change\n")
    os.utime(repo / "Makefile", (OLD + 1, OLD + 1))  # the index's record of it is stale
    time.sleep(0.05)
    before = snapshot(repo)
    found = identity.content(repo)
    assert snapshot(repo) == before
    assert found.identity.startswith("git:") and not found.identity.endswith(":")  # dirty
    assert "-dirty (" in found.description


class _Built(Exception):
    pass


def _fake_plan_and_build(monkeypatch: pytest.MonkeyPatch,
                         donor: nearest.Donor | None) -> list[tuple[Path, object]]:
    """step() with a plan of the real source (source.resolve) and a build that only says
    where it would build and from which donor, then fails (the step answers skip)."""
    built: list[tuple[Path, object]] = []

    def plan(spec: BuildSpec) -> Plan:
        return Plan(spec, source.resolve(spec.kernel_src), Toolchain("", "clang", "lld", 19),
                    {}, "key", {}, frozenset(), "kin", "near", Checkout())

    def compile_kernel(out: Path, *args: object, donor: object = None,
                       **kwargs: object) -> None:
        built.append((out, donor))
        # a step configures afresh: the last step's config is gone before it builds
        assert not (out / ".config").exists(), "the last step's .config is still there"
        raise BuildError("make (all) failed")

    monkeypatch.setattr(bisect, "plan", plan)
    monkeypatch.setattr(bisect, "compile_kernel", compile_kernel)
    monkeypatch.setattr(bisect, "find_donor", lambda p, out, root: donor)
    return built


def test_a_step_in_the_testers_tree_builds_in_the_cache(
        tmp_path: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`git bisect run ltoboot bisect-step` in the tester's own tree: it stays as it is."""
    repo = tmp_path / "linux"
    c = _scratch_repo(repo)
    _git(repo, "checkout", "-q", "--detach", c[2])  # the tester's git bisect does this
    _age(repo)
    built = _fake_plan_and_build(monkeypatch, None)
    before = snapshot(repo)
    spec = BuildSpec(arch="x86_64", kernel_src=str(repo))
    assert bisect.step(spec, "tcg", 1, (), tmp_path / "logs") == bisect.SKIP
    assert snapshot(repo) == before
    ((out, donor),) = built
    assert out.parent == cache_root / "bisect-builds" and out.name.endswith(spec.label)
    assert donor is None  # a build elsewhere than at a tree's top starts from nothing


def test_the_first_step_in_a_clone_starts_from_the_nearest_build(
        tmp_path: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch,
        fake_step: list[Sequence[str]]) -> None:
    repo = tmp_path / "linux"
    c = _scratch_repo(repo)
    assert _bisect(repo, c[0], c[5]) == 0
    clone = bisect.clone_dir(repo)
    assert source.resolve(clone).owned and not source.resolve(repo).owned
    donor = nearest.Donor(tmp_path / "build", tmp_path / "src", None, 0, "a build", True)
    built = _fake_plan_and_build(monkeypatch, donor)
    spec = BuildSpec(arch="x86_64", kernel_src=str(clone))
    assert bisect.step(spec, "tcg", 1, (), tmp_path / "logs") == bisect.SKIP
    assert built == [(clone / f".ltoboot-bisect-{spec.label}", donor)]
    out = clone / f".ltoboot-bisect-{spec.label}"
    out.mkdir()  # the next step builds on it, with a config made afresh
    (out / ".config").write_text("CONFIG_OF_THE_LAST_STEP=y\n")
    _git(clone, "checkout", "-q", "--detach", c[1])
    assert bisect.step(spec, "tcg", 1, (), tmp_path / "logs") == bisect.SKIP
    assert built[1] == (out, None) and not (out / ".config").exists()


def test_find_donor_is_what_a_cached_build_asks(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    """bisect's first step and build_kernel search donors alike (build.find_donor)."""
    asked: list[nearest.Wanted] = []
    monkeypatch.setattr(nearest, "find", lambda index, want: asked.append(want))
    src = source.KernelSource(tmp_path, "git:x:", "tree", "6.1.0", True, owned=True)
    p = Plan(BuildSpec(arch="x86_64"), src, Toolchain("", "c", "l", 19), {"A": "y"}, "k", {},
             frozenset(), "kin", "near", Checkout())
    assert build.find_donor(p, tmp_path / ".ltoboot-bisect-x", tmp_path / "cache") is None
    assert asked == [nearest.Wanted("x86_64-thin", "kin", "git:x:", tmp_path, {"A": "y"},
                                    tmp_path, "near", None)]
