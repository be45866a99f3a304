"""A series' kernel starts from the nearest cached build instead of from nothing.

A series applied by `tested-by --series` is a tree the cache owns, and it records the files it
changes on its base commit. Another series on the same base (or v1 of this one, or one on a
base the tester's repository can compare with) built for the same arch, LTO mode, toolchain and
config is a donor: its build directory is copied beside the new tree with its times kept, the
new tree's files that are the same as the donor's get the donor's times, the files that differ
get the time of now, and make rebuilds only what the difference touches. The configuration is
made afresh from the base config, as a full build makes it, and the build count starts at #1:
the kernel is the one a full build gives (tests/test_tested_by_series.py builds one both ways).

`LTOBOOT_INCREMENTAL=0` turns it off: every series is then built from nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import cache, proc
from harness.errors import InfraError
from harness.kernel import patched
from harness.kernel.model import META, MODROOT

ENV = "LTOBOOT_INCREMENTAL"  # 0: no build starts from another one
MAX_CHANGED = 5000  # more files than this differ: a donor saves little, build from nothing
# what a build directory keeps that a full build would not have: the build number (#2 after
# #1), the installed modules and the kernel's record
NOT_CARRIED = (".version", MODROOT, META, ".config")


@dataclass(frozen=True)
class Donor:
    build_dir: Path  # a finished build in another tree the cache owns
    tree: Path
    changed: frozenset[str]  # the files that may differ between its tree and the new one
    description: str


def enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


def _between(new: dict[str, Any], old: dict[str, Any]) -> set[str] | None:
    """The files the two series' bases differ in (none on the same base); None when the
    tester's repository cannot compare them."""
    if new.get("base") == old.get("base"):
        return set()
    if new.get("repo") != old.get("repo") or not Path(str(new.get("repo"))).is_dir():
        return None
    paths = patched.changed_between(Path(str(new["repo"])), str(old["base"]), str(new["base"]))
    return None if paths is None else set(paths)


def find(index: Path, label: str, near: str, tree: Path) -> Donor | None:
    """The cached build in another series tree nearest to a build of `tree` (a series tree)
    with the same `near` key (everything of the build's key but the source): the one with
    the fewest files to differ, the newest of those; None when there is none."""
    mine = patched.marker(tree)
    if not enabled() or mine is None or "changed" not in mine:
        return None
    best: tuple[int, float, Donor] | None = None
    for ref in index.glob(f"{label}-*.json"):
        try:
            record = json.loads(ref.read_text())
            when = ref.stat().st_mtime
        except (OSError, ValueError):
            continue
        build_dir = Path(str(record.get("entry", "")))
        if record.get("near") != near or build_dir.parent == tree \
                or not (build_dir / META).is_file():
            continue
        theirs = patched.marker(build_dir.parent)
        if theirs is None or "changed" not in theirs:
            continue
        between = _between(mine, theirs)
        if between is None:
            continue
        changed = between | set(mine["changed"]) | set(theirs["changed"])
        if len(changed) > MAX_CHANGED:
            continue
        donor = Donor(build_dir, build_dir.parent, frozenset(changed),
                      str(theirs.get("description", build_dir.parent)))
        if best is None or (len(changed), -when) < (best[0], best[1]):
            best = (len(changed), -when, donor)
    return best[2] if best else None


class Unrelated(Exception):
    """The donor's tree is not what its record says: build from nothing instead."""


def _top_level_skip(name: str) -> bool:
    return name.startswith((".ltoboot-", ".tmp-.ltoboot-", ".git"))


def align_times(tree: Path, donor: Donor, now: float) -> int:
    """Give every file of `tree` that is not among `donor.changed` the donor's time for it,
    and those among them the time `now`: make then sees as new exactly what differs. Returns
    how many files got `now`. A file that should be the same but is not there or has another
    size means the records are wrong: Unrelated."""
    touched = 0
    for dirpath, dirnames, filenames in os.walk(tree):
        rel_dir = os.path.relpath(dirpath, tree)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if not _top_level_skip(d)]
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            path = os.path.join(dirpath, name)
            if rel in donor.changed:
                os.utime(path, (now, now), follow_symlinks=False)
                touched += 1
                continue
            try:
                theirs = os.lstat(donor.tree / rel)
            except FileNotFoundError:
                raise Unrelated(f"{rel} is not in {donor.tree}") from None
            if theirs.st_size != os.lstat(path).st_size:
                raise Unrelated(f"{rel} differs from {donor.tree}'s")
            os.utime(path, ns=(theirs.st_atime_ns, theirs.st_mtime_ns), follow_symlinks=False)
    return touched


def start_from(donor: Donor, out: Path, tree: Path) -> int:
    """`out` (a new build directory of `tree`, not there yet) made a copy of the donor's build,
    and `tree`'s times aligned to it. Returns the number of files make will see as new.
    Unrelated (with nothing left at `out`) when the donor's tree does not match."""
    cache.hold(donor.build_dir)  # no prune removes it while it is copied
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
    try:
        return align_times(tree, donor, time.time())
    except Unrelated:
        shutil.rmtree(out)
        raise
