"""Reading what a kernel image is from its header, on synthetic images."""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness.base import proc
from harness.base.errors import UsageError
from harness.kernel import image, prebuilt
from tests.synthetic import arm64, x86

CONFIG = "CONFIG_LTO_CLANG_THIN=y\n# CONFIG_LTO_NONE is not set\n"
IKCONFIG = image.IKCONFIG_START + gzip.compress(CONFIG.encode()) + image.IKCONFIG_END


def test_x86_header() -> None:
    assert image.identify(x86()) == image.ImageInfo("x86_64", "6.1.192")


def test_32_bit_x86_is_refused() -> None:
    with pytest.raises(UsageError, match="32-bit"):
        image.identify(x86(xloadflags=0))


def test_arm64_header_also_gzipped() -> None:
    assert image.identify(image.unwrap(gzip.compress(arm64()))) == \
        image.ImageInfo("arm64", "6.1.192")


def test_not_a_kernel() -> None:
    with pytest.raises(UsageError, match="not a kernel image"):
        image.identify(b"\x7fELF" + bytes(0x300), "vmlinux")


def test_embedded_config_in_plain_and_compressed_payloads() -> None:
    assert image.embedded_config(arm64(IKCONFIG)) == CONFIG
    # a bzImage carries vmlinux compressed (xz here), after other bytes
    assert image.embedded_config(x86(payload=b"junk" + lzma.compress(b"\0" * 64 + IKCONFIG)))\
        == CONFIG
    assert image.embedded_config(x86()) is None


def compressed_with(argv: list[str], data: bytes) -> bytes:
    return subprocess.run(argv, input=data, stdout=subprocess.PIPE, check=True).stdout


def vmlinux_stream(argv: list[str]) -> bytes:
    """A vmlinux carrying IKCONFIG, compressed so that the start mark is not in the stream's
    bytes as they are (the mark's first 7 bytes seen before make a match of it): only a
    decompressor finds the config."""
    vmlinux = b"IKCFG_SX" * 8 + b"\0" * 4096 + IKCONFIG + bytes(range(256)) * 64
    stream = compressed_with(argv, vmlinux)
    assert image.IKCONFIG_START not in stream
    return stream


# kbuild's compressors (scripts/Makefile.lib) and what follows a bzImage's stream: the size
# kbuild appends, then the rest of the image
KBUILD_COMPRESSORS = {"lz4": ["lz4", "-l", "-9", "-c"], "zstd": ["zstd", "-22", "--ultra", "-c"],
                      "lzo": ["lzop", "-9", "-c"]}


@pytest.fixture()
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """The tools the test starts, to see that each has ended by the time it returns."""
    started: list[subprocess.Popen[bytes]] = []
    real = proc.spawn

    def spawn(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(proc, "spawn", spawn)
    return started


@pytest.mark.parametrize("name", sorted(KBUILD_COMPRESSORS))
def test_embedded_config_in_streams_the_host_tools_read(
        name: str, spawned: list[subprocess.Popen[bytes]]) -> None:
    stream = vmlinux_stream(KBUILD_COMPRESSORS[name])
    image_bytes = x86(payload=b"junk" + stream + (1 << 20).to_bytes(4, "little") + b"\xff" * 512)
    assert image.embedded_config(image_bytes) == CONFIG
    assert spawned and all(p.returncode is not None for p in spawned)  # none left running


def test_a_tool_is_fed_and_read_at_once(spawned: list[subprocess.Popen[bytes]]) -> None:
    """Far more than a pipe holds, both ways: written first and read after, the tool and
    ltoboot would wait for each other for ever."""
    vmlinux = os.urandom(20 << 20)  # lz4 -l blocks are 8 MiB: it writes before it has read all
    stream = compressed_with(KBUILD_COMPRESSORS["lz4"], vmlinux)
    result: list[bytes] = []
    worker = threading.Thread(target=lambda: result.append(
        image._with_tool(("lz4", "-dc"), stream + b"\xff" * 64)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert result == [vmlinux]
    assert all(p.returncode is not None for p in spawned)


def test_a_missing_tool_is_said_with_no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = vmlinux_stream(KBUILD_COMPRESSORS["lz4"])
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda tool: None if tool in ("lz4", "zstd") else real_which(tool))
    missing: set[tuple[str, str]] = set()
    assert image.embedded_config(x86(payload=stream), missing) is None
    assert missing == {("LZ4", "lz4")}
    zstd = vmlinux_stream(KBUILD_COMPRESSORS["zstd"])
    files = prebuilt.Files("bzImage", Path("bzImage"), None, None, None, None)
    with pytest.raises(UsageError, match=r"none found embedded .* \(its LZ4, zstd data was not "
                                         r"read: install lz4 zstd, .*give the config file$"):
        prebuilt.config_text(files, x86(payload=stream + zstd))
    # found elsewhere (an xz stream beside it), the config is read all the same
    both = x86(payload=stream + lzma.compress(b"\0" * 64 + IKCONFIG))
    assert image.embedded_config(both) == CONFIG


@pytest.mark.parametrize("magic", [b"\x02\x21\x4c\x18", b"\x28\xb5\x2f\xfd",
                                   b"\x89LZO\x00\r\n\x1a\n"], ids=["lz4", "zstd", "lzo"])
def test_magic_bytes_without_their_header_are_no_stream(
        magic: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's own lzop_magic[] (CONFIG_RD_LZO) and chance matches in other data are not
    streams: no tool runs, none is asked for."""
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    missing: set[tuple[str, str]] = set()
    assert image.embedded_config(arm64(magic + b"\xff" * 64), missing) is None
    assert missing == set()


class Counted:
    """/dev/zero, counting what was asked of it."""

    def __init__(self) -> None:
        self.f = open("/dev/zero", "rb")  # noqa: SIM115 (closed by the test)
        self.asked = 0

    def fileno(self) -> int:
        return self.f.fileno()

    def read1(self, n: int) -> bytes:
        self.asked += n
        return self.f.read1(n)


def test_a_stream_is_read_to_at_most_the_limit() -> None:
    endless = Counted()
    out = image.read_at_most(endless, 3 << 20 | 5, time.monotonic() + 30)  # type: ignore[arg-type]
    endless.f.close()
    assert len(out) == 3 << 20 | 5 and endless.asked == 3 << 20 | 5
    r, w = os.pipe()  # a tool that writes nothing and does not end: the deadline ends it
    with os.fdopen(r, "rb") as silent:
        started = time.monotonic()
        assert image.read_at_most(silent, 1 << 20, started + 0.3) == b""
        assert 0.3 <= time.monotonic() - started < 5
    os.close(w)


def test_a_stream_decompresses_to_at_most_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image, "PAYLOAD_LIMIT", 1 << 16)
    bomb = b"\0" * (8 << 20)
    assert len(image._with_tool(("zstd", "-dcq"), compressed_with(["zstd", "-c"], bomb))) \
        == 1 << 16
    assert len(image._in_python(lzma.compress(bomb), lzma.LZMADecompressor)) == 1 << 16
