"""Times that make can trust, in trees the cache owns.

make rebuilds a target when something it depends on is newer. A tree the cache made from
another (hard links to its files, the files that differ copied in) gives make exactly that:
what is the same keeps the other tree's time through the shared inode, and what differs is
stamped above the newest time of everything make will compare it with. A file shared with
another tree is never re-timed through the link: it gets an inode of its own first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import time
from pathlib import Path

from harness.base import cache


def newest_ns(*dirs: Path) -> int:
    """The newest modification time of anything under `dirs` (links not followed)."""
    newest = 0
    for top in dirs:
        for dirpath, _, filenames in os.walk(top):
            for name in filenames:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime_ns)
    return newest


def stamp_after(*dirs: Path) -> int:
    """A time for changed files that make sees as newer than everything it compares them
    with: now, or just above the newest time of the donor's tree and build when they are
    ahead of this machine's clock (a clock step, a cache made elsewhere)."""
    return max(time.time_ns(), newest_ns(*dirs) + 1_000_000_000)


def own(path: Path) -> None:
    """Give `path` an inode of its own before its time or mode is changed: one with other
    links is another tree's file too (the cached tree a copy shares it with)."""
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        tmp = path.with_name(cache.unique_name(f".{path.name}.own-"))
        shutil.copy2(path, tmp)
        os.replace(tmp, path)


def stamp(tree: Path, rel: str, when_ns: int) -> None:
    """`rel` of `tree` (a tree the cache owns) made new for make at `when_ns`. make follows a
    symlink and compares what it points to: that (when it is in the tree) is made new too;
    a directory it points to, with everything in it."""
    path = tree / rel
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return  # deleted: kbuild's .cmd files treat a missing dependency as changed
    if not stat.S_ISLNK(st.st_mode):
        own(path)
        os.utime(path, ns=(when_ns, when_ns))
        return
    try:
        target = path.resolve(strict=True)  # a link's own time means nothing to make
    except (OSError, RuntimeError):  # dangling, or a loop: make cannot follow it either
        return
    if not target.is_relative_to(tree.resolve()):
        return
    inside = [target] if not target.is_dir() else \
        [Path(d) / f for d, _, fs in os.walk(target) for f in fs]
    for p in inside:
        if not p.is_symlink():
            own(p)
            os.utime(p, ns=(when_ns, when_ns))
