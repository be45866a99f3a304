"""QEMU command lines: one pure function, so the exact argv can be unit-tested and pasted."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.base.arch import Arch
from harness.guest import monitor

# vCPUs every guest is given (QEMU's multi-threaded TCG runs one host thread per vCPU): SMP
# bring-up is where LTO's cross-unit optimisation meets per-CPU data, static keys and
# alternatives; the smp check proves each came online and ran work
VCPUS = 2
MEMORY_MB = 512  # a guest's RAM: enough for tinyconfig's kernels and their initramfs
READY_LOGLEVEL = 4  # console loglevel once booted: KERN_ERR and worse still reach the console


def memory_for(initrd_bytes: int) -> int:
    """RAM for a guest whose initramfs is this big: it sits in RAM twice while the kernel
    unpacks it (a defconfig's hundreds of modules): 256 MiB and three times its size, in
    64 MiB steps, and never less than MEMORY_MB."""
    mb = 256 + 3 * initrd_bytes / 2**20
    return max(MEMORY_MB, -(-int(mb) // 64) * 64)


def kernel_cmdline(arch: Arch, extra: Sequence[str] = (), *, panic: bool = True) -> str:
    # panic=-1 with -no-reboot: a panic ends QEMU at once instead of waiting for a timeout
    # (not under LAVA: panic=False; it takes the end of QEMU for an infrastructure error).
    # initcall_debug lines are KERN_DEBUG: into the (large enough) buffer, not the console.
    return " ".join([f"console={arch.console}", *(["panic=-1"] if panic else []),
                     "initcall_debug",
                     "log_buf_len=1M", f"ltoboot.loglevel={READY_LOGLEVEL}",
                     *arch.cmdline_extra, *extra])


def qemu_argv(arch: Arch, kernel: Path, initrd: Path | None, append: str, *, accel: str = "tcg",
              memory_mb: int = MEMORY_MB, smp: int = VCPUS, firmware: str = "", qmp: str = ""
              ) -> list[str]:
    """The whole QEMU command line. `firmware`: boot through it (UEFI: the EFI stub runs).
    `qmp`: the abstract socket of its machine protocol (harness/guest/monitor.py)."""
    machine = arch.machine
    if accel == "tcg" and arch.tcg_machine_options:
        machine += f",{arch.tcg_machine_options}"
    if firmware and arch.efi_machine_options:
        machine += f",{arch.efi_machine_options}"
    argv = [
        arch.qemu, "-M", machine, "-accel", accel,
        "-cpu", "host" if accel == "kvm" else arch.tcg_cpu,
        "-m", str(memory_mb), "-smp", str(smp),
        "-nodefaults", "-display", "none", "-no-reboot",
        # The console on stdio; signal=off so a ^C typed at it reaches the guest, not QEMU.
        "-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
        *arch.qemu_extra, *(["-bios", firmware] if firmware else []), "-kernel", str(kernel),
    ]
    if initrd is not None:
        argv += ["-initrd", str(initrd)]
    argv += ["-append", append]
    return argv + (monitor.argv(qmp) if qmp else [])
