"""Checks that crash the kernel on purpose (LKDTM's provoke-crash): they share one throwaway
guest per kernel, booted on first use, or run last on the main guest when nothing will ask it
anything after them (run_checks' last_use); each crash is in a subshell of its own, so an oops
kills that and the guest goes on serving the next."""

from __future__ import annotations

from harness.checks.registry import Outcome, check, companion
from harness.guest.console import CommandResult, without_time
from harness.guest.protocol import GuestProtocol
from harness.kernel.model import Kernel

COMPANION = "crash"  # the kind of guest they share
TRIGGER = "/sys/kernel/debug/provoke-crash/DIRECT"
RETURNED = "FAIL: func returned"  # LKDTM's execute_location() when the bad call came back
# the fault each arch reports for executing a non-executable page
NX_FAULTS = ("kernel tried to execute NX-protected page",
             "Unable to handle kernel execute from non-executable memory")


def provoke(guest: GuestProtocol, kernel: Kernel, test: str) -> CommandResult:
    return companion(guest, kernel, COMPANION).run(f"echo {test} > {TRIGGER}",
                                                   allow_kernel_errors=True)


def evaluate_exec_rodata(r: CommandResult) -> tuple[bool, str]:
    """Enforced: executing LKDTM's function in .rodata faulted and did not come back."""
    text = "\n".join([r.output, *r.kernel_lines])
    if "No such file" in text or "can't create" in text:
        return False, f"LKDTM is not built in ({TRIGGER} missing)"
    if RETURNED in text:
        return False, "rodata is executable: LKDTM EXEC_RODATA ran the function in .rodata " \
            f"and it returned ({RETURNED})"
    nx = [line for line in r.kernel_lines if any(f in line for f in NX_FAULTS)]
    faults = [line for kind, line in r.events if kind in ("oops", "bug")]
    if nx or faults:
        return True, without_time((nx or faults)[0])
    return False, "no fault reported for LKDTM EXEC_RODATA"


@check("lkdtm_rodata", "LKDTM EXEC_RODATA: executing from .rodata faults (on a throwaway "
       "guest)", evaluate=evaluate_exec_rodata, companion=COMPANION)
def lkdtm_rodata(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    r = provoke(guest, kernel, "EXEC_RODATA")
    ok, summary = evaluate_exec_rodata(r)
    return Outcome(ok, summary, "\n".join(r.kernel_lines[-25:]))
