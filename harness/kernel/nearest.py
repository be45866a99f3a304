"""A kernel build starts from the nearest cached build instead of from nothing.

A donor is a finished build for the same arch, LTO mode, toolchain and base config (its
"kin" key) or, when the new build's base is a .config file, the same arch, LTO mode and
toolchain with a final .config that differs from it in a few options (its "near" key), of
- the same source (the same tree, and so the same place for build directories): a config
  that differs in a few options, a one-line `--fragment`, the checks' options of another
  toolchain; or
- another series applied by `tested-by --series` on the same base, or on a base the tester's
  repository can compare with (a series tree records the files it changes on its base): v2
  after v1, or another series on the same release; or
- any other tree whose files are nearly the same, compared file by file (size, then bytes):
  a series on the release whose tarball the default kernel was built from, a tester's own
  build of the base. Comparing costs seconds; it is done for the best such donor only.
The donor with the fewest options that differ wins, then the one whose differences are
known, then the fewest files, then the newest.
Its build directory is copied with its times kept; for another tree, the new tree's files that
are the same get the donor's times and those that differ the time of now. The configuration
is then made afresh from the base config, as a build from nothing makes it, the build count
starts at #1, and make rebuilds what the difference touches: kbuild tracks every source file
and every CONFIG_ option each object depends on. The kernel is the one a full build gives
(tests/test_tested_by_series.py builds a series both ways; the ccache proof a config).
Broken variants and bisect steps are never donors (they are not in the index).

`LTOBOOT_INCREMENTAL=0` turns it off: every kernel is then built from nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.base import cache, proc
from harness.base.errors import InfraError
from harness.kernel import kconfig, patched, source, stamps
from harness.kernel.model import META, MODROOT

ENV = "LTOBOOT_INCREMENTAL"  # 0: no build starts from another one
MAX_CHANGED = 5000  # more files than this differ: a donor saves little, build from nothing
MAX_OPTIONS = 300  # more options than this differ: the same, for the config
COMPARED = 2  # at most this many trees are compared file by file per build
# what a build directory keeps that a full build would not have: the build number (#2 after
# #1), the installed modules, the kernel's record; and the config, made afresh
NOT_CARRIED = (".version", MODROOT, META, ".config")


@dataclass(frozen=True)
class Donor:
    build_dir: Path  # a finished build
    tree: Path  # its source tree
    changed: frozenset[str] | None  # the files that may differ from the new tree; None:
    # not known yet (compare() finds them)
    options: int  # how many of the asked-for options differ
    description: str
    align: bool  # another tree: its times are aligned to the donor's first


@dataclass(frozen=True)
class Wanted:
    """What a new build is, as the donor search needs it."""

    label: str
    kin: str  # the build key without source and config: arch, LTO, toolchain, base config
    identity: str  # the source's
    tree: Path
    options: dict[str, str]  # the config asked for
    home: Path  # where its build directory goes (donors of the same source live there too)
    near: str = ""  # the kin key without the base config
    config: dict[str, str] | None = None  # the whole config asked for, when the base is a
    # file (its options with `options` on top): donors of another base are compared by it
    files: frozenset[str] | None = None  # a user's tree: the files its identity covers


def enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


def record(kin: str, identity: str, tree: Path, options: dict[str, str],
           description: str, near: str = "") -> dict[str, object]:
    """What the index keeps of a build for this search."""
    return {"kin": kin, "near": near, "identity": identity, "tree": str(tree),
            "options": options, "description": description}


def _between(new: dict[str, Any], old: dict[str, Any]) -> set[str] | None:
    """The files the two series' bases differ in (none on the same base); None when the
    tester's repository cannot compare them."""
    if new.get("base") == old.get("base"):
        return set()
    if new.get("repo") != old.get("repo") or not Path(str(new.get("repo"))).is_dir():
        return None
    paths = patched.changed_between(Path(str(new["repo"])), str(old["base"]), str(new["base"]))
    return None if paths is None else set(paths)


def _differ(a: dict[str, str], b: dict[str, str]) -> int:
    return sum(1 for s in a.keys() | b.keys() if a.get(s, "n") != b.get(s, "n"))


