"""ELF reading: notes (the LTO note among them) and a module's CRC changed for one symbol alone."""

from __future__ import annotations

import struct

import pytest

from harness.base import elf
from harness.base.errors import UsageError
from harness.checks.lto import LINUX_ELFNOTE_LTO_INFO, lto_note, od_bytes


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def note(name: str, ntype: int, desc: bytes) -> bytes:
    raw = name.encode() + b"\0"
    return struct.pack("<III", len(raw), len(desc), ntype) + _pad(raw) + _pad(desc)


def tiny_module(versions: list[tuple[int, str]]) -> bytes:
    """An ELF64 file with a __versions section, laid out as a kernel module's."""
    body = b"".join(struct.pack("<Q", crc) + name.encode().ljust(56, b"\0")
                    for crc, name in versions)
    shstr = b"\0__versions\0.shstrtab\0"
    body_off = 64
    shstr_off = body_off + len(body)
    shoff = shstr_off + len(shstr)
    hdr = bytearray(64)
    hdr[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", hdr, 0x28, shoff)
    struct.pack_into("<HHH", hdr, 0x3A, 64, 3, 2)

    def sh(name: int, offset: int, size: int) -> bytes:
        return struct.pack("<IIQQQQIIQQ", name, 1, 0, 0, offset, size, 0, 0, 1, 0)

    return (bytes(hdr) + body + shstr + sh(0, 0, 0) + sh(1, body_off, len(body))
            + sh(12, shstr_off, len(shstr)))


def test_notes_and_lto_note() -> None:
    blob = note("Xen", 1, b"abcd") + note("Linux", LINUX_ELFNOTE_LTO_INFO, b"\x01\0\0\0")
    notes = elf.notes(blob)
    assert [(n.name, n.type) for n in notes] == [("Xen", 1), ("Linux", 0x101)]
    assert lto_note(notes) is True
    assert lto_note(elf.notes(note("Linux", 0x101, b"\0\0\0\0"))) is False
    assert lto_note(elf.notes(note("GNU", 3, b"x" * 20))) is None
    assert od_bytes(" 04 00 00 00\n 4c") == b"\x04\0\0\0\x4c"


def test_altered_crc_changes_only_that_symbol() -> None:
    ko = tiny_module([(0x1234ABCD, "module_layout"), (0x0BADF00D, "ltoboot_probe_value")])
    assert elf.module_versions(ko) == {"module_layout": 0x1234ABCD,
                                       "ltoboot_probe_value": 0x0BADF00D}
    bad = elf.with_altered_crc(ko, "ltoboot_probe_value")
    assert len(bad) == len(ko)
    assert elf.module_versions(bad) == {"module_layout": 0x1234ABCD,
                                        "ltoboot_probe_value": 0x0BADF00D ^ 0xFFFFFFFF}
    with pytest.raises(UsageError, match="no __versions entry for nope"):
        elf.with_altered_crc(ko, "nope")
    with pytest.raises(UsageError, match="not a 64-bit"):
        elf.sections(b"#!/bin/sh\n" + b"\0" * 64)
