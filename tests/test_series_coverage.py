"""What the LTO series fixed outside kbuild that shows as a build or boot failing rather than a
check (harness/runs/coverage.py): real variants of the default build. The variants that fail a
check are tests/test_broken_variants.py, generated from the catalogue."""

from __future__ import annotations

import pytest

from harness.base.errors import BuildError, KernelFailure
from harness.checks import run_check
from harness.faces.pytest_plugin.fixtures import Guests, Kernels
from harness.kernel.variants import VARIANTS, build_variant

pytestmark = pytest.mark.boot

ARM = pytest.mark.xdist_group("arm64-thin")


@ARM
def test_efi_stub_with_lto_flags_does_not_build(kernels: Kernels) -> None:
    """20/28's breakage is a build failure, not a boot one: the stub's objects become LLVM
    bitcode that the STUBCPY step (llvm-strip, llvm-objcopy) cannot rework. The efi_stub check
    guards what the fix keeps working at run time (tests/test_checks.py)."""
    (caught,) = VARIANTS["efi-stub-lto"].caught_by
    with pytest.raises(BuildError) as e:
        build_variant(kernels.get(arch="arm64"), "efi-stub-lto")
    assert "make (all) failed" in str(e.value)
    assert e.value.log is not None
    log = e.value.log.read_text()
    assert "drivers/firmware/efi/libstub" in log and caught.says in log


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
        guests.boot(broken, timeout=12)
    assert e.value.kind in ("hang", "panic"), str(e.value)
    kernel_lines = [line for line in e.value.excerpt.splitlines() if line.startswith("[")]
    (caught,) = VARIANTS["hyp-sections-narrowed"].caught_by
    assert any(caught.says in line for line in kernel_lines[-3:]), e.value.excerpt
    assert "started at EL2" in e.value.excerpt, e.value.excerpt
