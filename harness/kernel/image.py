"""What a kernel image says about itself: its architecture, its version, its embedded config.

Read from the image's own header (the x86 boot protocol's setup header, the arm64 Image
header), so a prebuilt kernel of the wrong architecture is refused before QEMU starts.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import re
import select
import shutil
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness.base import proc
from harness.base.arch import ARCH_NAMES, ARCHES, Arch
from harness.base.errors import UsageError

GZIP_MAGIC = b"\x1f\x8b\x08"
IKCONFIG_START, IKCONFIG_END = b"IKCFG_ST", b"IKCFG_ED"  # kernel/configs.c
_LINUX_VERSION = re.compile(rb"Linux version (\S+) \(")


@dataclass(frozen=True)
class ImageInfo:
    arch: str
    version: str | None  # the release, e.g. 6.1.192, when the image says it


def _version(data: bytes, arch: Arch) -> str | None:
    if arch.image_version_ptr_at is None:
        m = _LINUX_VERSION.search(data)
        return m.group(1).decode() if m else None
    at = arch.image_version_ptr_at
    ptr = int.from_bytes(data[at:at + 2], "little")
    if not ptr or 0x200 + ptr >= len(data):
        return None
    text = data[0x200 + ptr:0x200 + ptr + 200].split(b"\0")[0].decode(errors="replace")
    return text.split(" ")[0] or None


_UTS_VERSION = re.compile(r"\s(#\d+\S*(?:\s.*)?)$")


def build_identity(banner: str) -> tuple[str, str] | None:
    """(release, UTS_VERSION: "#1 SMP PREEMPT <date>") from /proc/version or an image's
    version string: what tells one build of a release from another."""
    text = banner.strip().removeprefix("Linux version ")
    release = text.split(" ", 1)[0]
    m = _UTS_VERSION.search(text)
    return (release, m.group(1).strip()) if release and m else None


def banner(data: bytes, arch: Arch) -> str | None:
    """The version string an (unwrapped) image carries: x86's setup header points at its
    kernel_version; elsewhere linux_banner, "Linux version ...", is in the image itself."""
    if arch.image_version_ptr_at is not None:
        at = arch.image_version_ptr_at
        ptr = int.from_bytes(data[at:at + 2], "little")
        if ptr and 0x200 + ptr < len(data):
            return data[0x200 + ptr:0x200 + ptr + 300].split(b"\0")[0].decode(errors="replace")
        return None
    m = re.search(rb"Linux version [^\n\0]+", data)
    return m.group(0).decode(errors="replace") if m else None


def unwrap(data: bytes) -> bytes:
    """The image itself: Image.gz is gunzipped, anything else is returned as it is."""
    if data.startswith(GZIP_MAGIC):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise UsageError(f"a gzip file that does not decompress ({e}): not a kernel "
                             "image") from None
    return data


def identify(data: bytes, name: str = "image") -> ImageInfo:
    """Architecture and version of an (unwrapped) kernel image, or a UsageError saying why the
    bytes are not a kernel we can boot."""
    for arch in ARCHES.values():
        at = arch.image_magic_at
        if data[at:at + len(arch.image_magic)] != arch.image_magic:
            continue
        if arch.image_flag is not None and not data[arch.image_flag[0]] & arch.image_flag[1]:
            raise UsageError(f"{name}: a 32-bit {arch.name} sibling; ltoboot boots "
                             f"{', '.join(ARCH_NAMES)}")
        return ImageInfo(arch.name, _version(data, arch))
    images = sorted({n for a in ARCHES.values() for n in a.artifact_images})
    raise UsageError(f"{name}: not a kernel image (no boot header of "
                     f"{', '.join(ARCH_NAMES)}); give {', '.join(images)}")


def read(path: Path) -> tuple[bytes, ImageInfo]:
    """The unwrapped image at `path` and what it is."""
    if not path.is_file():
        raise UsageError(f"{path}: no such kernel image")
    data = unwrap(path.read_bytes())
    return data, identify(data, str(path))


PAYLOAD_LIMIT = 256 << 20  # bytes a stream may decompress to: a bzImage's vmlinux is smaller
TOOL_SECONDS = 60.0  # a decompressing tool's time before it is ended

# The compressed streams a kernel image carries (a bzImage's vmlinux; arm64's Image.gz): those
# Python's library reads, then those the host's tools do, as scripts/extract-ikconfig does.
_STREAMS: list[tuple[bytes, Callable[[], Any]]] = [
    (b"\xfd7zXZ\x00", lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ)),
    (b"\x5d\x00\x00", lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE)),
    (GZIP_MAGIC, lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)),
    (b"BZh", lambda: bz2.BZ2Decompressor()),
]


def _lz4_legacy(head: bytes) -> bool:
    """kbuild's `lz4 -l`: blocks of at most 8 MiB, the first one's compressed size after the
    magic (at most LZ4_compressBound(8 MiB))."""
    size = int.from_bytes(head[4:8], "little")
    return len(head) >= 8 and 0 < size <= (8 << 20) + (8 << 20) // 255 + 16


def _zstd(head: bytes) -> bool:
    return len(head) >= 5 and not head[4] & 0x08  # the frame header's reserved bit is clear


def _lzop(head: bytes) -> bool:
    """lzop's header: its version, then the method (1-3) at an offset that depends on it."""
    if len(head) < 16:
        return False
    version = int.from_bytes(head[9:11], "big")
    return 0x0900 <= version < 0x2000 and head[15 if version >= 0x0940 else 13] in (1, 2, 3)


