"""QEMU's argv from one pure function: the exact lists for x86_64 under TCG and arm64 under KVM."""

from __future__ import annotations

from pathlib import Path

from harness.base.arch import ARCHES
from harness.guest.qemu import kernel_cmdline, qemu_argv


def test_x86_64_tcg_argv() -> None:
    a = ARCHES["x86_64"]
    assert qemu_argv(a, Path("/k/bzImage"), Path("/i.cpio"), kernel_cmdline(a)) == [
        "qemu-system-x86_64", "-M", "q35", "-accel", "tcg", "-cpu", "max", "-m", "512",
        "-smp", "1", "-nodefaults", "-display", "none", "-no-reboot",
        "-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console",
        "-kernel", "/k/bzImage", "-initrd", "/i.cpio",
        "-append", "console=ttyS0 panic=-1 initcall_debug log_buf_len=1M ltoboot.loglevel=4",
    ]


def test_arm64_kvm_argv_without_initrd() -> None:
    a = ARCHES["arm64"]
    argv = qemu_argv(a, Path("/k/Image"), None, kernel_cmdline(a, ["rdinit=/x"]), accel="kvm")
    assert argv[:7] == ["qemu-system-aarch64", "-M", "virt", "-accel", "kvm", "-cpu", "host"]
    assert "-initrd" not in argv
    assert argv[-1].startswith("console=ttyAMA0 panic=-1 ") and argv[-1].endswith(" rdinit=/x")


def test_a_guests_machine_protocol_is_an_abstract_socket() -> None:
    """QMP (to pause an idle guest) on a socket that is no file: nothing written anywhere."""
    a = ARCHES["x86_64"]
    argv = qemu_argv(a, Path("/k/bzImage"), None, kernel_cmdline(a), qmp="ltoboot-qmp-x")
    assert argv[-4:] == ["-chardev", "socket,id=qmp,path=ltoboot-qmp-x,abstract=on,server=on,"
                         "wait=off", "-mon", "chardev=qmp,mode=control"]
