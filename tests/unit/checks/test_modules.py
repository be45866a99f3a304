"""symvers_crcs, probe_modules and modversions: zero CRCs, unmerged split sections and the
refusal of a module with a wrong CRC, in recorded output."""

from __future__ import annotations

from harness.checks.modules import refused, split_sections, zero_crcs


def test_zero_crcs_and_split_sections() -> None:
    symvers = ("0x00000000\tlost\tvmlinux\tEXPORT_SYMBOL\t\n"
               "0x1a2b3c4d\tkept\tvmlinux\tEXPORT_SYMBOL\t")
    assert zero_crcs(symvers) == ["lost"]
    names = [".", "..", ".text", ".data", ".rodata", ".bss", ".data.value", ".rodata.str1.1",
             ".gnu.linkonce.this_module"]
    assert split_sections(names) == [".data.value", ".rodata.str1.1"]


def test_a_module_with_a_wrong_crc_must_be_refused_with_the_reason() -> None:
    log = "[    2.310000] ltoboot_user: disagrees about version of symbol ltoboot_probe_value"
    insmod = "insmod: can't insert '/lib/ltoboot/ltoboot_user_badcrc.ko': invalid module format"
    assert refused(False, log, "ltoboot_probe_value", insmod).summary == \
        "refused: disagrees about version of symbol ltoboot_probe_value"
    loaded = refused(True, "", "ltoboot_probe_value", "")
    assert not loaded.passed  # the broken variant versions-unchecked says this
    assert loaded.summary == "the module with a wrong CRC for ltoboot_probe_value was loaded"
    silent = refused(False, "", "ltoboot_probe_value", insmod)
    assert not silent.passed and silent.evidence.startswith(insmod)
