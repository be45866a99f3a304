"""Reading what a kernel image is from its header, on synthetic images."""

from __future__ import annotations

import gzip
import lzma
import shutil
import subprocess

import pytest

from harness.base import proc
from harness.base.errors import InfraError, UsageError
from harness.kernel import image
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


@pytest.mark.parametrize("name", sorted(KBUILD_COMPRESSORS))
def test_embedded_config_in_streams_the_host_tools_read(name: str) -> None:
    stream = vmlinux_stream(KBUILD_COMPRESSORS[name])
    image_bytes = x86(payload=b"junk" + stream + (1 << 20).to_bytes(4, "little") + b"\xff" * 512)
    assert image.embedded_config(image_bytes) == CONFIG
    assert not proc._LIVE  # no tool left running


def test_a_missing_tool_is_named_when_no_config_was_found(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stream = vmlinux_stream(KBUILD_COMPRESSORS["lz4"])
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda tool: None if tool == "lz4" else real_which(tool))
    with pytest.raises(InfraError, match=r"LZ4-compressed .* lz4 is not installed.*apt-get "
                                         r"install lz4"):
        image.embedded_config(x86(payload=stream))
    # found elsewhere (an xz stream beside it), the config is read all the same
    both = x86(payload=stream + lzma.compress(b"\0" * 64 + IKCONFIG))
    assert image.embedded_config(both) == CONFIG


def test_a_stream_decompresses_to_at_most_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image, "PAYLOAD_LIMIT", 1 << 16)
    bomb = b"\0" * (8 << 20)
    assert len(image._with_tool(("zstd", "-dcq"), compressed_with(["zstd", "-c"], bomb))) \
        == 1 << 16
    assert len(image._in_python(lzma.compress(bomb), lzma.LZMADecompressor)) == 1 << 16
    assert not proc._LIVE
