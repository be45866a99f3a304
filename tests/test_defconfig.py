"""The configs testers run: defconfig, with every check, on real kernels (opt-in: each is a
long build). x86_64's whole defconfig; arm64's defconfig with ltoboot's virt-only fragment
(its SoC platforms off: QEMU's virt machine needs none of them). Each is SMP, booted with the
guests' vCPUs, and passes every check or SKIPs it with the reason; the module check also loads
a real in-tree module (the config has =m ones beyond test_module), and the boot timeout is
the bigger image's.

LTOBOOT_DEFCONFIG=1: x86_64 (26 minutes on a fast day here, 3,700 steps);
LTOBOOT_DEFCONFIG_ARM64=1: arm64 with --fragment virt-only (docs/run.md: what each costs).
"""

from __future__ import annotations

import pytest

from harness.base import needs
from harness.checks import run_checks
from harness.faces.pytest_plugin.fixtures import Guests, Kernels
from harness.guest import boot
from harness.reports.results import KernelReport
from harness.reports.text import render
from harness.runs.options import _paths

pytestmark = pytest.mark.boot


@pytest.mark.parametrize(("arch", "fragments"), [
    pytest.param("x86_64", (), marks=[
        pytest.mark.xdist_group("x86_64-defconfig"),
        pytest.mark.opt_in("LTOBOOT_DEFCONFIG", "(x86_64 defconfig: a 26-60 minute build)")]),
    pytest.param("arm64", ("virt-only",), marks=[
        pytest.mark.xdist_group("arm64-defconfig-virt"),
        pytest.mark.opt_in("LTOBOOT_DEFCONFIG_ARM64",
                           "(arm64 defconfig, virt-only: an hour or more)")]),
])
def test_defconfig_passes_every_check_or_says_why_not(arch: str, fragments: tuple[str, ...],
                                                     kernels: Kernels, guests: Guests) -> None:
    kernel = kernels.get(arch=arch, config="defconfig", fragments=_paths(fragments, arch))
    guest = guests.get(kernel)
    results = run_checks(guest, kernel)
    text = render(KernelReport(kernel.label, kernel, results=results))
    assert all(r.passed for r in results), text
    by_name = {r.name: r for r in results}
    # the only SKIPs are checks of the other arch, each with its reason
    for r in results:
        if r.skipped:
            assert str(needs.scope_gap(needs.CHECKS[r.name], arch, kernel.lto)) in r.summary, text
    assert " SMP " in by_name["proc_version"].evidence, text
    assert by_name["smp"].summary.startswith("2 of 2 vCPUs online"), text
    assert "in-tree module" in by_name["test_module"].summary, text
    assert "none of" not in by_name["test_module"].summary, text
    assert kernel.extra.get("config_base") == "defconfig", kernel.extra
    assert kernel.extra.get("config_added"), "the report lists what was added"
    assert guest.ready_timeout > boot.BOOT_TIMEOUT * guest.timeout_scale, \
        "a defconfig image is bigger than tinyconfig's: the boot timeout grows with it"
