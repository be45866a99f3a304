"""What checks need, as data: builds ask only for what the toolchain gives; SKIP says why."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.base import needs
from harness.checks import CHECKS
from harness.kernel import kconfig
from harness.runs import matrix

CLANG14 = "Debian clang version 14.0.6"


def test_every_check_declares_its_needs() -> None:
    """One row of harness/base/needs.py per registered check, and no row without its check: the
    kernel stage plans builds from the table, the registry runs what the modules declared."""
    assert sorted(set(CHECKS) - set(needs.CHECKS)) == [], "registered, but no row in needs.py"
    assert sorted(set(needs.CHECKS) - set(CHECKS)) == [], "a row in needs.py, but no check"
    assert all(c.needs is needs.CHECKS[n] for n, c in CHECKS.items())


def test_an_old_clang_leaves_kcfi_out_with_the_reason() -> None:
    options, left_out = needs.build_options(14, CLANG14)
    assert "CFI_CLANG" not in options and "LKDTM" in options  # lkdtm_rodata still needs it
    assert left_out == {"cfi": f"kCFI needs clang >= 16; built with {CLANG14}"}
    options, left_out = needs.build_options(16, "clang version 16.0.6")
    assert options["CFI_CLANG"] == "y" and left_out == {}


def test_the_default_build_asks_for_what_every_check_needs() -> None:
    wanted = kconfig.wanted_options("x86_64.config", "thin")
    for n in needs.CHECKS.values():
        assert n.kconfig.items() <= wanted.items()


def test_skip_reasons() -> None:
    full = needs.build_options(19, "clang 19")[0]
    assert needs.unmet("cfi", full, 19, "clang 19", True) is None
    no_lkdtm = {k: v for k, v in full.items() if k != "LKDTM"}
    assert needs.unmet("cfi", no_lkdtm, 19, "clang 19", True) == \
        "needs CONFIG_LKDTM=y, which this kernel's config does not have"
    no_cfi = {k: v for k, v in full.items() if k != "CFI_CLANG"}
    assert needs.unmet("cfi", no_cfi, 14, CLANG14, True) == \
        f"kCFI needs clang >= 16; built with {CLANG14}"
    assert needs.unmet("probe_modules", full, 19, "clang 19", False).startswith(  # type: ignore[union-attr]
        "needs the kernel's build directory")
    builtin = {**full, "TEST_LKM": "y"}
    assert "CONFIG_TEST_LKM=m" in str(needs.unmet("test_module", builtin, 19, "c", True))


def test_matrix_table_counts_and_notes() -> None:
    ok = matrix.Cell("/usr/src/linux-source-6.12.tar.xz", "14", "x86_64", "thin",
                     release="6.12.117", compiler=CLANG14, status=matrix.CellStatus.PASSED,
                     passed=9,
                     skipped=1, build_seconds=190.0, boot_seconds=1.3,
                     skips=[f"cfi: kCFI needs clang >= 16; built with {CLANG14}"])
    bad = matrix.Cell("/x.tar.xz", "15", "arm64", "full", status=matrix.CellStatus.ERROR,
                      failures=["missing clang-15: run ./setup.sh or apt-get install clang-15"])
    text = matrix.table([ok, bad])
    assert text.splitlines()[2].split() == ["6.12.117", "14.0.6", "x86_64", "thin",
                                            "tinyconfig", "passed", "9", "0", "1", "3m10s",
                                            "1.3s"]
    assert "x.tar.xz" in text.splitlines()[3] and "error" in text.splitlines()[3]
    assert "SKIP cfi: kCFI needs clang >= 16" in text and "missing clang-15" in text


def _tree(root: Path) -> Path:
    """A tree with a Kconfig file at the top, in arch/x86 and arch/arm64."""
    (root / "arch/x86").mkdir(parents=True)
    (root / "arch/arm64").mkdir(parents=True)
    (root / "Kconfig").write_text("config MODULES\n\tbool\nmenuconfig LKDTM\n")
    (root / "arch/x86/Kconfig").write_text("config X86_64\n  def_bool y\n")
    (root / "arch/arm64/Kconfig.debug").write_text("config ARM64_ONLY\n")
    (root / ".ltoboot-x/Kconfig").parent.mkdir()
    (root / ".ltoboot-x/Kconfig").write_text("config HIDDEN\n")
    return root


def test_defined_symbols_are_this_arch_and_the_common_tree(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    assert kconfig.defined_symbols(tree, "x86") == {"MODULES", "LKDTM", "X86_64"}
    assert kconfig.defined_symbols(tree, "arm64") == {"MODULES", "LKDTM", "ARM64_ONLY"}
    assert kconfig.undefined({"MODULES": "y", "X86_64": "n", "NOPE": "m"},
                             frozenset({"MODULES"})) == ["NOPE"]


def test_defined_symbols_are_kept_per_tree_identity_and_arch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new process reads the cache's record instead of walking the tree again; another
    identity (the tree changed), another arch or a damaged record walks it."""
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    tree = _tree(tmp_path / "tree")
    walked: list[str] = []
    walk = kconfig._walk_symbols

    def counted(t: Path, src_arch: str) -> set[str]:
        walked.append(src_arch)
        return walk(t, src_arch)

    monkeypatch.setattr(kconfig, "_walk_symbols", counted)
    monkeypatch.setattr(kconfig, "_DEFINED", {})
    assert kconfig.defined_symbols(tree, "x86", "tarball:aaa") == {"MODULES", "LKDTM", "X86_64"}
    monkeypatch.setattr(kconfig, "_DEFINED", {})  # a new process
    (tree / "arch/x86/Kconfig").write_text("config CHANGED\n")  # the record is what counts
    assert kconfig.defined_symbols(tree, "x86", "tarball:aaa") == {"MODULES", "LKDTM", "X86_64"}
    assert walked == ["x86"]
    assert kconfig.defined_symbols(tree, "x86", "tarball:bbb") == {"MODULES", "LKDTM", "CHANGED"}
    assert kconfig.defined_symbols(tree, "arm64", "tarball:aaa") == \
        {"MODULES", "LKDTM", "ARM64_ONLY"}
    assert walked == ["x86", "x86", "arm64"]
    for record in (tmp_path / "cache/kconfig-symbols").iterdir():
        record.write_text(record.read_text()[:30])  # cut short
    monkeypatch.setattr(kconfig, "_DEFINED", {})
    assert kconfig.defined_symbols(tree, "x86", "tarball:aaa") == {"MODULES", "LKDTM", "CHANGED"}
    assert walked == ["x86", "x86", "arm64", "x86"]


