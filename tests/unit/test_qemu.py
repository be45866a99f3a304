"""QEMU's argv from one pure function: the exact lists for x86_64 under TCG and arm64 under KVM."""

from __future__ import annotations

from pathlib import Path

from harness.base.arch import ARCHES
from harness.guest.qemu import kernel_cmdline, qemu_argv


def test_x86_64_tcg_argv() -> None:
    a = ARCHES["x86_64"]
    assert qemu_argv(a, Path("/k/bzImage"), Path("/i.cpio"), kernel_cmdline(a)) == [
        "qemu-system-x86_64", "-M", "q35", "-accel", "tcg", "-cpu", "max", "-m", "512",
        "-smp", "2", "-nodefaults", "-display", "none", "-no-reboot",
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


def test_the_boot_timeout_grows_with_the_image(tmp_path: Path) -> None:
    from harness.guest import boot

    tiny, big = tmp_path / "bzImage", tmp_path / "Image"
    tiny.write_bytes(b"\0" * (2 << 20))
    big.write_bytes(b"\0" * (40 << 20))
    assert boot.boot_timeout(tiny) == boot.BOOT_TIMEOUT
    assert boot.boot_timeout(big) == boot.BOOT_TIMEOUT + 32 * boot.PER_MB
    assert boot.boot_timeout(tmp_path / "missing") == boot.BOOT_TIMEOUT


def test_memory_grows_with_a_big_initramfs() -> None:
    from harness.guest.qemu import MEMORY_MB, memory_for

    assert memory_for(0) == memory_for(20 << 20) == MEMORY_MB  # tinyconfig's: a few MiB
    assert memory_for(150 << 20) == 768  # 256 + 450 MiB, in 64 MiB steps
