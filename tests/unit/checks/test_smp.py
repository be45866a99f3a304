"""smp: the verdicts on recorded output (sysfs, dmesg, /proc/self/stat under taskset)."""

from __future__ import annotations

from harness.checks.smp import cpu_list, evaluate_smp, pinned, ran_on

# /proc/self/stat of `taskset 1 cat` and `taskset 2 cat`: processor (field 39) 0 and 1
STAT0 = ("23785 (cat) R 23783 23783 16481 0 -1 4194304 171 0 1 0 0 0 0 0 20 0 1 0 907568 "
         "3133440 385 18446744073709551615 94665454862336 94665454882217 140732773076976 0 0 "
         "0 0 0 0 0 0 0 17 0 0 0 0 0 0 94665454898224 94665454899840 94665839300608 "
         "140732773079774 140732773079794 140732773079794 140732773081067 0")
STAT1 = ("23787 (cat) R 23783 23783 16481 0 -1 4194304 174 0 0 0 0 0 0 0 20 0 1 0 907569 "
         "3133440 361 18446744073709551615 94840489508864 94840489528745 140724049736288 0 0 "
         "0 0 0 0 0 0 0 17 1 0 0 0 0 0 94840489544752 94840489546368 94840733716480 "
         "140724049742558 140724049742578 140724049742578 140724049743851 0")
BROUGHT = "[    0.412345] smp: Brought up 1 node, 2 CPUs\n"
GOOD = [(0, 0, STAT0), (1, 0, STAT1)]


def test_the_parts() -> None:
    assert cpu_list("0-1\n") == {0, 1} and cpu_list("0,2-3") == {0, 2, 3}
    assert cpu_list("0") == {0} and cpu_list("") is None and cpu_list("cat: x") is None
    assert ran_on(STAT0) == 0 and ran_on(STAT1) == 1
    # a command name with spaces and parentheses: fields count from its last ')'
    assert ran_on(STAT1.replace("(cat)", "(a) b (c)")) == 1
    assert ran_on("taskset: sched_setaffinity: Invalid argument") is None
    assert pinned(0) == "taskset 1 cat /proc/self/stat"
    assert pinned(5) == "taskset 20 cat /proc/self/stat"


def test_every_vcpu_online_and_used_passes() -> None:
    ok, why = evaluate_smp(2, "0-1\n", BROUGHT, GOOD)
    assert ok, why
    assert why.startswith("2 of 2 vCPUs online (0-1), \"Brought up 1 node, 2 CPUs\"")
    ok, why = evaluate_smp(2, "0-1\n", "", GOOD)  # the line was lost from the log: no verdict
    assert ok and "no \"Brought up\" line" in why


def test_secondaries_that_never_came_up_fail() -> None:
    ok, why = evaluate_smp(2, "0\n", "smp: Brought up 1 node, 1 CPU", [
        (0, 0, STAT0), (1, 1, "taskset: sched_setaffinity: Invalid argument")])
    assert not ok and why == "1 of 2 vCPUs online (/sys/devices/system/cpu/online: 0)"


def test_what_the_kernel_says_and_where_work_ran_count() -> None:
    ok, why = evaluate_smp(2, "0-1", "smp: Brought up 1 node, 1 CPU", GOOD)
    assert not ok and why == "the kernel says \"Brought up 1 node, 1 CPU\" of 2 vCPUs"
    ok, why = evaluate_smp(2, "0-1", BROUGHT, [(0, 0, STAT0), (1, 0, STAT0)])
    assert not ok and why == "a command pinned to CPU 1 ran on CPU 0"
    ok, why = evaluate_smp(2, "0-1", BROUGHT, [(0, 0, STAT0), (1, 1, "taskset: bad")])
    assert not ok and why == "a command pinned to CPU 1 did not run: exit 1: taskset: bad"
    ok, why = evaluate_smp(2, "garbage", BROUGHT, GOOD)
    assert not ok and "not a CPU list" in why
