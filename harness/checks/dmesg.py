"""A clean kernel log, judged after every other check of the boot: a WARNING or BUG that a
later check provoked (loading our modules, kprobes) is reported too."""

from __future__ import annotations

import re

from harness.checks.registry import Outcome, check
from harness.guest.protocol import GuestProtocol
from harness.kernel.model import Kernel

DMESG_PROBLEMS = re.compile(r"WARNING:|BUG:|Oops|Call Trace")


def dmesg_problems(dmesg: str) -> list[str]:
    return [line for line in dmesg.splitlines() if DMESG_PROBLEMS.search(line)]


@check("dmesg_clean", "the kernel log has no WARNING, BUG, Oops or Call Trace, after all "
       "other checks", evaluate=dmesg_problems)
def dmesg_clean(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    # filtered in the guest: the whole log is 50 KB that the serial console need not carry
    bad = dmesg_problems(guest.run("dmesg | grep -E 'WARNING:|BUG:|Oops|Call Trace'").output)
    if bad:
        return Outcome(False, f"{len(bad)} problem line(s) in dmesg", "\n".join(bad[:20]))
    return Outcome(True, "no WARNING, BUG, Oops or Call Trace")


