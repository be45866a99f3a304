"""`ltoboot tested-by` on real kernels: the tag for a good one, none for a broken one."""

from __future__ import annotations

import pytest

from harness.faces.pytest_plugin.fixtures import Kernels
from harness.kernel.model import BuildSpec
from harness.kernel.variants import build_variant
from harness.reports.results import KernelReport
from harness.reports.tested_by import facts_for_tested_by, render_tested_by
from harness.runs.pipeline import check_obtained

pytestmark = pytest.mark.boot


def test_tested_by_only_for_a_kernel_that_passes(kernels: Kernels, primary_arch: str,
                                                 request: pytest.FixtureRequest) -> None:
    accel = request.config.getoption("accel")
    spec = BuildSpec(arch=primary_arch)
    good = kernels.get(arch=primary_arch)
    broken = build_variant(good, "cfi-permissive")
    reports = [check_obtained(KernelReport(label=k.label, kernel=k), spec, accel, None)
               for k in (good, broken)]
    ok = render_tested_by(facts_for_tested_by(reports[:1], "A U Thor", "a@example.org"))
    assert ok.splitlines()[-1] == "Tested-by: A U Thor <a@example.org>", ok
    assert "# cat /proc/version" in ok and "clang version" in ok
    bad = render_tested_by(facts_for_tested_by(reports, "A U Thor", "a@example.org"))
    assert "Tested-by:" not in bad
    assert "FAIL cfi: CFI not enforced" in bad and "console log:" in bad