# magic, what reads it, its name, and whether what follows the magic is such a header
_TOOL_STREAMS: list[tuple[bytes, tuple[str, ...], str, Callable[[bytes], bool]]] = [
    (b"\x02\x21\x4c\x18", ("lz4", "-dc"), "LZ4", _lz4_legacy),
    (b"\x28\xb5\x2f\xfd", ("zstd", "-dcq"), "zstd", _zstd),
    (b"\x89LZO\x00\r\n\x1a\n", ("lzop", "-dc"), "LZO", _lzop),
]


def _offsets(data: bytes, magic: bytes) -> Iterator[int]:
    at = data.find(magic)
    while at != -1:
        yield at
        at = data.find(magic, at + 1)


def _in_python(data: bytes, make: Callable[[], Any]) -> bytes:
    try:
        return bytes(make().decompress(data, PAYLOAD_LIMIT))
    except (lzma.LZMAError, zlib.error, OSError, EOFError, ValueError):
        return b""  # a chance match of the magic bytes


def read_at_most(stream: IO[bytes], limit: int, deadline: float) -> bytes:
    """What `stream` gives until its end, `limit` bytes or the (monotonic) deadline,
    whichever comes first: never more than `limit` bytes read."""
    chunks: list[bytes] = []
    got = 0
    while got < limit:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            break
        chunk = stream.read1(min(1 << 20, limit - got))  # type: ignore[attr-defined]
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _with_tool(argv: tuple[str, ...], data: bytes) -> bytes:
    """What `argv` decompresses from `data` on its stdin: at most PAYLOAD_LIMIT bytes, in at
    most TOOL_SECONDS. The stream's end is followed by other bytes (kbuild appends the size; a
    bzImage goes on), so the tool's complaint about them is no failure: what it wrote is the
    payload. A thread feeds it while its output is read: neither pipe fills up and waits."""
    with proc.running(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=subprocess.DEVNULL, text=False) as p:
        def feed() -> None:
            try:
                p.stdin.write(data)
            except OSError:  # the tool stopped reading: a broken pipe
                pass
            finally:
                with contextlib.suppress(OSError):
                    p.stdin.close()

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            out = read_at_most(p.stdout, PAYLOAD_LIMIT, time.monotonic() + TOOL_SECONDS)
            if len(out) < PAYLOAD_LIMIT:  # its end: reaped now, not ended after a grace
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=1)
        finally:
            p.stdout.close()
    feeder.join()
    return out


def _payloads(data: bytes, missing: set[tuple[str, str]]) -> Iterator[bytes]:
    """The image, then every compressed stream found in it (a bzImage carries vmlinux so).
    The formats found whose tool this machine has not got go into `missing`."""
    yield data
    for magic, make in _STREAMS:
        for at in _offsets(data, magic):
            if out := _in_python(data[at:], make):
                yield out
    for magic, argv, name, plausible in _TOOL_STREAMS:
        for at in _offsets(data, magic):
            if not plausible(data[at:at + 16]):
                continue
            if shutil.which(argv[0]) is None:
                missing.add((name, argv[0]))
                break
            if out := _with_tool(argv, data[at:]):
                yield out


def embedded_config(data: bytes, missing: set[tuple[str, str]] | None = None) -> str | None:
    """The .config the kernel carries (CONFIG_IKCONFIG), as scripts/extract-ikconfig finds it;
    None when none was found. The streams that could not be read for want of a tool go into
    `missing` (format, tool): a config may be in them."""
    missing = set() if missing is None else missing
    for payload in _payloads(data, missing):
        start = payload.find(IKCONFIG_START)
        if start == -1:
            continue
        end = payload.find(IKCONFIG_END, start)
        try:
            return gzip.decompress(payload[start + len(IKCONFIG_START):end]).decode()
        except (OSError, EOFError, zlib.error):
            continue
    return None
