"""PCI fixups under LTO (the series' 17/28): each fixup entry points, PC-relative from inline
asm, at a global stub named __UNIQUE_ID_<hook>... that calls the (static) hook, so LTO can
neither rename nor drop what the asm names. Without LTO the entries name the hooks
themselves. With initcall_debug the kernel logs every fixup it calls; on q35 the fixups of
the host bridge and the ISA bridge run at boot."""

from __future__ import annotations

import re

from harness.checks.registry import Outcome, check
from harness.guest.protocol import GuestProtocol
from harness.kernel.model import Kernel

CALLING = re.compile(r"pci \S+: calling  (\S+)")


def evaluate_pci_fixups(dmesg: str, lto: str) -> tuple[bool, str]:
    called = CALLING.findall(dmesg)
    if not called:
        return False, "no PCI fixup was called (none in dmesg with initcall_debug)"
    stubs = [c for c in called if c.startswith("__UNIQUE_ID_")]
    if lto == "none":
        if stubs:
            return False, f"a kernel without LTO called its PCI fixups through __UNIQUE_ID_ " \
                f"stubs ({stubs[0]}): is it an LTO kernel?"
        return True, f"{len(called)} PCI fixups called (no LTO: the hooks themselves, e.g. " \
            f"{called[0]})"
    if len(stubs) != len(called):
        direct = [c for c in called if not c.startswith("__UNIQUE_ID_")]
        return False, f"{len(direct)} of {len(called)} PCI fixups called without an " \
            f"__UNIQUE_ID_ stub, which LTO needs (first: {direct[0]})"
    return True, f"{len(called)} PCI fixups called through their __UNIQUE_ID_ stubs, e.g. " \
        f"{stubs[0]}"


@check("pci_fixups", "x86_64 q35: PCI fixups run, through the __UNIQUE_ID_ stubs LTO needs",
       evaluate=evaluate_pci_fixups)
def pci_fixups(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    out = guest.run("dmesg | grep -E 'pci .*calling  '").output
    ok, summary = evaluate_pci_fixups(out, kernel.lto)
    return Outcome(ok, summary, "\n".join(out.splitlines()[:40]))
