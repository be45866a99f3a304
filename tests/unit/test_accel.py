"""The KVM verdict: a host verdict only from QEMU failing, a kernel's failure stays its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.arch import ARCHES
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
