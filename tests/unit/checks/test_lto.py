"""llvm_symbols: which promoted functions can be looked up by a plain name, and the verdicts on
recorded guest output, for kallsyms that strips .llvm.<hash> (Linux 6.1) and for kallsyms that
matches exactly (6.11 on): the pure evaluator, then the thin function that asks the guest."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.checks import lto
from harness.checks.lto import Lookup, evaluate_llvm_symbols, promoted_functions
from harness.guest import modules
from harness.guest.console import CommandResult
from harness.kernel.model import Kernel

# What the guest printed (COUNT_CMD, kallsyms_cmd, kprobe_cmd: ltoboot_probe.c's pr_info, or
# busybox insmod refusing the module when register_kprobe fails)
COUNT = "3\n"
ALPHA = "ffffffff81000100 t alpha.llvm.111\n"
BETA = "ffffffff81000200 t beta.llvm.222\n"
PROBED_BETA = "[    1.042000] ltoboot_probe: kprobe beta at ffffffff81000200\n"
PROBED_BETA_FULL = "[    1.042000] ltoboot_probe: kprobe beta.llvm.222 at ffffffff81000200\n"
REFUSED = "insmod: can't insert '/lib/ltoboot/ltoboot_probe.ko': invalid parameter\n"
SYSTEM_MAP = ("ffffffff81000000 T _stext\nffffffff81000100 t alpha.llvm.111\n"
              "ffffffff81000200 t beta.llvm.222\nffffffff81000300 t gamma.llvm.333\n")


def test_promoted_functions_need_unique_plain_names() -> None:
    smap = ("ffffffff81000000 t foo.llvm.1234\nffffffff81000010 t bar.llvm.99\n"
            "ffffffff81000020 t bar\nffffffff81000030 d baz.llvm.5\n")
    assert promoted_functions(smap) == [("foo", "foo.llvm.1234")]


def test_the_count_alone_where_the_lookup_cannot_be_checked() -> None:
    unreadable = "grep: /proc/kallsyms: No such file or directory\n"
    got = evaluate_llvm_symbols(unreadable, "thin", "6.1.192")
    assert (got.passed, got.summary, got.evidence) == \
        (False, "cannot count names in /proc/kallsyms", unreadable)
    assert evaluate_llvm_symbols("0\n", "none", "6.1.192").summary == \
        "0 .llvm.<hash> names in /proc/kallsyms (expected none without ThinLTO)"
    assert evaluate_llvm_symbols("0\n", "full", "6.1.192").passed
    assert not evaluate_llvm_symbols(COUNT, "full", "6.1.192").passed
    none = evaluate_llvm_symbols("0\n", "thin", "6.1.192")
    assert not none.passed and none.summary == \
        "no .llvm.<hash> names in /proc/kallsyms of a ThinLTO kernel"
    no_map = evaluate_llvm_symbols(COUNT, "thin", "6.1.192", system_map=False)
    assert no_map.passed and no_map.summary == \
        "3 .llvm.<hash> names (no System.map: lookup not checked)"
    no_dir = evaluate_llvm_symbols(COUNT, "thin", "6.1.192", build_dir=False)
    assert no_dir.passed and "our kprobe module needs the kernel's build directory" in \
        no_dir.summary
    unknown = evaluate_llvm_symbols(COUNT, "thin", "next-20261201")
    assert unknown.passed and "release 'next-20261201' does not say which kallsyms" in \
        unknown.summary


def test_linux_6_1_finds_a_promoted_function_by_its_c_name() -> None:
    asked = [Lookup("alpha", "alpha.llvm.111", ALPHA, REFUSED),
             Lookup("beta", "beta.llvm.222", BETA, PROBED_BETA)]
    got = evaluate_llvm_symbols(COUNT, "thin", "6.1.192", asked)
    assert got.passed
    assert got.summary == "3 .llvm.<hash> names; kprobe on beta found beta.llvm.222 at " \
        "ffffffff81000200"
    lost = evaluate_llvm_symbols(COUNT, "thin", "6.1.192", asked[:1])
    assert not lost.passed  # the broken variant kallsyms-unstripped says this
    assert lost.summary == "3 .llvm.<hash> names, but none could be found by its plain name " \
        "(kallsyms of Linux 6.1.192 strips .llvm.<hash>)"
    assert lost.evidence == "alpha: kprobe failed (kallsyms: alpha.llvm.111 at ffffffff81000100)"
    elsewhere = Lookup("alpha", "alpha.llvm.111", ALPHA, PROBED_BETA.replace("beta", "alpha"))
    assert evaluate_llvm_symbols(COUNT, "thin", "6.1.192", [elsewhere]).evidence == \
        "alpha: kprobe at ffffffff81000200 (kallsyms: alpha.llvm.111 at ffffffff81000100)"


def test_linux_6_12_finds_it_by_its_full_name_and_says_what_the_c_name_finds() -> None:
    found = Lookup("beta", "beta.llvm.222", BETA, PROBED_BETA_FULL, REFUSED)
    got = evaluate_llvm_symbols(COUNT, "thin", "6.12.117", [found])
    assert got.passed and "matches exactly" in got.summary
    assert got.summary == "3 .llvm.<hash> names; kprobe on beta.llvm.222 found beta.llvm.222 " \
        "at ffffffff81000200 (Linux >= 6.11 matches exactly; the C name is not found)"
    stripping = Lookup("beta", "beta.llvm.222", BETA, PROBED_BETA_FULL, PROBED_BETA)
    assert evaluate_llvm_symbols(COUNT, "thin", "6.12.117", [stripping]).summary.endswith(
        "the C name is found too, at ffffffff81000200)")  # said, not judged
    lost = evaluate_llvm_symbols(COUNT, "thin", "6.12.117",
                                 [Lookup("beta", "beta.llvm.222", BETA, REFUSED)])
    assert not lost.passed  # the broken variant kallsyms-inexact says this
    assert "none could be found by its full name (kallsyms of Linux 6.12.117 matches " \
        "exactly)" in lost.summary
    assert lost.evidence == "beta.llvm.222: kprobe failed (kallsyms: beta.llvm.222 at " \
        "ffffffff81000200)"


class Answering:
    """A guest that prints the recorded answer to each command (nothing to others)."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers, self.typed = answers, list[str]()

    def run(self, cmd: str, timeout: float = 10.0, *,
            allow_kernel_errors: bool = False) -> CommandResult:
        self.typed.append(cmd)
        return CommandResult(cmd=cmd, status=0, output=self.answers.get(cmd, ""))


