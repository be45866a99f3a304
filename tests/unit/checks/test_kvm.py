"""kvm_nvhe: the verdicts on recorded boot logs, per accelerator."""

from __future__ import annotations

import pytest

from harness.base.errors import NotApplicable
from harness.checks.kvm import evaluate_kvm_nvhe


def test_kvm_nvhe_verdicts() -> None:
    el2 = "[    0.03] CPU: All CPU(s) started at EL2\n"
    ok, why = evaluate_kvm_nvhe(el2 + "[    0.3] kvm [1]: Hyp mode initialized successfully\n",
                                "tcg")
    assert ok and why == "CPU: All CPU(s) started at EL2; Hyp mode initialized successfully"
    assert evaluate_kvm_nvhe(el2 + "[ 0.3] kvm [1]: nVHE mode initialized successfully\n",
                             "tcg")[0]  # Linux 6.12's wording
    ok, why = evaluate_kvm_nvhe(el2 + "[ 0.3] kvm [1]: error initializing Hyp mode: -22\n",
                                "tcg")
    assert not ok and why.endswith("kvm [1]: error initializing Hyp mode: -22")
    with pytest.raises(NotApplicable, match="did not start at EL2"):
        evaluate_kvm_nvhe("[ 0.03] CPU: All CPU(s) started at EL1\n", "kvm")
