"""The checks fail on kernels that are really broken that way (real builds, real boots)."""

from __future__ import annotations

import time

import pytest

from harness.base.errors import KernelFailure
from harness.checks import CHECKS, lto_config_as, proc_version, run_check
from harness.faces.pytest_plugin.fixtures import Guests, Kernels
from harness.guest import boot, modules

pytestmark = pytest.mark.boot


@pytest.mark.ltoboot_group("none")
def test_lto_check_says_not_an_lto_kernel(kernels: Kernels, guests: Guests,
                                          primary_arch: str) -> None:
    kernel = kernels.get(arch=primary_arch, lto="none")
    guest = guests.get(kernel)
    as_thin = lto_config_as(guest, "thin")
    assert not as_thin.passed
    assert as_thin.summary.startswith("not an LTO kernel"), as_thin.summary
    assert "CONFIG_LTO_NONE=y" in as_thin.evidence
    # the same kernel is fine for what it is: the check is not simply always failing
    assert lto_config_as(guest, "none").passed
    assert proc_version(guest, kernel).passed


@pytest.mark.ltoboot_group()
def test_lto_check_fails_for_a_mode_the_kernel_was_not_built_with(
        kernels: Kernels, guests: Guests, primary_arch: str) -> None:
    """The default suite's real kernel against the other modes: lto_config fails with the
    config lines as evidence (on a kernel without LTO: the test above)."""
    kernel = kernels.get(arch=primary_arch)
    guest = guests.get(kernel)
    assert lto_config_as(guest, kernel.lto).passed
    for other in {"thin", "full", "none"} - {kernel.lto}:
        got = lto_config_as(guest, other)
        assert not got.passed, (other, got.summary)
        assert f"CONFIG_LTO_CLANG_{kernel.lto.upper()}=y" in got.evidence, got.evidence


def test_panic_is_classified_with_excerpt_and_log(kernels: Kernels, primary_arch: str) -> None:
    kernel = kernels.get(arch=primary_arch)
    started = time.monotonic()
    with pytest.raises(KernelFailure) as e:
        guest = boot.boot(boot.BootRequest(
            kernel, extra_cmdline=["rdinit=/nonexistent", "init=/nonexistent"],
            label=f"{kernel.label}-no-init"))
        guest.close()
    elapsed = time.monotonic() - started
    assert e.value.kind == "panic", str(e.value)
    assert "Kernel panic - not syncing" in e.value.summary
    assert "/nonexistent" in e.value.excerpt
    assert e.value.log is not None and e.value.log.is_file()
    assert f"console log: {e.value.log}" in str(e.value)
    # reported when it happens (panic=-1 ends QEMU), not at the boot timeout
    assert elapsed < boot.BOOT_TIMEOUT, elapsed


@pytest.mark.ltoboot_group()
def test_a_warning_raised_after_boot_fails_dmesg_clean(kernels: Kernels, guests: Guests,
                                                       primary_arch: str) -> None:
    assert list(CHECKS)[-1] == "dmesg_clean"  # judged after what every other check did
    kernel = kernels.get(arch=primary_arch)
    guest = guests.boot(kernel, label=f"{kernel.label}-warn")
    assert run_check("dmesg_clean", guest, kernel).passed  # a clean boot is clean
    loaded = guest.run(f"insmod {modules.GUEST_DIR}/{modules.PROBE} warn=1 && "
                       "rmmod ltoboot_probe")
    assert loaded.ok, loaded.output
    after = run_check("dmesg_clean", guest, kernel)
    assert not after.passed, after.summary
    assert "WARNING:" in after.evidence and "[ltoboot_probe]" in after.evidence
