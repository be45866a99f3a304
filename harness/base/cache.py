"""The artifact cache: content-keyed entries that appear atomically and are built once per machine.

An entry is a file or directory at `<root>/<kind>/<name>`. It is produced into a temporary
sibling under a file lock and renamed into place, so a reader either sees a complete entry or
none, and a producer killed halfway leaves only a temporary that the next producer removes.
A failed production is recorded for the current run so that other workers fail fast with the
same message instead of trying again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from harness.base.errors import BuildError, InfraError, LtobootError, NotFound, UsageError
from harness.base.progress import say

RUN_ID_ENV = "LTOBOOT_RUN_ID"


_USABLE: set[Path] = set()  # roots this process has written to


def cache_root() -> Path:
    """The cache directory ($LTOBOOT_CACHE, default ~/.cache/ltoboot), created and writable
    (tried once per process and root; the probe file is the thread's own, as the arches of a
    run ask from threads of their own at once)."""
    root = Path(os.environ.get("LTOBOOT_CACHE") or Path.home() / ".cache" / "ltoboot").absolute()
    if root in _USABLE and root.is_dir():
        return root
    if not kbuild_can_use(root.absolute()):
        raise UsageError(f"cache directory {str(root)!r} has a space or a colon, which kbuild "
                         "refuses in the trees it builds (and kernels are built in the cache): "
                         "set LTOBOOT_CACHE to a path without them")
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / unique_name(".write-test-")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InfraError(
            f"cache directory {root} is not usable ({e.strerror}): "
            "set LTOBOOT_CACHE to a writable directory with free space"
        ) from None
    _USABLE.add(root)
    return root


def kbuild_can_use(path: Path) -> bool:
    """Whether make can build a kernel in `path`: kbuild stops at a space or colon in its
    source and output directories ("source directory cannot contain spaces or colons")."""
    return not any(c.isspace() or c == ":" for c in str(path))


def scratch_root() -> Path:
    """Where temporary work goes (removed when done): inside the cache, never elsewhere."""
    path = cache_root() / "scratch"
    path.mkdir(exist_ok=True)
    return path


def content_key(parts: Mapping[str, object]) -> str:
    """A short stable hash of every input that determines an artifact."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256_remembered(path: Path) -> str:
    """file_sha256, remembered while the file's inode, size, mtime and ctime stay the same
    (as git's index does), so a cache hit does not rehash a 130 MB tarball. A file changed in
    the last few seconds is not remembered: timestamps are coarser than writes."""
    st = path.stat()
    stamp = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    record = cache_root() / "hashes" / (hashlib.sha256(str(path.resolve()).encode())
                                        .hexdigest()[:20] + ".json")
    try:
        known = json.loads(record.read_text())
        if known["stamp"] == stamp:
            return str(known["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    digest = file_sha256(path)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < 2_000_000_000:
        return digest
    record.parent.mkdir(exist_ok=True)
    write_atomic(record, json.dumps({"path": str(path), "stamp": stamp, "sha256": digest}))
    return digest


def run_id() -> str:
    """Identifies this run across xdist workers (the plugin and CLI set it once per run)."""
    rid = os.environ.get("PYTEST_XDIST_TESTRUNUID") or os.environ.get(RUN_ID_ENV)
    if not rid:
        rid = uuid.uuid4().hex
        os.environ[RUN_ID_ENV] = rid
    return rid


_ERROR_TYPES: dict[str, type[LtobootError]] = {
    cls.__name__: cls for cls in (BuildError, InfraError, NotFound, UsageError, LtobootError)
}


def _failure_path(entry: Path) -> Path:
    return entry.with_name(f".{entry.name}.failed.json")


def unique_name(prefix: str) -> str:
    """A name no other call makes: the arches of a run are threads of one process, and runs
    share the cache, so neither the pid nor the thread alone is enough."""
    return f"{prefix}{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:12]}"


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Write `path` whole or not at all: a temporary of this call's own beside it, renamed."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(name, mode)
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def locked(path: Path, waiting_message: str) -> Iterator[None]:
    """Hold the file lock at `path`; say `waiting_message` when someone else holds it."""
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(waiting_message)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


TRASH = ".trash-"  # an entry being pruned: renamed to this + its name, then deleted
# the cache's own at the top of a source tree (build directories, their bookkeeping): never
# a source file, never linked into another tree
CACHE_OWN = (".ltoboot-", "..ltoboot-", ".tmp-.ltoboot-", f"{TRASH}.ltoboot-")


def tree_record(tree: Path, kind: str, name: str) -> dict[str, Any] | None:
    """The record `name` beside `tree` when the tree is one the cache made as an entry of
    `kind` (`<root>/<kind>/<key>/tree`, a series' or a copy's), None for any other tree."""
    f = tree.parent / name
    try:
        if f.is_file() and tree.parent.parent == cache_root() / kind:
            return dict(json.loads(f.read_text()))
    except (OSError, ValueError):
        return None
    return None


def use_lock(entry: Path) -> Path:
    """The file whose lock says an entry is in use: shared by every process using the entry,
    tried exclusively by `ltoboot cache prune` (harness/runs/housekeeping.py)."""
    return entry.with_name(f".{entry.name}.use")


def size_record(entry: Path) -> Path:
    return entry.with_name(f".{entry.name}.size")


_HELD: dict[Path, int] = {}  # entries this process uses: their use locks' descriptors
_PRODUCED: list[Path] = []  # entries this process made: the cache grew
_SHOWN: set[Path] = set()  # files this process named to the user from an earlier run
_HELD_LOCK = threading.Lock()
STARTED = time.time()  # files this process wrote are newer (the prune after it keeps them)


def hold(entry: Path) -> None:
    """Mark `entry` in use by this process until it exits (pruning leaves it alone), and
    used now (its last use, for pruning the least recently used). The entry need not be there
    yet: held before it is made, no prune removes it between its making and its use."""
    with _HELD_LOCK:
        if entry in _HELD:
            return
        _HELD[entry] = _lock_shared(use_lock(entry))
    with contextlib.suppress(OSError):
        os.utime(entry, follow_symlinks=False)


def _unhold(entry: Path) -> None:
    """Let go of `entry`, and remove its use lock when no other process holds it (a lock
    taken again on the file afterwards sees it unlinked and makes it anew)."""
    with _HELD_LOCK:
        fd = _HELD.pop(entry, None)
        if fd is None:
            return
        os.close(fd)
        with contextlib.suppress(OSError):
            mine = os.open(use_lock(entry), os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.flock(mine, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.unlink(use_lock(entry))
            finally:
                os.close(mine)


def _lock_shared(path: Path) -> int:
    """A descriptor with a shared lock on the file at `path` now. The lock waits out a prune
    that holds it exclusively, and that prune unlinks the file as it removes the entry: a
    lock on that unlinked file guards nothing, so it is taken again on the file now there."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            locked_file, there = os.fstat(fd), os.stat(path)
        except FileNotFoundError:  # unlinked by the prune we waited for
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        if (locked_file.st_dev, locked_file.st_ino) == (there.st_dev, there.st_ino):
            return fd
        os.close(fd)  # unlinked, and another process made the file anew: lock that one


def grew() -> bool:
    """Whether this process added an entry to the cache (what pruning after a command needs:
    a command that only used what was there adds its logs alone)."""
    return bool(_PRODUCED)


def shown(path: Path) -> None:
    """Keep a file this process names to the user (a reused kernel's build log, a crash file)
    from the prune after its command."""
    with _HELD_LOCK:
        _SHOWN.add(path)


def ours() -> set[Path]:
    """What this process holds, made or named to the user: the prune after its command
    leaves it."""
    with _HELD_LOCK:
        return {*_HELD, *_PRODUCED, *_SHOWN}


def release_all() -> None:
    """Let go of every entry this process holds (tests; exiting does it anyway)."""
    with _HELD_LOCK:
        for fd in _HELD.values():
            os.close(fd)
        _HELD.clear()


def disk_size(path: Path) -> int:
    """Bytes on disk, a hard-linked file's share counted once across its links (a variant's
    tree is the base tree's files, linked)."""
    try:
        st = path.lstat()
    except OSError:
        return 0
    total = st.st_blocks * 512 // max(1, st.st_nlink)
    if stat.S_ISDIR(st.st_mode):
        try:
            with os.scandir(path) as it:
                for child in it:
                    total += disk_size(Path(child.path))
        except OSError:
            pass
    return total


def publish(entry: Path, produce: Callable[[Path], None]) -> Path:
    """Return `entry`, producing it first with `produce(tmp)` if it is not in the cache yet,
    and hold it (in use by this process: no prune removes it).

    `produce` writes a file or directory at the path it is given; it is renamed to `entry`
    only when `produce` returns. Safe across processes: exactly one produces, others wait.
    """
    entry.parent.mkdir(parents=True, exist_ok=True)
    hold(entry)  # before the look: a prune removes it before this line or not at all
    if entry.exists():
        return entry
    with locked(entry.with_name(f".{entry.name}.lock"),
                f"waiting for another process to finish {entry.parent.name}/{entry.name}"):
        if not entry.exists():
            try:
                _produce(entry, produce)
            except BaseException:
                _unhold(entry)  # nothing was made: no use lock is left beside nothing
                raise
            _PRODUCED.append(entry)
            with contextlib.suppress(OSError):  # its size, once: `ltoboot cache` reads it
                write_atomic(size_record(entry), str(disk_size(entry)))
    return entry


def _produce(entry: Path, produce: Callable[[Path], None]) -> None:
    failed = _failure_path(entry)
    if failed.exists():
        record = json.loads(failed.read_text())
        if record.get("run") == run_id():
            raise _ERROR_TYPES.get(record.get("type", ""), LtobootError)(record["message"])
        failed.unlink()
    # Anything temporary left here was abandoned by a killed producer: never trust it.
    for stale in entry.parent.glob(f".tmp-{entry.name}-*"):
        _remove(stale)
    tmp = entry.with_name(unique_name(f".tmp-{entry.name}-"))
    try:
        produce(tmp)
        os.rename(tmp, entry)
    except OSError as e:
        _remove(tmp)
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise InfraError(
                f"cannot write the cache entry {entry} ({e.strerror}): free space or set "
                "LTOBOOT_CACHE to a writable directory"
            ) from None
        raise
    except BaseException as e:
        _remove(tmp)
        if isinstance(e, LtobootError):
            write_atomic(
                failed, json.dumps({"run": run_id(), "type": type(e).__name__, "message": str(e)})
            )
        raise
