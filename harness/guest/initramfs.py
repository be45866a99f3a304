"""The guest's initramfs: busybox, our init and the kernel's modules, as reproducible newc cpio."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.base import cache, resources
from harness.base.arch import get_arch
from harness.guest import busybox
from harness.kernel.model import Kernel

RECIPE = 2  # 2: extra files keep their executable bit


@dataclass(frozen=True)
class Entry:
    name: str  # path inside the archive, no leading slash
    mode: int  # full st_mode, type bits included
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def newc(entries: Iterable[Entry]) -> bytes:
    """A newc cpio archive; fixed inode numbers, owners and times, so same input, same bytes."""
    out = bytearray()

    def pad() -> None:
        out.extend(b"\0" * (-len(out) % 4))

    def member(ino: int, e: Entry) -> None:
        name = e.name.encode() + b"\0"
        fields = (ino, e.mode, 0, 0, 1, 0, len(e.data), 0, 0, e.rdev[0], e.rdev[1], len(name), 0)
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + name)
        pad()
        out.extend(e.data)
        pad()

    ordered = sorted(entries, key=lambda e: e.name)
    for ino, e in enumerate(ordered, start=1):
        member(ino, e)
    member(0, Entry("TRAILER!!!", 0))
    return bytes(out)


def _dir(name: str) -> Entry:
    return Entry(name, stat.S_IFDIR | 0o755)


def _tree(root: Path, prefix: str) -> list[Entry]:
    """Regular files and directories below `root`; symlinks (host paths) are left out."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        base = prefix if rel == "." else f"{prefix}/{rel}"
        entries.append(_dir(base))
        for name in sorted(filenames):
            p = Path(dirpath, name)
            if p.is_symlink() or not p.is_file():
                continue
            mode = 0o755 if os.access(p, os.X_OK) else 0o644
            entries.append(Entry(f"{base}/{name}", stat.S_IFREG | mode, p.read_bytes()))
    return entries


def entries_for(kernel: Kernel, busybox_bin: Path, init: Path,
                extra: Mapping[str, Path] | None = None) -> list[Entry]:
    entries = [_dir(d) for d in ("bin", "dev", "etc", "lib", "proc", "root", "sbin", "sys",
                                 "tmp", "usr", "usr/bin", "usr/sbin")]
    entries.append(Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)))
    entries.append(Entry("init", stat.S_IFREG | 0o755, init.read_bytes()))
    entries.append(Entry("bin/busybox", stat.S_IFREG | 0o755, busybox_bin.read_bytes()))
    if kernel.modules is not None and (kernel.modules / "lib/modules").is_dir():
        entries.extend(_tree(kernel.modules / "lib/modules", "lib/modules"))
    extra = extra or {}
    for d in sorted({str(Path(g).parent).lstrip("/") for g in extra}):
        entries.append(_dir(d))
    for guest_path, host_path in sorted(extra.items()):
        mode = 0o755 if os.access(host_path, os.X_OK) else 0o644
        entries.append(Entry(guest_path.lstrip("/"), stat.S_IFREG | mode, host_path.read_bytes()))
    return entries


def build_initramfs(kernel: Kernel, init: Path | None = None,
                    extra: Mapping[str, Path] | None = None) -> Path:
    """The cached initramfs for `kernel`: our init (or `init`), busybox, the kernel's modules,
    and `extra` files (guest path -> host file)."""
    init = init or resources.GUEST_INIT
    extra = extra or {}
    bb = busybox.busybox_for(get_arch(kernel.arch))
    key = cache.content_key({
        "recipe": RECIPE, "kernel": kernel.key, "modules": str(kernel.modules),
        "busybox": cache.file_sha256(bb), "init": hashlib.sha256(init.read_bytes()).hexdigest(),
        "extra": {g: cache.file_sha256(h) for g, h in sorted(extra.items())},
    })

    def produce(tmp: Path) -> None:
        tmp.write_bytes(newc(entries_for(kernel, bb, init, extra)))

    return cache.publish(cache.cache_root() / "initramfs" / f"{kernel.arch}-{key}.cpio", produce)
