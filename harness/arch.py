"""Per-architecture facts, as data: everything that differs between x86_64 and arm64 lives here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    name: str  # ltoboot's name, also used in cache keys and test ids
    kernel_arch: str  # ARCH= for kbuild
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
    fragment: str  # our per-arch config fragment in harness/configs/
    artifact_images: tuple[str, ...]  # image names in TuxMake's artifact layout, preferred first


ARCHES: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch(
            name="x86_64",
            kernel_arch="x86_64",
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
            artifact_images=("bzImage",),
        ),
        Arch(
            name="arm64",
            kernel_arch="arm64",
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
        ),
    )
}

ARCH_NAMES: tuple[str, ...] = tuple(sorted(ARCHES))


def get_arch(name: str) -> Arch:
    from harness.errors import UsageError

    try:
        return ARCHES[name]
    except KeyError:
        raise UsageError(
            f"unknown architecture {name!r}: use one of {', '.join(ARCH_NAMES)}"
        ) from None
