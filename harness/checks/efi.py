"""Booting through the EFI stub under LTO (the series' 20/28: the stub is built without LTO):
UEFI firmware (Debian's qemu-efi-aarch64) loads the image as an EFI application, the stub
says so on the console and hands over; the kernel then sees /sys/firmware/efi. A guest of its
own: the firmware adds seconds that the other checks need not wait for."""

from __future__ import annotations

from pathlib import Path

from harness.arch import get_arch
from harness.checks.registry import COMPANIONS, CheckResult, check, companion
from harness.errors import InfraError
from harness.guest import boot
from harness.guest.session import Guest
from harness.kernel.model import Kernel

BOOTING = "EFI stub: Booting Linux Kernel..."


def evaluate_efi_stub(console: str, sysfs_listing: str) -> tuple[bool, str]:
    if BOOTING not in console:
        return False, f"no '{BOOTING}' on the console: the EFI stub did not run"
    if "runtime" not in sysfs_listing.split() and "systab" not in sysfs_listing.split():
        return False, "the EFI stub ran but the kernel has no /sys/firmware/efi"
    return True, f"{BOOTING}; /sys/firmware/efi: {' '.join(sorted(sysfs_listing.split()))}"


def _start(guest: Guest, kernel: Kernel) -> Guest:
    arch = get_arch(kernel.arch)
    if not Path(arch.efi_firmware).is_file():
        raise InfraError(f"UEFI firmware {arch.efi_firmware} is missing: run ./setup.sh or "
                         f"apt-get install {arch.efi_firmware_package}")
    return boot.companion(guest, kernel, "efi", firmware=arch.efi_firmware)


COMPANIONS["efi"] = _start


@check("efi_stub", "booted by UEFI firmware through the EFI stub; /sys/firmware/efi present "
       "(on a guest of its own)", companion="efi")
def efi_stub(guest: Guest, kernel: Kernel) -> CheckResult:
    efi = companion(guest, kernel, "efi")
    listing = efi.run("ls /sys/firmware/efi").output
    console = efi.console()
    ok, summary = evaluate_efi_stub(console, listing)
    stub = [line.strip() for line in console.splitlines() if "EFI stub" in line
            or "efi: " in line]
    return CheckResult("efi_stub", ok, summary, "\n".join(stub[:30]) + f"\n{listing}")
