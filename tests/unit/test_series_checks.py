"""The evaluators of the series checks on recorded guest output (real runs, trimmed). That the
checks pass on real kernels and fail on broken builds is tests/test_series_coverage.py."""

from __future__ import annotations

import pytest

from harness.checks.build_outputs import evaluate_build_outputs, rodata_placement
from harness.checks.crash import evaluate_exec_rodata
from harness.checks.efi import evaluate_efi_stub
from harness.checks.ftrace import evaluate_ftrace, ftrace_script
from harness.checks.kvm import evaluate_kvm_nvhe
from harness.checks.pci import evaluate_pci_fixups
from harness.checks.vdso import evaluate_vdso
from harness.errors import NotApplicable
from harness.guest.console import parse_result

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


def test_exec_rodata_verdicts() -> None:
    faulted = parse_result("x", "[    0.42] Unable to handle kernel execute from "
                           "non-executable memory at virtual address ffffffc0082e1004\r\n"
                           "[    0.42] Internal error: Oops: 8600000f [#1] SMP\r\n", 139)
    assert evaluate_exec_rodata(faulted) == (True, "Unable to handle kernel execute from "
                                             "non-executable memory at virtual address "
                                             "ffffffc0082e1004")
    returned = parse_result("x", "[    0.42] lkdtm: FAIL: func returned\r\n", 0)
    ok, why = evaluate_exec_rodata(returned)
    assert not ok and why.startswith("rodata is executable")
    assert evaluate_exec_rodata(parse_result("x", "", 0)) == \
        (False, "no fault reported for LKDTM EXEC_RODATA")


def test_kvm_nvhe_verdicts() -> None:
    el2 = "[    0.03] CPU: All CPU(s) started at EL2\n"
    ok, why = evaluate_kvm_nvhe(el2 + "[    0.3] kvm [1]: Hyp mode initialized successfully\n",
                                "tcg")
    assert ok and why == "CPU: All CPU(s) started at EL2; Hyp mode initialized successfully"
    assert evaluate_kvm_nvhe(el2 + "[ 0.3] kvm [1]: nVHE mode initialized successfully\n",
                             "tcg")[0]  # Linux 6.12's wording
    ok, why = evaluate_kvm_nvhe(el2 + "[ 0.3] kvm [1]: error initializing Hyp mode: -22\n",
                                "tcg")
    assert not ok and why.endswith("kvm [1]: error initializing Hyp mode: -22")
    with pytest.raises(NotApplicable, match="did not start at EL2"):
        evaluate_kvm_nvhe("[ 0.03] CPU: All CPU(s) started at EL1\n", "kvm")


def test_pci_fixup_verdicts() -> None:
    dmesg = ("[    0.21] pci 0000:00:00.0: calling  __UNIQUE_ID_quirk_mmio_always_on402+0x0/0x10"
             " @ 1\n[    0.22] pci 0000:00:1f.0: calling  __UNIQUE_ID_quirk_ich7_lpc613+0x0/0x10"
             " @ 1\n")
    ok, why = evaluate_pci_fixups(dmesg, "thin")
    assert ok and why.startswith("2 PCI fixups called through their __UNIQUE_ID_ stubs")
    assert not evaluate_pci_fixups("", "thin")[0]
    direct = dmesg.replace("__UNIQUE_ID_", "")
    ok, why = evaluate_pci_fixups(direct, "full")
    assert not ok and why.startswith("2 of 2 PCI fixups called without an __UNIQUE_ID_ stub")
    # without LTO the hooks are named directly: that is right there, and stubs are not
    assert evaluate_pci_fixups(direct, "none")[0]
    assert not evaluate_pci_fixups(dmesg, "none")[0]


def test_efi_stub_verdicts() -> None:
    console = "UEFI firmware\nEFI stub: Booting Linux Kernel...\nEFI stub: Exiting boot " \
        "services...\n"
    assert evaluate_efi_stub(console, "efivars fw_platform_size systab\n")[0]
    assert not evaluate_efi_stub("Booting Linux on physical CPU 0x0\n", "")[0]
    ok, why = evaluate_efi_stub(console, "ls: /sys/firmware/efi: No such file or directory")
    assert not ok and "no /sys/firmware/efi" in why


