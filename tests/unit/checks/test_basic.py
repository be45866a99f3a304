"""proc_version and lto_config: what /proc/version and /proc/config.gz must say for each LTO mode,
on recorded output."""

from __future__ import annotations

from harness.checks import basic as checks

SEED = ("Linux version 5.9.0-rc3+ (kees@...rok) (clang version 12.0.0 ( db1ec04963cc), "
        "LLD 12.0.0 ( db1ec04963cc)) #1 SMP Thu Sep 3 15:54:14 PDT 2020")


DEBIAN = ("Linux version 6.1.192 (ltoboot@ltoboot) (Debian clang version 19.1.7 (3~deb12u1), "
          "Debian LLD 19.1.7) #1 Mon Nov 23 19:47:08 UTC 2026")


GCC = "Linux version 6.1.0 (x@y) (gcc (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils) 2.40) #1"


def test_proc_version() -> None:
    assert checks.evaluate_proc_version(SEED, 12)[0]
    assert checks.evaluate_proc_version(DEBIAN, 19) == (True, "clang version 19.1.7, LLD 19.1.7")
    ok, why = checks.evaluate_proc_version(DEBIAN, 18)
    assert not ok and "expected the toolchain that built it: 18" in why
    ok, why = checks.evaluate_proc_version(GCC, None)
    assert not ok and "clang version and LLD" in why


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
