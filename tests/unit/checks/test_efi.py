"""efi_stub: the verdicts on recorded UEFI boot logs."""

from __future__ import annotations

from harness.checks.efi import evaluate_efi_stub


def test_efi_stub_verdicts() -> None:
    console = "UEFI firmware\nEFI stub: Booting Linux Kernel...\nEFI stub: Exiting boot " \
        "services...\n"
    assert evaluate_efi_stub(console, "efivars fw_platform_size systab\n")[0]
    assert not evaluate_efi_stub("Booting Linux on physical CPU 0x0\n", "")[0]
    ok, why = evaluate_efi_stub(console, "ls: /sys/firmware/efi: No such file or directory")
    assert not ok and "no /sys/firmware/efi" in why
