"""lkdtm_rodata: the verdicts on recorded LKDTM output."""

from __future__ import annotations

from harness.checks.crash import evaluate_exec_rodata
from harness.guest.console import parse_result


def test_exec_rodata_verdicts() -> None:
    faulted = parse_result("x", "[    0.42] Unable to handle kernel execute from "
                           "non-executable memory at virtual address ffffffc0082e1004\r\n"
                           "[    0.42] Internal error: Oops: 8600000f [#1] SMP\r\n", 139)
    assert evaluate_exec_rodata(faulted) == (True, "Unable to handle kernel execute from "
                                             "non-executable memory at virtual address "
                                             "ffffffc0082e1004")
    returned = parse_result("x", "[    0.42] lkdtm: FAIL: func returned\r\n", 0)
    ok, why = evaluate_exec_rodata(returned)
    assert not ok and why.startswith("rodata is executable")
    assert evaluate_exec_rodata(parse_result("x", "", 0)) == \
        (False, "no fault reported for LKDTM EXEC_RODATA")
