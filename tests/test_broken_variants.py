"""Every broken build of the catalogue (harness/kernel/variants.py) fails the check it names,
saying what the catalogue says it says: real incremental builds of the default kernel, booted.
The same check passes on the unbroken kernel first, so no check here can pass by failing
always. Variants shown by a test of their own (a comparison, a build or boot that fails)
name it in the catalogue; tests/unit/test_variants.py holds the catalogue to that."""

from __future__ import annotations

import pytest

from harness.checks import run_check
from harness.kernel.variants import Caught, build_variant, shown_to_fail
from harness.pytest_plugin.fixtures import Guests, Kernels

pytestmark = pytest.mark.boot


def _param(variant: str, arch: str, caught: Caught) -> object:
    group = pytest.mark.xdist_group(f"{arch}-thin") if arch else pytest.mark.ltoboot_group()
    return pytest.param(variant, arch, caught, marks=group,
                        id=f"{variant}-{caught.check}" + (f"-{arch}" if arch else ""))


@pytest.mark.parametrize(("variant", "arch", "caught"),
                         [_param(*t) for t in shown_to_fail()])
def test_broken_build_fails_its_check(variant: str, arch: str, caught: Caught,
                                      kernels: Kernels, guests: Guests,
                                      primary_arch: str) -> None:
    base = kernels.get(arch=arch or primary_arch)
    unbroken = run_check(caught.check, guests.get(base), base)
    assert unbroken.passed, f"{unbroken.summary}\n{unbroken.evidence}"
    broken = build_variant(base, variant)
    result = run_check(caught.check, guests.get(broken), broken)
    assert not result.passed, f"{result.summary}\n{result.evidence}"
    assert caught.says in result.summary, f"{result.summary}\n{result.evidence}"
