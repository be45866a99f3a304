"""Beyond the default: Debian's Linux 6.12 with clang 14, x86_64 ThinLTO (and with clang 19,
opt-in: the default suite covers the other kernel and the old clang in one build).

A correct kernel passes wherever it comes from; what a kernel cannot have (kCFI from clang 14)
is SKIP with the reason, never FAIL; and the 6.12 side of llvm_symbols fails on a kernel broken
the 6.12 way. The rest of the matrix is `ltoboot matrix`, run by hand (README).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.base import cache, needs
from harness.checks import run_check, run_checks
from harness.faces.cli import main
from harness.faces.pytest_plugin.fixtures import Guests, Kernels
from harness.kernel import source
from harness.kernel.variants import build_variant
from harness.reports.results import KernelReport
from harness.reports.text import render

LINUX_6_12 = "/usr/src/linux-source-6.12.tar.xz"

pytestmark = pytest.mark.boot


@pytest.mark.parametrize("llvm", [
    pytest.param("19", marks=[pytest.mark.xdist_group("x86_64-thin-6.12-clang19"),
                              pytest.mark.opt_in("LTOBOOT_FULL_MATRIX",
                                                 "(Linux 6.12 with clang 19 too: a full build "
                                                 "more)")]),
    pytest.param("14", marks=pytest.mark.xdist_group("x86_64-thin-6.12-clang14")),
])
def test_linux_6_12_passes_or_says_why_not(llvm: str, kernels: Kernels,
                                           guests: Guests) -> None:
    kernel = kernels.get(arch="x86_64", kernel_src=LINUX_6_12, llvm=llvm)
    assert kernel.release.startswith("6.12."), kernel.release
    guest = guests.get(kernel)
    results = run_checks(guest, kernel)
    text = render(KernelReport(kernel.label, kernel, results=results))
    assert all(r.passed for r in results), text
    by_name = {r.name: r for r in results}
    assert "matches exactly" in by_name["llvm_symbols"].summary, text
    # what does not apply to x86_64 at all (arm64's KVM and EFI stub) says so
    skipped = {r.name for r in results if r.skipped
               and not needs.scope_gap(needs.CHECKS[r.name], "x86_64", "thin")}
    assert all(str(needs.scope_gap(needs.CHECKS[r.name], "x86_64", "thin")) in r.summary
               for r in results if r.skipped and r.name not in skipped), text
    if llvm == "14":
        assert skipped == {"cfi"}, text
        assert by_name["cfi"].summary == ("skipped: kCFI needs clang >= 16; built with "
                                          f"{kernel.compiler}"), text
        assert "clang version 14." in kernel.compiler
    else:
        assert skipped == set(), text
        assert "CFI failure at" in by_name["cfi"].summary, text


@pytest.mark.xdist_group("x86_64-thin-6.12-clang14")
def test_6_12_kallsyms_that_is_not_exact_fails_llvm_symbols(kernels: Kernels,
                                                             guests: Guests) -> None:
    base = kernels.get(arch="x86_64", kernel_src=LINUX_6_12, llvm="14")
    broken = build_variant(base, "kallsyms-inexact")
    r = run_check("llvm_symbols", guests.get(broken), broken)
    assert not r.passed, r.summary
    assert "none could be found by its full name" in r.summary
    assert "matches exactly" in r.summary and "kprobe failed" in r.evidence


@pytest.mark.parametrize(("fragment", "arch"), [
    ("CONFIG_LTOBOOT_NO_SUCH_OPTION=y", "arm64"),
    # arm64-only: x86's Kconfig does not define it, so Kconfig would drop it silently
    ("CONFIG_ARM64_VA_BITS_48=y", "x86_64"),
])
def test_an_option_the_kernel_does_not_define_is_refused_before_building(
        fragment: str, arch: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frag = tmp_path / "extra.config"
    frag.write_text(f"CONFIG_PRINTK=y\n{fragment}\n")
    # the version Debian ships today, read from the source as ltoboot reads it
    version = source.resolve(LINUX_6_12).version
    assert version.startswith("6.12."), version
    option = fragment.split("=")[0]
    message = f"asks for {option}, which Linux {version} ({arch}, "
    logs = cache.cache_root() / "logs"

    def builds() -> set[Path]:  # of this arch on 6.12 (other workers write their own logs)
        return {p for p in logs.glob(f"build-{arch}-*.log")
                if "linux-source-6.12" in p.read_text(errors="replace")[:4000]} \
            if logs.is_dir() else set()

    before = builds()
    assert main(["run", "--arch", arch, "--kernel-src", LINUX_6_12, "--fragment", str(frag)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and message in err[0] and f"remove it from {frag}" in err[0], err
    assert builds() == before  # nothing was built
