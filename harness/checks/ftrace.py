"""Dynamic ftrace under LTO: the call sites of every function must be recorded where LTO's
code generation happens. x86_64 records them with objtool --mcount on vmlinux.o (the series'
05-08/28 and 11/28: clang has no -mrecord-mcount), arm64 with patchable function entries (22/28)
that a module must keep in one section (module.lds.S). A kernel that lost them boots fine and
only says "ftrace: No functions to be traced?" or quietly leaves a module's functions out.
"""

from __future__ import annotations

import itertools
import re

from harness.checks.registry import Outcome, check
from harness.guest import modules
from harness.guest.protocol import GuestProtocol
from harness.kernel.model import Kernel

TRACEFS = "/sys/kernel/tracing"
CORE_FUNCTION = "version_proc_show"  # fs/proc/version.c; runs on `cat /proc/version`
# notrace on every arch (kernel/time/sched_clock.c, arch/x86/kernel/tsc.c): never traceable.
# On arm64 notrace means patchable_function_entry(0, 0), which needs the compiler flag's
# define where every file sees it: the series' 22/28
NOTRACE_FUNCTION = "sched_clock"
ALLOCATING = re.compile(r"ftrace: allocating (\d+) entries in (\d+) pages")


def ftrace_script(module_dir: str | None) -> str:
    """One guest command: mount tracefs, look for our functions, trace them while
    `cat /proc/version` and (with our modules) loading ltoboot_user, which calls
    ltoboot_probe_value, run."""
    t = TRACEFS
    traced = [CORE_FUNCTION] + ([modules.EXPORTED] if module_dir else [])
    listed = [*traced, NOTRACE_FUNCTION]
    load = [f"insmod {module_dir}/{modules.PROBE}"] if module_dir else []
    return "; ".join([
        f"mount -t tracefs nodev {t} 2>/dev/null",
        "dmesg | grep -E 'ftrace: (allocating|No functions)'",
        *load,
        # the fixed strings first: busybox grep's regular expression over the 16,000 lines
        # is most of the check's time under TCG
        f"echo \"== listed\"; grep -F{''.join(f' -e {f}' for f in listed)} "
        f"{t}/available_filter_functions | grep -E '^({'|'.join(listed)})( |$)'",
        f"echo '{' '.join(traced)}' > {t}/set_ftrace_filter",
        f"echo function > {t}/current_tracer",
        "cat /proc/version > /dev/null",
        *([f"insmod {module_dir}/{modules.USER}"] if module_dir else []),
        f"echo 0 > {t}/tracing_on",  # stop; a tracer change would empty the buffer
        f"echo \"== traced\"; grep -E ' ({'|'.join(traced)}) <-' {t}/trace",
        f"echo nop > {t}/current_tracer; echo > {t}/set_ftrace_filter; echo 1 > {t}/tracing_on",
        *(["rmmod ltoboot_user; rmmod ltoboot_probe"] if module_dir else []),
    ])


def _section(output: str, name: str) -> list[str]:
    """The lines after the `== name` marker, up to the next marker."""
    if f"== {name}" not in output:
        return []
    lines = output.split(f"== {name}", 1)[1].splitlines()[1:]
    return [x.strip() for x in itertools.takewhile(lambda x: not x.startswith("== "), lines)
            if x.strip()]


def evaluate_ftrace(output: str, with_module: bool = True) -> tuple[bool, str]:
    """PASS: dynamic ftrace has entries, our functions (vmlinux's, and the module's when it
    was loaded) are listed and were traced, the notrace one is not listed. A FAIL names every
    problem seen."""
    if "No functions to be traced" in output:
        return False, "ftrace: No functions to be traced? (no mcount locations recorded)"
    entries = ALLOCATING.search(output)
    if entries is None:
        return False, "no 'ftrace: allocating N entries' line in dmesg (dynamic ftrace off?)"
    if int(entries.group(1)) == 0:
        return False, "ftrace allocated 0 entries: no mcount locations recorded"
    problems = []
    listed = _section(output, "listed")
    where = {CORE_FUNCTION: "vmlinux"}
    if with_module:
        where[modules.EXPORTED] = "module ltoboot_probe"
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
    names = f"{CORE_FUNCTION} and {modules.EXPORTED} [ltoboot_probe]" if with_module else \
        f"{CORE_FUNCTION} (no build directory: no module of ours)"
    return True, f"{entries.group(0)}; {names} listed and traced, notrace " \
        f"{NOTRACE_FUNCTION} not listed"


@check("ftrace", "dynamic ftrace has entries; the function tracer records a vmlinux and a "
       "module function (objtool mcount, patchable function entries)", evaluate=evaluate_ftrace)
def ftrace(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    with_module = kernel.build_dir is not None
    if with_module:
        modules.probe_modules(kernel)
    r = guest.run(ftrace_script(modules.GUEST_DIR if with_module else None), timeout=20)
    ok, summary = evaluate_ftrace(r.output, with_module)
    return Outcome(ok, summary, r.output.strip())
