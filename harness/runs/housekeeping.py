"""The cache as a user sees it: what is there by kind, how big, when last used; and pruning,
least recently used first, of entries no running process holds, never half an entry.

An entry is a top-level item of a kind's directory (a build inside an unpacked source tree is
an entry of its own). In use means a process holds the entry's use lock (shared; cache.hold,
taken by every cache hit): pruning tries it exclusively and leaves the entry alone when it
cannot. An entry goes by one rename to a trash name in the same directory (atomic), then is
deleted: a reader sees it whole or not at all. Trash a stopped prune left is listed as a kind
of its own and removed first by every prune: nobody uses it (it was renamed away under the
entry's exclusive use lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import pwd
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.base import cache
from harness.base.errors import LtobootError, UsageError

MAX_ENV = "LTOBOOT_CACHE_MAX"
DEFAULT_MAX = 30 * 1024**3
# the kind of each top-level directory, in the order `ltoboot cache` lists them
KINDS: dict[str, str] = {
    "src": "sources", "kernels": "builds", "variants": "variants", "series": "series trees",
    "mail": "fetched series",
    "trees": "tree copies", "git-objects": "tree copies",
    "wheels": "downloads",
    "bisect": "bisect builds", "bisect-builds": "bisect builds",
    "bisect-trees": "bisect clones", "downloads": "downloads", "prebuilt": "downloads",
    "exports": "exports", "initramfs": "initramfs", "busybox": "initramfs",
    "modules": "initramfs", "tools": "initramfs", "ccache": "ccache",
    "test-repos": "test repositories", "logs": "logs", "reports": "logs",
}
TRASH_KIND = "leftover trash"
ORDER = list(dict.fromkeys(["sources", "builds", *KINDS.values(), TRASH_KIND]))
# bookkeeping: small, and what the rest relies on; never listed as entries or pruned
KEEP = {"hashes", "index", "kconfig-symbols", "locks", "probe", "scratch"}
_BUILD = re.compile(r"^\.ltoboot-.+")  # a build directory inside a tree the cache owns


@dataclass
class Entry:
    kind: str
    path: Path
    size: int
    last_used: float
    inside: list[Entry]  # builds in a source tree and their trash: removed before the tree

    @property
    def total(self) -> int:
        return self.size + sum(e.size for e in self.inside)


def _size(path: Path, less: int = 0) -> int:
    """An entry's size: its record, written when it was made (entries do not change after);
    measured once, less what `less` says is counted elsewhere, and recorded, when missing."""
    record = cache.size_record(path)
    with contextlib.suppress(OSError, ValueError):
        return int(record.read_text())
    size = max(0, cache.disk_size(path) - less)
    if path.is_dir():
        with contextlib.suppress(OSError):
            cache.write_atomic(record, str(size))
    return size


def _tops(tree_entry: Path) -> list[Path]:
    return [p for p in tree_entry.iterdir() if p.is_dir() and not p.is_symlink()]


def _builds_in(tree_entry: Path) -> Iterator[Path]:
    for top in _tops(tree_entry):
        for child in top.iterdir():
            if child.is_dir() and _BUILD.match(child.name) and not child.name.endswith(
                    (".lock", ".use", ".size", ".json")):
                yield child


def _trash(path: Path) -> Entry:
    """Trash a stopped prune left: measured each time (no size record for what is going)."""
    return Entry(TRASH_KIND, path, cache.disk_size(path), path.lstat().st_mtime, [])


def _trash_in(directory: Path) -> list[Entry]:
    return [_trash(p) for p in sorted(directory.iterdir()) if p.name.startswith(cache.TRASH)]


def _entry(kind: str, path: Path) -> Entry:
    st = path.lstat()
    if kind in ("sources", "series trees", "tree copies") and path.is_dir():
        builds = [Entry("builds", b, _size(b), b.lstat().st_mtime, []) for b in
                  _builds_in(path)]
        trash = [t for top in _tops(path) for t in _trash_in(top)]  # of builds inside it
        own = _size(path, less=sum(b.size for b in (*builds, *trash)))
        last = max([st.st_mtime, *(b.last_used for b in builds)])
        return Entry(kind, path, own, last, builds + trash)
    return Entry(kind, path, _size(path), st.st_mtime, [])


def entries(root: Path | None = None) -> list[Entry]:
    """Every entry of the cache, by kind."""
    root = root or cache.cache_root()
    found: list[Entry] = []
    for name, kind in KINDS.items():
        d = root / name
        if not d.is_dir():
            continue
        if name == "logs":  # a log is an entry; its subdirectories hold logs too
            for p in d.rglob("*"):
                inner = p.relative_to(d).parts
                with contextlib.suppress(OSError):  # gone since the look
                    if p.name.startswith(cache.TRASH):
                        found.append(_trash(p))
                    elif p.is_file() and not p.is_symlink() and not any(
                            part.startswith(cache.TRASH) for part in inner):
                        found.append(Entry(kind, p, p.lstat().st_size, p.lstat().st_mtime, []))
            continue
        with contextlib.suppress(OSError):
            found += _trash_in(d)
        for p in sorted(d.iterdir()):
            if p.name.startswith(".") or (name == "downloads" and p.name == "urls"):
                continue
            with contextlib.suppress(OSError):
                found.append(_entry(kind, p))
    return found


def held(path: Path) -> bool:
    """Whether a running process uses `path` (holds its use lock)."""
    lock = cache.use_lock(path)
    if not lock.exists():
        return False
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _remove(path: Path) -> bool:
    """Remove an entry unless it is in use: renamed away under its use lock (exclusive), then
    deleted. False when a process holds it; OSError when it cannot be removed (then it is
    whole where it was, or what is left of it is trash that the next prune removes)."""
    lock = cache.use_lock(path)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        trash = path.with_name(cache.unique_name(f"{cache.TRASH}{path.name}-"))
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return True
        for side in (cache.size_record(path), lock):
            side.unlink(missing_ok=True)
    finally:
        os.close(fd)
    _delete(trash)
    return True


def _delete(path: Path) -> None:
    """Delete `path` whole, or raise the first OSError that left part of it (another prune
    deleting the same trash at once is no error)."""
    if not path.is_dir() or path.is_symlink():
        path.unlink(missing_ok=True)
        return
    failed: list[OSError] = []

    def note(function: object, name: str, exc_info: tuple[object, BaseException, object]
             ) -> None:
        e = exc_info[1]
        if not isinstance(e, FileNotFoundError):
            failed.append(e if isinstance(e, OSError) else OSError(str(e)))

    shutil.rmtree(path, onerror=note)
    if failed:
        raise failed[0]


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _why_not(path: Path, e: OSError) -> str:
    """One line for what a prune could not remove: which, why, and what to do about it."""
    why = e.strerror or str(e)
    if e.filename and Path(os.fsdecode(e.filename)) != path:
        why += f": {os.fsdecode(e.filename)}"
    for owned in (path, path.parent):  # made through sudo: root's, in a directory of root's
        with contextlib.suppress(OSError):
            uid = owned.lstat().st_uid
            if uid != os.getuid():
                user = _user(uid)
                return (f"not removed: {path} ({why}): remove it as {user}, the user that made "
                        f"it (sudo -u {user} rm -rf {path})")
    return (f"not removed: {path} ({why}): make {path.parent} writable for you or remove it "
            "as the user that made it")


@dataclass
class NotRemoved:
    entry: Entry
    why: str  # one line: which entry, why, and what to do


@dataclass
class Pruned:
    removed: list[Entry]
    kept_in_use: list[Entry]
    not_removed: list[NotRemoved] = field(default_factory=list)

    @property
    def freed(self) -> int:
        return sum(e.size for e in self.removed)


def prune(max_size: int | None = None, older_than_days: float | None = None,
          root: Path | None = None, now: float | None = None,
          spare: Callable[[Entry], bool] = lambda e: False) -> Pruned:
    """Remove leftover trash, then what is older than `older_than_days`, then the least
    recently used until the cache is at most `max_size` bytes; what a process holds, and
    what `spare` says to keep, stays whole."""
    root = root or cache.cache_root()
    now = time.time() if now is None else now
    found = entries(root)
    result = Pruned([], [])
    gone: set[Path] = set()
    total = 0
    for t in (t for e in found for t in (e, *e.inside) if t.kind == TRASH_KIND):
        try:
            _delete(t.path)
        except OSError as error:
            result.not_removed.append(NotRemoved(t, _why_not(t.path, error)))
            total += t.size  # still there: the bound counts it
            continue
        gone.add(t.path)
        result.removed.append(t)
    flat: list[tuple[Entry, Entry | None]] = []  # (entry, the tree it is inside)
    for e in (e for e in found if e.kind != TRASH_KIND):
        flat += [(b, e) for b in e.inside if b.kind != TRASH_KIND]
        flat.append((e, None))
    total += sum(e.size for e, _ in flat)
    for e, tree in sorted(flat, key=lambda t: (t[0].last_used, t[1] is None)):
        old = older_than_days is not None and now - e.last_used > older_than_days * 86400
        big = max_size is not None and total > max_size
        if not (old or big):
            continue
        if tree is None and any(b.path not in gone for b in e.inside):
            result.kept_in_use.append(e)  # a build inside it stayed: the tree stays too
            continue
        if spare(e):
            result.kept_in_use.append(e)
            continue
        try:
            in_use = held(e.path) or not _remove(e.path)
        except OSError as error:  # one entry's: the others still go
            result.not_removed.append(NotRemoved(e, _why_not(e.path, error)))
            continue
        if in_use:
            result.kept_in_use.append(e)
            continue
        gone.add(e.path)
        result.removed.append(e)
        total -= e.size
    return result


_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: str, what: str = "--max-size") -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]?)(?:i?[bB])?\s*", value)
    if m is None:
        raise UsageError(f"{what} {value!r}: give a size such as 30G, 500M or 1048576")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def max_size() -> int:
    """The bound every command prunes the cache to: $LTOBOOT_CACHE_MAX, else 30 GiB."""
    value = os.environ.get(MAX_ENV)
    return parse_size(value, MAX_ENV) if value else DEFAULT_MAX


def ago(then: float, now: float | None = None) -> str:
    s = max(0.0, (time.time() if now is None else now) - then)
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s / n:.0f} {unit} ago"
    return "just now"


def listing(found: list[Entry]) -> str:
    """`ltoboot cache`: by kind, the total, then each entry with its size and last use."""
    by_kind: dict[str, list[Entry]] = {}
    for e in found:
        by_kind.setdefault(e.kind, []).append(e)
        for b in e.inside:
            by_kind.setdefault(b.kind, []).append(b)
    lines = []
    for kind in ORDER:
        items = sorted(by_kind.get(kind, []), key=lambda e: -e.last_used)
        if not items:
            continue
        size = human(sum(e.size for e in items))
        if kind == TRASH_KIND:  # its time is its entry's last use: no news
            lines.append(f"{kind}: {len(items)}, {size} (of a prune that was stopped; the "
                         "next prune removes it)")
            lines += [f"  {human(e.size):>10}  {'':>12}  {e.path}" for e in items]
            continue
        lines.append(f"{kind}: {len(items)}, {size}, last used {ago(items[0].last_used)}")
        if kind != "logs":
            lines += [f"  {human(e.size):>10}  {ago(e.last_used):>12}  {e.path}" for e in items]
    total = sum(e.size for v in by_kind.values() for e in v)
    lines.append(f"total: {human(total)} (bound: {human(max_size())}, ${MAX_ENV})")
    return "\n".join(lines)


def prune_command(max_size_text: str | None, older_than_days: float | None
                  ) -> tuple[list[str], bool]:
    """`ltoboot cache prune`: what it removed, what it kept because a process uses it, what it
    could not remove and what to do; and whether it removed all it should have."""
    if older_than_days is not None and (not math.isfinite(older_than_days)
                                        or older_than_days < 0):
        raise UsageError(f"--older-than {older_than_days}: give a number of days, 0 or more")
    bound = parse_size(max_size_text) if max_size_text is not None else max_size()
    done = prune(bound, older_than_days)
    summary = f"ltoboot: cache pruned: {len(done.removed)} removed, {human(done.freed)} freed"
    if done.not_removed:
        summary += (f"; {len(done.not_removed)} not removed "
                    f"({human(sum(n.entry.size for n in done.not_removed))}): see above")
    return [*(f"removed {e.kind}: {e.path} ({human(e.size)})" for e in done.removed),
            *(f"kept (in use): {e.path}" for e in done.kept_in_use),
            *(n.why for n in done.not_removed), summary], not done.not_removed


def keep_bounded() -> str:
    """After each command: the cache pruned to $LTOBOOT_CACHE_MAX, but never what the command
    made, uses, wrote or printed; one line when it removed anything, else nothing. A command
    that made no entry (a warm run: its logs alone) skips the look at the whole cache: the
    harness adds almost nothing to a warm run."""
    if not cache.grew():
        return ""
    mine = {os.path.abspath(p) for p in cache.ours()}
    since = cache.STARTED - 2  # file times lag the clock by a tick: a margin

    def this_process(e: Entry) -> bool:
        """Held, made or named by this process; or a log written since it started (its own,
        or a run's beside it), whose path the command may just have printed."""
        return os.path.abspath(e.path) in mine or (e.kind == "logs" and e.last_used >= since)

    try:
        bound = max_size()
        done = prune(bound, spare=this_process)
    except LtobootError:  # a bad $LTOBOOT_CACHE_MAX: the command said so when it started
        return ""
    except OSError as e:  # pruning is never a command's failure
        return f"ltoboot: cache not pruned ({e}): `ltoboot cache prune` says more"
    except Exception as e:  # not even a bug of pruning's: the command's result stands
        return f"ltoboot: cache not pruned: {type(e).__name__}: {e} (a bug in ltoboot)"
    if not done.removed and not done.not_removed:
        return ""
    kinds = ", ".join(sorted({e.kind for e in done.removed}))
    said = (f"ltoboot: cache over its bound ({human(bound)}, ${MAX_ENV}): removed "
            f"{len(done.removed)} least recently used entries" + (f" ({kinds})" if kinds else "")
            + f", {human(done.freed)} freed")
    if done.not_removed:
        said += (f"; {len(done.not_removed)} could not be removed: `ltoboot cache prune` names "
                 "them and what to do")
    return said
