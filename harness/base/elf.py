"""Just enough ELF for ltoboot: 64-bit little-endian headers, sections, notes, __versions."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from harness.base.errors import UsageError

MODVERSION_ENTRY = 64  # struct modversion_info on 64-bit: unsigned long crc; char name[56]


@dataclass(frozen=True)
class Note:
    name: str
    type: int
    desc: bytes


def _check(data: bytes, what: str) -> None:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise UsageError(f"{what} is not a 64-bit little-endian ELF file")


def machine_and_static(data: bytes, what: str = "file") -> tuple[int, bool]:
    """(e_machine, statically linked?): no PT_INTERP program header means static."""
    _check(data, what)
    machine = struct.unpack_from("<H", data, 18)[0]
    (phoff,) = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    interp = any(struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 3
                 for i in range(phnum))
    return machine, not interp


def sections(data: bytes, what: str = "file") -> dict[str, tuple[int, int]]:
    """Section name -> (file offset, size)."""
    _check(data, what)
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i: int) -> tuple[int, int, int]:
        base = shoff + i * shentsize
        name = struct.unpack_from("<I", data, base)[0]
        offset, size = struct.unpack_from("<QQ", data, base + 24)
        return name, offset, size

    _, str_off, _ = header(shstrndx)
    out = {}
    for i in range(shnum):
        name, offset, size = header(i)
        end = data.index(b"\0", str_off + name)
        out[data[str_off + name:end].decode()] = (offset, size)
    return out


def notes(blob: bytes) -> list[Note]:
    """Parse a sequence of ELF notes (as in /sys/kernel/notes or a PT_NOTE segment)."""
    out, pos = [], 0
    while pos + 12 <= len(blob):
        namesz, descsz, ntype = struct.unpack_from("<III", blob, pos)
        pos += 12
        name = blob[pos:pos + namesz].rstrip(b"\0").decode(errors="replace")
        pos += (namesz + 3) & ~3
        desc = blob[pos:pos + descsz]
        pos += (descsz + 3) & ~3
        out.append(Note(name, ntype, desc))
    return out


def module_versions(data: bytes) -> dict[str, int]:
    """Symbol -> CRC from a module's __versions section."""
    offset, size = sections(data, "module")["__versions"]
    out = {}
    for pos in range(offset, offset + size, MODVERSION_ENTRY):
        (crc,) = struct.unpack_from("<Q", data, pos)
        name = data[pos + 8:pos + MODVERSION_ENTRY].split(b"\0")[0].decode()
        out[name] = crc
    return out


def with_altered_crc(data: bytes, symbol: str) -> bytes:
    """A copy of a module whose __versions CRC for `symbol` is wrong (low 32 bits inverted)."""
    offset, size = sections(data, "module")["__versions"]
    out = bytearray(data)
    for pos in range(offset, offset + size, MODVERSION_ENTRY):
        if data[pos + 8:pos + MODVERSION_ENTRY].split(b"\0")[0] == symbol.encode():
            (crc,) = struct.unpack_from("<Q", data, pos)
            struct.pack_into("<Q", out, pos, crc ^ 0xFFFFFFFF)
            return bytes(out)
    raise UsageError(f"module has no __versions entry for {symbol}")
