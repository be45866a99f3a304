"""PCI fixups under LTO (the series' 17/28): each fixup entry points, PC-relative, at a stub
named __UNIQUE_ID_<hook>... that calls the hook, so LTO can neither rename nor drop it. With
initcall_debug the kernel logs every fixup it calls; on q35 the early and header fixups of
the host bridge and the ISA bridge run at boot."""

from __future__ import annotations

import re

from harness.checks.registry import CheckResult, check
from harness.guest.session import Guest
from harness.kernel.model import Kernel

CALLING = re.compile(r"pci \S+: calling  (\S+)")


def evaluate_pci_fixups(dmesg: str) -> tuple[bool, str]:
    called = CALLING.findall(dmesg)
    if not called:
        return False, "no PCI fixup was called (none in dmesg with initcall_debug)"
    stubs = [c for c in called if c.startswith("__UNIQUE_ID_")]
    if not stubs:
        return False, f"{len(called)} PCI fixups called, none through an __UNIQUE_ID_ stub " \
            f"(first: {called[0]})"
    return True, f"{len(called)} PCI fixups called through their __UNIQUE_ID_ stubs, e.g. " \
        f"{stubs[0]}"


@check("pci_fixups", "x86_64 q35: PCI fixups run, through the __UNIQUE_ID_ stubs LTO needs")
def pci_fixups(guest: Guest, kernel: Kernel) -> CheckResult:
    out = guest.run("dmesg | grep -E 'pci .*calling  '").output
    ok, summary = evaluate_pci_fixups(out)
    return CheckResult("pci_fixups", ok, summary, "\n".join(out.splitlines()[:40]))
