"""cfi: the verdicts on recorded LKDTM CFI output."""

from __future__ import annotations

from harness.checks.cfi import SURVIVED, evaluate_cfi
from harness.guest.console import parse_result


def test_cfi_verdicts() -> None:
    enforced = parse_result("x", "[ 5.1] CFI failure at lkdtm_indirect_call+0x1a/0x30 (target: "
                            "lkdtm_increment_int+0x0/0x10; expected type: 0x7e0c52a5)\r\n"
                            "[ 5.1] Oops: invalid opcode: 0000 [#1]\r\n", 139)
    assert evaluate_cfi(enforced) == (True, "CFI failure at lkdtm_indirect_call+0x1a/0x30 "
                                      "(target: lkdtm_increment_int+0x0/0x10; expected type: "
                                      "0x7e0c52a5)")
    permissive = parse_result("x", "[ 5.1] CFI failure at f+0x1/0x2\r\n"
                              f"[ 5.2] lkdtm: {SURVIVED}!\r\n", 0)
    ok, why = evaluate_cfi(permissive)
    assert not ok and why.startswith("CFI not enforced") and "survived" in why
    missing = parse_result("x", "|sh: can't create /sys/kernel/debug/provoke-crash/DIRECT: "
                           "nonexistent directory\r\n", 1)
    assert evaluate_cfi(missing) == (False, "LKDTM is not built in "
                                     "(/sys/kernel/debug/provoke-crash/DIRECT missing)")
