"""The vDSO under LTO: built without LTO (the series' 23/28 for arm64, 26/28 for x86_64), it
must still export its functions, and clock_gettime through it must agree with the system
call. images/tools/ltoboot_vdso.c finds it through AT_SYSINFO_EHDR, as a libc does."""

from __future__ import annotations

from harness.checks.registry import Outcome, check
from harness.guest import modules, tools
from harness.guest.protocol import GuestProtocol
from harness.kernel.model import Kernel

# What each arch's vDSO exports (arch/*/vdso.lds.S version scripts): a vDSO missing one of
# these lost it in the build
EXPORTS = {
    "x86_64": ("__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time",
               "__vdso_clock_getres", "__vdso_getcpu"),
    "arm64": ("__kernel_clock_gettime", "__kernel_gettimeofday", "__kernel_clock_getres"),
}


def evaluate_vdso(output: str, arch: str, status: int) -> tuple[bool, str]:
    lines = output.splitlines()
    errors = [line.removeprefix("error ") for line in lines if line.startswith("error ")]
    symbols = {line.split()[1] for line in lines if line.startswith("symbol ")}
    clocks = [line.split() for line in lines if line.startswith("clock ")]
    if not any(line.startswith("vdso ") for line in lines):
        return False, errors[0] if errors else f"{tools.VDSO} printed nothing it should " \
            f"(exit status {status})"
    missing = [s for s in EXPORTS[arch] if s not in symbols]
    if missing:
        return False, f"the vDSO does not export {', '.join(missing)} (it has " \
            f"{', '.join(sorted(symbols)) or 'none'})"
    if errors:
        return False, errors[0]
    bad = [c[1] for c in clocks if c[-1] != "ok"]
    if bad or len(clocks) != 2 or status != 0:
        return False, "clock_gettime through the vDSO disagrees with the system call: " + \
            (", ".join(bad) or f"exit status {status}")
    return True, f"{len(symbols)} functions exported; clock_gettime through the vDSO lies " \
        "between two system calls for CLOCK_MONOTONIC and CLOCK_REALTIME"


@check("vdso", "the vDSO exports its functions and its clock_gettime agrees with the system "
       "call (a static program, through AT_SYSINFO_EHDR)", evaluate=evaluate_vdso)
def vdso(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    r = guest.run(f"{modules.GUEST_DIR}/{tools.VDSO}")
    ok, summary = evaluate_vdso(r.output, kernel.arch, r.status)
    return Outcome(ok, summary, r.output.strip())