def _options_apart(ref: dict[str, Any], want: Wanted, build_dir: Path) -> int | None:
    """How many options the donor's config differs in from the one asked for; None when it
    cannot be a donor."""
    if ref.get("kin") == want.kin:
        return _differ(want.options, dict(ref.get("options") or {}))
    if not want.near or ref.get("near") != want.near or want.config is None:
        return None
    try:
        theirs = kconfig.parse((build_dir / ".config").read_text())
    except OSError:
        return None
    apart = _differ(want.config, theirs)
    return apart if apart <= MAX_OPTIONS else None


def _candidate(ref: dict[str, Any], want: Wanted) -> tuple[frozenset[str] | None, bool] | None:
    """(files that may differ, None when they must be compared; whether the trees differ)
    for a donor record; None when it cannot be a donor."""
    build_dir = Path(str(ref.get("entry", "")))
    if ref.get("identity") == want.identity:  # the same source
        return (frozenset(), False) if build_dir.parent == want.home else None
    tree = Path(str(ref.get("tree", "")))
    if not tree.is_dir() or tree == want.tree:
        return None
    copied = source.copy_marker(want.tree)
    if copied is not None:  # the cache's copy of a user's tree: its files are its base's
        if copied.get("base") and Path(copied["base"]) == tree:
            return frozenset(copied.get("changed", ())), False
        return None
    mine, theirs = patched.marker(want.tree), patched.marker(tree)
    if mine is None or theirs is None or "changed" not in mine or "changed" not in theirs:
        return None, True
    between = _between(mine, theirs)
    if between is None:
        return None, True
    changed = between | set(mine["changed"]) | set(theirs["changed"])
    return (frozenset(changed), True) if len(changed) <= MAX_CHANGED else None


def find(index: Path, want: Wanted) -> Donor | None:
    """The nearest cached build to start `want` from, None when there is none."""
    if not enabled():
        return None
    ranked: list[tuple[tuple[int, int, int, float], Donor]] = []
    for path in index.glob(f"{want.label}-*.json"):
        try:
            ref = json.loads(path.read_text())
            when = path.stat().st_mtime
        except (OSError, ValueError):
            continue
        build_dir = Path(str(ref.get("entry", "")))
        if not (build_dir / META).is_file():
            continue
        options = _options_apart(ref, want, build_dir)
        if options is None:
            continue
        found = _candidate(ref, want)
        if found is None:
            continue
        changed, align = found
        donor = Donor(build_dir, Path(ref["tree"]), changed, options,
                      str(ref.get("description", build_dir)), align)
        known = changed is not None
        ranked.append(((options, 0 if known else 1, len(changed or ()), -when), donor))
    compares = COMPARED
    for _, donor in sorted(ranked, key=lambda r: r[0]):
        if donor.changed is not None:
            return donor
        if not compares:
            break
        compares -= 1
        found_changed = compare(want.tree, donor.tree, want.files)
        if found_changed is not None:
            return dataclasses.replace(donor, changed=frozenset(found_changed))
    return None


def _same_bytes(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 16), fb.read(1 << 16)
            if x != y:
                return False
            if not x:
                return True


def _exec(mode: int) -> bool:
    return bool(mode & 0o100)


