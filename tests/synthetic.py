"""Synthetic kernel images: just the header bytes that say what a kernel is, for tests that
must not wait for a build (image parsing, bad-input and tool-failure paths)."""

from __future__ import annotations

from harness.arch import ARCHES


def x86(xloadflags: int = 1, payload: bytes = b"") -> bytes:
    a = ARCHES["x86_64"]
    assert a.image_flag is not None and a.image_version_ptr_at is not None
    data = bytearray(0x1000)
    data[a.image_magic_at:a.image_magic_at + 4] = a.image_magic
    data[a.image_flag[0]] = xloadflags
    data[a.image_version_ptr_at:a.image_version_ptr_at + 2] = (0x300).to_bytes(2, "little")
    data[0x500:0x520] = b"6.1.192 (ltoboot@ltoboot) #1\0\0\0\0"
    return bytes(data) + payload


def arm64(payload: bytes = b"") -> bytes:
    a = ARCHES["arm64"]
    data = bytearray(0x100)
    data[a.image_magic_at:a.image_magic_at + 4] = a.image_magic
    return bytes(data) + b"Linux version 6.1.192 (ltoboot@ltoboot) (clang)" + payload
