"""arm64 KVM's nVHE hyp code under LTO (the series' 24/28): the kernel starts at EL2 (QEMU's
virtualization=on under TCG) with kvm-arm.mode=nvhe, and KVM must install its hyp code there.
That code is linked apart from the kernel; LTO's per-function sections must stay inside its
sections (arch/arm64/include/asm/hyp_image.h), or EL2 runs into the kernel's own text."""

from __future__ import annotations

import re

from harness.base.errors import NotApplicable
from harness.checks.registry import Outcome, check
from harness.guest.protocol import GuestProtocol
from harness.kernel.model import Kernel

STARTED = re.compile(r"CPU: All CPU\(s\) started at (EL\d)")
INITIALIZED = re.compile(r"(?:Protected nVHE|nVHE|Hyp) mode initialized successfully")
KVM_LINES = re.compile(r"kvm \[\d+\]|started at EL|Hyp|hyp|KVM")


def evaluate_kvm_nvhe(dmesg: str, accel: str) -> tuple[bool, str]:
    started = STARTED.search(dmesg)
    if started is None or started.group(1) != "EL2":
        where = started.group(0) if started else "no 'started at EL' line"
        raise NotApplicable(f"the guest did not start at EL2 ({where}; {accel}: KVM's hyp "
                            "code needs EL2, QEMU's virtualization=on under TCG)")
    done = INITIALIZED.search(dmesg)
    if done is None:
        return False, "started at EL2 but KVM did not initialize its hyp code: " + \
            next((line.strip() for line in dmesg.splitlines() if "kvm [" in line),
                 "no kvm line in dmesg")
    return True, f"{started.group(0)}; {done.group(0)}"


@check("kvm_nvhe", "arm64: started at EL2, KVM's nVHE hyp code initialized "
       "(kvm-arm.mode=nvhe)", evaluate=evaluate_kvm_nvhe)
def kvm_nvhe(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    out = guest.run("dmesg | grep -E 'started at EL|kvm \\[|[Hh]yp|KVM'").output
    ok, summary = evaluate_kvm_nvhe(out, guest.accel)
    evidence = "\n".join(line for line in out.splitlines() if KVM_LINES.search(line))
    return Outcome(ok, summary, evidence[-3000:])
