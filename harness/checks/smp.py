"""SMP: every vCPU QEMU gave the guest came online, and work pinned to each ran there.

Bringing up the secondary CPUs is where LTO's cross-unit optimisation meets per-CPU data,
static keys, alternatives patching and the control-register writes of a CPU's start (the seed
series' 02/28). A kernel that boots on its first CPU alone still reaches the shell: only
counting the CPUs tells.
"""

from __future__ import annotations

import re

from harness.base.errors import NotApplicable
from harness.checks.registry import Outcome, check, kernel_config
from harness.guest.console import CommandResult
from harness.guest.protocol import GuestProtocol
from harness.kernel.model import Kernel

ONLINE = "cat /sys/devices/system/cpu/online"
BROUGHT_UP = "dmesg | grep 'Brought up'"
# kernel/smp.c's smp_init(), every SMP kernel: "smp: Brought up 1 node, 2 CPUs"
BROUGHT_UP_RE = re.compile(r"Brought up (\d+) nodes?, (\d+) CPUs?")


# what the machine needs to tell an SMP kernel of its CPUs, where the kernel cannot do without:
# q35 lists them in ACPI's MADT alone (SeaBIOS's MP table names the boot CPU only)
CPU_LIST_NEEDS = {"x86_64": "ACPI"}


def pinned(cpu: int) -> str:
    """A command that runs on CPU `cpu` alone and prints its own /proc/self/stat, whose
    processor field names the CPU it last ran on (busybox taskset takes a hex mask)."""
    return f"taskset {1 << cpu:x} cat /proc/self/stat"


def cpu_list(text: str) -> set[int] | None:
    """A sysfs CPU list ("0-1,3") as a set; None when it is not one."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if not m:
            return None
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        cpus.update(range(first, last + 1))
    return cpus


def ran_on(stat: str) -> int | None:
    """The processor field (the 39th) of a /proc/<pid>/stat line; None when it has none. The
    command's name, in parentheses, may hold spaces: fields are counted after its last ')'."""
    _, paren, rest = stat.strip().rpartition(")")
    fields = rest.split()
    if not paren or len(fields) < 37 or not fields[36].lstrip("-").isdigit():
        return None
    return int(fields[36])


def evaluate_smp(vcpus: int, online: str, brought_up: str,
                 runs: list[tuple[int, int, str]]) -> tuple[bool, str]:
    """`online`: /sys/devices/system/cpu/online; `brought_up`: where the kernel's "Brought up
    N nodes, M CPUs" line may be (dmesg, the console); `runs`: (cpu, exit status, output) of
    pinned(cpu) for each vCPU."""
    want = set(range(vcpus))
    got = cpu_list(online)
    if got is None:
        return False, f"/sys/devices/system/cpu/online is not a CPU list: {online.strip()!r}"
    if got != want:
        return False, (f"{len(got & want)} of {vcpus} vCPUs online "
                       f"(/sys/devices/system/cpu/online: {online.strip()})")
    m = BROUGHT_UP_RE.search(brought_up)
    if m and int(m.group(2)) != vcpus:
        return False, f"the kernel says \"{m.group(0)}\" of {vcpus} vCPUs"
    for cpu, status, output in runs:
        where = ran_on(output)
        if status != 0 or where is None:
            first = output.strip().splitlines()[:1] or ["no output"]
            return False, f"a command pinned to CPU {cpu} did not run: exit {status}: {first[0]}"
        if where != cpu:
            return False, f"a command pinned to CPU {cpu} ran on CPU {where}"
    said = f", \"{m.group(0)}\"" if m else " (no \"Brought up\" line left in the log)"
    return True, (f"{vcpus} of {vcpus} vCPUs online ({online.strip()}){said}, a command "
                  f"pinned to each ran there")


@check("smp", "every vCPU the guest was given came online, and work pinned to each ran there",
       evaluate=evaluate_smp)
def smp(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    if guest.vcpus < 2:
        raise NotApplicable(f"the guest was given {guest.vcpus} vCPU: nothing to bring up")
    needed = CPU_LIST_NEEDS.get(kernel.arch)
    if needed and kernel_config(kernel).get(needed) != "y":
        raise NotApplicable(f"without CONFIG_{needed} this kernel cannot learn the machine's "
                            "other CPUs (QEMU's q35 lists them in ACPI's tables alone)")
    online = guest.run(ONLINE)
    brought_up = guest.run(BROUGHT_UP)
    runs: list[tuple[int, CommandResult]] = [(cpu, guest.run(pinned(cpu)))
                                            for cpu in range(guest.vcpus)]
    # dmesg first; the console (which holds the boot's lines) when the ring buffer lost it
    said = brought_up.output if BROUGHT_UP_RE.search(brought_up.output) else guest.console()
    ok, summary = evaluate_smp(guest.vcpus, online.output, said,
                               [(cpu, r.status, r.output) for cpu, r in runs])
    evidence = "\n".join([f"$ {ONLINE}", online.output.strip(), f"$ {BROUGHT_UP}",
                          brought_up.output.strip(),
                          *(f"$ {pinned(cpu)}\n{r.output.strip()}" for cpu, r in runs)])
    return Outcome(ok, summary, evidence)