def compare(tree: Path, other: Path, files: Iterable[str] | None = None) -> set[str] | None:
    """The files of `tree` (or those of `files`) that `other` does not have the same (type,
    executable bit, size, then bytes; a symlink by its target), None when more than
    MAX_CHANGED differ. Sizes first, for every file: trees far apart are told in a second,
    without reading them."""
    changed: set[str] = set()
    same_size: list[tuple[str, str, str]] = []
    listed = ((rel, os.path.join(tree, rel)) for rel in files) if files is not None \
        else _files(tree)
    for rel, mine in listed:
        theirs = os.path.join(other, rel)
        try:
            a, b = os.lstat(mine), os.lstat(theirs)
        except OSError:  # not there, or a file where the other has a directory
            same = False
        else:
            if stat.S_ISLNK(a.st_mode) or stat.S_ISLNK(b.st_mode):
                same = stat.S_ISLNK(a.st_mode) and stat.S_ISLNK(b.st_mode) \
                    and os.readlink(mine) == os.readlink(theirs)
            elif _exec(a.st_mode) != _exec(b.st_mode):
                same = False
            elif a.st_size == b.st_size and (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
                same_size.append((rel, mine, theirs))
                continue
            else:
                same = a.st_size == b.st_size  # one file, hard-linked into both trees
        if not same:
            changed.add(rel)
            if len(changed) > MAX_CHANGED:
                return None
    for rel, mine, theirs in same_size:
        if not _same_bytes(mine, theirs):
            changed.add(rel)
            if len(changed) > MAX_CHANGED:
                return None
    return changed


class Unrelated(Exception):
    """The donor's tree is not what its record says: build from nothing instead."""


CACHE_OWN = source.CACHE_OWN


def _top_level_skip(name: str) -> bool:
    return name.startswith(CACHE_OWN) or name == ".git"


def _files(tree: Path) -> Iterator[tuple[str, str]]:
    """(path relative to `tree`, path) of every file and symlink of the kernel's tree: not
    its build directories, the cache's own files beside them, or .git."""
    for dirpath, dirnames, filenames in os.walk(tree):
        rel_dir = os.path.relpath(dirpath, tree)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if not _top_level_skip(d)]
            filenames = [f for f in filenames if not _top_level_skip(f)]
        # os.walk lists a symlink to a directory among the directories (and does not enter it)
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in (*filenames, *links):
            yield (name if rel_dir == "." else f"{rel_dir}/{name}"), os.path.join(dirpath, name)


def align_times(tree: Path, donor: Donor, when_ns: int) -> int:
    """Give every file of `tree` that is not among `donor.changed` the donor's time for it
    (unless it is older already: make rebuilds nothing for it either way), and those among
    them `when_ns` (stamp(), above anything of the donor's): make then sees
    as new exactly what differs. `tree` is the cache's own: a file shared with another tree
    gets an inode of its own before its time changes. Returns how many files got `when_ns`.
    A file that should be the same but is not there or has another size means the records
    are wrong: Unrelated."""
    assert donor.changed is not None
    touched = 0
    for rel, path in _files(tree):
        if rel in donor.changed:
            continue
        try:
            theirs = os.lstat(donor.tree / rel)
        except FileNotFoundError:
            raise Unrelated(f"{rel} is not in {donor.tree}") from None
        mine = os.lstat(path)
        if theirs.st_size != mine.st_size:
            raise Unrelated(f"{rel} differs from {donor.tree}'s")
        # older than the donor's is as good as the same for make (a tree linked to a base
        # tree, dated 2000, starts from any build without re-timing a shared file)
        if stat.S_ISREG(mine.st_mode) and mine.st_mtime_ns > theirs.st_mtime_ns:
            stamps.own(Path(path))
            os.utime(path, ns=(theirs.st_atime_ns, theirs.st_mtime_ns))
    for rel in sorted(donor.changed):  # after the rest: a symlink's target may be among them
        stamps.stamp(tree, rel, when_ns)
        touched += 1
    return touched


def start_from(donor: Donor, out: Path, tree: Path) -> tuple[int, int]:
    """`out` (a new build directory of `tree`, not there yet) made a copy of the donor's build,
    and, for another tree, `tree`'s times aligned to it. Returns the number of files make will
    see as new because of the tree, and the time they were given (0 when none). Unrelated
    (nothing left at `out`) when the donor's tree does not match."""
    try:
        cache.hold(donor.build_dir)  # no prune removes it while it is copied
    except OSError:  # its tree went between the search and now (pruned, removed)
        raise Unrelated(f"{donor.build_dir} was removed") from None
    if not (donor.build_dir / META).is_file():
        raise Unrelated(f"{donor.build_dir} was removed")
    proc.run(["cp", "-a", str(donor.build_dir), str(out)],
             what="copying the nearest build's directory", error=InfraError)
    for name in NOT_CARRIED:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    if not donor.align:
        return 0, 0
    try:
        when = stamps.stamp_after(donor.tree, out)
        return align_times(tree, donor, when), when
    except Unrelated:
        shutil.rmtree(out)
        raise
