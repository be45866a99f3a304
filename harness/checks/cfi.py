"""kCFI: LKDTM's CFI_FORWARD_PROTO must be stopped, on the throwaway guest (it oopses)."""

from __future__ import annotations

from harness.checks.crash import COMPANION, TRIGGER, provoke
from harness.checks.registry import Outcome, check
from harness.guest.console import CommandResult, without_time
from harness.guest.protocol import GuestProtocol
from harness.kernel.model import Kernel

SURVIVED = "FAIL: survived mismatched prototype function call"


def evaluate_cfi(r: CommandResult) -> tuple[bool, str]:
    """Enforced: a CFI failure was reported and the caller did not survive the call."""
    cfi = [line for kind, line in r.events if kind == "cfi"]
    text = "\n".join([r.output, *r.kernel_lines])
    if "No such file" in text or "can't create" in text:
        return False, f"LKDTM is not built in ({TRIGGER} missing)"
    if SURVIVED in text:
        return False, "CFI not enforced: " + (cfi[0] if cfi else "no CFI failure reported") \
            + "; LKDTM survived the mismatched call"
    if cfi:
        return True, without_time(cfi[0])
    return False, "no CFI failure reported for LKDTM CFI_FORWARD_PROTO"


@check("cfi", "LKDTM CFI_FORWARD_PROTO is stopped by a CFI failure (on a throwaway guest)",
       evaluate=evaluate_cfi, companion=COMPANION)
def cfi(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    r = provoke(guest, kernel, "CFI_FORWARD_PROTO")
    ok, summary = evaluate_cfi(r)
    return Outcome(ok, summary, "\n".join(r.kernel_lines[-25:]))