def _kernel(tmp_path: Path, release: str) -> Kernel:
    (tmp_path / "System.map").write_text(SYSTEM_MAP)
    return Kernel(arch="x86_64", lto="thin", release=release, image=tmp_path / "bzImage",
                  config=tmp_path / ".config", system_map=tmp_path / "System.map",
                  modules=None, build_dir=tmp_path, source_tree=None, compiler="clang 19",
                  linker="LLD 19", llvm_major=19, source="test", key="k")


@pytest.mark.parametrize(("release", "probed", "by"), [
    ("6.1.192", lto.kprobe_cmd("beta"), "beta"),
    ("6.12.117", lto.kprobe_cmd("beta.llvm.222"), "beta.llvm.222")])
def test_the_check_asks_until_one_is_found_and_types_what_its_plan_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: str, probed: str,
        by: str) -> None:
    monkeypatch.setattr(modules, "probe_modules", lambda kernel: None)
    kernel = _kernel(tmp_path, release)
    guest = Answering({lto.COUNT_CMD: COUNT, lto.kallsyms_cmd("alpha.llvm.111"): ALPHA,
                       lto.kallsyms_cmd("beta.llvm.222"): BETA,
                       probed: PROBED_BETA.replace("beta", by)})
    got = lto.llvm_symbols(guest, kernel)  # type: ignore[arg-type]
    assert got.name == "llvm_symbols" and got.passed, got.summary
    assert f"kprobe on {by} found beta.llvm.222" in got.summary
    planned = iter(lto.llvm_symbols_plan(kernel))  # what LAVA's job types: all it may
    assert all(cmd in planned for cmd in guest.typed), guest.typed  # in the plan's order
    assert guest.typed[-1] == (lto.kprobe_cmd("beta") if by != "beta" else probed)
    assert len(guest.typed) == 1 + 2 * 2 + (by != "beta")  # stopped at beta, the second


def test_the_check_asks_nothing_more_where_the_count_decides(tmp_path: Path) -> None:
    guest = Answering({lto.COUNT_CMD: "0\n"})
    got = lto.llvm_symbols(guest, _kernel(tmp_path, "6.1.192"))  # type: ignore[arg-type]
    assert not got.passed and guest.typed == [lto.COUNT_CMD]


def test_the_count_keeps_the_names_that_the_lookups_read(tmp_path: Path) -> None:
    """COUNT_CMD then kallsyms_cmd, as the guest's busybox runs them, on a recorded kallsyms
    (the file name moved into the scratch directory): the count, and a name's line from
    what the count kept; none when no name has the hash."""
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text("ffffffff81000100 t alpha.llvm.111\nffffffff81000150 T plain\n"
                        "ffffffff81000200 t beta.llvm.222\n")
    kept = str(tmp_path / "names")

    def sh(cmd: str) -> str:
        cmd = cmd.replace("/proc/kallsyms", str(kallsyms)).replace(lto.LLVM_NAMES, kept)
        return subprocess.run(["busybox", "sh", "-c", cmd], capture_output=True,
                              text=True).stdout

    assert lto.count_of(sh(lto.COUNT_CMD)) == 2
    assert lto.kallsyms_address(sh(lto.kallsyms_cmd("beta.llvm.222"))) == 0xffffffff81000200
    kallsyms.write_text("ffffffff81000150 T plain\n")
    assert lto.count_of(sh(lto.COUNT_CMD)) == 0
    assert lto.kallsyms_address(sh(lto.kallsyms_cmd("beta.llvm.222"))) is None
