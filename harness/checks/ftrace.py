"""Dynamic ftrace under LTO: the call sites of every function must be recorded where LTO's
code generation happens. x86_64 records them with objtool --mcount on vmlinux.o (the series'
05-08/28 and 11/28: clang has no -mrecord-mcount), arm64 with patchable function entries (22/28)
that a module must keep in one section (module.lds.S). A kernel that lost them boots fine and
only says "ftrace: No functions to be traced?" or quietly leaves a module's functions out.
"""

from __future__ import annotations

import itertools
import re

from harness.checks.registry import CheckResult, check
from harness.guest import modules
from harness.guest.session import Guest
from harness.kernel.model import Kernel

TRACEFS = "/sys/kernel/tracing"
CORE_FUNCTION = "version_proc_show"  # fs/proc/version.c; runs on `cat /proc/version`
# notrace on every arch (kernel/time/sched_clock.c, arch/x86/kernel/tsc.c): never traceable.
# On arm64 notrace means patchable_function_entry(0, 0), which needs the compiler flag's
# define where every file sees it: the series' 22/28
NOTRACE_FUNCTION = "sched_clock"
ALLOCATING = re.compile(r"ftrace: allocating (\d+) entries in (\d+) pages")


def ftrace_script(module_dir: str) -> str:
    """One guest command: mount tracefs, look for our functions, trace both of them while
    `cat /proc/version` and loading ltoboot_user (which calls ltoboot_probe_value) run."""
    t = TRACEFS
    probe, user = f"{module_dir}/{modules.PROBE}", f"{module_dir}/{modules.USER}"
    return "; ".join([
        f"mount -t tracefs nodev {t} 2>/dev/null",
        "dmesg | grep -E 'ftrace: (allocating|No functions)'",
        f"insmod {probe}",
        f"echo \"== listed\"; grep -E '^({CORE_FUNCTION}|{modules.EXPORTED}|{NOTRACE_FUNCTION})"
        f"( |$)' {t}/available_filter_functions",
        f"echo {CORE_FUNCTION} > {t}/set_ftrace_filter",
        f"echo {modules.EXPORTED} >> {t}/set_ftrace_filter",
        f"echo function > {t}/current_tracer",
        "cat /proc/version > /dev/null",
        f"insmod {user}",
        f"echo 0 > {t}/tracing_on",  # stop; a tracer change would empty the buffer
        f"echo \"== traced\"; grep -E ' ({CORE_FUNCTION}|{modules.EXPORTED}) <-' {t}/trace",
        f"echo nop > {t}/current_tracer; echo > {t}/set_ftrace_filter; echo 1 > {t}/tracing_on",
        "rmmod ltoboot_user; rmmod ltoboot_probe",
    ])


def _section(output: str, name: str) -> list[str]:
    """The lines after the `== name` marker, up to the next marker."""
    if f"== {name}" not in output:
        return []
    lines = output.split(f"== {name}", 1)[1].splitlines()[1:]
    return [x.strip() for x in itertools.takewhile(lambda x: not x.startswith("== "), lines)
            if x.strip()]


def evaluate_ftrace(output: str) -> tuple[bool, str]:
    """PASS: dynamic ftrace has entries, both functions are listed and were traced, the
    notrace one is not listed. A FAIL names every problem seen."""
    if "No functions to be traced" in output:
        return False, "ftrace: No functions to be traced? (no mcount locations recorded)"
    entries = ALLOCATING.search(output)
    if entries is None:
        return False, "no 'ftrace: allocating N entries' line in dmesg (dynamic ftrace off?)"
    if int(entries.group(1)) == 0:
        return False, "ftrace allocated 0 entries: no mcount locations recorded"
    problems = []
    listed = _section(output, "listed")
    where = {CORE_FUNCTION: "vmlinux", modules.EXPORTED: "module ltoboot_probe"}
    missing = [f for f in where if not any(line.split()[0] == f for line in listed)]
    if missing:
        problems.append(", ".join(f"{f} ({where[f]})" for f in missing)
                        + " not in available_filter_functions")
    if NOTRACE_FUNCTION in (line.split()[0] for line in listed):
        problems.append(f"{NOTRACE_FUNCTION} is notrace yet listed in "
                        "available_filter_functions")
    traced = " ".join(_section(output, "traced"))
    untraced = [f for f in where if f not in missing and f" {f} <-" not in f" {traced}"]
    if untraced:
        problems.append("the function tracer did not record " + ", ".join(untraced))
    if problems:
        return False, f"{entries.group(0)}, but " + "; ".join(problems)
    return True, f"{entries.group(0)}; {CORE_FUNCTION} and {modules.EXPORTED} " \
        f"[ltoboot_probe] listed and traced, notrace {NOTRACE_FUNCTION} not listed"


@check("ftrace", "dynamic ftrace has entries; the function tracer records a vmlinux and a "
       "module function (objtool mcount, patchable function entries)")
def ftrace(guest: Guest, kernel: Kernel) -> CheckResult:
    modules.probe_modules(kernel)
    r = guest.run(ftrace_script(modules.GUEST_DIR), timeout=20)
    ok, summary = evaluate_ftrace(r.output)
    return CheckResult("ftrace", ok, summary, r.output.strip())
