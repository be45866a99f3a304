"""symvers_crcs, probe_modules and modversions: zero CRCs, unmerged split sections and the
refusal of a module with a wrong CRC, in recorded output."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.checks.modules import refused, split_sections, zero_crcs
from harness.guest import modules as guest_modules
from harness.guest.console import CommandResult


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


def test_the_refusal_is_looked_for_after_the_last_mark_only(tmp_path: Path) -> None:
    """modversions' filter, run by busybox's own sh and awk (the guest's) on a recorded log:
    a refusal before the mark (an earlier check's, a second run's) is not this one's, and
    without a mark nothing is."""
    from harness.checks.basic import after_mark
    from harness.checks.modules import MARK

    refusal = "[ 5.2] ltoboot_user: disagrees about version of symbol ltoboot_probe_value\n"
    log = tmp_path / "dmesg"
    log.write_text(f"[ 1.0] boot\n[ 3.0] {MARK}\n[ 3.1] old refusal\n[ 5.0] {MARK}\n"
                   f"[ 5.1] ltoboot_probe: loaded\n{refusal}")
    cmd = f"cat '{log}' | {after_mark(MARK)}"
    out = subprocess.run(["busybox", "sh", "-c", cmd], capture_output=True, text=True,
                         check=True).stdout
    assert out == f"[ 5.1] ltoboot_probe: loaded\n{refusal}"
    log.write_text(refusal)
    assert subprocess.run(["busybox", "sh", "-c", cmd], capture_output=True, text=True,
                          check=True).stdout == ""


def test_modversions_types_its_mark_and_reads_only_what_came_after(tmp_path: Path) -> None:
    from harness.checks import modules as checks_modules
    from harness.checks.basic import after_mark

    typed: list[str] = []

    class Guest:
        def run(self, cmd: str, timeout: float = 10.0, *,
                allow_kernel_errors: bool = False) -> CommandResult:
            typed.append(cmd)
            if "badcrc" in cmd:
                return CommandResult(cmd, 1, "insmod: can't insert: invalid module format")
            if cmd.startswith("dmesg"):
                return CommandResult(cmd, 0, "[ 5.2] ltoboot_user: disagrees about version "
                                     "of symbol ltoboot_probe_value")
            return CommandResult(cmd, 0, "")

    kernel = SimpleNamespace(build_dir=tmp_path)
    probe = SimpleNamespace(dir=tmp_path)
    (tmp_path / guest_modules.USER_BADCRC).write_bytes(b"")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(guest_modules, "probe_modules", lambda k: probe)
        got = checks_modules.modversions(Guest(), kernel)  # type: ignore[arg-type]
    assert got.passed, got.summary
    assert typed[0] == f"echo '{checks_modules.MARK}' > /dev/kmsg"
    assert f"dmesg | {after_mark(checks_modules.MARK)}" in typed
    assert "dmesg" not in typed  # the whole log never crosses the serial console
