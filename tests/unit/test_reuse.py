"""Reuse that cannot lie, on small trees (the kernels are tests/test_reuse_builds.py):
- a tree's identity is its content, untracked files included, and reading it writes nothing
  in the tester's repository;
- the cache's copy of a user's tree is the tester's files exactly, shares the unchanged ones
  with the tree it starts from, and never re-times a file another tree shares;
- the times given to changed files are above the donor's, whatever the clock says, and make
  follows a retargeted symlink to a file it sees as new (real make, two small trees);
- the freshness check after an incremental build finds a target make left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.base import cache
from harness.base.errors import UsageError
from harness.kernel import copies, freshness, identity, nearest, source, stamps
from tests.synthetic import git, kernel_repo


def snapshot(top: Path) -> dict[str, tuple[int, int, int, int, str]]:
    """(mode, size, mtime_ns, ctime_ns, link target) of every path under `top`."""
    found = {}
    for p in [top, *top.rglob("*")]:
        st = p.lstat()
        found[str(p.relative_to(top))] = (st.st_mode, st.st_size, st.st_mtime_ns,
                                          st.st_ctime_ns,
                                          os.readlink(p) if p.is_symlink() else "")
    return found


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    r = kernel_repo(tmp_path / "linux")
    (r / "scripts").mkdir()
    (r / "scripts" / "tool.sh").write_text("#!/bin/sh\n")
    (r / ".gitignore").write_text("*.o\n")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "scripts")
    old = time.time() - 60  # nothing here is racily clean for git
    for p in r.rglob("*"):
        if ".git" not in p.parts:
            os.utime(p, (old, old))
    git(r, "update-index", "--refresh")
    return r


def test_a_file_git_does_not_track_is_part_of_the_identity(repo: Path) -> None:
    clean = identity.content(repo)
    assert clean.identity == f"git:{git(repo, 'rev-parse', 'HEAD')}:"
    (repo / "init" / "foo.h").write_text('#define GREETING "one"\n')  # not git added
    one = identity.content(repo)
    assert one.identity != clean.identity and "init/foo.h" in one.files
    assert one.description.endswith(f"-dirty ({git(repo, 'rev-parse', 'HEAD')[:12]})")
    (repo / "init" / "foo.h").write_text('#define GREETING "two"\n')
    assert identity.content(repo).identity not in (clean.identity, one.identity)
    (repo / "init" / "foo.o").write_text("an ignored build output")
    (repo / "init" / "foo.h").write_text('#define GREETING "one"\n')
    assert identity.content(repo).identity == one.identity  # ignored files are not the kernel's


def test_a_mode_change_is_a_new_identity_in_and_out_of_git(repo: Path, tmp_path: Path) -> None:
    before = identity.content(repo).identity
    (repo / "scripts" / "tool.sh").chmod(0o755)
    assert identity.content(repo).identity != before
    plain = tmp_path / "plain"
    shutil.copytree(repo, plain, ignore=shutil.ignore_patterns(".git"))
    first = identity.content(plain).identity
    assert first.startswith("tree:")
    (plain / "scripts" / "tool.sh").chmod(0o644)
    assert identity.content(plain).identity != first


def test_a_same_size_edit_with_its_time_set_back_is_seen_outside_git(repo: Path,
                                                                     tmp_path: Path) -> None:
    """The size+time walk missed it; the content walk re-reads a file whose ctime moved."""
    plain = tmp_path / "plain"
    shutil.copytree(repo, plain, ignore=shutil.ignore_patterns(".git"))
    main = plain / "init" / "main.c"
    first = identity.content(plain).identity
    st = main.stat()
    main.write_text("int mian;\n")  # same size
    os.utime(main, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert identity.content(plain).identity != first


def test_reading_the_identity_writes_nothing_in_the_testers_repository(repo: Path) -> None:
    (repo / "init" / "new.c").write_text("int n;\n")  # untracked: hashed into the cache
    (repo / "init" / "main.c").write_text("int changed;\n")
    time.sleep(0.01)
    before = snapshot(repo)
    for _ in range(2):
        identity.content(repo)
        source.resolve(repo)
    assert snapshot(repo) == before


def test_an_in_tree_build_is_refused_naming_mrproper(repo: Path) -> None:
    (repo / "include" / "config").mkdir(parents=True)
    with pytest.raises(UsageError, match=r"in-tree build .*include/config.*make mrproper"):
        source.resolve(repo)


def test_a_path_with_spaces_is_a_tree_like_any_other(tmp_path: Path, repo: Path) -> None:
    spaced = tmp_path / "my linux tree"
    shutil.copytree(repo, spaced, symlinks=True)
    src = source.resolve(spaced)
    assert src.identity.startswith("git:") and not src.owned


def _linked(a: Path, b: Path) -> bool:
    return a.stat().st_ino == b.stat().st_ino


def test_the_copy_is_the_testers_files_sharing_the_rest_with_its_base(repo: Path) -> None:
    base = cache.cache_root() / "src" / "x" / "linux"
    shutil.copytree(repo, base, ignore=shutil.ignore_patterns(".git"), symlinks=True)
    (base / "only-in-base.h").write_text("gone in the tester's tree\n")
    future = time.time() + 3600  # a donor made on a machine whose clock is ahead
    for p in base.rglob("*"):
        os.utime(p, (future, future), follow_symlinks=False)
    (repo / "init" / "main.c").write_text("int edited;\n")
    (repo / "init" / "untracked.h").write_text("#define X 1\n")
    (repo / "scripts" / "tool.sh").chmod(0o755)
    before = snapshot(repo)
    src = source.resolve(repo)
    assert src.files is not None
    differ = nearest.compare(repo, base, src.files)
    assert differ == {"init/main.c", "init/untracked.h", "scripts/tool.sh"}
    copy = copies.make(src, base, frozenset(differ))
    assert snapshot(repo) == before  # not a byte, mode or time of the tester's
    tree = copy.tree
    assert (tree / "init" / "main.c").read_text() == "int edited;\n"
    assert os.access(tree / "scripts" / "tool.sh", os.X_OK)
    assert not (tree / "only-in-base.h").exists() and (tree / ".git").is_file()
    assert _linked(tree / "Makefile", base / "Makefile")  # the same: shared, its time kept
    assert not _linked(tree / "scripts" / "tool.sh", base / "scripts" / "tool.sh")
    assert copy.changed == {"init/main.c", "init/untracked.h", "scripts/tool.sh",
                            "only-in-base.h"}
    assert copy.stamp_ns > future * 1e9  # above the donor's times, not the clock's
    assert (tree / "init" / "main.c").stat().st_mtime_ns == copy.stamp_ns
    assert (base / "Makefile").stat().st_mtime == pytest.approx(future)  # never re-timed
    assert source.resolve(tree).owned and source.resolve(tree).identity == src.identity
    assert copies.make(src).tree == tree  # made once per identity
    # kbuild's setlocalversion asks git in the copy what it would ask in the tester's tree
    assert git(tree, "rev-parse", "--show-cdup") == ""
    assert git(tree, "rev-parse", "HEAD") == git(repo, "rev-parse", "HEAD")
    assert git(tree, "--no-optional-locks", "status", "-uno", "--porcelain") == \
        git(repo, "--no-optional-locks", "status", "-uno", "--porcelain")
    assert snapshot(repo) == before


def test_a_clean_copy_at_a_tag_describes_as_the_tester_s_tree(repo: Path) -> None:
    git(repo, "tag", "-a", "-m", "v6.1", "v6.1")
    tree = copies.make(source.resolve(repo)).tree
    assert git(tree, "describe", "--exact-match") == "v6.1"
    assert git(tree, "--no-optional-locks", "status", "-uno", "--porcelain") == ""


def test_a_tree_that_changes_while_it_is_copied_is_refused(repo: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    src = source.resolve(repo)
    real = copies._put

    def put_then_edit(tree: Path, rel: str, origin: Path, mode: str) -> int:
        (repo / "init" / "main.c").write_text("int racing;\n")
        return real(tree, rel, origin, mode)

    monkeypatch.setattr(copies, "_put", put_then_edit)
    with pytest.raises(UsageError, match="changed while ltoboot copied it"):
        copies.make(src)
    assert not copies.location(src.identity).parent.exists()  # nothing half made


def test_stamps_break_shared_links_and_follow_symlinks(tmp_path: Path) -> None:
    base, tree = tmp_path / "base", tmp_path / "tree"
    base.mkdir()
    (base / "a.h").write_text("a\n")
    (base / "b.h").write_text("b\n")
    tree.mkdir()
    for name in ("a.h", "b.h"):
        os.link(base / name, tree / name)
    (tree / "link.h").symlink_to("b.h")
    old = (base / "b.h").stat().st_mtime_ns
    when = stamps.stamp_after(base)
    stamps.stamp(tree, "link.h", when)
    assert (tree / "b.h").stat().st_mtime_ns == when  # what make follows is new
    assert (base / "b.h").stat().st_mtime_ns == old  # through a new inode, not the shared one
    assert (tree / "b.h").stat().st_nlink == 1


def test_make_follows_a_retargeted_symlink_to_a_new_time(tmp_path: Path) -> None:
    """Two small trees, as kbuild's would be: the donor built with link.h -> a.h; the new tree
    points it at b.h, an old file. make rebuilds only when the stamp follows the link."""
    donor = tmp_path / "donor"
    donor.mkdir()
    (donor / "a.h").write_text("from a\n")
    (donor / "b.h").write_text("from b\n")
    (donor / "link.h").symlink_to("a.h")
    (donor / "Makefile").write_text("out/x.txt: link.h\n\tmkdir -p out && cat link.h > $@\n")
    subprocess.run(["make", "-s", "-C", str(donor)], check=True)
    assert (donor / "out" / "x.txt").read_text() == "from a\n"
    new = tmp_path / "new"
    subprocess.run(["cp", "-a", str(donor), str(new)], check=True)
    (new / "link.h").unlink()
    (new / "link.h").symlink_to("b.h")
    old_way = subprocess.run(["make", "-s", "-q", "-C", str(new)], check=False)
    assert old_way.returncode == 0  # make thinks it is up to date: the old build's bug
    stamps.stamp(new, "link.h", stamps.stamp_after(donor))
    subprocess.run(["make", "-s", "-C", str(new)], check=True)
    assert (new / "out" / "x.txt").read_text() == "from b\n"


def _build_dir(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    out = tree / ".ltoboot-x86_64-thin-k"
    (out / "init").mkdir(parents=True)
    (tree / "init").mkdir()
    (tree / "init" / "main.c").write_text("int x;\n")
    (tree / "include").mkdir()
    (tree / "include" / "foo.h").write_text("#define FOO\n")
    (out / "init" / ".main.o.cmd").write_text(
        "cmd_init/main.o := clang ...\n\nsource_init/main.o := ../init/main.c\n\n"
        "deps_init/main.o := \\\n  $(wildcard include/config/SMP) \\\n  ../include/foo.h \\\n"
        "  /usr/lib/llvm-19/lib/clang/19/include/stddef.h \\\n\ninit/main.o: $(deps_init/main.o)\n"
        "\n$(deps_init/main.o):\n")
    (out / "init" / "main.o").write_text("object")
    (out / "include" / "config").mkdir(parents=True)
    (out / "include" / "config" / "SMP").write_text("")
    return out


def test_freshness_finds_what_make_left_behind(tmp_path: Path) -> None:
    out = _build_dir(tmp_path)
    tree = out.parent
    now = time.time_ns()
    old = now - 10**10
    for p in (tree / "init" / "main.c", tree / "include" / "foo.h",
              out / "include" / "config" / "SMP"):
        os.utime(p, ns=(old, old))
    os.utime(out / "init" / "main.o", ns=(now, now))
    assert freshness.stale(out, [], 0) == []
    # a changed header make did not see (its time was set back): the object is older
    assert [str(s) for s in freshness.stale(out, ["include/foo.h"], now + 1)] == [
        "init/main.o is older than include/foo.h"]
    # a config stamp from the future (a clock that went backwards)
    os.utime(out / "include" / "config" / "SMP", ns=(now + 10**10, now + 10**10))
    assert [s.because for s in freshness.stale(out, [], 0)] == ["include/config/SMP"]


def test_freshness_reads_kbuilds_dependency_files() -> None:
    text = ("source_a.o := ../a.c\n\ndeps_a.o := \\\n  $(wildcard include/config/X) \\\n"
            "  ../include/b.h \\\n\na.o: $(deps_a.o)\n")
    assert freshness.dependencies(text) == {"a.o": ["../a.c", "include/config/X",
                                                    "../include/b.h"]}
    assert freshness.kconfig_dependencies("deps_config := \\\n\tKconfig \\\n\tinit/Kconfig\n"
                                          "\ninclude/config/auto.conf: $(deps_config)\n") == [
        "Kconfig", "init/Kconfig"]


def test_a_copy_made_from_an_earlier_copy_says_what_the_testers_tree_says(repo: Path) -> None:
    first = copies.make(source.resolve(repo))
    (repo / "init" / "main.c").write_text("int again;\n")
    (repo / "init" / "new.h").write_text("#define NEW\n")
    src = source.resolve(repo)
    assert src.files is not None
    differ = nearest.compare(repo, first.tree, src.files)
    assert differ == {"init/main.c", "init/new.h"}
    second = copies.make(src, first.tree, frozenset(differ))
    assert _linked(second.tree / "Makefile", first.tree / "Makefile")
    assert git(second.tree, "--no-optional-locks", "status", "-uno", "--porcelain") == \
        git(repo, "--no-optional-locks", "status", "-uno", "--porcelain") == "M init/main.c"


def test_what_git_is_told_to_overlook_is_still_the_trees(repo: Path) -> None:
    """assume-unchanged, a sparse checkout's skip-worktree, core.autocrlf: the identity is
    the bytes on disk, not what git was told or would commit."""
    first = identity.content(repo).identity
    git(repo, "update-index", "--assume-unchanged", "init/main.c")
    (repo / "init" / "main.c").write_text("int hidden;\n")
    hidden = identity.content(repo)
    assert hidden.identity != first
    git(repo, "update-index", "--no-assume-unchanged", "init/main.c")
    git(repo, "checkout", "--", "init/main.c")
    git(repo, "config", "core.autocrlf", "input")
    (repo / "scripts" / "tool.sh").write_bytes(b"#!/bin/sh\r\n")
    crlf = identity.content(repo)
    assert crlf.identity != first
    tree = copies.make(source.resolve(repo)).tree
    assert (tree / "scripts" / "tool.sh").read_bytes() == b"#!/bin/sh\r\n"


def test_the_testers_split_index_and_hooks_are_left_alone(repo: Path) -> None:
    git(repo, "config", "core.splitIndex", "true")
    (repo / "init" / "x.c").write_text("int x;\n")
    git(repo, "add", "-A")
    (repo / "init" / "main.c").write_text("int edited;\n")
    hook = repo / ".git" / "hooks" / "post-index-change"
    hook.write_text("#!/bin/sh\ntouch \"$(git rev-parse --git-dir)/hook-ran\"\n")
    hook.chmod(0o755)
    time.sleep(0.01)
    before = snapshot(repo)
    src = source.resolve(repo)
    copies.make(src)
    assert identity.tracked_changes(repo) is True
    assert snapshot(repo) == before
    assert not (repo / ".git" / "hook-ran").exists()


def test_what_a_copy_cannot_be_is_refused_naming_it(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.h"
    outside.write_text("#define OUT\n")
    (repo / "init" / "out.h").symlink_to(outside)
    with pytest.raises(UsageError, match=r"init/out.h is a symlink out of the tree"):
        source.resolve(repo)
    (repo / "init" / "out.h").unlink()
    (repo / "init" / "up.h").symlink_to("../../outside.h")
    with pytest.raises(UsageError, match=r"init/up.h is a symlink out of the tree"):
        source.resolve(repo)
    (repo / "init" / "up.h").unlink()
    sub = repo / "tools" / "sub"
    sub.mkdir(parents=True)
    git(sub, "init", "-q")
    (sub / "f").write_text("x")
    git(sub, "add", "f")
    git(sub, "commit", "-q", "-m", "sub")
    git(repo, "add", "tools/sub")
    with pytest.raises(UsageError, match=r"tools/sub is a git repository inside the tree"):
        source.resolve(repo)


def test_a_directory_the_base_reached_through_a_symlink_is_copied(repo: Path) -> None:
    base = cache.cache_root() / "src" / "y" / "linux"
    shutil.copytree(repo, base, ignore=shutil.ignore_patterns(".git"), symlinks=True)
    (base / "real").mkdir()
    (base / "real" / "x.c").write_text("int x;\n")
    (base / "foo").symlink_to("real")
    (repo / "foo").mkdir()
    (repo / "foo" / "x.c").write_text("int x;\n")  # the same bytes, in a real directory
    (base / "file-here").write_text("a file in the base\n")
    (repo / "file-here").mkdir()  # a directory in the tester's tree
    (repo / "file-here" / "y.c").write_text("int y;\n")
    src = source.resolve(repo)
    assert src.files is not None
    differ = nearest.compare(repo, base, src.files)
    assert differ is not None and "file-here/y.c" in differ
    tree = copies.make(src, base, frozenset(differ)).tree
    assert (tree / "foo" / "x.c").read_text() == "int x;\n" and not (tree / "foo").is_symlink()
    assert (tree / "file-here" / "y.c").read_text() == "int y;\n"


def test_a_staged_change_names_the_copy_as_the_testers_tree(repo: Path) -> None:
    git(repo, "tag", "-a", "-m", "v6.1", "v6.1")
    (repo / "init" / "new.c").write_text("int n;\n")
    git(repo, "add", "init/new.c")
    tree = copies.make(source.resolve(repo)).tree
    assert git(tree, "--no-optional-locks", "status", "-uno", "--porcelain") == \
        git(repo, "--no-optional-locks", "status", "-uno", "--porcelain") == "A  init/new.c"


def test_freshness_wants_what_depends_on_a_change_made_by_this_build(tmp_path: Path) -> None:
    """A donor built after the changed files were stamped has objects newer than them: make
    sees nothing to do, and only the build's start tells the object is the donor's."""
    out = _build_dir(tmp_path)
    stamp = time.time_ns() - 10**10
    donor_made = stamp + 10**9  # the donor's object: after the stamp, before this build
    for p in (out.parent / "init" / "main.c", out.parent / "include" / "foo.h"):
        os.utime(p, ns=(stamp, stamp))
    os.utime(out / "include" / "config" / "SMP", ns=(stamp, stamp))
    os.utime(out / "init" / "main.o", ns=(donor_made, donor_made))
    assert freshness.stale(out, ["include/foo.h"], stamp) == []  # the stamp alone misses it
    started = donor_made + 10**9
    assert [s.target for s in freshness.stale(out, ["include/foo.h"], started)] == [
        "init/main.o"]


def test_objects_of_every_archive_are_the_kernels(tmp_path: Path) -> None:
    """lib.a (lib-y without modules) and each built-in.a count, not vmlinux.a's alone."""
    out = tmp_path / "out"
    (out / "lib").mkdir(parents=True)
    (out / "init").mkdir()
    for obj in ("init/main.o", "lib/string.o"):
        (out / obj).write_bytes(b"\x7fELF")
    subprocess.run(["ar", "rcT", str(out / "vmlinux.a"), "init/main.o"], cwd=out, check=True)
    subprocess.run(["ar", "rcT", str(out / "lib" / "lib.a"), "string.o"], cwd=out / "lib",
                   check=True)
    assert {"init/main.o", "lib/string.o"} <= (freshness._live(out) or set())
