"""Per-architecture facts, as data: everything that differs between x86_64 and arm64 lives here.

A third architecture is one more row of ARCHES plus its Kconfig fragment in
harness/kernel/configs/ (the console driver, what the machine needs to boot).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    name: str  # ltoboot's name, also used in cache keys and test ids
    kernel_arch: str  # ARCH= for kbuild
    src_arch: str  # the directory under arch/ that holds its Kconfig (kbuild's SRCARCH)
    kconfig_symbol: str  # what a .config of this arch sets: CONFIG_<it>=y
    image: str  # boot image, relative to the O= directory
    qemu: str  # QEMU system emulator binary
    qemu_package: str  # Debian package that ships it
    machine: str  # -M
    tcg_cpu: str  # -cpu under TCG
    console: str  # kernel console device
    deb_arch: str  # Debian architecture of the busybox-static package
    elf_machine: int  # e_machine of guest binaries (checked on busybox)
    kvm_host: str  # `uname -m` of a host on which KVM can run this guest
    tcg_slowdown: float  # timeout multiplier under TCG relative to KVM
    fragment: str  # our per-arch config fragment in harness/kernel/configs/
    artifact_images: tuple[str, ...]  # image names in TuxMake's artifact layout, preferred first
    image_magic: bytes  # what the boot image carries at image_magic_at (its boot protocol)
    image_magic_at: int
    # (offset, mask): a flag the image must have to be this arch rather than a 32-bit sibling
    image_flag: tuple[int, int] | None = None
    # where the image keeps a pointer (relative to 0x200) to its version string, if it does;
    # otherwise the version is searched as "Linux version ..." in the image
    image_version_ptr_at: int | None = None
    qemu_extra: tuple[str, ...] = ()  # more QEMU options this machine needs
    tcg_machine_options: str = ""  # -M options under TCG only (KVM hosts may lack them)
    cmdline_extra: tuple[str, ...] = ()  # kernel command line for what the checks exercise
    efi_firmware: str = ""  # UEFI firmware for an EFI-stub boot (-bios), if checked
    efi_machine_options: str = ""  # -M options for that boot
    efi_firmware_package: str = ""
    # our fragment for the tinyconfig base only (on top of `fragment`): where tinyconfig's
    # choice for a small image costs every boot under TCG. A tester's base keeps its own.
    tinyconfig_fragment: str = ""


ARCHES: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch(
            name="x86_64",
            kernel_arch="x86_64",
            src_arch="x86",
            kconfig_symbol="X86_64",
            image="arch/x86/boot/bzImage",
            qemu="qemu-system-x86_64",
            qemu_package="qemu-system-x86",
            machine="q35",
            tcg_cpu="max",
            console="ttyS0",
            deb_arch="amd64",
            elf_machine=62,  # EM_X86_64
            kvm_host="x86_64",
            tcg_slowdown=4.0,
            fragment="x86_64.config",
            tinyconfig_fragment="x86_64-tinyconfig.config",
            artifact_images=("bzImage",),
            # Documentation/x86/boot.rst: "HdrS" at 0x202; xloadflags bit 0 at 0x236: a 64-bit
            # entry point; kernel_version pointer at 0x20e
            image_magic=b"HdrS", image_magic_at=0x202, image_flag=(0x236, 1),
            image_version_ptr_at=0x20E,
        ),
        Arch(
            name="arm64",
            kernel_arch="arm64",
            src_arch="arm64",
            kconfig_symbol="ARM64",
            image="arch/arm64/boot/Image",
            qemu="qemu-system-aarch64",
            qemu_package="qemu-system-arm",
            machine="virt",
            tcg_cpu="max",
            console="ttyAMA0",
            deb_arch="arm64",
            elf_machine=183,  # EM_AARCH64
            kvm_host="aarch64",
            tcg_slowdown=6.0,
            fragment="arm64.config",
            artifact_images=("Image.gz", "Image"),
            image_magic=b"ARM\x64", image_magic_at=0x38,  # Documentation/arm64/booting.rst
            # EL2 for KVM's nVHE hyp code (kvm_nvhe check): costs nothing measurable on TCG
            tcg_machine_options="virtualization=on", cmdline_extra=("kvm-arm.mode=nvhe",),
            efi_firmware="/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
            efi_firmware_package="qemu-efi-aarch64",
            # no ACPI tables from QEMU: the firmware then hands the kernel the device tree
            efi_machine_options="acpi=off",
        ),
    )
}

ARCH_NAMES: tuple[str, ...] = tuple(sorted(ARCHES))
PREFERRED = "x86_64"  # for work that needs one kernel only: bisect's default, pytest's primary


def host_arch(machine: str) -> Arch | None:
    """The guest arch that matches a host's `uname -m`, if any."""
    return next((a for a in ARCHES.values() if a.kvm_host == machine), None)


def get_arch(name: str) -> Arch:
    from harness.base.errors import UsageError

    try:
        return ARCHES[name]
    except KeyError:
        raise UsageError(
            f"unknown architecture {name!r}: use one of {', '.join(ARCH_NAMES)}"
        ) from None
