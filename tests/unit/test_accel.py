"""The KVM verdict: a host verdict only from QEMU failing, a kernel's failure stays its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.base.arch import ARCHES
from harness.guest import accel

X86 = ARCHES["x86_64"]


@pytest.fixture(autouse=True)
def kvm_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path))
    monkeypatch.setattr(accel, "kvm_possible", lambda arch: None)
    monkeypatch.setattr(accel, "_host_key", lambda qemu: "host")


def test_unproven_kvm_is_probed() -> None:
    assert accel.decide(X86, "auto", "k1").accel is None


def test_a_kernel_that_fails_under_kvm_does_not_condemn_the_host() -> None:
    assert not accel.host_failure("panic") and not accel.host_failure("cfi")
    accel.remember(X86, False, "panic: boom", kernel_key="k1")
    mine = accel.decide(X86, "auto", "k1")
    assert mine.accel == "tcg" and "this kernel failed under KVM: panic: boom" in mine.reason
    assert accel.decide(X86, "auto", "k2").accel is None  # others still probe


def test_qemu_failing_under_kvm_is_the_host_verdict() -> None:
    assert accel.host_failure("exited") and accel.host_failure("hang")
    accel.remember(X86, False, "exited: QEMU exited (status signal 6)")
    for key in ("k1", "k2", None):
        d = accel.decide(X86, "auto", key)
        assert d.accel == "tcg" and "KVM probe failed" in d.reason
    accel.remember(X86, True, "booted in 0.4s")
    assert accel.decide(X86, "auto", "k1").accel == "kvm"


def test_a_probe_made_meanwhile_boots_the_same_request(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process probed KVM while this one waited for the probe's lock: boot() starts
    again with the same request, its firmware the one already chosen."""
    from harness.guest import boot
    from harness.kernel import toolchain
    from harness.kernel.model import Kernel

    (tmp_path / "probe").mkdir()
    k = Kernel(arch="x86_64", lto="thin", release="6.1.192", image=tmp_path / "bzImage",
               config=tmp_path / "config", system_map=None, modules=None, build_dir=None,
               source_tree=None, compiler="clang 19", linker="LLD 19", llvm_major=19,
               source="test", key="k1")
    answers = [accel.Decision(None, "probe"), accel.Decision("kvm", "probed meanwhile"),
               accel.Decision("kvm", "probed meanwhile")]
    firmware_asked: list[Kernel] = []
    started: list[dict[str, object]] = []

    class Started:
        accel_reason = ""

    def start(kernel: Kernel, accel_name: str, **kwargs: object) -> Started:
        started.append({"accel": accel_name, **kwargs})
        return Started()

    def default_firmware(kernel: Kernel) -> str:
        firmware_asked.append(kernel)
        return "/usr/share/ovmf/OVMF.fd"

    monkeypatch.setattr(accel, "decide", lambda arch, mode, key: answers.pop(0))
    monkeypatch.setattr(boot, "default_firmware", default_firmware)
    monkeypatch.setattr(toolchain, "require", lambda tools: None)
    monkeypatch.setattr(boot, "guest_files", lambda kernel: {})
    monkeypatch.setattr(boot, "build_initramfs", lambda kernel, init, files: tmp_path / "initrd")
    monkeypatch.setattr(boot, "start", start)
    request = boot.BootRequest(k, init=tmp_path / "init", extra_cmdline=("quiet",), timeout=9.0,
                               label="probe-test", log_dir=tmp_path)
    guest = boot.boot(request)
    assert guest.accel_reason == "probed meanwhile" and not answers
    assert firmware_asked == [k]  # chosen once, passed on
    assert started == [{"accel": "kvm", "initrd": tmp_path / "initrd",
                        "extra_cmdline": ("quiet",), "timeout": 9.0, "label": "probe-test",
                        "log_dir": tmp_path, "firmware": "/usr/share/ovmf/OVMF.fd",
                        "pausable": False}]
