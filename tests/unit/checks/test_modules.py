"""symvers_crcs and probe_modules: zero CRCs and unmerged split sections in recorded output."""

from __future__ import annotations

from harness.checks.modules import split_sections, zero_crcs


def test_zero_crcs_and_split_sections() -> None:
    symvers = ("0x00000000\tlost\tvmlinux\tEXPORT_SYMBOL\t\n"
               "0x1a2b3c4d\tkept\tvmlinux\tEXPORT_SYMBOL\t")
    assert zero_crcs(symvers) == ["lost"]
    names = [".", "..", ".text", ".data", ".rodata", ".bss", ".data.value", ".rodata.str1.1",
             ".gnu.linkonce.this_module"]
    assert split_sections(names) == [".data.value", ".rodata.str1.1"]
