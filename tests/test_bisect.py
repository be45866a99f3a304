"""`ltoboot bisect` on a real kernel git repository with culprits of our own making."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.base import cache
from harness.faces.pytest_plugin.fixtures import Kernels
from harness.kernel import nearest
from harness.kernel.model import Kernel
from harness.kernel.variants import _copy_tree, replace_in_copy
from harness.runs import bisect
from tests.markers import BISECT_CHECK

pytestmark = [pytest.mark.boot, pytest.mark.ltoboot_group("bisect")]

DEBIAN_BLOCK = "# Debian packaging: ignore everything at the top level"


def _edit(path: Path, old: str, new: str) -> None:
    """Change a file of the hard-linked copy through a new inode (never the cached tree)."""
    replace_in_copy(path, old, new, count=1)


def _git(repo: Path, *args: str, check: bool = True) -> str:
    date = "2026-01-01T00:00:00+00:00"  # fixed: the same commits on every run and machine
    env = {**os.environ, "GIT_AUTHOR_NAME": "ltoboot", "GIT_AUTHOR_EMAIL": "t@ltoboot.invalid",
           "GIT_COMMITTER_NAME": "ltoboot", "GIT_COMMITTER_EMAIL": "t@ltoboot.invalid",
           "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date,
           # 78,000 loose objects: no automatic gc in a process that outlives the test
           "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "gc.auto", "GIT_CONFIG_VALUE_0": "0"}
    return subprocess.run(["git", "-C", str(repo), *args], check=check, capture_output=True,
                          text=True, env=env).stdout.strip()


def _commit(repo: Path, message: str, path: str, old: str, new: str) -> str:
    _edit(repo / path, old, new)
    _git(repo, "commit", "-q", "-a", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def _make_repo(repo: Path, base: Kernel) -> None:
    """A kernel git repository: the source tree (hard links) and our commits on top. No build
    directory: `ltoboot bisect` builds in its clone, whose first step starts from the nearest
    cached build (the default kernel's), and bisect-step in the cache."""
    assert base.source_tree is not None
    _copy_tree(base.source_tree, repo)
    gitignore = (repo / ".gitignore").read_text()
    assert DEBIAN_BLOCK in gitignore  # else nothing at the top level would be committed
    _edit(repo / ".gitignore", gitignore[gitignore.index(DEBIAN_BLOCK):], "")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "Linux 6.1 from Debian's linux-source-6.1")
    c = {"base": _git(repo, "rev-parse", "HEAD")}
    c["docs1"] = _commit(repo, "docs: a harmless change", "README", "Linux kernel",
                         "Linux kernel (ltoboot bisect test)")
    c["nobuild"] = _commit(repo, "init: a change that does not compile", "init/main.c",
                           "static int __ref kernel_init(void *unused)",
                           "#error ltoboot: this commit does not compile\n"
                           "static int __ref kernel_init(void *unused)")
    c["builds"] = _commit(repo, "init: compile again", "init/main.c",
                          "#error ltoboot: this commit does not compile\n", "")
    c["panic"] = _commit(repo, "init: panic during boot", "init/main.c",
                         "static int __ref kernel_init(void *unused)\n{\n",
                         "static int __ref kernel_init(void *unused)\n{\n"
                         "\tpanic(\"ltoboot: deliberate panic\");\n")
    c["docs2"] = _commit(repo, "docs: another harmless change", "README",
                         "(ltoboot bisect test)", "(ltoboot bisect test, again)")
    c["unpanic"] = _commit(repo, "init: boot again", "init/main.c",
                           "\tpanic(\"ltoboot: deliberate panic\");\n", "")
    c["hello"] = _commit(repo, "test_module: greet differently", "lib/test_module.c",
                         'pr_warn("Hello, world\\n");', 'pr_warn("Hello, LTO\\n");')
    c["docs3"] = _commit(repo, "docs: yet another harmless change", "README",
                         "(ltoboot bisect test, again)", "(ltoboot bisect test, thrice)")
    (repo / ".git" / "ltoboot-commits.json").write_text(json.dumps(c))


@pytest.fixture(scope="module")
def kernel_repo(kernels: Kernels, primary_arch: str) -> tuple[Path, dict[str, str]]:
    """The test repository, made once per machine (a cache entry) and reused."""
    base = kernels.get(arch=primary_arch)
    recipe = hashlib.sha256(inspect.getsource(_make_repo).encode()).hexdigest()[:12]
    entry = cache.cache_root() / "test-repos" / f"bisect-{base.label}-{base.key}-{recipe}"
    repo = cache.publish(entry, lambda tmp: _make_repo(tmp, base))
    c: dict[str, str] = json.loads((repo / ".git" / "ltoboot-commits.json").read_text())
    # The files are hard links into the cached tree, whose inodes' ctime every other copy
    # (a variant's, a series') changes: trusting it, git would see every file modified and
    # `checkout -f` rewrite all 78,000, and the next step rebuild the kernel from nothing.
    _git(repo, "config", "core.trustctime", "false")
    _git(repo, "checkout", "-q", "-f", c["docs3"])  # in case a step test was killed
    return repo, c


def _snapshot(repo: Path) -> dict[str, tuple[object, ...]]:
    """(mode, size, mtime_ns, symlink target) of every path under `repo`, itself and .git
    included, and ctime_ns in .git. Not the ctime of the work tree: its files are hard links
    into the cached source tree, whose inodes' ctime other tests' copies change (a link more
    or less), so it says nothing about what bisect did."""
    found: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(repo):
        for path in [dirpath] + [os.path.join(dirpath, n) for n in (*dirnames, *filenames)]:
            st = os.lstat(path)
            rel = os.path.relpath(path, repo)
            in_git = rel == ".git" or rel.startswith(".git/")
            found[rel] = (st.st_mode, st.st_size, st.st_mtime_ns,
                          st.st_ctime_ns if in_git else None,
                          os.readlink(path) if stat.S_ISLNK(st.st_mode) else None)
    return found


