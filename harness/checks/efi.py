"""Booting through the EFI stub under LTO (the series' 20/28: the stub is built without LTO):
UEFI firmware (Debian's qemu-efi-aarch64) loads the image as an EFI application, the stub
says so on the console and hands over; the kernel then sees /sys/firmware/efi. It is the main
guest's own boot (boot.default_firmware): about 1 s more than QEMU loading the kernel itself
under TCG, where a guest of its own would cost a whole boot."""

from __future__ import annotations

from harness.base.arch import get_arch
from harness.base.errors import NotApplicable
from harness.checks.registry import Outcome, check
from harness.guest.protocol import GuestProtocol
from harness.kernel.model import Kernel

BOOTING = "EFI stub: Booting Linux Kernel..."


def evaluate_efi_stub(console: str, sysfs_listing: str) -> tuple[bool, str]:
    if BOOTING not in console:
        return False, f"no '{BOOTING}' on the console: the EFI stub did not run"
    if "runtime" not in sysfs_listing.split() and "systab" not in sysfs_listing.split():
        return False, "the EFI stub ran but the kernel has no /sys/firmware/efi"
    return True, f"{BOOTING}; /sys/firmware/efi: {' '.join(sorted(sysfs_listing.split()))}"


@check("efi_stub", "booted by UEFI firmware through the EFI stub; /sys/firmware/efi present",
       evaluate=evaluate_efi_stub)
def efi_stub(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    if not guest.firmware:
        arch = get_arch(kernel.arch)
        raise NotApplicable(f"the guest was not booted through UEFI firmware ({arch.efi_firmware}"
                            f" missing? apt-get install {arch.efi_firmware_package})")
    listing = guest.run("ls /sys/firmware/efi").output
    console = guest.console()
    ok, summary = evaluate_efi_stub(console, listing)
    stub = [line.strip() for line in console.splitlines() if "EFI stub" in line
            or "efi: " in line]
    return Outcome(ok, summary, "\n".join(stub[:30]) + f"\n{listing}")
