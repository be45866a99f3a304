"""Running a check: an answer it did not expect is its failure with the evidence; a machine problem
inside it is no verdict."""

from __future__ import annotations

import pytest


def test_a_check_meeting_unexpected_output_fails_with_evidence() -> None:
    from pathlib import Path
    from typing import Any

    from harness.checks import registry

    def confused(guest: Any, kernel: Any) -> registry.CheckResult:
        return registry.CheckResult("x", int("grep: /proc/kallsyms: No such file") > 0, "")

    registry.CHECKS["confused"] = registry.Check("confused", "for this test", confused)
    try:
        r = registry.run_check("confused", None, None)  # type: ignore[arg-type]
    finally:
        del registry.CHECKS["confused"]
    assert not r.passed and not r.skipped
    assert r.summary.startswith("unexpected answer from the guest: ValueError")
    assert "No such file" in r.summary and "Traceback" in r.evidence
    assert Path(__file__).name in r.evidence


def test_a_machine_problem_inside_a_check_is_no_verdict(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    from harness.checks import registry
    from harness.errors import BuildError, InfraError

    def machine(guest: object, kernel: object) -> registry.CheckResult:
        raise InfraError("UEFI firmware x is missing: run ./setup.sh")

    def kernel_side(guest: object, kernel: object) -> registry.CheckResult:
        raise BuildError("probe modules did not build")

    monkeypatch.setitem(registry.CHECKS, "t1", registry.Check("t1", "", machine))
    monkeypatch.setitem(registry.CHECKS, "t2", registry.Check("t2", "", kernel_side))
    with pytest.raises(InfraError):
        registry.run_check("t1", None, None)  # type: ignore[arg-type]
    got = registry.run_check("t2", None, None)  # type: ignore[arg-type]
    assert got.verdict == "FAIL" and got.summary == "probe modules did not build"