X86_CMD = ("ld.lld-19 -m elf_x86_64 -mllvm -import-instr-limit=5 -z noexecstack -r -o vmlinux.o "
           "-T .tmp_initcalls.lds --whole-archive vmlinux.a --no-whole-archive ; "
           "./tools/objtool/objtool --hacks=jump_label --hacks=noinstr --mcount --static-call "
           "--uaccess --link vmlinux.o")
SMAP = ("ffffffff81400000 D __start_rodata\nffffffff81600008 D lkdtm_rodata_do_nothing\n"
        "ffffffff81800000 D __end_rodata\n")
OBJTOOL_FTRACE = {"OBJTOOL": "y", "FTRACE_MCOUNT_USE_OBJTOOL": "y"}


def test_build_outputs() -> None:
    facts = evaluate_build_outputs(X86_CMD, OBJTOOL_FTRACE, "x86_64", "thin", SMAP)
    assert all(ok for ok, _ in facts) and len(facts) == 4, facts
    no_mcount = evaluate_build_outputs(X86_CMD.replace(" --mcount", ""), OBJTOOL_FTRACE,
                                       "x86_64", "thin", SMAP)
    assert (False, "objtool on vmlinux.o without --mcount: no ftrace call sites") in no_mcount
    no_limit = evaluate_build_outputs(X86_CMD.replace("-mllvm -import-instr-limit=5 ", ""),
                                      OBJTOOL_FTRACE, "x86_64", "thin", SMAP)
    assert (False, "no -import-instr-limit in the vmlinux.o link") in no_limit
    # full LTO has no import limit; no LTO, no postponed objtool; no build dir, no command
    assert len(evaluate_build_outputs(X86_CMD, OBJTOOL_FTRACE, "x86_64", "full", SMAP)) == 3
    assert len(evaluate_build_outputs(X86_CMD, OBJTOOL_FTRACE, "x86_64", "none", SMAP)) == 1
    assert evaluate_build_outputs(None, {}, "arm64", "thin", "") == []


def test_rodata_placement() -> None:
    assert rodata_placement(SMAP) == (True, "lkdtm_rodata_do_nothing at 0xffffffff81600008 (D) "
                                            "in .rodata")
    in_text = SMAP.replace("ffffffff81600008 D", "ffffffff81000100 T")
    ok, fact = rodata_placement(in_text)  # type: ignore[misc]
    assert not ok and "outside .rodata" in fact
    assert rodata_placement("ffffffff81400000 D __start_rodata\n") is None  # no LKDTM


def test_a_machine_problem_inside_a_check_is_no_verdict(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    from harness.checks import registry
    from harness.errors import BuildError, InfraError

    def machine(guest: object, kernel: object) -> registry.CheckResult:
        raise InfraError("UEFI firmware x is missing: run ./setup.sh")

    def kernel_side(guest: object, kernel: object) -> registry.CheckResult:
        raise BuildError("probe modules did not build")

    monkeypatch.setitem(registry.CHECKS, "t1", registry.Check("t1", "", machine))
    monkeypatch.setitem(registry.CHECKS, "t2", registry.Check("t2", "", kernel_side))
    with pytest.raises(InfraError):
        registry.run_check("t1", None, None)  # type: ignore[arg-type]
    got = registry.run_check("t2", None, None)  # type: ignore[arg-type]
    assert got.verdict == "FAIL" and got.summary == "probe modules did not build"


def test_ftrace_without_our_modules() -> None:
    vmlinux_only = "\n".join(line for line in FTRACE_OK.splitlines()
                             if "ltoboot_probe_value" not in line)
    ok, why = evaluate_ftrace(vmlinux_only, with_module=False)
    assert ok and "no build directory" in why
    assert not evaluate_ftrace(vmlinux_only)[0]
    script = ftrace_script(None)
    assert "insmod" not in script and "rmmod" not in script
    assert "echo 'version_proc_show' >" in script
