"""Every broken build of the catalogue (harness/kernel/variants.py) fails the check it names,
saying what the catalogue says it says: real incremental builds of the default kernel, booted.
The same check passes on the unbroken kernel first, so no check here can pass by failing
always. Variants shown by a test of their own (a comparison, a build or boot that fails)
name it in the catalogue; tests/unit/test_variants.py holds the catalogue to that.

Variants of one bundle share a kernel; the last test shows that sharing hides nothing: on the
shared kernel every member's check fails with its own message, and every other check gives
the unbroken kernel's verdict."""

from __future__ import annotations

import pytest

from harness.checks import run_check, run_checks
from harness.faces.pytest_plugin.fixtures import Guests, Kernels
from harness.kernel.variants import BUNDLES, Caught, Shown, build_variant, sharing, shown_to_fail

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


@pytest.mark.parametrize("arch", [pytest.param(a, marks=pytest.mark.xdist_group(f"{a}-thin"))
                                  for a in ("x86_64", "arm64")])
def test_a_shared_kernel_breaks_only_what_its_variants_name(arch: str, kernels: Kernels,
                                                            guests: Guests) -> None:
    base = kernels.get(arch=arch)
    members = max((sharing(base, n) for bundle in BUNDLES for n in bundle), key=len)
    assert len(members) > 1, f"no bundle applies to {base.label}"
    broken = build_variant(base, members[0].name)
    assert broken.extra["variants"] == " ".join(v.name for v in members)
    claimed = {c.check: c for v in members for c in v.caught_by if c.shown is Shown.CHECK
               if not c.arches or arch in c.arches}
    unbroken = {r.name: r for r in run_checks(guests.get(base), base)}
    shared = run_checks(guests.get(broken), broken)
    assert {r.name for r in shared} == set(unbroken)
    wrong = []
    for r in shared:
        says = [c.says for v in members for c in v.caught_by if c.check == r.name
                if not c.arches or arch in c.arches]
        if says:  # every member that names this check: its message is there
            if r.passed or not all(s in r.summary for s in says):
                wrong.append(f"{r.name}: {r.verdict}: {r.summary} (expected {says})")
        elif r.verdict != unbroken[r.name].verdict:
            wrong.append(f"{r.name}: {r.verdict} here, {unbroken[r.name].verdict} unbroken: "
                         f"{r.summary}\n{r.evidence}")
    assert not wrong, "\n".join(wrong)
    assert claimed
