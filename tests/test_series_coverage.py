"""The checks for what the LTO series fixed outside kbuild (harness/coverage.py), each shown
failing on a real kernel broken that way: an incremental variant of the default build, booted.
That they pass on the default kernels is tests/test_checks.py."""

from __future__ import annotations

import pytest

from harness.checks import run_check
from harness.errors import BuildError, KernelFailure
from harness.kernel.variants import build_variant
from harness.pytest_plugin.fixtures import Guests, Kernels

pytestmark = pytest.mark.boot

X86, ARM = pytest.mark.xdist_group("x86_64-thin"), pytest.mark.xdist_group("arm64-thin")


@pytest.mark.parametrize(("arch", "variant", "check", "says"), [
    # 05-08/28, 11/28: no mcount call sites, so no dynamic ftrace and objtool without --mcount
    pytest.param("x86_64", "mcount-unrecorded", "ftrace", "No functions to be traced",
                 marks=X86),
    pytest.param("x86_64", "mcount-unrecorded", "build_outputs",
                 "objtool on vmlinux.o without --mcount", marks=X86),
    # 22/28: notrace no longer keeps a function out of ftrace
    pytest.param("arm64", "notrace-ignored", "ftrace", "sched_clock is notrace yet listed",
                 marks=ARM),
    # 12/28
    pytest.param("x86_64", "import-limit-dropped", "build_outputs",
                 "no -import-instr-limit in the vmlinux.o link", marks=X86),
    # 21/28: the function meant for .rodata runs
    pytest.param("x86_64", "rodata-executable", "lkdtm_rodata", "rodata is executable",
                 marks=X86),
    pytest.param("x86_64", "rodata-executable", "build_outputs", "outside .rodata",
                 marks=X86),
    # 17/28: the entries name the static hooks from asm; these two run anyway (ThinLTO kept
    # their names), so what fails is the mechanism LTO needs, not yet the boot
    pytest.param("x86_64", "pci-fixups-unstubbed", "pci_fixups",
                 "called without an __UNIQUE_ID_ stub", marks=X86),
    # 23/28, 26/28
    pytest.param("x86_64", "vdso-lto", "vdso", "the vDSO does not export", marks=X86),
    pytest.param("arm64", "vdso-lto", "vdso", "the vDSO does not export", marks=ARM),
])
def test_broken_build_fails_its_check(arch: str, variant: str, check: str, says: str,
                                      kernels: Kernels, guests: Guests) -> None:
    base = kernels.get(arch=arch)
    assert run_check(check, guests.get(base), base).passed  # the same check, unbroken
    broken = build_variant(base, variant)
    result = run_check(check, guests.get(broken), broken)
    assert not result.passed, f"{result.summary}\n{result.evidence}"
    assert says in result.summary, f"{result.summary}\n{result.evidence}"


@ARM
def test_efi_stub_with_lto_flags_does_not_build(kernels: Kernels) -> None:
    """20/28's breakage is a build failure, not a boot one: the stub's objects become LLVM
    bitcode that the STUBCPY step (llvm-strip, llvm-objcopy) cannot rework. The efi_stub check
    guards what the fix keeps working at run time (tests/test_checks.py)."""
    with pytest.raises(BuildError) as e:
        build_variant(kernels.get(arch="arm64"), "efi-stub-lto")
    assert "make (all) failed" in str(e.value)
    assert e.value.log is not None
    log = e.value.log.read_text()
    assert "drivers/firmware/efi/libstub" in log and "not recognized as a valid object" in log


@ARM
def test_hyp_code_outside_its_sections_stops_the_boot_in_kvm(kernels: Kernels,
                                                            guests: Guests) -> None:
    """24/28: with LTO's per-function sections outside the nVHE hyp sections, EL2 jumps into
    the kernel's own text while KVM initializes: the guest never reaches its shell, and the
    console ends in KVM's lines (kvm_nvhe passes on the unbroken kernel: the test above)."""
    base = kernels.get(arch="arm64")
    assert run_check("kvm_nvhe", guests.get(base), base).passed
    broken = build_variant(base, "hyp-sections-narrowed")
    with pytest.raises(KernelFailure) as e:  # it boots to a shell in 0.5 s when it does
        guests.boot(broken, timeout=20)
    assert e.value.kind in ("hang", "panic"), str(e.value)
    kernel_lines = [line for line in e.value.excerpt.splitlines() if line.startswith("[")]
    assert any("kvm [1]" in line for line in kernel_lines[-3:]), e.value.excerpt
    assert "started at EL2" in e.value.excerpt, e.value.excerpt
