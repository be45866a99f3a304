"""Which cached build a kernel starts from (the same source with nearly the same config, or
another series on a related base), and how a series tree is made to look to make exactly as
new as it differs: records on small fake trees (the real proof, a series built both ways and
compared, is in tests/test_tested_by_series.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.kernel import nearest, patched
from harness.kernel.model import META, MODROOT

BASE_A, BASE_B = "a" * 40, "b" * 40


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(nearest.ENV, raising=False)
    (tmp_path / "cache" / "index").mkdir(parents=True)
    return tmp_path / "cache"


def _series(root: Path, name: str, base: str, changed: list[str], files: dict[str, str],
            repo: str = "/nowhere") -> Path:
    tree = root / "series" / name / "tree"
    for rel, text in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    (tree.parent / patched.MARKER).write_text(json.dumps(
        {"repo": repo, "base": base, "changed": changed, "description": f"series {name}"}))
    return tree


def _built(root: Path, tree: Path, label: str, kin: str, age: float = 0.0,
           options: dict[str, str] | None = None, identity: str = "") -> Path:
    out = tree / f".ltoboot-{label}-k{tree.parent.name}"
    out.mkdir()
    (out / META).write_text("{}")
    ref = root / "index" / f"{label}-k{tree.parent.name}-{tree.name}.json"
    ref.write_text(json.dumps({"entry": str(out), **nearest.record(
        kin, identity or f"series:{tree.parent.name}", tree, options or OPTIONS,
        f"series {tree.parent.name}")}))
    os.utime(ref, (time.time() - age, time.time() - age))
    return out


def _want(tree: Path, label: str = "x86_64-thin", kin: str = "N",
          options: dict[str, str] | None = None, identity: str = "") -> nearest.Wanted:
    return nearest.Wanted(label, kin, identity or f"series:{tree.parent.name}", tree,
                          options or OPTIONS, tree)


def _find(root: Path, want: nearest.Wanted) -> nearest.Donor | None:
    return nearest.find(root / "index", want)


OPTIONS = {"LTO_CLANG_THIN": "y", "MODULES": "y"}
FILES = {"Makefile": "all:\n", "init/main.c": "int x;\n", "README": "Linux\n"}


def test_a_build_of_another_series_on_the_same_base_is_the_donor(root: Path) -> None:
    v1 = _series(root, "v1", BASE_A, ["init/main.c"], FILES)
    _built(root, v1, "x86_64-thin", "N")
    v2 = _series(root, "v2", BASE_A, ["init/main.c", "Makefile"], FILES)
    donor = _find(root, _want(v2))
    assert donor is not None and donor.tree == v1
    assert donor.changed == frozenset({"init/main.c", "Makefile"})  # what either series changes
    assert donor.description == "series v1"


def test_no_donor_of_another_config_arch_or_unrelated_base(root: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    v1 = _series(root, "v1", BASE_A, [], FILES)
    out = _built(root, v1, "x86_64-thin", "N")
    # its repository cannot compare the bases: the trees are compared, file by file
    v2 = _series(root, "v2", BASE_B, [], {**FILES, "README": "Linux 2\n", "new.c": ""})
    donor = _find(root, _want(v2))
    assert donor is not None and donor.changed == frozenset({"README", "new.c"})
    assert donor.align
    monkeypatch.setattr(nearest, "MAX_CHANGED", 1)  # more differ than is worth it
    assert _find(root, _want(v2)) is None
    monkeypatch.undo()
    v3 = _series(root, "v3", BASE_A, [], FILES)
    assert _find(root, _want(v3, kin="other toolchain")) is None
    assert _find(root, _want(v3, label="arm64-thin")) is None
    assert _find(root, _want(v1)) is not None  # its own build, for another config
    monkeypatch.setenv(nearest.ENV, "0")
    assert _find(root, _want(v3)) is None
    monkeypatch.delenv(nearest.ENV)
    assert _find(root, _want(v3)) is not None
    (out / META).unlink()  # a build that never finished is no donor
    assert _find(root, _want(v3)) is None


def test_the_donor_with_fewest_differing_files_wins_then_the_newest(root: Path) -> None:
    far = _series(root, "far", BASE_A, ["a", "b", "c"], FILES)
    _built(root, far, "x86_64-thin", "N", age=10)
    near_old = _series(root, "near_old", BASE_A, ["a"], FILES)
    _built(root, near_old, "x86_64-thin", "N", age=100)
    near_new = _series(root, "near_new", BASE_A, ["a"], FILES)
    _built(root, near_new, "x86_64-thin", "N", age=50)
    mine = _series(root, "mine", BASE_A, ["a"], FILES)
    donor = _find(root, _want(mine))
    assert donor is not None and donor.tree == near_new


def test_bases_the_testers_repository_compares_add_their_differences(
        root: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    env = {**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b",
           "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@b"}

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], check=True, env=env,
                              capture_output=True, text=True).stdout.strip()

    repo.mkdir()
    git("init", "-q")
    (repo / "kernel.c").write_text("1\n")
    (repo / "old name.c").write_text("x\n")
    git("add", "-A")
    git("commit", "-q", "-m", "one")
    first = git("rev-parse", "HEAD")
    (repo / "kernel.c").write_text("2\n")
    git("mv", "old name.c", "new name.c")
    git("commit", "-q", "-a", "-m", "two")
    second = git("rev-parse", "HEAD")
    v1 = _series(root, "v1", first, ["README"], FILES, repo=str(repo))
    _built(root, v1, "x86_64-thin", "N")
    v2 = _series(root, "v2", second, [], FILES, repo=str(repo))
    donor = _find(root, _want(v2))
    assert donor is not None
    assert donor.changed == frozenset({"README", "kernel.c", "old name.c", "new name.c"})


def test_times_make_sees_are_the_donors_except_for_what_differs(root: Path) -> None:
    v1 = _series(root, "v1", BASE_A, ["init/main.c"], FILES)
    out = _built(root, v1, "x86_64-thin", "N")
    for name in (".version", ".config", "vmlinux.o"):
        (out / name).write_text(name)
    (out / MODROOT).mkdir()
    old = time.time() - 3600
    for f in v1.rglob("*"):
        os.utime(f, (old, old))
    v2 = _series(root, "v2", BASE_A, ["init/main.c"], {**FILES, "init/main.c": "int y;\n"})
    # the cache's own files beside a build of v2 (its lock, hold and size records) and
    # a build directory are not the kernel's: no donor has them
    (v2 / "..ltoboot-x86_64-thin-k.lock").write_text("")
    (v2 / "..ltoboot-x86_64-thin-k.size").write_text("1")
    (v2 / ".ltoboot-arm64-thin-k").mkdir()
    (v2 / ".ltoboot-arm64-thin-k" / "vmlinux.o").write_text("arm64")
    (v2 / ".gitignore").write_text("*.o\n")  # the kernel's own dot-files are
    (v1 / ".gitignore").write_text("*.o\n")
    donor = _find(root, _want(v2))
    assert donor is not None
    before = time.time()
    new_out = v2 / ".ltoboot-x86_64-thin-new"
    assert nearest.start_from(donor, new_out, v2)[0] == 1
    assert (v2 / "Makefile").stat().st_mtime_ns == (v1 / "Makefile").stat().st_mtime_ns
    assert (v2 / "README").stat().st_mtime == pytest.approx(old)
    assert (v2 / "init/main.c").stat().st_mtime >= before
    assert (new_out / "vmlinux.o").stat().st_mtime == pytest.approx(old)  # times kept
    # the build number, the config, the modules and the record start afresh
    assert sorted(p.name for p in new_out.iterdir()) == ["vmlinux.o"]


def test_a_tree_that_is_not_what_its_record_says_is_no_start(root: Path) -> None:
    v1 = _series(root, "v1", BASE_A, [], FILES)
    _built(root, v1, "x86_64-thin", "N")
    v2 = _series(root, "v2", BASE_A, [], {**FILES, "README": "Linux, but longer\n"})
    donor = _find(root, _want(v2))
    assert donor is not None
    with pytest.raises(nearest.Unrelated, match="README differs"):
        nearest.start_from(donor, v2 / ".ltoboot-x86_64-thin-new", v2)
    assert not (v2 / ".ltoboot-x86_64-thin-new").exists()  # nothing half made


def test_a_donor_whose_tree_went_after_the_search_is_no_start(root: Path) -> None:
    """Found, then its whole entry removed (a prune, a tester's rm) before the build takes
    it: a build from nothing, not a crash (seen in a cold CI beside a removed step)."""
    v1 = _series(root, "v1", BASE_A, [], FILES)
    _built(root, v1, "x86_64-thin", "N")
    v2 = _series(root, "v2", BASE_A, [], FILES)
    donor = _find(root, _want(v2))
    assert donor is not None
    shutil.rmtree(v1.parent)
    with pytest.raises(nearest.Unrelated, match="was removed"):
        nearest.start_from(donor, v2 / ".ltoboot-x86_64-thin-new", v2)
    assert not (v2 / ".ltoboot-x86_64-thin-new").exists()


def test_the_same_source_with_the_fewest_other_options_is_the_donor(root: Path) -> None:
    tree = root / "src" / "abc" / "linux"
    for rel, text in FILES.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    old = time.time() - 3600
    os.utime(tree / "README", (old, old))
    ours = _built(root, tree, "x86_64-thin", "N", age=100, identity="tarball:abc")
    other = tree.parent / "other"
    for rel, text in {**FILES, "README": "Linux 2\n"}.items():
        (other / rel).parent.mkdir(parents=True, exist_ok=True)
        (other / rel).write_text(text)
    two_off = _built(root, other, "x86_64-thin", "N", age=1, identity="tarball:abc",
                     options={**OPTIONS, "LKDTM": "y", "CFI_CLANG": "y"})
    one_more = {**OPTIONS, "LOCALVERSION": '"-one-more"'}
    donor = _find(root, nearest.Wanted("x86_64-thin", "N", "tarball:abc", tree, one_more,
                                       tree))
    assert donor is not None and donor.build_dir == ours and donor.options == 1
    assert not donor.align and donor.changed == frozenset()
    # the same source's builds live beside its tree: one elsewhere is not one of them
    assert two_off.parent != tree
    # another tarball's build is one when their files are compared: what differs is known
    theirs = _find(root, nearest.Wanted("x86_64-thin", "N", "tarball:other", other, OPTIONS,
                                        other))
    assert theirs is not None and theirs.build_dir == ours and theirs.align
    assert theirs.changed == frozenset({"README"})
    new_out = tree / ".ltoboot-x86_64-thin-new"
    assert nearest.start_from(donor, new_out, tree) == (0, 0)
    assert (tree / "README").stat().st_mtime == pytest.approx(old)  # the tree untouched
    assert sorted(p.name for p in new_out.iterdir()) == []  # no record, config or number


def test_a_tester_config_starts_from_a_build_of_another_base_by_its_options(
        root: Path, tmp_path: Path) -> None:
    """A --config FILE build has another kin than ours (tinyconfig + options); the donor is
    chosen by how many options its .config differs in, within the same toolchain and arch."""
    tree = root / "src" / "abc" / "linux"
    for rel, text in FILES.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    ours = _built(root, tree, "x86_64-thin", "tiny", identity="tarball:abc")
    ref = next((root / "index").glob("*.json"))
    ref.write_text(json.dumps({**json.loads(ref.read_text()), "near": "NEAR"}))
    (ours / ".config").write_text("CONFIG_LTO_CLANG_THIN=y\nCONFIG_MODULES=y\n"
                                  "# CONFIG_LKDTM is not set\nCONFIG_LOCALVERSION=\"\"\n")
    series = _series(root, "s", BASE_A, ["init/main.c"], {**FILES, "init/main.c": "int y;\n"})
    whole = {"LTO_CLANG_THIN": "y", "MODULES": "y", "LKDTM": "y",
             "LOCALVERSION": '"-tester"'}
    want = nearest.Wanted("x86_64-thin", "file:tester", "series:s", series, OPTIONS, series,
                          "NEAR", whole)
    donor = _find(root, want)
    assert donor is not None and donor.build_dir == ours
    assert donor.options == 2 and donor.changed == frozenset({"init/main.c"})
    # another toolchain or arch (another near key), or a base that is no file: no donor
    assert _find(root, dataclasses.replace(want, near="OTHER")) is None
    assert _find(root, dataclasses.replace(want, config=None)) is None


def test_trees_are_compared_by_bytes_and_links_by_target(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for tree, same_size, target in ((a, "abc\n", "x"), (b, "abd\n", "y")):
        (tree / "include" / "dt").mkdir(parents=True)
        (tree / "same.c").write_text("int x;\n")
        (tree / "same-size.c").write_text(same_size)
        (tree / "include" / "link").symlink_to(target)
        (tree / "include" / "dir-link").symlink_to("dt")
        (tree / ".ltoboot-x86_64-thin-k").mkdir()  # a build directory: not the kernel's
        (tree / ".ltoboot-x86_64-thin-k" / "only-here.o").write_text(str(tree))
    (a / "new.c").write_text("")
    os.link(a / "same.c", b / "linked.c")  # one inode in both trees: the same, unread
    os.link(a / "same.c", a / "linked.c")
    assert nearest.compare(a, b) == {"same-size.c", "include/link", "new.c"}
    (b / "include" / "dir-link").unlink()
    (b / "include" / "dir-link").symlink_to("elsewhere")
    assert "include/dir-link" in (nearest.compare(a, b) or set())


def test_a_build_directory_a_prune_left_as_trash_is_not_the_kernels(tmp_path: Path) -> None:
    """A prune stopped between renaming a build inside a tree to trash and deleting it leaves
    `.trash-.ltoboot-…` at the tree's top: its files are not kernel source files."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Makefile").write_text("all:\n")
    trash = tree / ".trash-.ltoboot-x86_64-thin-k-1-2-0123456789ab"
    trash.mkdir()
    (trash / "vmlinux.o").write_text("")
    assert [rel for rel, _ in nearest._files(tree)] == ["Makefile"]
