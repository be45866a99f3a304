"""Reading what a kernel image is from its header, on synthetic images."""

from __future__ import annotations

import gzip
import lzma

import pytest

from harness.base.errors import UsageError
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
