"""ftrace: the verdicts on recorded guest output (real runs, trimmed), with and without our
modules."""

from __future__ import annotations

from harness.checks.ftrace import evaluate_ftrace, ftrace_script

FTRACE_OK = """[    0.000000] ftrace: allocating 11794 entries in 47 pages
== listed
version_proc_show
ltoboot_probe_value [ltoboot_probe]
== traced
             cat-71      [000] .....     1.020000: version_proc_show <-seq_read_iter
          insmod-73      [000] .....     1.080000: ltoboot_probe_value <-ltoboot_user_init
"""


def test_ftrace_verdicts() -> None:
    ok, why = evaluate_ftrace(FTRACE_OK)
    assert ok and why.startswith("ftrace: allocating 11794 entries in 47 pages;")
    none = "[    0.000000] ftrace: No functions to be traced?\n== listed\n== traced\n"
    assert evaluate_ftrace(none) == (False, "ftrace: No functions to be traced? (no mcount "
                                     "locations recorded)")
    no_module = FTRACE_OK.replace("ltoboot_probe_value [ltoboot_probe]\n", "")
    ok, why = evaluate_ftrace(no_module)
    assert not ok and why.endswith("but ltoboot_probe_value (module ltoboot_probe) not in "
                                   "available_filter_functions")
    untraced = FTRACE_OK.split("== traced")[0] + "== traced\n"
    assert evaluate_ftrace(untraced) == (False, "ftrace: allocating 11794 entries in 47 pages, "
                                         "but the function tracer did not record "
                                         "version_proc_show, ltoboot_probe_value")
    assert not evaluate_ftrace("== listed\n")[0]  # no dynamic ftrace at all
    traceable = FTRACE_OK.replace("== traced", "sched_clock\n== traced")
    ok, why = evaluate_ftrace(traceable)
    assert not ok and why.endswith("but sched_clock is notrace yet listed in "
                                   "available_filter_functions")
    # the define dropped from arm64's Makefile for the whole tree (recorded): both the
    # module's call sites and notrace are gone
    both = traceable.replace("ltoboot_probe_value [ltoboot_probe]\n", "")
    ok, why = evaluate_ftrace(both)
    assert not ok and "ltoboot_probe_value (module ltoboot_probe) not in" in why \
        and "sched_clock is notrace yet listed" in why


def test_ftrace_without_our_modules() -> None:
    vmlinux_only = "\n".join(line for line in FTRACE_OK.splitlines()
                             if "ltoboot_probe_value" not in line)
    ok, why = evaluate_ftrace(vmlinux_only, with_module=False)
    assert ok and "no build directory" in why
    assert not evaluate_ftrace(vmlinux_only)[0]
    script = ftrace_script(None)
    assert "insmod" not in script and "rmmod" not in script
    assert "echo 'version_proc_show' >" in script