def test_a_check_whose_options_the_kernel_lacks_is_left_out_with_the_reason() -> None:
    defined = frozenset(kconfig.wanted_options("x86_64.config", "thin")) - {"CFI_CLANG"}
    options, left_out = needs.build_options(19, "clang 19", defined=defined, version="6.0.1",
                                            arch="x86_64", lto="thin")
    assert left_out == {"cfi": "Linux 6.0.1 does not define CONFIG_CFI_CLANG",
                        "kvm_nvhe": "applies to arm64 only, not x86_64",
                        "efi_stub": "applies to arm64 only, not x86_64"}
    assert "CFI_CLANG" not in options and "MODVERSIONS" in options


def test_arch_and_lto_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(needs.CHECKS, "kvm_only", needs.Needs({"KVM": "y"}, arches=("arm64",),
                                                              lto=("thin", "full")))
    options, left_out = needs.build_options(19, "c", ["kvm_only"], arch="x86_64", lto="thin")
    assert options == {} and left_out == {"kvm_only": "applies to arm64 only, not x86_64"}
    options, left_out = needs.build_options(19, "c", ["kvm_only"], arch="arm64", lto="none")
    assert left_out == {"kvm_only": "applies to LTO thin, full only, not none"}
    options, left_out = needs.build_options(19, "c", ["kvm_only"], arch="arm64", lto="thin")
    assert options == {"KVM": "y"} and left_out == {}
    assert needs.unmet("kvm_only", {"KVM": "y"}, 19, "c", True, "x86_64", "thin") == \
        "applies to arm64 only, not x86_64"


def test_a_kernel_without_smp_skips_smp_with_the_reason() -> None:
    """Shown on a real uniprocessor kernel too (ltoboot's x86_64 default before it was SMP,
    run as a prebuilt kernel: "SKIP smp skipped: needs CONFIG_SMP=y, which this kernel's
    config does not have"); a default build asks for SMP on every arch."""
    assert needs.unmet("smp", {"SMP": "y"}, 19, "clang 19", False) is None
    assert needs.unmet("smp", {}, 19, "clang 19", False) == \
        "needs CONFIG_SMP=y, which this kernel's config does not have"
    for fragment in ("x86_64.config", "arm64.config"):
        assert kconfig.wanted_options(fragment, "thin")["SMP"] == "y"


def test_only_the_symbol_records_used_last_are_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(kconfig, "SYMBOL_RECORDS", 3)
    tree = _tree(tmp_path / "tree")
    for i in range(5):
        time.sleep(0.05)  # file times are as coarse as the kernel's clock tick
        monkeypatch.setattr(kconfig, "_DEFINED", {})
        kconfig.defined_symbols(tree, "x86", f"tarball:{i}")
        if i == 2:  # the first is used again: it stays
            time.sleep(0.05)
            monkeypatch.setattr(kconfig, "_DEFINED", {})
            kconfig.defined_symbols(tree, "x86", "tarball:0")
    kept = {r.read_text().splitlines()[0].split()[-1]
            for r in (tmp_path / "cache/kconfig-symbols").iterdir()}
    assert kept == {"tarball:0", "tarball:3", "tarball:4"}
