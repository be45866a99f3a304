"""build_outputs: the verdicts on the build's own outputs (link commands, objtool, .rodata
placement)."""

from __future__ import annotations

from harness.checks.build_outputs import evaluate_build_outputs, rodata_placement

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