def _bisect_reading_only(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`ltoboot bisect --kernel-src repo args`, asserting it left the repository as it was:
    no path under it (.git included) changed, the same HEAD, a clean work tree."""
    head = _git(repo, "rev-parse", "HEAD")
    before = _snapshot(repo)
    got = _ltoboot("bisect", "--kernel-src", str(repo), *args)
    after = _snapshot(repo)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    assert changed == [], f"bisect changed {len(changed)} paths of {repo}: {changed[:20]}" \
        f"\n{got.stderr[-2000:]}"
    assert _git(repo, "rev-parse", "HEAD") == head
    # read without refreshing the index, which would write it
    assert _git(repo, "--no-optional-locks", "status", "--porcelain") == ""
    return got


def _first_build_started_from_a_donor(fresh: bool, got: subprocess.CompletedProcess[str]) -> None:
    """The first build in a new clone (steps whose kernels the cache has build nothing)
    started from a copy of a cached build: the default kernel's is there for it."""
    if not fresh or "ltoboot: building " not in got.stderr or not nearest.enabled():
        return
    log_dir = re.search(r"^logs: (.*)$", got.stdout, re.M)
    assert log_dir is not None, got.stdout
    log = (Path(log_dir.group(1)) / "bisect-run.log").read_text()
    assert re.search(r"^ltoboot: \S+: starting from the build of ", log, re.M), log[-3000:]


def _ltoboot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.faces.cli", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)


def test_commit_that_does_not_build_is_skipped(kernel_repo: tuple[Path, dict[str, str]],
                                               request: pytest.FixtureRequest) -> None:
    repo, c = kernel_repo
    _git(repo, "checkout", "-q", c["nobuild"])
    try:
        got = [_ltoboot("bisect-step", "--kernel-src", str(repo),
                        "--accel", request.config.getoption("accel")) for _ in range(2)]
    finally:
        _git(repo, "checkout", "-q", c["docs3"])
    assert [g.returncode for g in got] == [bisect.SKIP] * 2, got[0].stdout + got[0].stderr
    assert all("make (all) failed" in g.stderr for g in got), got[0].stderr
    # a compile error is remembered for the commit and plan: the second step builds nothing
    # (the first one too when the cache is warm)
    assert "(remembered: delete " in got[1].stderr + got[1].stdout


def test_bisect_names_the_commit_that_panics(kernel_repo: tuple[Path, dict[str, str]],
                                             request: pytest.FixtureRequest) -> None:
    repo, c = kernel_repo
    clone = bisect.clone_dir(repo)  # the cache's: this process and ltoboot's share it
    fresh = not any(clone.glob(".ltoboot-bisect-*"))
    started = time.monotonic()
    got = _bisect_reading_only(repo, "--good", c["base"], "--bad", c["docs2"],
                               "--accel", request.config.getoption("accel"))
    print(got.stdout, f"bisect took {time.monotonic() - started:.0f}s", sep="\n")
    assert got.returncode == 0, got.stdout + got.stderr
    assert f"first bad commit: {c['panic']} init: panic during boot" in got.stdout
    assert "failure: panic: " in got.stdout and "ltoboot: deliberate panic" in got.stdout
    assert not (clone / ".git" / "BISECT_LOG").exists()  # the clone is left out of bisect
    _first_build_started_from_a_donor(fresh, got)


@BISECT_CHECK
def test_bisect_one_check_names_the_commit_that_breaks_it(
        kernel_repo: tuple[Path, dict[str, str]], request: pytest.FixtureRequest) -> None:
    repo, c = kernel_repo
    got = _bisect_reading_only(repo, "--check", "test_module", "--good", c["docs2"],
                               "--bad", c["docs3"], "--accel", request.config.getoption("accel"))
    print(got.stdout)
    assert got.returncode == 0, got.stdout + got.stderr
    assert f"first bad commit: {c['hello']} test_module: greet differently" in got.stdout
    assert "failure: check: " in got.stdout and "Hello, world" in got.stdout


def test_bisect_refuses_a_dirty_tree(kernel_repo: tuple[Path, dict[str, str]]) -> None:
    repo, c = kernel_repo
    readme = repo / "README"
    original = readme.read_text()
    _edit(readme, "Linux kernel", "Linux kernel (dirty)")
    try:
        got = _ltoboot("bisect", "--kernel-src", str(repo), "--good", c["base"],
                       "--bad", c["docs3"])
    finally:
        readme.write_text(original)
    assert got.returncode == 2
    assert got.stderr.startswith("ltoboot: error: ") and "uncommitted changes" in got.stderr
    assert got.stderr.count("\n") == 1


def test_step_boots_runs_times(kernel_repo: tuple[Path, dict[str, str]], tmp_path: Path,
                               request: pytest.FixtureRequest) -> None:
    repo, c = kernel_repo
    _git(repo, "checkout", "-q", c["builds"])
    try:
        got = _ltoboot("bisect-step", "--kernel-src", str(repo), "--runs", "2", "--check",
                       "proc_version", "--log-dir", str(tmp_path),
                       "--accel", request.config.getoption("accel"))
    finally:
        _git(repo, "checkout", "-q", c["docs3"])
    assert got.returncode == bisect.GOOD, got.stdout + got.stderr
    (step_dir,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    result = json.loads((step_dir / "result.json").read_text())
    assert result["summary"] == "2 run(s), all checks passed"
    assert len(list(step_dir.glob("console-*.log"))) == 2
