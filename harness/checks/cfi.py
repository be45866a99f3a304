"""kCFI: LKDTM's CFI_FORWARD_PROTO must be stopped, on a guest of its own (it oopses)."""

from __future__ import annotations

from harness.checks.registry import CheckResult, check
from harness.guest import boot
from harness.guest.console import CommandResult
from harness.guest.session import Guest
from harness.kernel.model import Kernel

TRIGGER = "/sys/kernel/debug/provoke-crash/DIRECT"
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
        return True, cfi[0]
    return False, "no CFI failure reported for LKDTM CFI_FORWARD_PROTO"


@check("cfi", "LKDTM CFI_FORWARD_PROTO is stopped by a CFI failure (on a guest of its own)")
def cfi(guest: Guest, kernel: Kernel) -> CheckResult:
    victim = boot.boot(kernel, accel_mode=guest.accel, label=f"{guest.label}-cfi",
                       log_dir=guest.log.parent)
    try:
        r = victim.run(f"echo CFI_FORWARD_PROTO > {TRIGGER}", allow_kernel_errors=True)
    finally:
        victim.close()
    ok, summary = evaluate_cfi(r)
    return CheckResult("cfi", ok, summary, "\n".join(r.kernel_lines[-25:]))
