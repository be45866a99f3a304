"""vdso: the verdicts on recorded output of our vDSO tool."""

from __future__ import annotations

from harness.checks.vdso import evaluate_vdso

VDSO_X86 = """vdso 0x00007ffd6a5f9000
symbol clock_gettime
symbol __vdso_gettimeofday
symbol __vdso_time
symbol __vdso_clock_gettime
symbol __vdso_clock_getres
symbol __vdso_getcpu
clock CLOCK_MONOTONIC 649116000 649118000 649120000 ok
clock CLOCK_REALTIME 1795605894430151692 1795605894430151813 1795605894430151903 ok
"""


def test_vdso_verdicts() -> None:
    assert evaluate_vdso(VDSO_X86, "x86_64", 0)[0]
    empty = "vdso 0x00007ffd6a5f9000\nerror the vDSO has no dynamic symbol table\n"
    ok, why = evaluate_vdso(empty, "x86_64", 1)
    assert not ok and why.startswith("the vDSO does not export __vdso_clock_gettime")
    backwards = VDSO_X86.replace("649118000 649120000 ok", "649121000 649120000 bad")
    ok, why = evaluate_vdso(backwards, "x86_64", 1)
    assert not ok and why.endswith("disagrees with the system call: CLOCK_MONOTONIC")
    ok, why = evaluate_vdso("sh: /lib/ltoboot/ltoboot_vdso: not found", "arm64", 127)
    assert not ok and "exit status 127" in why
