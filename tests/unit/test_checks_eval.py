from __future__ import annotations

from harness.checks import basic as checks
from harness.checks import dmesg as dmesg_check

SEED = ("Linux version 5.9.0-rc3+ (kees@...rok) (clang version 12.0.0 ( db1ec04963cc), "
        "LLD 12.0.0 ( db1ec04963cc)) #1 SMP Thu Sep 3 15:54:14 PDT 2020")
DEBIAN = ("Linux version 6.1.192 (ltoboot@ltoboot) (Debian clang version 19.1.7 (3~deb12u1), "
          "Debian LLD 19.1.7) #1 Mon Nov 23 19:47:08 UTC 2026")
GCC = "Linux version 6.1.0 (x@y) (gcc (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils) 2.40) #1"
THIN = """CONFIG_LTO=y
CONFIG_LTO_CLANG=y
CONFIG_ARCH_SUPPORTS_LTO_CLANG=y
CONFIG_ARCH_SUPPORTS_LTO_CLANG_THIN=y
CONFIG_HAS_LTO_CLANG=y
# CONFIG_LTO_NONE is not set
# CONFIG_LTO_CLANG_FULL is not set
CONFIG_LTO_CLANG_THIN=y"""
NONE = """CONFIG_ARCH_SUPPORTS_LTO_CLANG=y
CONFIG_ARCH_SUPPORTS_LTO_CLANG_THIN=y
CONFIG_HAS_LTO_CLANG=y
CONFIG_LTO_NONE=y
# CONFIG_LTO_CLANG_FULL is not set
# CONFIG_LTO_CLANG_THIN is not set"""


def test_proc_version() -> None:
    assert checks.evaluate_proc_version(SEED, 12)[0]
    assert checks.evaluate_proc_version(DEBIAN, 19) == (True, "clang version 19.1.7, LLD 19.1.7")
    ok, why = checks.evaluate_proc_version(DEBIAN, 18)
    assert not ok and "expected the toolchain that built it: 18" in why
    ok, why = checks.evaluate_proc_version(GCC, None)
    assert not ok and "clang version and LLD" in why


def test_lto_config() -> None:
    assert checks.evaluate_lto_config(THIN, "thin")[0]
    ok, why = checks.evaluate_lto_config(NONE, "thin")
    assert not ok and why.startswith("not an LTO kernel") and "CONFIG_LTO_NONE=y" in why
    assert checks.evaluate_lto_config(NONE, "none")[0]
    ok, why = checks.evaluate_lto_config(THIN, "none")
    assert not ok and "ThinLTO kernel where no LTO was expected" in why
    ok, why = checks.evaluate_lto_config(THIN, "full")
    assert not ok and "ThinLTO kernel where full LTO" in why
    assert not checks.evaluate_lto_config("", "thin")[0]


def test_dmesg_and_modules() -> None:
    dmesg = "[ 0.1] ok\n[ 0.2] WARNING: CPU: 0 PID: 1 at x.c:1 f\n[ 0.3] Call Trace:\n"
    assert len(dmesg_check.dmesg_problems(dmesg)) == 2
    mods = "test_module 16384 0 - Live 0x0000000000000000\n"
    assert checks.module_listed(mods, "test_module")
    assert not checks.module_listed(mods, "test")


def test_a_check_meeting_unexpected_output_fails_with_evidence() -> None:
    from pathlib import Path
    from typing import Any

    from harness.checks import registry

    def confused(guest: Any, kernel: Any) -> registry.CheckResult:
        return registry.CheckResult("x", int("grep: /proc/kallsyms: No such file") > 0, "")

    registry.CHECKS["confused"] = registry.Check("confused", "for this test", confused)
    try:
        r = registry.run_check("confused", None, None)  # type: ignore[arg-type]
    finally:
        del registry.CHECKS["confused"]
    assert not r.passed and not r.skipped
    assert r.summary.startswith("unexpected answer from the guest: ValueError")
    assert "No such file" in r.summary and "Traceback" in r.evidence
    assert Path(__file__).name in r.evidence
